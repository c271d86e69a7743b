"""Options of the optional features, kept apart from the features' own modules.

Every process registers every option (xdist workers parse the same command line), but only
the processes that use a feature import its module: a worker never imports the reruns.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

#: Defaults of the rerun caps: tests, and seconds for all reruns and searches together.
RERUN_MAX = "10"
RERUN_BUDGET = "120"

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
    parser.addini("isolate_audit", type="bool", default=False, help="default for --isolate-audit")
    parser.addini(
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
        help="after a run under -n, rerun each failed test alone in a fresh pytest process; "
        "one that passes is reported as failing only in parallel (default: ini "
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
        help="let the run pass when every failed test passed when rerun alone "
        "(default: ini isolate_parallel_only_ok, off)",
    )
    group.addoption(
        "--isolate-rerun-child",
        action="store_true",
        default=False,
        help=argparse.SUPPRESS,  # set by the plugin on the processes it reruns tests in
    )
    parser.addini(
        "isolate_rerun_alone",
        type="bool",
        default=True,
        help="rerun failed tests alone after a run under -n",
    )
    parser.addini("isolate_rerun_max", default=RERUN_MAX, help="default for --isolate-rerun-max")
    parser.addini(
        "isolate_rerun_budget", default=RERUN_BUDGET, help="default for --isolate-rerun-budget"
    )
    parser.addini(
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
