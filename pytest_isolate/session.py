"""The run the plugin was asked for: this process's part of it.

:func:`configure` registers, by role, the objects whose hooks carry the run: the per-process
:class:`IsolateState` (validation at collection, provisioning, durations, timeouts), the
controller's reporter and reruns, and the xdist hooks (:class:`XdistHooks`) that hand out
slots, gather claims and supply the scheduler. The entry point (:mod:`pytest_isolate.plugin`)
imports this module only when the plugin was asked for.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import os
from collections import defaultdict
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from . import compat, options
from .controller import XdistHooks, _reporter, _warn_unused_capacity
from .declare import markers
from .declare.claims import (
    PLAIN,
    DeclarationError,
    TestClaims,
    TimeoutError_,
    parse_capacity,
    parse_timeout,
    unused_capacity,
)
from .declare.domains import build_domains
from .diagnose.memory import Lessons
from .faults import interrupts
from .faults.timeouts import (
    MESSAGE_KIND,
    TimeoutGuard,
    Watchdog,
)
from .options import PLAN_WORKERS
from .provision import database, ports
from .provision.leases import Leases
from .provision.tmpdirs import remove_run_links
from .provision.worker import IsolateWorker, Provisioner, Settings, new_run_id
from .schedule import durations
from .settings import check_timeline_path, local_workers, read_settings, runs_tests
from .words import count
from .xdist import transport, wire
from .xdist.sendable import SendableReports

if TYPE_CHECKING:
    pass


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


_exit_collection_registered = False


def _collect_then_freeze() -> None:
    try:
        gc.collect()  # cyclic garbage left at exit is still finalized, as without the plugin
        gc.freeze()  # the rest lives until exit: the interpreter's final collections skip it
    except KeyboardInterrupt:
        # Ctrl-C while the process exits anyway: no "Exception ignored" traceback of ours.
        pass


def _register_quick_exit() -> None:
    """At exit, one collection, then no more: the interpreter's own collections while it
    tears modules down cost a pytest process tens of milliseconds, and a worker's exit is on
    the run's critical path (the controller waits for it). Registered once per process, at
    configure: atexit runs handlers last-in first-out, so handlers registered during the
    run (and the tests' objects they touch) come first."""
    global _exit_collection_registered
    if not _exit_collection_registered:
        _exit_collection_registered = True
        atexit.register(_collect_then_freeze)


def configure(config: pytest.Config) -> None:
    """The plugin was asked for: set this process's part of the run up."""
    _register_quick_exit()
    try:
        capacity = parse_capacity(config.getini("isolate_capacity"))
    except DeclarationError as exc:
        raise pytest.UsageError(str(exc)) from exc
    try:
        timeout = parse_timeout(config.getoption("isolate_timeout"), "--isolate-timeout")
    except TimeoutError_ as exc:
        raise pytest.UsageError(str(exc)) from exc
    check_timeline_path(config)
    raw_shard = config.getoption("isolate_shard")
    if raw_shard:
        from .schedule.shard import parse_shard

        try:
            parse_shard(raw_shard)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from exc
    settings = read_settings(config)
    if not _is_worker(config) and runs_tests(config):
        reclaimed = Leases("ports").reclaim()
        config.stash[RECLAIMED_PORTS] = [f"{span.start}-{span.stop - 1}" for span, _ in reclaimed]
        try:
            ports.check_pool(settings.ports_per_worker, local_workers(config.option))
        except ports.PortsError as exc:
            raise pytest.UsageError(f"pytest-isolate: {exc}") from exc
        if settings.db_url:
            try:
                database.check_server(settings.db_url)
            except database.DatabaseError as exc:
                raise pytest.UsageError(str(exc)) from exc
        _start_run(config, settings)
    if config.getoption("isolate_forget") and not _is_worker(config):
        from .diagnose import memory

        config.stash[FORGOTTEN] = memory.forget(config)
    state = IsolateState(config, capacity, settings, timeout)
    config.pluginmanager.register(state, "isolate-state")
    if options.audit_wanted(config):
        from .diagnose import audit  # imported only where it runs

        audit.configure(config, state.provisioner)
    if not state.is_worker:
        from .report.reporter import Reporter  # the controller's alone: workers never import it

        reporter = Reporter(config, state.measured)
        config.pluginmanager.register(reporter, "isolate-reporter")
        if getattr(config.option, "dist", "no") != "no" or options.rerun_caps_given(config):
            # The controller of a run with workers; in-process only to check the settings.
            from .diagnose import rerun

            rerun.configure(config, reporter)
    if config.getoption("isolate_rerun_outcomes"):
        from .diagnose.processes import OutcomeLog  # a rerun's process, where rerun.py asked

        config.pluginmanager.register(OutcomeLog(config.getoption("isolate_rerun_outcomes")))
    if options.xdist_loaded(config):
        config.pluginmanager.register(XdistHooks(state), "isolate-xdist")
        if _is_worker(config):
            config.pluginmanager.register(SendableReports(), "isolate-sendable")


RECLAIMED = pytest.StashKey[list[str]]()
FORGOTTEN = pytest.StashKey[list[str]]()
RECLAIMED_PORTS = pytest.StashKey[list[str]]()
RUN_ID = pytest.StashKey[str]()
SIGTERM_BEFORE = pytest.StashKey[Any]()


def _start_run(config: pytest.Config, settings: Settings) -> None:
    """The controller (or in-process run): clean up after killed runs, register this one."""
    run_id = new_run_id()
    config.stash[RUN_ID] = run_id
    if settings.db_url:
        from .provision.runs import RunRegistry  # only with a PostgreSQL server

        registry = RunRegistry()
        config.stash[RECLAIMED] = registry.reclaim()
        registry.register(run_id, settings.db_url)
    # SIGTERM (a CI job cancelled, say) ends the run as Ctrl-C does.
    config.stash[SIGTERM_BEFORE] = interrupts.install(config)


def _end_run(config: pytest.Config) -> None:
    interrupts.restore(config.stash.get(SIGTERM_BEFORE, None))
    run_id = config.stash.get(RUN_ID, None)
    if run_id is not None:
        # Workers remove their own temp links and release their port leases; this catches
        # those killed before they could (a run interrupted, or stopped by xdist).
        remove_run_links(run_id)
        Leases("ports").reclaim()
    state = config.pluginmanager.get_plugin("isolate-state")
    if run_id is None or not isinstance(state, IsolateState) or not state.settings.db_url:
        return
    if not state.settings.keep_db:
        # Workers drop their own; this catches those killed before they could.
        from .provision.runs import RunRegistry, drop_run_databases

        try:
            drop_run_databases(state.settings.db_url, run_id)
        except database.DatabaseError as exc:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"isolate: could not drop this run's databases: {exc}")
    RunRegistry().unregister(run_id)


