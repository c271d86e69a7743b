"""Plan: which worker runs which domain, longest first.

Input: the domains (tuples of test indices), one :class:`~pytest_isolate.claims.TestClaims`
and one duration estimate per test, and a worker count.
Output: a :class:`Plan`: the units of work in priority order and, per worker, the queue of
units that a longest-processing-time-first (LPT) assignment gives it. The dispatcher follows
these queues and steals from the back of the fullest one when a worker runs dry, so a wrong
estimate costs at most the tail of the run.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .claims import TestClaims
from .domains import Domain, build_domains

#: Seconds assumed for a test when no test of the suite has recorded history.
DEFAULT_ESTIMATE = 0.01


@dataclass(frozen=True)
class Unit:
    """A domain as the scheduler sees it: run in order, on one worker."""

    tests: tuple[int, ...]
    estimate: float
    serial: bool

    @property
    def first(self) -> int:
        return self.tests[0]


@dataclass(frozen=True)
class Plan:
    units: tuple[Unit, ...]
    #: per worker, indices into :attr:`units`, in the order the worker should run them
    queues: tuple[tuple[int, ...], ...]
    #: estimated finishing time of each worker under the plan
    loads: tuple[float, ...]

    @property
    def makespan(self) -> float:
        return max(self.loads, default=0.0)

    @property
    def total(self) -> float:
        return sum(unit.estimate for unit in self.units)

    @property
    def longest(self) -> Unit | None:
        return max(self.units, key=lambda unit: (unit.estimate, -unit.first), default=None)

    def lower_bound(self) -> float:
        """max(total work / workers, longest unit): no schedule can finish sooner."""
        workers = max(1, len(self.queues))
        longest = self.longest.estimate if self.longest else 0.0
        serial = sum(unit.estimate for unit in self.units if unit.serial)
        return max((self.total - serial) / workers + serial, longest)


def estimate_durations(
    nodeids: Sequence[str], recorded: Mapping[str, float]
) -> tuple[list[float], int]:
    """Per test: its recorded duration, else the median of the known ones.

    Returns the estimates and how many tests had history.
    """
    known = [recorded[nodeid] for nodeid in nodeids if nodeid in recorded]
    fallback = statistics.median(known) if known else DEFAULT_ESTIMATE
    return [recorded.get(nodeid, fallback) for nodeid in nodeids], len(known)


def make_units(
    domains: Sequence[Domain], claims: Sequence[TestClaims], estimates: Sequence[float]
) -> tuple[Unit, ...]:
    """Units in priority order: those holding a ``serial`` test first, then longest first.

    Serial tests go first because each one stops every other worker; at the start of the
    run nothing is in flight yet, so waiting for the others to drain costs nothing.
    Ties keep collection order.
    """
    units = [
        Unit(
            tests=domain,
            estimate=sum(estimates[i] for i in domain),
            serial=any(claims[i].serial for i in domain),
        )
        for domain in domains
    ]
    units.sort(key=lambda unit: (not unit.serial, -unit.estimate, unit.first))
    return tuple(units)


def make_plan(units: Sequence[Unit], workers: int) -> Plan:
    """Assign units to workers, longest first, each to the worker that frees up first.

    Serial units occupy every worker while they run, so they advance all clocks.
    """
    workers = max(1, workers)
    queues: list[list[int]] = [[] for _ in range(workers)]
    clock = 0.0
    position = 0
    while position < len(units) and units[position].serial:
        queues[0].append(position)
        clock += units[position].estimate
        position += 1
    heap = [(clock, worker) for worker in range(workers)]
    for index in range(position, len(units)):
        load, worker = heapq.heappop(heap)
        queues[worker].append(index)
        heapq.heappush(heap, (load + units[index].estimate, worker))
    loads = [0.0] * workers
    for load, worker in heap:
        loads[worker] = load
    return Plan(tuple(units), tuple(tuple(q) for q in queues), tuple(loads))


@dataclass(frozen=True)
class CollectionPlan:
    plan: Plan
    estimates: tuple[float, ...]
    recorded: int  # how many tests had history


def plan_collection(
    nodeids: Sequence[str],
    claims: Sequence[TestClaims],
    recorded: Mapping[str, float],
    workers: int,
) -> CollectionPlan:
    """Domains, estimates and the plan for one collection: the whole pure pipeline."""
    estimates, known = estimate_durations(nodeids, recorded)
    units = make_units(build_domains(claims), claims, estimates)
    return CollectionPlan(make_plan(units, workers), tuple(estimates), known)
