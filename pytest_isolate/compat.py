"""Every use of a private name of pytest, xdist or execnet, in one place.

Each function says why the public API does not do and what happens without the name: when a
release renames one, the plugin degrades as written here instead of breaking somewhere else.
``tests/unit/test_compat.py`` checks, on every pytest/xdist pair of the tox matrix, that each
name still exists where these functions look for it.

Imports of private modules happen inside the functions: this module is cheap to import.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest.nodes import Node as Node  # the common base of items and collectors
else:
    Node = Any


def tmp_path_factory(config: pytest.Config) -> pytest.TempPathFactory | None:
    """The factory behind ``tmp_path`` (``config._tmp_path_factory``): the worker's directory
    goes under its basetemp, which pytest's retention cleans. None under ``-p no:tmpdir``,
    or if the name goes: the caller makes a directory of its own."""
    return getattr(config, "_tmp_path_factory", None)


_OWN_BASETEMP = pytest.StashKey[Path]()


def basetemp(config: pytest.Config) -> Path:
    """pytest's basetemp (per worker, following --basetemp), where the worker's directory
    goes; under ``-p no:tmpdir`` a directory of this process's own (the same on every call),
    removed at exit."""
    factory = tmp_path_factory(config)
    if factory is not None:
        return factory.getbasetemp()
    if _OWN_BASETEMP not in config.stash:
        import shutil
        import tempfile

        made = Path(tempfile.mkdtemp(prefix="pytest-isolate-"))
        config.add_cleanup(lambda: shutil.rmtree(made, ignore_errors=True))
        config.stash[_OWN_BASETEMP] = made
    return config.stash[_OWN_BASETEMP]


def cache_for(config: pytest.Config) -> pytest.Cache | None:
    """pytest's cache before ``pytest_configure`` made ``config.cache`` (``-n auto`` is
    decided earlier): ``Cache.for_config`` is pytest's own, marked private."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return cache  # type: ignore[no-any-return]
    try:
        return pytest.Cache.for_config(config, _ispytest=True)
    except Exception:  # an unwritable or odd cache dir, or a changed signature: no history
        return None


def junit_address(nodeid: str) -> list[str]:
    """junitxml's split of a node id into class path and name (``mangle_test_address``): the
    rewritten JUnit file must name test cases exactly as pytest's writer did."""
    from _pytest.junitxml import mangle_test_address

    return list(mangle_test_address(nodeid))


def option_actions(config: pytest.Config) -> Mapping[str, Any]:
    """Every option string of this pytest and its argparse action (``config._parser``'s
    argparse parser): a rerun keeps the run's options, and must know which take a value.
    Empty if the names go: reruns then keep no options."""
    parser = getattr(config, "_parser", None)
    optparser = getattr(parser, "optparser", None)
    return dict(getattr(optparser, "_option_string_actions", {}))


def line_is_open(terminal: Any) -> bool:
    """The terminal's current line has text on it (xdist's progress dots leave it open), so a
    line of ours starts on a fresh one. ``TerminalReporter._tw``; False if it goes."""
    return bool(getattr(getattr(terminal, "_tw", None), "width_of_current_line", 0))


def quiet_status_rewrites(dsession: Any) -> None:
    """Make xdist write its worker status line once, as to a pipe (``trdist._isatty``):
    rewritten in place after tests started, it would overwrite their progress."""
    status = getattr(dsession, "trdist", None)
    if status is not None and hasattr(status, "_isatty"):
        status._isatty = False


def route_test_events(
    dsession: Any,
    logstart: Callable[[Any, str, Any], None],
    testreport: Callable[[Any, pytest.TestReport], None],
    logfinish: Callable[[Any, str, Any], None],
) -> None:
    """Replace DSession's handlers of the workers' per-test events (``worker_logstart``,
    ``worker_testreport``, ``worker_logfinish``; xdist looks them up by name for each event):
    the only way to hold -v lines back for ordering. xdist has no hook between a worker's
    event and the terminal."""
    dsession.worker_logstart = logstart
    dsession.worker_testreport = testreport
    dsession.worker_logfinish = logfinish


def count_failure(dsession: Any, report: pytest.TestReport) -> None:
    """What DSession's own ``worker_testreport`` does besides the hook call: count failures
    for ``-x``/``--maxfail`` (``_handlefailures``), at once, not when the line is shown."""
    dsession._handlefailures(report)


def defer_shutdown(node: Any, requested: Callable[[], None]) -> Callable[[], None]:
    """Route xdist's own calls of ``node.shutdown()`` to ``requested``; returns the real one.

    xdist ends a run (-x, a worker's KeyboardInterrupt, restarts used up) by shutting every
    node down at once, and a shutdown starts the test a worker holds back unrun (its protocol
    starts a test only with another queued behind it): one that waits for a serial barrier
    or a counted resource would start beside what it conflicts with. DSession calls
    ``node.shutdown()`` by name, so an instance attribute takes the call; the scheduler sends
    the real shutdown once that test may start."""
    real: Callable[[], None] = node.shutdown
    node.shutdown = requested
    return real


def local_popen(gateway: Any) -> subprocess.Popen[bytes] | None:
    """A local execnet gateway's process (``gateway._io.popen``), for the exit status that
    names a crash (signal, exit code). None for remote gateways, or if the name goes: the
    crash is then reported without its cause."""
    popen = getattr(getattr(gateway, "_io", None), "popen", None)
    return popen if isinstance(popen, subprocess.Popen) else None
