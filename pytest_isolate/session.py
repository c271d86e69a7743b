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
import signal
import subprocess
import threading
from collections import defaultdict
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import compat, database, durations, markers, options, ports, transport, wire
from .claims import PLAIN, DeclarationError, TestClaims, parse_capacity, unused_capacity
from .crashes import NEVER_RAN, describe_exit
from .domains import build_domains
from .leases import Leases
from .markers import timeout_of
from .options import EXPLICIT_DIST, PLAN_WORKERS
from .timeouts import (
    MESSAGE_KIND,
    TimeoutError_,
    Watchdog,
    from_report,
    parse_timeout,
    read_stack,
    stop_group,
)
from .tmpdirs import remove_link, remove_run_links
from .worker import IsolateWorker, Provisioner, Settings, new_run_id, release_database

if TYPE_CHECKING:
    from xdist.remote import Producer
    from xdist.workermanage import WorkerController

    from .reporter import Reporter
    from .xdist_scheduler import IsolateScheduling


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


_exit_collection_registered = False


def _collect_then_freeze() -> None:
    gc.collect()  # cyclic garbage left at exit is still finalized, as without the plugin
    gc.freeze()  # the rest lives until exit: the interpreter's final collections skip it


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
    _check_timeline_path(config)
    raw_shard = config.getoption("isolate_shard")
    if raw_shard:
        from .shard import parse_shard

        try:
            parse_shard(raw_shard)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from exc
    settings = read_settings(config)
    if not _is_worker(config) and _runs_tests(config):
        reclaimed = Leases("ports").reclaim()
        config.stash[RECLAIMED_PORTS] = [f"{span.start}-{span.stop - 1}" for span, _ in reclaimed]
        try:
            ports.check_pool(settings.ports_per_worker, _local_workers(config.option))
        except ports.PortsError as exc:
            raise pytest.UsageError(f"pytest-isolate: {exc}") from exc
        if settings.db_url:
            try:
                database.check_server(settings.db_url)
            except database.DatabaseError as exc:
                raise pytest.UsageError(str(exc)) from exc
        _start_run(config, settings)
    state = IsolateState(config, capacity, settings, timeout)
    config.pluginmanager.register(state, "isolate-state")
    if options.audit_wanted(config):
        from . import audit  # imported only where it runs

        audit.configure(config, state.provisioner)
    if not state.is_worker:
        from .reporter import Reporter  # the controller's alone: workers never import it

        reporter = Reporter(config, state.measured)
        config.pluginmanager.register(reporter, "isolate-reporter")
        if getattr(config.option, "dist", "no") != "no" or options.rerun_caps_given(config):
            # The controller of a run with workers; in-process only to check the settings.
            from . import rerun

            rerun.configure(config, reporter)
    if options.xdist_loaded(config):
        config.pluginmanager.register(XdistHooks(state), "isolate-xdist")
        if _is_worker(config):
            config.pluginmanager.register(SendableReports(), "isolate-sendable")


#: Modes in which pytest runs no test: no leases, no database server, no run record.
_NO_TESTS = (
    "isolate_plan",
    "collectonly",
    "help",
    "showfixtures",
    "show_fixtures_per_test",
    "markers",
    "setupplan",
)


def _check_timeline_path(config: pytest.Config) -> None:
    """--isolate-timeline PATH: a directory it can be written in, checked before any test
    runs rather than found out after all of them."""
    raw = config.getoption("isolate_timeline")
    if not raw or _is_worker(config):
        return
    path = Path(config.invocation_params.dir, raw)
    parent = path.parent
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        why = "is a directory" if path.is_dir() else f"cannot be written in {parent}"
        raise pytest.UsageError(
            f"--isolate-timeline {raw}: {why}; give a file path in a writable directory"
        )


def _runs_tests(config: pytest.Config) -> bool:
    return not any(getattr(config.option, name, False) for name in _NO_TESTS)


def _local_workers(option: Any) -> int:
    """Workers started on this host: ``-n N`` or ``--tx [N*]popen`` (not ``via`` another)."""
    specs = getattr(option, "tx", None) or []
    if getattr(option, "dist", "no") == "no" or not specs:
        return 1
    count = 0
    for spec in specs:
        times, _, rest = str(spec).rpartition("*")
        if rest.startswith("popen") and "via=" not in rest:
            count += int(times) if times.isdigit() else 1
    return max(1, count)


