"""Run a generated suite: pytest in a subprocess, the outside faults, what it left behind.

One :class:`Workspace` per seed (the suite, the overlap checker's state, a private lease
directory, TMPDIR and basetemp, the reports). :func:`run_pytest` starts pytest in a session
of its own with an environment marker, SIGKILLs the tests that ask for it (they write their
pid into the kill directory), sends the planned SIGINT/SIGTERM, enforces a hard timeout, and
then looks for processes still carrying the marker.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .generate import (
    KILL_DIR_ENV,
    RUN_MARKER_ENV,
    SIGINT,
    SIGINT_GROUP,
    SIGTERM,
    SuiteSpec,
    generate,
    write_suite,
)

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "tests" / "integration" / "checker_conftest.py"
DEFAULT_PYTHON = ROOT / ".tox" / "py" / "bin" / "python"
HARD_TIMEOUT = 120.0
#: How long processes of a finished run may take to go away.
LEFTOVER_GRACE = 5.0

#: Variables of an outer pytest run (this harness may run inside one, under -n) that the
#: suite must not inherit.
_DROPPED_PREFIXES = ("PYTEST_XDIST_", "PYTEST_ISOLATE_", "ISOLATE_CHECK")
_DROPPED = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_CURRENT_TEST",
    "DATABASE_URL",
    "PYTHONPATH",  # the plugin under test is the one installed for ``python``
)


#: Started in front of pytest: SIGINT back to its default, then exec. A process started in the
#: background by a non-interactive shell inherits SIGINT ignored, and Python then leaves it
#: ignored: the planned SIGINT would do nothing (the pid stays the same through exec).
_RESET_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def default_python() -> str:
    return str(DEFAULT_PYTHON) if DEFAULT_PYTHON.exists() else sys.executable


@dataclass
class Workspace:
    root: Path
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def suite(self) -> Path:
        return self.root / "suite"

    @property
    def check(self) -> Path:
        return self.root / "check"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def basetemp(self) -> Path:
        return self.root / "basetemp"

    @property
    def kill(self) -> Path:
        return self.root / "kill"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def make(self) -> None:
        for path in (self.check, self.leases, self.tmp, self.kill, self.out):
            path.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED
        }
        env.update(
            {
                "TMPDIR": str(self.tmp),
                "TEMP": str(self.tmp),
                "TMP": str(self.tmp),
                "PYTEST_ISOLATE_LEASE_DIR": str(self.leases),
                "ISOLATE_CHECK_DIR": str(self.check),
                KILL_DIR_ENV: str(self.kill),
                RUN_MARKER_ENV: self.marker,
                "PYTHONDONTWRITEBYTECODE": "1",
                "PY_COLORS": "0",
                "COLUMNS": "160",
            }
        )
        return env


def prepare(seed: int, root: Path) -> tuple[SuiteSpec, Workspace]:
    spec = generate(seed)
    space = Workspace(root)
    space.make()
    write_suite(spec, space.suite, CHECKER.read_text())
    return spec, space


@dataclass
class PytestRun:
    """One pytest process and what the harness saw of it."""

    label: str  # "run1", "run2" (the --lf run)
    argv: list[str]
    returncode: int | None  # None: killed at the hard timeout
    output: str
    seconds: float
    junit: Path
    report_log: Path
    selected: list[str]  # node ids the run should have selected, in collection order
    signal_sent: str | None = None  # the signal, when it reached a live controller
    signal_at: float | None = None
    killed: list[int] = field(default_factory=list)  # pids SIGKILLed for the tests
    leftovers: list[str] = field(default_factory=list)  # "pid cmdline" still alive
    hard_timeout: bool = False
    controller: int = 0
    processes: dict[int, str] = field(default_factory=dict)  # pid -> cmdline, seen running

    def role(self, pid: int) -> str:
        """What process ``pid`` was in this run, from its command line."""
        if pid == self.controller:
            return "the controller"
        cmdline = self.processes.get(pid)
        if cmdline is None:
            return "a process not seen (short-lived)"
        if "--isolate-rerun-child" in cmdline:
            how = "SIGKILLed by the harness" if pid in self.killed else "not killed by us"
            return f"a rerun-alone child ({how})"
        if "execnet" in cmdline or "-c" in cmdline.split():
            return "an xdist worker" + (" (SIGKILLed by the harness)" if pid in self.killed else "")
        return f"{cmdline[:80]!r}"


def marked_pids(marker: str) -> dict[int, str]:
    """Live processes whose environment carries the run's marker: pid -> command line."""
    needle = f"{RUN_MARKER_ENV}={marker}".encode()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
            if needle not in environ.split(b"\0"):
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmdline:  # a zombie has none: it holds nothing but its pid
            found[int(entry)] = cmdline
    return found


