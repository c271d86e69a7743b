"""The pytest plugin (entry point ``isolate``): options, hooks, and the wiring between stages.

On every process it validates declarations at collection. On a worker it sends the claims to
the controller. On the controller (or in-process) it records durations, and under xdist it
supplies the scheduler unless ``--dist`` was given.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from . import durations, markers, transport, wire
from .claims import DeclarationError, parse_capacity
from .plan import plan_collection
from .planreport import format_plan

if TYPE_CHECKING:
    import execnet
    from xdist.remote import Producer
    from xdist.workermanage import WorkerController

EXPLICIT_DIST = pytest.StashKey[bool]()
PLAN_WORKERS = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("isolate", "pytest-isolate: parallel, isolated test runs")
    group.addoption(
        "--isolate-plan",
        action="store_true",
        default=False,
        help="print the domains, their tests and durations and the planned schedule, "
        "then exit without running tests",
    )
    group.addoption(
        "--isolate-durations",
        metavar="PATH",
        default=None,
        help="JSON file of recorded durations, {nodeid: seconds} (pytest-split's format)",
    )
    parser.addini(
        "isolate_capacity",
        type="args",
        default=[],
        help="counted resources, NAME:COUNT each (e.g. 'gpu:2 browser:4')",
    )
    parser.addini(
        "isolate_durations",
        default="",
        help="default for --isolate-durations",
    )


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, Any, Any]:
    # A wrapper runs before xdist's own pytest_cmdline_main turns "-n N" into "--dist load",
    # so only a --dist the user gave counts as explicit.
    option = config.option
    config.stash[EXPLICIT_DIST] = getattr(option, "dist", "no") not in ("no", None)
    if config.getoption("isolate_plan"):
        # Plan in-process, for the worker count asked for, like --collect-only does.
        config.stash[PLAN_WORKERS] = _requested_workers(config)
        if getattr(option, "numprocesses", None) is not None:
            option.numprocesses = None
    return (yield)


def _requested_workers(config: pytest.Config) -> int:
    requested = getattr(config.option, "numprocesses", None)
    if requested in ("auto", "logical"):
        auto = config.hook.pytest_xdist_auto_num_workers(config=config)
        return max(1, int(auto or 1))
    return max(1, int(requested or 1))


def pytest_configure(config: pytest.Config) -> None:
    markers.register(config)
    try:
        capacity = parse_capacity(config.getini("isolate_capacity"))
    except DeclarationError as exc:
        raise pytest.UsageError(str(exc)) from exc
    state = IsolateState(config, capacity)
    config.pluginmanager.register(state, "isolate-state")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(state), "isolate-xdist")


class IsolateState:
    """Per-process state: capacity table, recorded and measured durations."""

    def __init__(self, config: pytest.Config, capacity: dict[str, int]) -> None:
        self.config = config
        self.capacity = capacity
        self.is_worker = _is_worker(config)
        self.recorded: dict[str, float] = {} if self.is_worker else durations.load(config)
        self.measured: dict[str, float] = defaultdict(float)
        self.started = time.perf_counter()

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if report.passed:
            markers.validate(report, self.capacity)
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = session.items
        if self.is_worker:
            claims = [markers.claims_of(item, self.capacity) for item in items]
            transport.send(wire.encode(claims))
        elif self.config.getoption("isolate_plan"):
            self._print_plan(items)

    def _print_plan(self, items: list[pytest.Item]) -> None:
        claims = [markers.claims_of(item, self.capacity) for item in items]
        nodeids = [item.nodeid for item in items]
        workers = self.config.stash.get(PLAN_WORKERS, 1)
        planned = plan_collection(nodeids, claims, self.recorded, workers)
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        lines = format_plan(planned.plan, nodeids, claims, planned.estimates, planned.recorded)
        if reporter is not None:
            reporter.ensure_newline()
            for line in lines:
                reporter.write_line(line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.config.getoption("isolate_plan"):
            return True  # like --collect-only: planned, nothing run
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_worker:
            self.measured[report.nodeid] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.is_worker and not self.config.getoption("isolate_plan"):
            durations.store(self.config, self.measured)


class XdistHooks:
    """Hooks that exist only when pytest-xdist is installed."""

    def __init__(self, state: IsolateState) -> None:
        self.state = state
        self.channels: dict[WorkerController, execnet.Channel] = {}

    def pytest_configure_node(self, node: WorkerController) -> None:
        self.channels[node] = transport.open_channel(node.gateway)

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Producer) -> Any:
        if config.stash.get(EXPLICIT_DIST, False):
            return None
        from .xdist_scheduler import IsolateScheduling

        return IsolateScheduling(
            config, log, self.channels, self.state.capacity, self.state.recorded
        )