RECLAIMED = pytest.StashKey[list[str]]()
RECLAIMED_PORTS = pytest.StashKey[list[str]]()
RUN_ID = pytest.StashKey[str]()
SIGTERM_BEFORE = pytest.StashKey[Any]()


def _start_run(config: pytest.Config, settings: Settings) -> None:
    """The controller (or in-process run): clean up after killed runs, register this one."""
    run_id = new_run_id()
    config.stash[RUN_ID] = run_id
    if settings.db_url:
        from .runs import RunRegistry  # only with a PostgreSQL server

        registry = RunRegistry()
        config.stash[RECLAIMED] = registry.reclaim()
        registry.register(run_id, settings.db_url)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a CI job cancelled, say) ends the run as Ctrl-C does: workers stopped,
        # databases dropped, leases released, and pytest's summary of what finished.
        config.stash[SIGTERM_BEFORE] = signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _end_run(config: pytest.Config) -> None:
    before = config.stash.get(SIGTERM_BEFORE, None)
    if before is not None:
        signal.signal(signal.SIGTERM, before)
    run_id = config.stash.get(RUN_ID, None)
    if run_id is not None:
        # Workers remove their own temp links; this catches those killed before they could.
        remove_run_links(run_id)
    state = config.pluginmanager.get_plugin("isolate-state")
    if run_id is None or not isinstance(state, IsolateState) or not state.settings.db_url:
        return
    if not state.settings.keep_db:
        # Workers drop their own; this catches those killed before they could.
        from .runs import RunRegistry, drop_run_databases

        try:
            drop_run_databases(state.settings.db_url, run_id)
        except database.DatabaseError as exc:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"isolate: could not drop this run's databases: {exc}")
    RunRegistry().unregister(run_id)


