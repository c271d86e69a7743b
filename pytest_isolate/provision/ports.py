"""Ports: each worker's block of ports, leased machine-wide.

Input: the block size and the kernel's ephemeral port range. Output: a :class:`PortBlock`
outside that range (so the kernel never hands its ports to someone else's ``bind(0)``), leased
through :mod:`.leases` so that concurrent pytest runs on one host never share a block.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..words import count
from .leases import Holder, Leases

LOWEST = 10000  # stay clear of well-known and commonly configured service ports
HIGHEST = 65535
EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


class PortsError(Exception):
    """A clear message naming the worker, the block or the setting at fault."""


def read_ephemeral_range(path: Path = EPHEMERAL_FILE) -> tuple[int, int] | None:
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def port_pool(ephemeral: tuple[int, int] | None) -> range:
    """The larger stretch of ports outside the ephemeral range, above :data:`LOWEST`."""
    low, high = ephemeral or (32768, 60999)  # Linux's default when the file is unreadable
    below = range(LOWEST, max(LOWEST, low))
    above = range(max(LOWEST, high + 1), HIGHEST + 1)
    return below if len(below) >= len(above) else above


def blocks_in(pool: range, size: int) -> list[range]:
    return [range(start, start + size) for start in range(pool.start, pool.stop - size + 1, size)]


def bindable(port: int) -> bool:
    """True when a TCP and a UDP socket can both bind ``port`` on IPv4 loopback now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@dataclass
class PortBlock:
    """A worker's ports: ``start``..``stop`` (exclusive), like ``range``."""

    start: int
    stop: int
    worker: str = "main"
    _next: int = field(default=0, repr=False)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.start <= port < self.stop

    def take(self, n: int = 1) -> list[int]:
        """``n`` distinct ports of the block, each bindable on loopback right now.

        Successive calls walk the block, so a port comes back only after every other one of
        the block has been handed out.
        """
        if n < 1:
            raise PortsError(f"isolate_ports.take({n}): ask for at least one port")
        size = len(self)
        taken: list[int] = []
        for step in range(size):
            port = self.start + (self._next + step) % size
            if bindable(port):
                taken.append(port)
                if len(taken) == n:
                    self._next = (self._next + step + 1) % size
                    return taken
        raise PortsError(
            f"worker {self.worker}: only {len(taken)} of the {n} ports asked for are free in "
            f"its block {self.start}-{self.stop}; raise isolate_ports_per_worker "
            f"(now {size}) or free the ports"
        )

    def as_env(self) -> str:
        return f"{self.start}-{self.stop}"


def check_pool(size: int, workers: int, leases: Leases | None = None) -> None:
    """Fail early when ``workers`` blocks of ``size`` cannot be had, before any worker starts."""
    pool = port_pool(read_ephemeral_range())
    blocks = blocks_in(pool, size)
    if len(blocks) < workers:
        raise PortsError(
            f"--isolate-ports-per-worker / isolate_ports_per_worker = {size}: the port pool "
            f"{pool.start}-{pool.stop - 1} holds {count(len(blocks), 'block')} of {size}, "
            f"too few for {count(workers, 'worker')}; ask for fewer ports per worker or fewer "
            "workers"
        )
    leases = leases or Leases("ports")
    live = leases.live()
    free = [block for block in blocks if not any(_overlaps(block, span) for span in live)]
    if len(free) < workers:
        raise PortsError(
            f"the port pool {pool.start}-{pool.stop - 1} has {count(len(free), 'free block')} of "
            f"{size} for {count(workers, 'worker')}: the rest are leased by other live pytest runs "
            f"({leases.directory})"
        )


def _overlaps(a: range, b: range) -> bool:
    return a.start < b.stop and b.start < a.stop


def lease_block(size: int, holder: Holder, worker: str, leases: Leases | None = None) -> PortBlock:
    """Lease a free block of ``size`` ports for this worker, machine-wide."""
    pool = port_pool(read_ephemeral_range())
    blocks = blocks_in(pool, size)
    if not blocks:
        raise PortsError(
            f"isolate_ports_per_worker = {size} is larger than the port pool "
            f"{pool.start}-{pool.stop}"
        )
    leases = leases or Leases("ports")
    got = leases.acquire(blocks, holder)
    if got is None:
        raise PortsError(
            f"worker {worker}: all {len(blocks)} port blocks of {size} in "
            f"{pool.start}-{pool.stop} are leased by live pytest runs ({leases.directory})"
        )
    return PortBlock(got[0].start, got[0].stop, worker)


def release_block(block: PortBlock, holder: Holder, leases: Leases | None = None) -> None:
    (leases or Leases("ports")).release(range(block.start, block.stop), holder)