class IsolateState:
    """Per-process state: capacity table, recorded and measured durations."""

    def __init__(
        self,
        config: pytest.Config,
        capacity: dict[str, int],
        settings: Settings,
        timeout: float | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.watchdog: Watchdog | None = None
        self.malformed = 0
        self.capacity = capacity
        self.settings = settings
        self.is_worker = _is_worker(config)
        workerinput = getattr(config, "workerinput", {})
        self.run_id: str = (
            workerinput.get("isolate_run_id") or config.stash.get(RUN_ID, None) or new_run_id()
        )
        # Workers need history only to compute the same shard as everyone else.
        needs_history = not self.is_worker or config.getoption("isolate_shard")
        self.recorded: dict[str, float] = durations.load(config) if needs_history else {}
        # What earlier runs' diagnoses proved, applied where a plan or a shard is made.
        self.lessons = Lessons(None if self.is_worker else config)
        self.shard_note: str | None = None
        # Counted resources that deselected tests (-k, -m, --lf, a shard) declare.
        self.counted_deselected: set[str] = set()
        self.measured: defaultdict[str, float] = defaultdict(float)
        self.provisioner = Provisioner(
            settings, config.hook, temp="replace" if self.is_worker else "default"
        )

    def _runs_tests_here(self) -> bool:
        if not runs_tests(self.config):
            return False
        return self.is_worker or not self.config.pluginmanager.hasplugin("dsession")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self._runs_tests_here():
            return
        workerinput = getattr(self.config, "workerinput", {})
        slot = int(workerinput.get("isolate_slot", 0))
        worker_id = str(workerinput.get("workerid", "main"))
        basetemp = compat.basetemp(self.config)
        try:
            worker = self.provisioner.setup(slot, worker_id, self.run_id, basetemp / "isolate")
        except (ports.PortsError, database.DatabaseError) as exc:
            raise pytest.UsageError(f"pytest-isolate: {exc}") from exc
        if self.is_worker:
            transport.send("worker", worker.to_message())
        self.watchdog = Watchdog(
            basetemp / "isolate",
            # A rerun alone (rerun.py) is one test in its own process: a timeout ends it too.
            hard=self.is_worker or bool(self.config.getoption("isolate_rerun_child")),
            report=functools.partial(transport.send, MESSAGE_KIND) if self.is_worker else None,
            stop_own_group=bool(workerinput.get("isolate_remote", False)),
        )

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        forgotten: list[str] = config.stash.get(FORGOTTEN, [])
        lines = list(forgotten)
        freed = config.stash.get(RECLAIMED_PORTS, [])
        if freed:
            lines.append(
                f"isolate: freed {count(len(freed), 'port lease')} left by killed runs: "
                + ", ".join(freed)
            )
        reclaimed = config.stash.get(RECLAIMED, [])
        if reclaimed:
            lines.append(
                f"isolate: dropped {count(len(reclaimed), 'database')} left by killed runs: "
                + ", ".join(reclaimed)
            )
        return lines

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        # After setup: a fixture may have declared a resource (request.applymarker), too
        # late to be scheduled. The reporter names it.
        late = markers.declared_late(item)
        if late:
            item.user_properties.append((markers.LATE_PROPERTY, late))

    def pytest_report_collectionfinish(self) -> str | None:
        return self.shard_note

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        raw = self.config.getoption("isolate_shard")
        if raw and not self.is_worker and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            # More shards than domains: this job has nothing to do, which is not a failure.
            session.exitstatus = pytest.ExitCode.OK
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"isolate: shard {raw} has no tests to run")
        self.provisioner.teardown()
        if self.watchdog is not None:
            self.watchdog.close()
        if not self.is_worker and not self.config.getoption("isolate_plan"):
            durations.store(self.config, self.measured)

    def _worker(self) -> IsolateWorker:
        if self.provisioner.worker is None:
            raise RuntimeError("pytest-isolate: this process has no worker resources")
        return self.provisioner.worker

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None, None, None]:
        # Validation first, so -k/-m deselection cannot hide a malformed declaration.
        self.malformed = 0
        self._drop_malformed(config, items)
        result = yield
        # Then again: other plugins and conftests may have added marks (item.add_marker in
        # their pytest_collection_modifyitems); what runs is what was declared at the end.
        self._drop_malformed(config, items)
        # The order other plugins left (pytest-randomly's shuffle included) is the collection
        # order: each worker runs its tests in it.
        # Sharding last, over what -k/-m and other plugins left.
        if config.getoption("isolate_shard") and items:
            self._keep_shard(config, items)
        return result

    def _drop_malformed(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        errors = markers.malformed(items, self.capacity)
        if errors:
            self.malformed += len(errors)
            bad = {report.nodeid for report in errors}
            items[:] = [item for item in items if item.nodeid not in bad]
            for report in errors:
                config.hook.pytest_collectreport(report=report)

    def _keep_shard(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        from .schedule.plan import estimate_durations
        from .schedule.shard import parse_shard
        from .schedule.shard import select as shard_select

        k, n = parse_shard(config.getoption("isolate_shard"))
        nodeids = [item.nodeid for item in items]
        # Declarations only: each CI job has its own cache, and what one job learned must not
        # make the jobs disagree on who runs which test.
        domains = build_domains([self._claims(item) for item in items])
        estimates, _ = estimate_durations(nodeids, self.recorded)
        keep = shard_select(domains, nodeids, estimates, k, n)
        dropped = [item for i, item in enumerate(items) if i not in keep]
        self.shard_note = (
            f"isolate: shard {k}/{n}: {len(items) - len(dropped)} of {len(items)} tests, "
            f"{len(domains)} domains in all"
        )
        # The whole collection's order, recorded in this shard's junit and report-log files
        # for `python -m pytest_isolate merge`.
        shard = (k, n, list(nodeids))
        if self.is_worker:
            transport.send("shard", shard)
        else:
            _reporter(config).shard = shard
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for i, item in enumerate(items) if i in keep]

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        for item in items:
            self.counted_deselected.update(self._claims(item).counted)

    def _unused_capacity(self, claims: Sequence[TestClaims]) -> list[str]:
        """Counted names no collected test declares, selected or not; none where the
        command line named paths (the rest of the suite was not collected to tell)."""
        if self.config.args_source == pytest.Config.ArgsSource.ARGS:
            return []
        deselected = TestClaims(counted=tuple(self.counted_deselected))
        return unused_capacity(self.capacity, [*claims, deselected])

    def _claims(self, item: pytest.Item) -> TestClaims:
        try:
            return markers.claims_of(item, self.capacity)
        except DeclarationError:
            # Already a collection error (markers.malformed); pytest stops after collection.
            return PLAIN

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = session.items
        timed = self.timeout is not None or any(
            markers.marks_of(item)["isolate_timeout"] for item in items
        )
        if timed and self.watchdog is not None:
            # Only then: a wrapper around every test costs a little on each of thousands.
            guard = TimeoutGuard(self.watchdog, self.timeout)
            self.config.pluginmanager.register(guard, "isolate-timeouts")
        if self.is_worker:
            claims = [self._claims(item) for item in items]
            transport.send("unused_capacity", self._unused_capacity(claims))
            transport.send("claims", wire.encode(claims, self.malformed))
            if timed:
                # Its own process group, so a timed-out test's leftovers can be stopped
                # together. Only then: the terminal's Ctrl-C reaches the foreground group.
                # A session leader (a remote socket server run as a service) leads one already.
                with contextlib.suppress(PermissionError):
                    os.setpgid(0, 0)
        elif self.config.getoption("isolate_plan"):
            self._print_plan(items)
        elif not self.config.pluginmanager.hasplugin("dsession"):
            claims = [self._claims(item) for item in items]
            _warn_unused_capacity(self.config, self._unused_capacity(claims))
            _reporter(self.config).set_collection([item.nodeid for item in items], claims)

    def _print_plan(self, items: list[pytest.Item]) -> None:
        nodeids = [item.nodeid for item in items]
        self.lessons.announce(nodeids)
        claims = self.lessons.claims(nodeids, [self._claims(item) for item in items])
        workers = self.config.stash.get(PLAN_WORKERS, 1)
        from .schedule.plan import plan_collection
        from .schedule.planreport import format_plan

        planned = plan_collection(nodeids, claims, self.recorded, workers)
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        lines = format_plan(planned.plan, nodeids, claims, planned.estimates, planned.recorded)
        if self.shard_note:
            lines.insert(1, self.shard_note)  # the plan covers this shard's share only
        if reporter is not None:
            reporter.ensure_newline()
            for line in lines:
                reporter.write_line(line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.config.getoption("isolate_plan"):
            return True  # like --collect-only: planned, nothing run
        if self._runs_tests_here():
            self.provisioner.enter_workdir()  # --isolate-sandbox: after collection
        return None


def unconfigure(config: pytest.Config) -> None:
    # After junitxml and pytest-reportlog wrote their files: put the tests in output order.
    reporter = config.pluginmanager.get_plugin("isolate-reporter")
    if reporter is not None:  # the controller's Reporter
        reporter.rewrite_junitxml()
        reporter.rewrite_report_log()
    _end_run(config)


def worker_of(config: pytest.Config) -> IsolateWorker | None:
    """The worker of an asked-for run, made at session start; None where none was asked."""
    state = config.pluginmanager.get_plugin("isolate-state")
    return state._worker() if isinstance(state, IsolateState) else None
