"""Timeouts: a hung test costs only itself, even when it hangs in C code or a deadlock.

Input: ``--isolate-timeout SECONDS`` or ``@pytest.mark.isolate_timeout(S)`` (the marker wins).
Output, under xdist: at the deadline the worker's faulthandler thread, a C thread that needs
no GIL and no signal delivery to Python code, writes every thread's stack to the worker's
``timeout.txt`` and ends the worker process. xdist sees a crash; the controller turns that
crash report into a timeout failure carrying the stack, stops what the test left running in
the worker's process group (SIGTERM, then SIGKILL after a grace period), and a replacement
worker takes over the slot. In-process, killing the process would end the run, so the stack
is only written to stderr at the deadline.

This is not ``signal.alarm``: that needs the main thread to return to the interpreter, which
a test stuck in ``time.sleep`` inside a C extension, or on a lock, never does.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO

GRACE_SECONDS = 2.0
STACK_FILE = "timeout.txt"


class TimeoutError_(ValueError):
    """A malformed timeout: the message names the option or the test."""


def parse_timeout(raw: object, where: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        seconds = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise TimeoutError_(f"{where}: {raw!r} is not a positive number of seconds")
    return seconds


class Watchdog:
    """Worker side: arms faulthandler for each test and disarms it after."""

    def __init__(self, directory: Path, hard: bool) -> None:
        self.path = directory / STACK_FILE
        self.hard = hard
        self._file: IO[str] | None = None

    def arm(self, nodeid: str, seconds: float) -> None:
        if self.hard:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - kept open
            self._file.write(f"{nodeid}\n{seconds}\n")
            self._file.flush()
            faulthandler.dump_traceback_later(seconds, exit=True, file=self._file)
        else:
            faulthandler.dump_traceback_later(seconds, exit=False, file=sys.stderr)

    def disarm(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        if self._file is not None:
            self._file.close()
            self._file = None
            self.path.unlink(missing_ok=True)


def read_stack(directory: Path, nodeid: str) -> tuple[float, str] | None:
    """Controller side: the deadline and stack a timed-out worker left, if it was ``nodeid``."""
    try:
        text = (directory / STACK_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = text.splitlines()
    if len(lines) < 2 or lines[0] != nodeid:
        return None
    return float(lines[1]), "\n".join(lines[2:])


def stop_group(pgid: int, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM a process group, then SIGKILL whatever is still there after ``grace``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)
