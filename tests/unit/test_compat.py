"""Every private name pytest_isolate/compat.py relies on still exists, on real objects of the
installed pytest, xdist and execnet (tox runs this on every supported pair)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import execnet
import pytest
import xdist.dsession
import xdist.workermanage

from pytest_isolate import compat

PACKAGE = Path(compat.__file__).parent


def test_config_has_the_tmp_path_factory(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    assert isinstance(compat.tmp_path_factory(config), pytest.TempPathFactory)


def test_a_cache_is_made_before_configure(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    assert getattr(config, "cache", None) is None
    cache = compat.cache_for(config)
    assert isinstance(cache, pytest.Cache)
    cache.set("isolate/compat", 1)
    assert cache.get("isolate/compat", None) == 1


def test_junit_address_splits_as_junitxml_names_cases() -> None:
    assert compat.junit_address("tests/test_a.py::TestX::test_y[1]") == [
        "tests.test_a",
        "TestX",
        "test_y[1]",
    ]


def test_option_actions_know_every_option_and_its_arity(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    actions = compat.option_actions(config)
    assert actions["-k"].nargs is None and actions["-k"].dest == "keyword"
    assert actions["-x"].nargs == 0
    assert actions["--isolate-timeout"].dest == "isolate_timeout"


def test_terminal_has_a_writer_that_knows_its_line(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    assert hasattr(terminal._tw, "width_of_current_line")
    terminal._tw.write("...")
    assert compat.line_is_open(terminal)


def test_xdist_status_line_writer_has_the_tty_flag(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure("-n", "2")
    status = xdist.dsession.TerminalDistReporter(config)
    assert hasattr(status, "_isatty")

    class Session:
        trdist = status

    compat.quiet_status_rewrites(Session())
    assert status._isatty is False


def test_dsession_has_the_event_handlers_replaced(pytester: pytest.Pytester) -> None:
    for name in ("worker_logstart", "worker_testreport", "worker_logfinish", "_handlefailures"):
        assert callable(getattr(xdist.dsession.DSession, name)), name
    # DSession looks the handler up on itself for every event (getattr(self, "worker_" +
    # name)), so an instance attribute replaces it: test_reporting's -v ordering tests fail
    # if that changes.


def test_worker_controller_says_when_it_is_shutting_down() -> None:
    assert isinstance(xdist.workermanage.WorkerController.shutting_down, property)


def test_a_nodes_shutdown_can_be_deferred() -> None:
    """DSession.triggershutdown calls node.shutdown() on each node: an instance attribute
    takes the call, and the real method is kept for the scheduler."""
    assert callable(xdist.workermanage.WorkerController.shutdown)
    assert callable(xdist.dsession.DSession.triggershutdown)

    class Node:
        def shutdown(self) -> None:
            self.shut = True

    node, asked = Node(), []
    real = compat.defer_shutdown(node, lambda: asked.append(1))
    node.shutdown()
    assert asked == [1] and not hasattr(node, "shut")
    real()
    assert node.shut


def test_a_local_gateway_has_its_process() -> None:
    gateway = execnet.makegateway("popen")
    try:
        popen = compat.local_popen(gateway)
        assert isinstance(popen, subprocess.Popen)
        assert popen.poll() is None
    finally:
        gateway.exit()


def test_no_other_module_touches_a_private_name() -> None:
    """Attribute names starting with one underscore, on anything but self/cls, and imports of
    _pytest, are compat.py's alone (our own names, such as a NamedTuple's _asdict, aside)."""
    ours = {"_asdict", "_replace", "_exit", "_worker", "_pytest_isolate_channel"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("_pytest"):
                found.append(f"{path.name}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                    continue
                if node.attr.startswith("__") or node.attr in ours:
                    continue
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith("_")
                and not str(node.args[1].value).startswith("__")
            ):
                name = node.args[1].value
                found.append(f"{path.name}:{node.lineno} {node.func.id}(..., {name!r})")
    assert found == []