def read_settings(config: pytest.Config) -> Settings:
    """Options, ini keys and environment, validated: a fault is a usage error naming it."""
    raw_size = config.getoption("isolate_ports_per_worker") or config.getini(
        "isolate_ports_per_worker"
    )
    try:
        size = int(raw_size)
    except ValueError:
        size = 0
    if not 1 <= size <= 10000:
        raise pytest.UsageError(
            f"--isolate-ports-per-worker / isolate_ports_per_worker: {raw_size!r} is not a "
            "whole number from 1 to 10000"
        )
    db_url = (
        config.getoption("isolate_db_url")
        or config.getini("isolate_db_url")
        or os.environ.get("PYTEST_ISOLATE_DB_URL")
        or None
    )
    where = "--isolate-db-url"
    # Set only when the user names it: an app's DATABASE_URL is the user's, not ours.
    db_env = config.getini("isolate_db_env").strip()
    if db_env and not db_url and os.environ.get(db_env):
        # It names the server the app uses: the workers' databases are made there.
        db_url, where = os.environ[db_env], f"{db_env} (isolate_db_env)"
    if db_url:
        try:
            database.parse_url(db_url, where)
        except database.DatabaseError as exc:
            if where != "--isolate-db-url":
                raise pytest.UsageError(
                    f"{exc}. isolate_db_env = {db_env} gives each worker its own database "
                    f"through {db_env}, made on the PostgreSQL server it names; unset {db_env}, "
                    "point it at a PostgreSQL server, or remove isolate_db_env"
                ) from exc
            raise pytest.UsageError(str(exc)) from exc
    return Settings(
        ports_per_worker=size,
        db_url=db_url,
        db_template=config.getoption("isolate_db_template"),
        keep_db=config.getoption("isolate_keep_db"),
        db_env=db_env,
    )


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
        self.shard_note: str | None = None
        # Counted resources that deselected tests (-k, -m, --lf, a shard) declare.
        self.counted_deselected: set[str] = set()
        self.measured: defaultdict[str, float] = defaultdict(float)
        self.provisioner = Provisioner(
            settings, config.hook, temp="replace" if self.is_worker else "default"
        )

    def _runs_tests_here(self) -> bool:
        if not _runs_tests(self.config):
            return False
        return self.is_worker or not self.config.pluginmanager.hasplugin("dsession")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self._runs_tests_here():
            return
        workerinput = getattr(self.config, "workerinput", {})
        slot = int(workerinput.get("isolate_slot", 0))
        worker_id = str(workerinput.get("workerid", "main"))
        basetemp = _basetemp(self.config)
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
        lines = []
        freed = config.stash.get(RECLAIMED_PORTS, [])
        if freed:
            lines.append(
                f"isolate: freed {len(freed)} port lease(s) left by killed runs: "
                + ", ".join(freed)
            )
        reclaimed = config.stash.get(RECLAIMED, [])
        if reclaimed:
            lines.append(
                f"isolate: dropped {len(reclaimed)} database(s) left by killed runs: "
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
        from .plan import estimate_durations
        from .shard import parse_shard
        from .shard import select as shard_select

        k, n = parse_shard(config.getoption("isolate_shard"))
        nodeids = [item.nodeid for item in items]
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
        claims = [self._claims(item) for item in items]
        nodeids = [item.nodeid for item in items]
        workers = self.config.stash.get(PLAN_WORKERS, 1)
        from .plan import plan_collection
        from .planreport import format_plan

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
        return None


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


class SendableReports:
    """Worker side: reports that execnet can send.

    execnet sends only its own plain types, and text that encodes to UTF-8. A report holding
    a lone surrogate (output decoded with ``surrogateescape``, a test of bad encodings) or an
    object (pytest 9's subtest reports carry the subTest's parameters: a ``range``, a
    ``Fraction``) made the worker's send fail: under plain xdist the test fails with
    execnet's DumpError, or the worker goes down and the tests after it go unreported. Such
    text is carried backslash-escaped and such objects as their ``repr``, what the terminal
    would show of them, and the run goes on.
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(self, report: object) -> Generator[None, Any, Any]:
        data = yield
        return _sendable(data)


#: What execnet's serializer sends as it is (containers are walked).
_PLAIN = (bool, int, float, complex, bytes, type(None))


def _sendable(value: Any) -> Any:
    if isinstance(value, str):
        if value.isascii():  # nearly every string, in C: the rest is rare
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {_sendable(key): _sendable(item) for key, item in value.items()}
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(_sendable(item) for item in value)
    return _sendable(repr(value))


def _basetemp(config: pytest.Config) -> Path:
    """pytest's basetemp (per worker, following --basetemp), where the worker's directory
    goes; under ``-p no:tmpdir`` a directory of this process's own, removed at exit."""
    factory = compat.tmp_path_factory(config)  # absent under -p no:tmpdir
    if factory is not None:
        return factory.getbasetemp()
    import shutil
    import tempfile

    made = Path(tempfile.mkdtemp(prefix="pytest-isolate-"))
    config.add_cleanup(lambda: shutil.rmtree(made, ignore_errors=True))
    return made


def _exit_status(node: WorkerController) -> int | None:
    """A local worker's exit status; None for remote workers or when it does not end soon."""
    popen = compat.local_popen(node.gateway)
    if popen is None:
        return None
    try:
        return int(popen.wait(timeout=5))
    except (OSError, subprocess.TimeoutExpired):
        return None


class TimeoutGuard:
    """Arms the watchdog around each test that has a timeout."""

    def __init__(self, watchdog: Watchdog, default: float | None) -> None:
        self.watchdog = watchdog
        self.default = default

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        seconds = timeout_of(item, self.default)
        if seconds is None:
            return (yield)
        try:
            # Armed inside the try: if arming fails half-way, the timer is still cancelled.
            self.watchdog.arm(item.nodeid, seconds)
            return (yield)
        finally:
            self.watchdog.disarm()


def unconfigure(config: pytest.Config) -> None:
    # After junitxml and pytest-reportlog wrote their files: put the tests in output order.
    reporter = config.pluginmanager.get_plugin("isolate-reporter")
    if reporter is not None:  # the controller's Reporter
        reporter.rewrite_junitxml()
        reporter.rewrite_report_log()
    _end_run(config)


def _reporter(config: pytest.Config) -> Reporter:
    from .reporter import Reporter

    reporter = config.pluginmanager.get_plugin("isolate-reporter")
    assert isinstance(reporter, Reporter)
    return reporter


def worker_of(config: pytest.Config) -> IsolateWorker | None:
    """The worker of an asked-for run, made at session start; None where none was asked."""
    state = config.pluginmanager.get_plugin("isolate-state")
    return state._worker() if isinstance(state, IsolateState) else None


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
        from .xdist_scheduler import IsolateScheduling

        self.scheduler = IsolateScheduling(
            config, log, self.inbox, self.state.capacity, self.state.recorded
        )
        return self.scheduler
