"""``--isolate-audit``: record the shared state each test touches that it does not declare.

In every process that runs tests, from the start of a test's setup to the end of its
teardown: files written and ports bound (from Python's audit events, ``sys.addaudithook``),
and, compared before and after, environment variables, the working directory, threads and
child processes. :mod:`.findings` decides what the test's markers and fixtures cover; the rest
goes into the teardown report's ``user_properties``, so it reaches the controller (and
junitxml and the report log) the way pytest carries any property. The controller keeps them in
``config.stash[FINDINGS]`` and prints the "isolation audit" section.

An audit hook cannot be removed: it is installed once per process, and is one global read
while no test is being recorded.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from ..declare import markers
from ..declare.claims import PLAIN
from ..options import audit_wanted
from ..provision.leases import stat_fields
from ..provision.worker import Provisioner
from . import findings
from .findings import Finding, Scope, Touch

__all__ = ["FINDINGS", "Finding", "configure"]

#: On the controller (or in-process): nodeid -> findings, filled as the reports arrive.
FINDINGS = pytest.StashKey[dict[str, list[Finding]]]()


#: Events that start a process: the first one in a test lists the children already there.
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.posix_spawnp",
     "os.spawn", "os.system"}
)  # fmt: skip


def configure(config: pytest.Config, provisioner: Provisioner) -> None:
    """The recorder and the section, when asked for (the marker is registered always)."""
    if not audit_wanted(config):
        return
    try:
        ignore = tuple(
            findings.check_pattern(p, "isolate_audit_ignore")
            for p in config.getini("isolate_audit_ignore")
        )
    except findings.AuditPatternError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if not hasattr(config, "workerinput"):
        config.stash[FINDINGS] = {}
    config.pluginmanager.register(AuditPlugin(config, provisioner, ignore), "isolate-audit")


# -- the recorder: audit events while a test runs ----------------------------------------------


class Recorder:
    """What one test did, as audit events report it: paths written, ports bound, spawns."""

    def __init__(self) -> None:
        self.written: dict[str, list[str]] = {}  # absolute normalized path -> verbs
        self.binds: list[tuple[str, int, str]] = []  # host, port, "TCP" / "UDP"
        self.children_before: set[int] | None = None  # listed at the first spawn

    def wrote(self, raw: object, verb: str, dir_fd: object = None) -> None:
        if isinstance(raw, os.PathLike):
            raw = os.fspath(raw)
        if isinstance(raw, bytes):
            raw = os.fsdecode(raw)
        if not isinstance(raw, str) or not raw:
            return  # a file descriptor: its open was seen already
        if dir_fd not in (None, -1) and not raw.startswith("/"):
            return  # relative to a directory descriptor (rmtree's walk): its root was seen
        self.written.setdefault(findings.normalize(raw, os.getcwd()), []).append(verb)

    def bound(self, sock: Any, address: Any) -> None:
        family = getattr(sock, "family", None)
        if family == socket.AF_UNIX:
            if isinstance(address, (str, bytes)) and address[:1] not in ("\0", b"\0"):
                self.wrote(address, "bound a socket at")
        elif family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            protocol = "TCP" if sock.type == socket.SOCK_STREAM else "UDP"
            self.binds.append((str(address[0]), int(address[1]), protocol))

    def spawning(self) -> None:
        if self.children_before is None:
            self.children_before = set(child_processes(os.getpid()))


def _on_open(rec: Recorder, args: tuple[Any, ...]) -> None:
    path, _mode, flags = args
    if isinstance(flags, int) and findings.is_write(flags):
        rec.wrote(path, "wrote")


def _path(index: int, verb: str, dir_fd: int | None = None) -> Callable[[Recorder, Any], None]:
    def handle(rec: Recorder, args: tuple[Any, ...]) -> None:
        rec.wrote(args[index], verb, args[dir_fd] if dir_fd is not None else None)

    return handle


def _on_rename(rec: Recorder, args: tuple[Any, ...]) -> None:
    rec.wrote(args[0], "moved away", args[2])
    rec.wrote(args[1], "wrote", args[3])


_HANDLERS: dict[str, Callable[[Recorder, tuple[Any, ...]], None]] = {
    "open": _on_open,
    "os.mkdir": _path(0, "created", 2),
    "os.remove": _path(0, "removed", 1),
    "os.rmdir": _path(0, "removed", 1),
    "os.rename": _on_rename,
    "os.truncate": _path(0, "wrote"),
    "os.utime": _path(0, "touched", 3),
    "os.symlink": _path(1, "linked", 2),
    "os.link": _path(1, "linked", 3),
    "shutil.copyfile": _path(1, "wrote"),
    "shutil.copytree": _path(1, "wrote"),
    "shutil.rmtree": _path(0, "removed"),
    "sqlite3.connect": lambda rec, args: (
        rec.wrote(args[0], "opened a database at") if args[0] not in (":memory:", "") else None
    ),
    "socket.bind": lambda rec, args: rec.bound(args[0], args[1]),
    **{event: lambda rec, args: rec.spawning() for event in SPAWN_EVENTS},
}

_recording: Recorder | None = None
_installed = False
_inside = threading.local()  # an event raised by the handler itself is not recorded


def _hook(event: str, args: tuple[Any, ...]) -> None:
    recorder = _recording
    if recorder is None:
        return
    handler = _HANDLERS.get(event)
    if handler is None or getattr(_inside, "busy", False):
        return
    _inside.busy = True
    try:
        handler(recorder, args)
    except Exception:
        pass  # the audit must never break the test it watches
    finally:
        _inside.busy = False


def _install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


# -- snapshots before and after ---------------------------------------------------------------


def child_processes(parent: int) -> dict[int, str]:
    """Live (not zombie) descendants of ``parent``: pid -> command line, from /proc."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            fields = stat_fields(name)
        except OSError:
            continue  # gone meanwhile
        if fields and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(name))
    found: dict[int, str] = {}
    todo = list(children.get(parent, []))
    while todo:
        pid = todo.pop()
        found[pid] = _command_line(pid)
        todo.extend(children.get(pid, []))
    return found


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return "<deleted>"