class Watcher(threading.Thread):
    """While pytest runs: SIGKILLs every process that writes its pid into the kill directory
    (once each), and notes the command line of every process of the run (to tell, later,
    whose lease was left behind)."""

    def __init__(self, directory: Path, marker: str) -> None:
        super().__init__(name="fault-harness-watcher", daemon=True)
        self.directory = directory
        self.marker = marker
        self.stop = threading.Event()
        self.killed: list[int] = []
        self.seen: dict[int, str] = {}
        self._files: set[str] = set()

    def run(self) -> None:
        rounds = 0
        while not self.stop.wait(0.02):
            rounds += 1
            if rounds % 5 == 1:
                self.seen.update(marked_pids(self.marker))
            for name in os.listdir(self.directory):
                if name.endswith(".pid") and name not in self._files:
                    self._files.add(name)
                    self._kill(self.directory / name)

    def _kill(self, path: Path) -> None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text())
            # Only a process of this run: a pid is never killed on a guess.
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"{RUN_MARKER_ENV}={self.marker}".encode() not in f.read().split(b"\0"):
                    return
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                self.seen[pid] = f.read().replace(b"\0", b" ").decode(errors="replace")
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)


def _kill_marked(marker: str) -> None:
    for pid in marked_pids(marker):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def run_pytest(
    space: Workspace,
    python: str,
    args: list[str],
    label: str,
    selected: list[str],
    signal_kind: str | None = None,
    signal_delay: float = 0.0,
    hard_timeout: float = HARD_TIMEOUT,
) -> PytestRun:
    junit = space.out / f"{label}.xml"
    report_log = space.out / f"{label}.jsonl"
    output_path = space.out / f"{label}.txt"
    argv = [
        python,
        "-m",
        "pytest",
        *args,
        f"--basetemp={space.basetemp}",
        f"--junitxml={junit}",
        f"--report-log={report_log}",
    ]
    # The overlap checker's state is per run (as tests/integration/conftest.py does).
    for stale in ("log.jsonl", "violations.txt"):
        (space.check / stale).unlink(missing_ok=True)
    shutil.rmtree(space.check / "holders", ignore_errors=True)
    killer = Watcher(space.kill, space.marker)
    killer.start()
    started = time.monotonic()
    sent: str | None = None
    sent_at: float | None = None
    timed_out = False
    with open(output_path, "wb") as output:
        proc = subprocess.Popen(
            [python, "-S", "-c", _RESET_SIGINT, *argv],
            cwd=space.suite,
            env=space.env(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if signal_kind is not None:
                try:
                    proc.wait(timeout=signal_delay)
                except subprocess.TimeoutExpired:
                    sent, sent_at = _send(proc, signal_kind), time.monotonic() - started
            try:
                proc.wait(timeout=max(0.0, hard_timeout - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                timed_out = True
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                _kill_marked(space.marker)
                proc.wait()
        finally:
            killer.stop.set()
            killer.join()
    seconds = time.monotonic() - started
    leftovers = _leftovers(space.marker)
    return PytestRun(
        label=label,
        argv=argv,
        returncode=None if timed_out else proc.returncode,
        output=output_path.read_bytes().decode("utf-8", errors="replace"),
        seconds=seconds,
        junit=junit,
        report_log=report_log,
        selected=selected,
        signal_sent=sent,
        signal_at=sent_at,
        killed=list(killer.killed),
        leftovers=leftovers,
        hard_timeout=timed_out,
        controller=proc.pid,
        processes=dict(killer.seen),
    )


def _send(proc: subprocess.Popen[bytes], kind: str) -> str | None:
    try:
        if kind == SIGINT:
            proc.send_signal(signal.SIGINT)
        elif kind == SIGINT_GROUP:
            os.killpg(proc.pid, signal.SIGINT)
        elif kind == SIGTERM:
            proc.send_signal(signal.SIGTERM)
        else:
            raise ValueError(kind)
    except ProcessLookupError:
        return None
    return kind


def _leftovers(marker: str) -> list[str]:
    """Processes of the run alive ``LEFTOVER_GRACE`` seconds after pytest exited; they are
    killed then, so one run's leftovers never disturb the next."""
    deadline = time.monotonic() + LEFTOVER_GRACE
    while True:
        alive = marked_pids(marker)
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    _kill_marked(marker)
    return [f"{pid} {cmd[:200]}" for pid, cmd in sorted(alive.items())]


_NODEID = re.compile(r"^(test_mod\d+\.py::\S+)$", re.M)


def collect(space: Workspace, python: str, args: list[str]) -> list[str] | None:
    """The node ids a run with ``args`` selects, from ``--collect-only -q`` in-process (with
    the plugin, for --isolate-shard), in collection order; None if collection failed."""
    keep: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg in ("-n", "--isolate-timeout"):
            skip_next = True
        elif arg not in ("-x", "-rA"):
            keep.append(arg)
    basetemp = space.root / "collect-basetemp"
    proc = subprocess.run(
        [python, "-m", "pytest", "--collect-only", "-q", *keep, f"--basetemp={basetemp}"],
        cwd=space.suite,
        env=space.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode not in (0, 5):
        return None
    return _NODEID.findall(proc.stdout.decode(errors="replace"))


def workspace_root(parent: Path | None = None) -> Path:
    return Path(tempfile.mkdtemp(prefix="fault-harness-", dir=parent))


def remove(space: Workspace) -> None:
    shutil.rmtree(space.root, ignore_errors=True)
