"""Leases: machine-wide claims on numbered blocks, safe across processes and crashes.

Input: a lease directory shared by every pytest run on the host, a block count, and who asks
(run id, slot). Output: the number of a block no live process holds. A lease records the
holder's pid and the process start time, so the lease of a dead process (or of a pid reused
by another program) is taken over. One lock file guards the directory: no daemon, no race.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

#: Where leases live unless PYTEST_ISOLATE_LEASE_DIR says otherwise. Deliberately not
#: tempfile.gettempdir(): a worker's TMPDIR is private, and a nested pytest run started from a
#: test would otherwise lease from a directory no other run sees.
DEFAULT_DIR = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / "pytest-isolate"


class Holder(NamedTuple):
    pid: int
    started: str  # the process start time, to tell a reused pid apart
    run_id: str
    slot: int


def stat_fields(pid: int | str) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (state, parent, ...); raises
    OSError (FileNotFoundError: the process is gone) as ``open`` does."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        return f.read().rsplit(")", 1)[1].split()


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` (Linux: /proc), "" where unknown, None if it is gone."""
    try:
        fields = stat_fields(pid)
    except FileNotFoundError:
        if not os.path.isdir("/proc"):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            except PermissionError:
                return ""
            return ""
        return None
    if fields[0] == "Z":  # a zombie holds nothing
        return None
    return fields[19]


def me(run_id: str, slot: int) -> Holder:
    return Holder(os.getpid(), process_start(os.getpid()) or "", run_id, slot)


def is_alive(holder: Holder) -> bool:
    started = process_start(holder.pid)
    return started is not None and (started == holder.started or not started)


def lease_dir() -> Path:
    path = Path(os.environ.get("PYTEST_ISOLATE_LEASE_DIR", DEFAULT_DIR))
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        # Shared by every user's runs on the host, like /tmp itself.
        with contextlib.suppress(PermissionError):
            path.chmod(stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO | stat.S_ISVTX)
    return path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the with-block.

    flock(2), from the standard library: every process of a run takes this lock, and the
    filelock package cost each of them ~10 ms of import for what these lines do here (POSIX
    only, like the rest of the plugin). O_NOFOLLOW refuses a symlink planted at the path, the
    hole filelock 3.20.1 closed; the file is opened read-only and never written, so nothing is
    truncated or created through it. The kernel hands the lock to a waiter the moment it is
    free (no polling) and takes it from a holder that dies.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        # Shared by every user's runs, like the directory: undo a restrictive umask. Another
        # user's lock file is theirs to chmod, and readable is all a lock needs.
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock too


class Leases:
    """Leases on spans of numbers (ports, say) of one kind, in one directory.

    Spans of different sizes may be asked for by different runs; a span is free when it
    overlaps no span leased by a live process.
    """

    def __init__(self, kind: str, directory: Path | None = None) -> None:
        self.kind = kind
        self.directory = directory or lease_dir()
        self._lock_path = self.directory / f"{kind}.lock"

    def _path(self, start: int) -> Path:
        return self.directory / f"{self.kind}-{start}.lease"

    def _read_all(self) -> dict[int, tuple[range, Holder]]:
        found: dict[int, tuple[range, Holder]] = {}
        for path in self.directory.glob(f"{self.kind}-*.lease"):
            try:
                data = json.loads(path.read_text())
                found[int(data["start"])] = (
                    range(int(data["start"]), int(data["stop"])),
                    Holder(**data["holder"]),
                )
            except (FileNotFoundError, ValueError, TypeError, KeyError):
                continue
        return found

    def acquire(self, spans: Iterable[range], holder: Holder) -> tuple[range, list[Holder]] | None:
        """Lease the first span no live process holds.

        A span this run's slot held before (its worker crashed) is preferred, so a replacement
        worker gets its predecessor's resources back. Leases of dead processes are removed on
        the way. Returns the span and the dead holders whose leases were taken over, or None
        when every span overlaps a live lease.
        """
        candidates = list(spans)
        with locked(self._lock_path):
            live: list[range] = []
            dead: list[tuple[range, Holder]] = []
            for start, (span, owner) in self._read_all().items():
                if is_alive(owner):
                    live.append(span)
                else:
                    dead.append((span, owner))
                    self._remove(start)
            previous = [
                span
                for span, owner in dead
                if owner.run_id == holder.run_id and owner.slot == holder.slot
            ]
            for span in [c for c in candidates if c in previous] + candidates:
                if not any(_overlap(span, other) for other in live) and self._write(span, holder):
                    return span, [owner for _, owner in dead]
        return None

    def _remove(self, start: int) -> bool:
        """Remove a lease file; False where it is another user's in the shared, sticky
        directory: then it stays, a dead lease that a later write over it reuses."""
        try:
            self._path(start).unlink(missing_ok=True)
        except PermissionError:
            return False
        return True

    def _write(self, span: range, holder: Holder) -> bool:
        """Write the lease; False where another user's dead lease of that start is there and
        not writable for us (the span is skipped: it never blocks us, nor we them)."""
        path = self._path(span.start)
        payload = {"start": span.start, "stop": span.stop, "holder": holder._asdict()}
        try:
            path.write_text(json.dumps(payload))
        except PermissionError:
            return False
        with contextlib.suppress(PermissionError):
            path.chmod(0o666)
        return True

    def release(self, span: range, holder: Holder) -> None:
        with locked(self._lock_path):
            current = self._read_all().get(span.start)
            if current is not None and current[1] == holder and not self._remove(span.start):
                # Another user's file we wrote over (their run was killed): we may not
                # remove it from the sticky directory, but an empty lease holds nothing.
                with contextlib.suppress(OSError):
                    self._path(span.start).write_text("")

    def reclaim(self) -> list[tuple[range, Holder]]:
        """Remove the leases of dead processes; returns what was removed."""
        removed = []
        with locked(self._lock_path):
            for start, (span, owner) in sorted(self._read_all().items()):
                if not is_alive(owner) and self._remove(start):
                    removed.append((span, owner))
        return removed

    def live(self) -> list[range]:
        """The spans that live processes hold."""
        return [span for span, owner in self._read_all().values() if is_alive(owner)]

    def held(self) -> dict[int, tuple[range, Holder]]:
        """Every span currently leased (live or not), for tests and diagnostics."""
        return self._read_all()


def _overlap(a: range, b: range) -> bool:
    return a.start < b.stop and b.start < a.stop
