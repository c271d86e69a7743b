"""SIGTERM as Ctrl-C, and when pytest can no longer take either.

While the tests run, a SIGTERM to the controller (a cancelled CI job) ends the run as Ctrl-C
does: workers stopped, databases dropped, leases released, pytest's summary of what finished,
exit code 2. From pytest's handling of an interruption, and from its session finish on, it no
longer turns KeyboardInterrupt into "interrupted": a SIGTERM there would end the process with
a traceback, exit code -2 and no reports. It is ignored there, except while failed tests are
rerun alone (that may take minutes, and a SIGTERM must stop it: the reruns catch it).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _interrupt(signum: int, frame: object) -> None:
    # Once: the run is stopping as asked, and a second signal would land in pytest's own
    # handling of the first, outside its guard.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"{signal.Signals(signum).name}: the run was asked to stop")


def install(config: pytest.Config) -> Any:
    """Make SIGTERM interrupt the run; returns the handler it replaced (None off the main
    thread, where Python allows no handler)."""
    if not _main_thread():
        return None
    before = signal.signal(signal.SIGTERM, _interrupt)
    config.pluginmanager.register(IgnoredWhileFinishing(), "isolate-sigterm")
    return before


def restore(before: Any) -> None:
    if before is not None and _main_thread():
        signal.signal(signal.SIGTERM, before)


def ignore() -> None:
    if _main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextmanager
def interrupting() -> Iterator[None]:
    """SIGTERM interrupts what runs inside (the reruns alone), then is ignored again."""
    if not _main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


class IgnoredWhileFinishing:
    """From the session's finish, or an interruption, on."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        ignore()

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self) -> None:
        ignore()  # the run is already stopping (Ctrl-C, -x under xdist, a SIGTERM)