class _Snapshot:
    """One test's state before its setup, and what it recorded since."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.env = dict(os.environ)
        self.cwd = _cwd()
        # Thread objects, not idents: an ended thread's ident is reused by the next one.
        self.threads = set(threading.enumerate())
        self.recorder = Recorder()
        self.helpers = set(_multiprocessing_children())


def _multiprocessing_children() -> dict[int, str]:
    """multiprocessing's children: its spawn and forkserver starts raise no audit event."""
    if "multiprocessing" not in sys.modules:
        return {}
    import multiprocessing

    return {
        p.pid: f"multiprocessing {p.name}"
        for p in multiprocessing.active_children()
        if p.pid is not None
    }


# -- the pytest side ----------------------------------------------------------------------------


class AuditPlugin:
    """Records on every process that runs tests; collects and prints on the controller."""

    def __init__(
        self, config: pytest.Config, provisioner: Provisioner, ignore: tuple[str, ...]
    ) -> None:
        self.config = config
        self.provisioner = provisioner
        self.ignore = ignore
        self.is_worker = hasattr(config, "workerinput")
        self.current: _Snapshot | None = None
        # Changes made by fixtures wider than a function: they are set up in one test and
        # undone in another, and belong to neither.
        self.owned_env: set[str] = set()
        self.owned_cwd: set[str] = set()
        self.owned_threads: set[threading.Thread] = set()
        self.owned_pids: set[int] = set()
        self.audited: set[str] = set()
        self._private: tuple[str, ...] | None = None
        self._rootdir = _real(str(config.rootpath))
        # Where --isolate-sandbox would give each worker its own (the user's, at start).
        self._cwd = _real(str(config.invocation_params.dir))
        self._home = _real(os.path.expanduser("~"))

    def _runs_tests_here(self) -> bool:
        return self.is_worker or not self.config.pluginmanager.hasplugin("dsession")

    # -- recording, where tests run

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        global _recording
        if not self._runs_tests_here():
            return (yield)
        _install()
        self.current = _Snapshot(item.nodeid)
        _recording = self.current.recorder
        try:
            return (yield)
        finally:
            _recording = None
            self.current = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.current is not None:
            self._patterns(item)  # a malformed pattern is this test's setup error

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        current = self.current
        if current is None or fixturedef.scope == "function":
            return (yield)
        rec = current.recorder
        env, cwd = dict(os.environ), _cwd()
        threads = set(threading.enumerate())
        pids = rec.children_before
        if pids is not None:  # this test has spawned already: list what is there now
            pids = set(child_processes(os.getpid()))
        try:
            return (yield)
        finally:
            after = os.environ
            self.owned_env.update(
                k for k in env.keys() | after.keys() if env.get(k) != after.get(k)
            )
            if _cwd() != cwd:
                self.owned_cwd.update((cwd, _cwd()))
            self.owned_threads.update(set(threading.enumerate()) - threads)
            if rec.children_before is not None:
                base = rec.children_before if pids is None else pids
                self.owned_pids.update(set(child_processes(os.getpid())) - base)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        # The teardown report copies item.user_properties: add the findings before it is made.
        current = self.current
        if call.when == "teardown" and current is not None and current.nodeid == item.nodeid:
            global _recording
            _recording = None
            for touch in self._touches(item, current):
                item.user_properties.append(findings.encode(touch))
        return (yield)

    def _patterns(self, item: pytest.Item) -> tuple[str, ...]:
        where = f"{item.nodeid}: isolate_audit_ignore()"
        patterns = [
            findings.check_pattern(p, where)
            for mark in item.iter_markers("isolate_audit_ignore")
            for p in mark.args
        ]
        return (*self.ignore, *patterns)

    def _scope(self, item: pytest.Item) -> Scope:
        if self._private is None:
            from ..compat import basetemp

            private = [basetemp(self.config)]
            if self.provisioner.worker is not None:
                private.append(self.provisioner.worker.tmp_path)
            if self.provisioner.workdir is not None:  # --isolate-sandbox: the worker's own
                private.append(self.provisioner.workdir)
            if not hasattr(self.config, "workerinput"):
                # In-process, a TMPDIR the user set is left alone (SPEC): the temp dir the
                # tests get from tempfile is theirs, as in a run without the plugin.
                import tempfile

                private.append(Path(tempfile.gettempdir()))
            # As given and with symlinks resolved: most writes match the first, cheaply.
            self._private = tuple(
                dict.fromkeys([*map(str, private), *(_real(str(p)) for p in private)])
            )
        worker = self.provisioner.worker
        claims = item.stash.get(markers.CLAIMS_KEY, None) or PLAIN
        return Scope(
            rootdir=self._rootdir,
            private=self._private,
            dirs=tuple(_real(c.key) for c in claims.claims if c.kind == "dir"),
            block=range(worker.ports.start, worker.ports.stop) if worker else range(0),
            ports=frozenset(int(c.key) for c in claims.claims if c.kind == "port"),
            ignore=self._patterns(item),
            owned_env=frozenset(self.owned_env),
            owned_cwd=frozenset(self.owned_cwd),
            cwd=self._cwd,
            home=self._home,
        )

    def _touches(self, item: pytest.Item, current: _Snapshot) -> list[Touch]:
        try:
            scope = self._scope(item)
        except findings.AuditPatternError:
            return []  # already this test's setup error
        rec = current.recorder
        written: dict[str, list[str]] = {}
        for path, verbs in rec.written.items():
            if not findings.covered(path, scope):  # resolve symlinks only where it matters
                written.setdefault(_real(path), []).extend(verbs)
        touches = findings.file_touches(written, scope)
        for host, port, protocol in rec.binds:
            touch = findings.port_touch(host, port, protocol, scope)
            if touch is not None and touch not in touches:
                touches.append(touch)
        touches += findings.env_touches(current.env, dict(os.environ), scope)
        cwd = findings.cwd_touch(current.cwd, _cwd(), scope)
        if cwd is not None:
            touches.append(cwd)
        left = [
            (t.name, t.daemon)
            for t in threading.enumerate()
            if t not in current.threads and t not in self.owned_threads and t.is_alive()
        ]
        touches += findings.thread_touches(left)
        touches += findings.process_touches(self._children_left(current))
        return [t for t in touches if not findings.silenced(t, scope.ignore, scope.rootdir)]

    def _children_left(self, current: _Snapshot) -> list[tuple[int, str]]:
        rec = current.recorder
        pids: dict[int, str] = {}
        if rec.children_before is not None:
            pids = child_processes(os.getpid())
        for pid, command in _multiprocessing_children().items():
            pids.setdefault(pid, command)
        before = (rec.children_before or set()) | current.helpers
        return [
            (pid, command)
            for pid, command in sorted(pids.items())
            if pid not in before
            and pid not in self.owned_pids
            and not findings.is_interpreter_helper(command)
        ]

    # -- collecting and reporting, on the controller

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker or report.when != "teardown":
            return
        self.audited.add(report.nodeid)
        found = self.config.stash[FINDINGS]
        for entry in report.user_properties:
            finding = findings.decode(report.nodeid, *entry) if len(entry) == 2 else None
            if finding is not None and finding not in found.get(report.nodeid, []):
                found.setdefault(report.nodeid, []).append(finding)
        reporter = self.config.pluginmanager.get_plugin("isolate-reporter")
        if reporter is not None and report.nodeid in found:  # hatched timeline bars
            texts = tuple(f"{f.kind}: {f.detail}" for f in found[report.nodeid])
            reporter.audited[report.nodeid] = texts

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not self.audited:
            return
        reporter = self.config.pluginmanager.get_plugin("isolate-reporter")
        order = list(getattr(reporter, "nodeids", None) or sorted(self.audited))
        terminalreporter.write_sep("=", "isolation audit")
        found: dict[str, list[Finding]] = self.config.stash[FINDINGS]
        for line in findings.format_section(found, order, len(self.audited)):
            terminalreporter.write_line(line)


def _real(path: str) -> str:
    return Path(os.path.realpath(path)).as_posix()
