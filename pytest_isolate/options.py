"""Options of the optional features, kept apart from the features' own modules.

Every process registers every option (xdist workers parse the same command line), but only
the processes that use a feature import its module: a worker never imports the reruns.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

#: An explicit --dist was given (read before xdist turns -n into --dist load).
EXPLICIT_DIST = pytest.StashKey[bool]()
#: --isolate-plan: the worker count to plan for.
PLAN_WORKERS = pytest.StashKey[int]()

#: Defaults of the rerun caps: tests, and seconds for all reruns and searches together.
RERUN_MAX = "10"
RERUN_BUDGET = "120"

#: The markers users write (read by :mod:`pytest_isolate.declare.markers`), registered in every run
#: so that marked suites pass --strict-markers with the plugin asked for or not.
MARKERS = (
    "resource(*names, mode='exclusive'): the test uses these shared resources; no two tests "
    "holding the same name run at once (mode='shared': readers may overlap each other). "
    "'dir:PATH' names a directory (conflicts with its parents and children), 'port:N' a port. "
    "Provided by pytest-isolate.",
    "serial: run this test with no other test running. Provided by pytest-isolate.",
    "isolate_timeout(seconds): under -n, stop this test's worker after that many seconds and "
    "fail the test with its stack. Provided by pytest-isolate.",
)


def register_markers(config: pytest.Config) -> None:
    for line in (*MARKERS, AUDIT_MARKER):
        config.addinivalue_line("markers", line)


#: Registered whether the audit is on or not, so marked suites pass --strict-markers.
AUDIT_MARKER = (
    "isolate_audit_ignore(*patterns): --isolate-audit does not report what these patterns "
    "name (KIND or KIND:GLOB; kinds file, port, env, cwd, thread, process). "
    "Provided by pytest-isolate."
)


def audit_wanted(config: pytest.Config) -> bool:
    option = config.getoption("isolate_audit")
    return bool(option if option is not None else config.getini("isolate_audit"))


def add_audit_options(parser: pytest.Parser, group: Any) -> None:
    group.addoption(
        "--isolate-audit",
        action="store_true",
        default=None,
        help="report, test by test, shared state a test touches without declaring it "
        "(files, ports, environment, working directory, threads, processes)",
    )
    addini(parser, "isolate_audit", type="bool", default=False, help="default for --isolate-audit")
    addini(
        parser,
        "isolate_audit_ignore",
        type="linelist",
        default=[],
        help="findings --isolate-audit never reports, KIND or KIND:GLOB each "
        "(e.g. 'file:logs/*', 'env:MY_TOOL_*', 'thread')",
    )


def add_rerun_options(parser: pytest.Parser, group: Any) -> None:
    group.addoption(
        "--isolate-rerun-alone",
        dest="isolate_rerun_alone",
        action="store_const",
        const=True,
        default=None,
        help="after a run under -n, rerun each failed test in fresh pytest processes, alone and "
        "after or beside other tests, and name its cause: polluted by an earlier test, needs "
        "an earlier test, overlap, timing or load, or a real failure (default: ini "
        "isolate_rerun_alone, on)",
    )
    group.addoption(
        "--no-isolate-rerun-alone",
        dest="isolate_rerun_alone",
        action="store_const",
        const=False,
        help="do not rerun failed tests alone",
    )
    group.addoption(
        "--isolate-rerun-max",
        metavar="N",
        default=None,
        help="rerun at most N failed tests (default: ini isolate_rerun_max, 10)",
    )
    group.addoption(
        "--isolate-rerun-budget",
        metavar="SECONDS",
        default=None,
        help="time for all reruns and culprit searches together "
        "(default: ini isolate_rerun_budget, 120)",
    )
    group.addoption(
        "--isolate-parallel-only-ok",
        dest="isolate_parallel_only_ok",
        action="store_const",
        const=True,
        default=None,
        help="let the run pass when every failed test was shown to fail only beside a test on "
        "another worker or by timing (default: ini isolate_parallel_only_ok, off)",
    )
    group.addoption(
        "--isolate-forget",
        action="store_true",
        default=False,
        help="drop what earlier runs' diagnoses learned (pairs of tests run on one worker) and "
        "the tests known to fail alone, before this run",
    )
    group.addoption(
        "--isolate-rerun-child",
        action="store_true",
        default=False,
        help=argparse.SUPPRESS,  # set by the plugin on the processes it reruns tests in
    )
    group.addoption(
        "--isolate-rerun-outcomes",
        metavar="PATH",
        default=None,
        help=argparse.SUPPRESS,  # a rerun's file of each test's start and outcome (rerun.py)
    )
    addini(
        parser,
        "isolate_rerun_alone",
        type="bool",
        default=True,
        help="rerun failed tests alone after a run under -n",
    )
    addini(parser, "isolate_rerun_max", default=RERUN_MAX, help="default for --isolate-rerun-max")
    addini(
        parser,
        "isolate_rerun_budget",
        default=RERUN_BUDGET,
        help="default for --isolate-rerun-budget",
    )
    addini(
        parser,
        "isolate_parallel_only_ok",
        type="bool",
        default=False,
        help="default for --isolate-parallel-only-ok",
    )


def rerun_caps_given(config: pytest.Config) -> bool:
    """Whether the rerun caps were set, so a bad value is an error even without workers."""
    return any(
        config.getoption(name) is not None or config.getini(name) != default
        for name, default in (
            ("isolate_rerun_max", RERUN_MAX),
            ("isolate_rerun_budget", RERUN_BUDGET),
        )
    )


# -- was the plugin asked for? ---------------------------------------------------------------

#: This plugin's ini keys and their defaults (filled by :func:`addini`): a key set to anything
#: else asks for the plugin.
INI_DEFAULTS: dict[str, object] = {}
#: Its command-line options (dest -> default): one given asks for the plugin.
OPTION_DEFAULTS: dict[str, object] = {}
#: ``-p`` values that load this plugin by name.
PLUGIN_NAMES = frozenset({"isolate", "pytest_isolate", "pytest_isolate.plugin"})


def addini(parser: pytest.Parser, name: str, help: str, **kwargs: Any) -> None:
    """``parser.addini``, remembering the default so that a set key counts as asking."""
    INI_DEFAULTS[name] = kwargs.get("default")
    parser.addini(name, help, **kwargs)


def remember_options(group: Any) -> None:
    """Note the dest and default of every option of the plugin's group."""
    for argument in group.options:
        OPTION_DEFAULTS[argument.dest] = argument.attrs().get("default")


def xdist_loaded(config: pytest.Config) -> bool:
    """pytest-xdist is loaded: by its entry point (``xdist``), or with autoload off by
    ``-p xdist.plugin``, as xdist's docs spell it."""
    manager = config.pluginmanager
    return manager.has_plugin("xdist") or manager.has_plugin("xdist.plugin")


def asked_for(config: pytest.Config) -> bool:
    """Whether this run asked for the plugin: ``-n``/``--dist``/``--tx``, ``-p isolate`` (on
    the command line or in addopts), an ``--isolate-*`` option or an ``isolate_*`` ini key.

    Otherwise the plugin is installed but not asked for, and stays out of the way: the
    same output, environment and files as with ``-p no:isolate`` (its fixtures still work).
    """
    option = config.option
    if hasattr(config, "workerinput"):
        return True
    if getattr(option, "numprocesses", None) is not None:
        return True
    if getattr(option, "dist", "no") not in ("no", None) or getattr(option, "tx", None):
        return True
    if PLUGIN_NAMES.intersection(getattr(option, "plugins", None) or ()):
        return True
    if any(getattr(option, dest, default) != default for dest, default in OPTION_DEFAULTS.items()):
        return True
    return any(config.getini(name) != default for name, default in INI_DEFAULTS.items())
