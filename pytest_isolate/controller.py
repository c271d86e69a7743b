"""The controller's part of a run with workers: xdist's hooks.

Each worker gets its slot (a replacement takes its crashed predecessor's), its claims are
gathered from its channel and handed to the reporter, a crash is named by what happened (a
timeout, a signal, an exit code), a crashed worker's resources are torn down here, and tests
that never ran (workers gone, restarts used up) get an outcome.
"""

from __future__ import annotations

import subprocess
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import compat
from .faults.crashes import NEVER_RAN, describe_exit
from .faults.timeouts import MESSAGE_KIND, from_report, read_stack, stop_group
from .options import EXPLICIT_DIST
from .provision.tmpdirs import remove_link
from .provision.worker import IsolateWorker, release_database
from .xdist import transport, wire

if TYPE_CHECKING:
    from xdist.remote import Producer
    from xdist.workermanage import WorkerController

    from .report.reporter import Reporter
    from .session import IsolateState
    from .xdist.scheduler import IsolateScheduling


def _exit_status(node: WorkerController) -> int | None:
    """A local worker's exit status; None for remote workers or when it does not end soon."""
    popen = compat.local_popen(node.gateway)
    if popen is None:
        return None
    try:
        return int(popen.wait(timeout=1))
    except (OSError, subprocess.TimeoutExpired):
        return None


class XdistHooks:
    """Hooks that exist only when pytest-xdist is installed."""

    def __init__(self, state: IsolateState) -> None:
        self.state = state
        self.inbox = transport.Inbox()
        self.scheduler: IsolateScheduling | None = None
        self.slots: dict[str, int] = {}  # live worker id -> slot
        self.crashed: list[int] = []  # slots of crashed workers, not yet taken over

    def pytest_configure_node(self, node: WorkerController) -> None:
        # A replacement takes over its crashed predecessor's slot (its queue, its port
        # block), even where a worker that finished has left a lower slot free; else the
        # lowest free slot.
        taken = set(self.slots.values())
        if self.crashed:
            slot = min(self.crashed)
            self.crashed.remove(slot)
        else:
            slot = next(s for s in range(len(taken) + 1) if s not in taken)
        self.slots[node.gateway.id] = slot
        node.workerinput["isolate_slot"] = slot
        node.workerinput["isolate_run_id"] = self.state.run_id
        node.workerinput["isolate_remote"] = not transport.is_local(node.gateway)
        self.inbox.open(node.gateway)

    def pytest_xdist_node_collection_finished(
        self, node: WorkerController, ids: Sequence[str]
    ) -> None:
        claims = wire.decode(self.inbox.wait(node.gateway.id, "claims"))
        reporter = _reporter(self.state.config)
        shard = self.inbox.get(node.gateway.id, "shard")  # sent ahead of the claims
        if shard is not None:
            reporter.shard = (int(shard[0]), int(shard[1]), list(shard[2]))
        if not reporter.nodeids:
            unused = self.inbox.get(node.gateway.id, "unused_capacity")  # sent ahead too
            _warn_unused_capacity(self.state.config, list(unused or []))
            if not self.state.config.stash.get(EXPLICIT_DIST, False):
                # xdist's own scheduling (an explicit --dist) applies nothing learned.
                self.state.lessons.announce(ids)
        if not self.state.config.stash.get(EXPLICIT_DIST, False):
            claims = self.state.lessons.claims(ids, claims)  # what our scheduler enforces
        reporter.set_collection(ids, claims)

    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport) -> None:
        """A worker that timed out looks like a crash to xdist: say what really happened."""
        node = getattr(report, "node", None)
        if node is None:
            return
        message = self.inbox.get(node.gateway.id, "worker")
        local = transport.is_local(node.gateway)
        # The stack comes over the channel; faulthandler's backstop file (the GIL held) can
        # only be read where the worker ran, and its pid only signalled there.
        found = from_report(self.inbox.get(node.gateway.id, MESSAGE_KIND), crashitem)
        if found is None and message is not None and local:
            found = read_stack(Path(message["dir"]), crashitem)
        if found is None or message is None:
            cause = describe_exit(_exit_status(node))
            if cause:
                report.longrepr = f"{report.longrepr}: the worker was {cause}"
            return
        seconds, stack = found
        if local:
            stop_group(int(message["pid"]))
        spec = node.gateway.spec
        where = "" if local else f" on {spec.socket or spec.ssh or spec.via}"
        report.longrepr = (
            f"Timeout: {crashitem} ran longer than {seconds:g}s (--isolate-timeout or "
            f"isolate_timeout); its worker {node.gateway.id}{where} was stopped.\n\n{stack}"
        )

    def pytest_testnodedown(self, node: WorkerController, error: object) -> None:
        slot = self.slots.pop(node.gateway.id, None)
        if error is not None and slot is not None:
            self.crashed.append(slot)  # for its replacement, if xdist starts one
        message = self.inbox.get(node.gateway.id, "worker")
        if error is None or message is None:
            return
        # The worker died without tearing down: do it here, for plugins and the database.
        worker = IsolateWorker.from_message(message)
        try:
            self.state.config.hook.pytest_isolate_teardown_worker(worker=worker, crashed=True)
        finally:
            release_database(worker, self.state.settings)
            if transport.is_local(node.gateway):
                remove_link(worker.tmp_path)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        # Reached only when xdist ended the loop without an interruption (-x and Ctrl-C
        # raise): tests still unrun then lost their workers, restarts used up. Each gets an
        # outcome, so every collected test ends with exactly one.
        if self.scheduler is not None:
            for nodeid in self.scheduler.never_ran():
                fspath = nodeid.split("::")[0]
                report = pytest.TestReport(
                    nodeid,
                    (fspath, None, nodeid),
                    {},
                    "failed",
                    NEVER_RAN,
                    "call",
                )
                session.config.hook.pytest_runtest_logreport(report=report)
        return result

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Producer) -> Any:
        if config.stash.get(EXPLICIT_DIST, False):
            return None
        from .xdist.scheduler import IsolateScheduling

        self.scheduler = IsolateScheduling(
            config,
            log,
            self.inbox,
            self.state.capacity,
            self.state.recorded,
            self.state.lessons.claims,
        )
        return self.scheduler


def _warn_unused_capacity(config: pytest.Config, names: Sequence[str]) -> None:
    """A line in the header, not a Python warning: -k, a path or a shard may leave a counted
    resource unused, and under ``filterwarnings = error`` a warning here would end the run
    in an internal error."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    for name in names:
        reporter.write_line(
            f"isolate: isolate_capacity names {name!r}, but no test of this run declares "
            f"resource({name!r}) (a typo in the ini or in a marker? resource() names not in "
            "isolate_capacity are held exclusively)"
        )


def _reporter(config: pytest.Config) -> Reporter:
    from .report.reporter import Reporter

    reporter = config.pluginmanager.get_plugin("isolate-reporter")
    assert isinstance(reporter, Reporter)
    return reporter
