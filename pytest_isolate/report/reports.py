"""Reports: stable output order and the closing summary, as pure functions over plain data.

Input: the collection (node ids in collection order), the domains, and report events or
measured durations. Output: the order reports are shown in, which events a live reorder buffer
may release now, and the closing line's numbers.

The output order is the same whatever the worker count or timing: domains in the order of
their first test, each domain's tests together in collection order.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from ..words import count

Event = TypeVar("Event")


def output_sequence(nodeids: Sequence[str], domains: Iterable[Sequence[int]]) -> list[str]:
    """Node ids in output order: domains by first test, each domain in collection order."""
    ordered = sorted((sorted(domain) for domain in domains if domain), key=lambda d: d[0])
    sequence = [nodeids[index] for domain in ordered for index in domain]
    seen = set(sequence)
    return sequence + [nodeid for nodeid in nodeids if nodeid not in seen]


def sort_key(positions: Mapping[str, int]) -> Any:
    """A key putting known node ids in output order; anything else after, as it came."""
    unknown = len(positions)
    return lambda nodeid: positions.get(nodeid, unknown)


#: Seconds lines may be held back behind a test that is still running (-v): past that, what
#: is held comes out, and the order resumes from there.
HOLD_SECONDS = 5.0


class ReorderBuffer(Generic[Event]):
    """Releases each test's events in output order, as soon as all tests before it are done.

    The test at the head streams live; later tests wait until the head is done, or until
    they have waited ``hold`` seconds (checked as events come): then everything held is
    released in order, and tests before the last one released stream as they come.
    Events of node ids outside the sequence are released at once.
    """

    def __init__(
        self,
        sequence: Sequence[str],
        hold: float = HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sequence = list(sequence)
        self._position = {nodeid: i for i, nodeid in enumerate(self._sequence)}
        self._cursor = 0
        self._held: dict[int, list[Event]] = defaultdict(list)
        self._done: set[int] = set()
        self._hold = hold
        self._clock = clock
        self._held_since: float | None = None  # when the oldest held event came

    def add(self, nodeid: str, event: Event) -> list[Event]:
        position = self._position.get(nodeid)
        if position is None or position == self._cursor:
            return [event, *self._expired()]
        if position < self._cursor:
            return [event]  # a late event of a test already passed (a crash report, say)
        self._held[position].append(event)
        if self._held_since is None:
            self._held_since = self._clock()
        return self._expired()

    def done(self, nodeid: str) -> list[Event]:
        """The test has finished; release what that unblocks."""
        position = self._position.get(nodeid)
        if position is None or position < self._cursor:
            return []
        self._done.add(position)
        released: list[Event] = []
        while self._cursor in self._done:
            self._cursor += 1
            released += self._held.pop(self._cursor, [])
        if not self._held:
            self._held_since = None
        return released + self._expired()

    def _expired(self) -> list[Event]:
        """Everything held, once the oldest has waited too long behind a running test."""
        if self._held_since is None or self._clock() - self._held_since < self._hold:
            return []
        last = max(self._held)
        released = [event for position in sorted(self._held) for event in self._held[position]]
        self._held.clear()
        self._held_since = None
        self._cursor = last + 1
        while self._cursor in self._done:
            self._cursor += 1
        return released

    def flush(self) -> list[Event]:
        """Everything still held, in output order (tests that never finished included)."""
        released = [event for position in sorted(self._held) for event in self._held[position]]
        self._held.clear()
        self._cursor = len(self._sequence)
        return released


class RunSummary(NamedTuple):
    workers: int
    domains: int
    free: int
    wall: float
    test_time: float
    longest: float
    longest_first: str
    longest_size: int

    @property
    def speedup(self) -> float:
        return parallelism(self.test_time, self.wall)

    @property
    def efficiency(self) -> float:
        return self.speedup / self.workers if self.workers else 0.0

    @property
    def bounded_by_longest(self) -> bool:
        """The longest domain took most of the wall time: more workers cannot help."""
        return self.workers > 1 and self.longest >= 0.8 * self.wall


def summarize(
    nodeids: Sequence[str],
    domains: Iterable[Sequence[int]],
    measured: Mapping[str, float],
    workers: int,
    wall: float,
) -> RunSummary:
    groups = [list(domain) for domain in domains if domain]
    times = [sum(measured.get(nodeids[i], 0.0) for i in group) for group in groups]
    longest_index = max(range(len(groups)), key=lambda k: (times[k], -groups[k][0]), default=-1)
    longest_group = groups[longest_index] if longest_index >= 0 else []
    return RunSummary(
        workers=workers,
        domains=sum(1 for group in groups if len(group) > 1),
        free=sum(1 for group in groups if len(group) == 1),
        wall=wall,
        test_time=sum(measured.get(nodeid, 0.0) for nodeid in nodeids),
        longest=times[longest_index] if longest_index >= 0 else 0.0,
        longest_first=nodeids[min(longest_group)] if longest_group else "",
        longest_size=len(longest_group),
    )


def parallelism(test_time: float, wall: float) -> float:
    """Summed test time over wall time: the speedup over running the tests one by one. The
    one definition, for the closing line and the timeline page."""
    return test_time / wall if wall > 0 else 0.0


def format_summary(summary: RunSummary) -> str:
    line = (
        f"isolate: {count(summary.workers, 'worker')}, {count(summary.domains, 'domain')} + "
        f"{count(summary.free, 'free test')}, "
        f"wall {summary.wall:.2f}s, test time {summary.test_time:.2f}s, "
        f"speedup {summary.speedup:.2f}x, efficiency {summary.efficiency:.0%}"
    )
    if summary.longest_first:
        kind = "domain" if summary.longest_size > 1 else "test"
        more = f" +{summary.longest_size - 1}" if summary.longest_size > 1 else ""
        line += f"; longest {kind} {summary.longest:.2f}s ({summary.longest_first}{more})"
    if summary.bounded_by_longest:
        line += ": it bounds the run, split it to go faster"
    return line
