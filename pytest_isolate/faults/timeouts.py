"""Timeouts: a hung test costs only itself, even when it hangs in C code or a deadlock.

Input: ``--isolate-timeout SECONDS`` or ``@pytest.mark.isolate_timeout(S)`` (the marker wins).
Output, under xdist: at the deadline a watchdog thread of the worker dumps every thread's
stack with faulthandler, sends it to the controller over the plugin's channel (so it reaches
the controller from a worker on another host too) and ends the worker process. xdist sees a
crash; the controller turns that crash report into a timeout failure carrying the stack, and a
replacement worker takes over the slot. What the test left running in the worker's process
group is stopped (SIGTERM, then SIGKILL after a grace period): by the controller for a local
worker, by a helper the worker starts on its own host for a remote one, since a pid means
nothing on another host.

A test that holds the GIL (a C extension that never releases it) keeps the watchdog thread
from running. faulthandler's own C timer is the backstop a little later: it needs no GIL, writes
the stack to the worker's ``timeout.txt`` and ends the process. The controller can read that
file for a local worker only; a remote worker's backstop shows as a plain crash.

In-process, killing the process would end the run, so the stack is only written to stderr at
the deadline.

This is not ``signal.alarm``: that needs the main thread to return to the interpreter, which
a test stuck in ``time.sleep`` inside a C extension, or on a lock, never does.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import IO, Any

import pytest

from ..declare.markers import timeout_of

GRACE_SECONDS = 2.0
#: How long after the deadline faulthandler's C timer ends a worker whose watchdog thread
#: could not run (the GIL held).
BACKSTOP_SECONDS = 1.0
STACK_FILE = "timeout.txt"
#: The transport message kind that carries a timed-out test's stack.
MESSAGE_KIND = "timeout"

#: Sends a message to the controller (``transport.send`` with the kind bound).
Report = Callable[[dict[str, Any]], None]


class Watchdog:
    """Worker side: watches each test with a deadline, and does nothing for the others.

    ``report`` given (a worker under xdist): the watchdog thread reports the stack and ends
    the process, with faulthandler's exit as the backstop. ``stop_own_group``: the worker is
    on another host than the controller, so it stops its process group itself.
    """

    def __init__(
        self,
        directory: Path,
        hard: bool,
        report: Report | None = None,
        stop_own_group: bool = False,
    ) -> None:
        self.path = directory / STACK_FILE
        self.hard = hard
        self.report = report
        self.stop_own_group = stop_own_group
        # Soft (in-process): where the stack goes at the deadline. stderr as it is now, made
        # before output capture (pytest's is suspended between tests' phases): during a test
        # sys.stderr and fd 2 are captured, and the stack of a passing test would be lost.
        self._terminal = -1 if hard else _dup_stderr()
        self._file: IO[str] | None = None
        self._cancelled: threading.Event | None = None
        # Held by the thread from the deadline on, so disarm() never returns while the
        # thread may still end the process.
        self._firing = threading.Lock()

    def arm(self, nodeid: str, seconds: float) -> None:
        if not self.hard:
            where = self._terminal if self._terminal >= 0 else sys.stderr
            faulthandler.dump_traceback_later(seconds, exit=False, file=where)
            return
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - kept open
        self._file.write(f"{nodeid}\n{seconds}\n")
        self._file.flush()
        backstop = seconds + BACKSTOP_SECONDS if self.report is not None else seconds
        faulthandler.dump_traceback_later(backstop, exit=True, file=self._file)
        if self.report is not None:
            self._cancelled = threading.Event()
            threading.Thread(
                target=self._expire,
                args=(nodeid, seconds, self._cancelled),
                name="pytest-isolate-timeout",
                daemon=True,
            ).start()

    def _expire(self, nodeid: str, seconds: float, cancelled: threading.Event) -> None:
        if cancelled.wait(seconds):
            return
        with self._firing:
            if cancelled.is_set():
                return  # the test ended just in time
            payload = {"nodeid": nodeid, "seconds": seconds, "stack": dump_stacks()}
            try:
                assert self.report is not None
                self.report(payload)
            except OSError:
                return  # the channel is gone: leave it to the backstop and its file
            if self.stop_own_group:
                stop_own_group()
            os._exit(1)  # as faulthandler's exit does: xdist sees a crash

    def disarm(self) -> None:
        if self._cancelled is not None:
            self._cancelled.set()
            self._cancelled = None
            with self._firing:
                pass
        faulthandler.cancel_dump_traceback_later()
        if self._file is not None:
            self._file.close()
            self._file = None
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._terminal >= 0:
            os.close(self._terminal)
            self._terminal = -1


def _dup_stderr() -> int:
    """A descriptor of stderr as it is now; -1 where there is none to duplicate."""
    try:
        return os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return -1


def dump_stacks() -> str:
    """Every thread's stack, in faulthandler's format (it writes to a file descriptor only)."""
    with tempfile.TemporaryFile() as buffer:
        faulthandler.dump_traceback(file=buffer, all_threads=True)
        buffer.seek(0)
        return buffer.read().decode("utf-8", errors="replace")


def from_report(payload: object, nodeid: str) -> tuple[float, str] | None:
    """Controller side: the deadline and stack a worker reported, if it was ``nodeid``."""
    if not isinstance(payload, dict) or payload.get("nodeid") != nodeid:
        return None
    return float(payload["seconds"]), str(payload["stack"])


#: How faulthandler's dump_traceback_later starts what it writes at the deadline.
FAULTHANDLER_TIMEOUT = "Timeout ("


def read_stack(directory: Path, nodeid: str) -> tuple[float, str] | None:
    """Controller side, local worker: the deadline and stack faulthandler's backstop left."""
    try:
        text = (directory / STACK_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = text.splitlines()
    if len(lines) < 3 or lines[0] != nodeid or not lines[2].startswith(FAULTHANDLER_TIMEOUT):
        # The file is written as the test starts; only faulthandler's dump at the deadline
        # makes it a timeout. A worker that crashed before (a segfault) left the header only.
        return None
    return float(lines[1]), "\n".join(lines[2:])


def stop_group(
    pgid: int, grace: float = GRACE_SECONDS, ended: Callable[[], bool] | None = None
) -> None:
    """SIGTERM a process group, then SIGKILL whatever is still there after ``grace``, or
    once ``ended()`` says the part worth waiting for is done (a leader that tears down)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if ended is not None and ended():
                    break
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.02)


_STOP_SOURCE = (
    "import sys\n"
    "from pytest_isolate.faults.timeouts import stop_group\n"
    "stop_group(int(sys.argv[1]), float(sys.argv[2]))\n"
)


def stop_own_group(grace: float = GRACE_SECONDS) -> None:
    """Remote worker: stop its own process group from a helper in a session of its own.

    The helper outlives the worker (the SIGTERM ends the worker too) and gives the test's
    leftovers the same SIGTERM, grace period and SIGKILL as a local worker's get from the
    controller. Only a group this worker leads: anything else is shared with other processes.
    """
    pgid = os.getpgid(0)
    if pgid != os.getpid():
        return
    subprocess.Popen(
        [sys.executable, "-c", _STOP_SOURCE, str(pgid), str(grace)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


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
