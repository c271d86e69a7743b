"""Plan: which worker runs which domain, longest first.

Input: the domains (tuples of test indices), one :class:`~pytest_isolate.declare.claims.TestClaims`
and one duration estimate per test, and a worker count.
Output: a :class:`Plan`: the units of work in priority order and, per worker, the queue of
units that a longest-processing-time-first (LPT) assignment gives it, in collection order:
durations decide which worker runs a unit, never the order of two tests on one worker, so a
suite that passes serially in its collection order sees the same order on each worker. The
dispatcher follows these queues and steals from the back of the fullest one when a worker
runs dry, so a wrong estimate costs at most the tail of the run.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from ..declare.claims import TestClaims
from ..declare.domains import Domain, build_domains

#: Seconds assumed for a test when no test of the suite has recorded history.
DEFAULT_ESTIMATE = 0.01


class Unit(NamedTuple):
    """A domain as the scheduler sees it: run in order, on one worker."""

    tests: tuple[int, ...]
    estimate: float
    serial: bool
    guessed: bool = False  # a test of it has no recorded duration: its estimate is a guess

    @property
    def first(self) -> int:
        return self.tests[0]


class Plan(NamedTuple):
    units: tuple[Unit, ...]
    #: per worker, indices into :attr:`units`, in the order the worker should run them
    queues: tuple[tuple[int, ...], ...]
    #: estimated finishing time of each worker under the plan
    loads: tuple[float, ...]
    #: units handed out in collection order to whichever worker reaches them first
    pool: tuple[int, ...] = ()

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
    fallback = _median(known) if known else DEFAULT_ESTIMATE
    return [recorded.get(nodeid, fallback) for nodeid in nodeids], len(known)


def _median(values: Sequence[float]) -> float:
    # statistics.median, without importing statistics (and fractions) on every run
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def make_units(
    domains: Sequence[Domain],
    claims: Sequence[TestClaims],
    estimates: Sequence[float],
    guessed: Collection[int] = (),
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
            guessed=any(i in guessed for i in domain),
        )
        for domain in domains
    ]
    units.sort(key=lambda unit: (not unit.serial, -unit.estimate, unit.first))
    return tuple(units)


def make_plan(units: Sequence[Unit], workers: int, pool_below: float = 0.0) -> Plan:
    """Assign units to workers, longest first, each to the worker that frees up first; each
    worker's queue then runs in collection order.

    Serial units occupy every worker while they run, so they advance all clocks. With good
    estimates the order within a queue does not change when the worker finishes.

    Units with a guessed estimate, and those shorter than ``pool_below`` seconds, go to the
    pool instead: workers take them in collection order as they come free, as xdist's load
    scheduling does, which balances work whose length is unknown or too small to plan.
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
    pooled = {
        index
        for index, unit in enumerate(units)
        if not unit.serial and (unit.guessed or unit.estimate < pool_below)
    }

    def in_order(indices: Sequence[int]) -> tuple[int, ...]:
        return tuple(sorted(indices, key=lambda i: units[i].first))

    placed = tuple(in_order([i for i in queue if i not in pooled]) for queue in queues)
    return Plan(tuple(units), placed, tuple(loads), in_order(list(pooled)))


class CollectionPlan(NamedTuple):
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
    guessed = [i for i, nodeid in enumerate(nodeids) if nodeid not in recorded]
    plan = plan_tests(claims, estimates, workers, nodeids, guessed)
    return CollectionPlan(plan, tuple(estimates), known)


#: Seconds: a unit shorter than this (or than a chunk's length, if less) is not planned onto
#: a worker but pooled: balancing it at the end of the run costs at most that much.
POOL_BELOW = 0.2


def plan_tests(
    claims: Sequence[TestClaims],
    estimates: Sequence[float],
    workers: int,
    nodeids: Sequence[str] = (),
    guessed: Collection[int] = (),
) -> Plan:
    """Domains, module chunks (given ``nodeids``), units and the plan: the pure pipeline."""
    domains = build_domains(claims)
    cap = sum(estimates) / (max(1, workers) * CHUNKS_PER_WORKER)
    guessed = frozenset(guessed)
    if nodeids:
        modules = [module_of(nodeid) for nodeid in nodeids]
        divisible = setup_free_modules(modules, estimates, guessed)
        domains = group_neighbours(domains, nodeids, claims, estimates, cap, divisible)
    units = make_units(domains, claims, estimates, guessed)
    return make_plan(units, workers, pool_below=min(cap, POOL_BELOW))


#: Neighbour chunks are kept small enough that each worker's share is several chunks, so
#: longest-first and stealing still balance the run.
CHUNKS_PER_WORKER = 4


def group_neighbours(
    domains: Sequence[Domain],
    nodeids: Sequence[str],
    claims: Sequence[TestClaims],
    estimates: Sequence[float],
    cap: float,
    divisible: Collection[str] = (),
) -> list[Domain]:
    """Chunk consecutive free tests of one module together, up to ``cap`` seconds each.

    Free tests may run anywhere, so any grouping is correct; keeping a module's tests on one
    worker, in order, lets its module- and class-scoped fixtures be set up once there instead
    of once per worker. Tests that declare anything stay as they are. A module's run of free
    tests of at most twice the cap stays whole: cutting a test off one about the cap's size
    sends it to another worker, where it records the module fixture's setup as its own
    duration and so is cut off again on every later run.

    A ``divisible`` module (its history shows no setup cost: :func:`setup_free_modules`) is
    cut finer, into chunks of a quarter of the cap: each worker runs its share in collection
    order, so the plan balances the run with those pieces, where the end of the run cannot
    take tests off a module any more without running them out of order.
    """
    grouped: list[Domain] = []
    run: list[int] = []  # consecutive free tests of one module

    def close_run() -> None:
        nonlocal run
        if module_of(nodeids[run[0]]) in divisible:
            grouped.extend(_chunks(run, estimates, cap / CHUNKS_PER_WORKER))
        elif sum(estimates[i] for i in run) <= 2 * cap:
            grouped.append(tuple(run))
        else:
            grouped.extend(_chunks(run, estimates, cap))
        run = []

    for domain in sorted(domains, key=lambda d: d[0]):
        index = domain[0]
        if len(domain) > 1 or not claims[index].is_plain:
            if run:
                close_run()
            grouped.append(domain)
            continue
        if run and (
            run[-1] != index - 1 or module_of(nodeids[run[-1]]) != module_of(nodeids[index])
        ):
            close_run()
        run.append(index)
    if run:
        close_run()
    return grouped


def _chunks(run: Sequence[int], estimates: Sequence[float], cap: float) -> list[Domain]:
    """``run`` cut in collection order into chunks of at most ``cap`` seconds (a single
    longer test is a chunk of its own)."""
    chunks: list[Domain] = []
    chunk: list[int] = []
    chunk_time = 0.0
    for index in run:
        if chunk and chunk_time + estimates[index] > cap:
            chunks.append(tuple(chunk))
            chunk, chunk_time = [], 0.0
        chunk.append(index)
        chunk_time += estimates[index]
    if chunk:
        chunks.append(tuple(chunk))
    return chunks


def module_of(nodeid: str) -> str:
    """The file part of a node id: the tests a module-scoped fixture is shared by."""
    return nodeid.split("::", 1)[0]


def setup_free_modules(
    modules: Sequence[str], estimates: Sequence[float], guessed: Collection[int]
) -> frozenset[str]:
    """Modules whose recorded tests show no setup cost: none is longer than the module's
    median test by more than that median (or 10 ms).

    A module- or class-scoped fixture's setup is recorded as part of the first test that
    used it, so a module that has one shows that test standing out. Splitting one without
    costs nothing but a message.
    """
    by_module: dict[str, list[float]] = {}
    for test, module in enumerate(modules):
        if test not in guessed:
            by_module.setdefault(module, []).append(estimates[test])
    plain = set()
    for module, seconds in by_module.items():
        ordered = sorted(seconds)
        # The lower median: of two tests, the short one is the module's typical test.
        median = ordered[(len(ordered) - 1) // 2]
        if ordered[-1] - median <= max(median, 0.01):
            plain.add(module)
    return frozenset(plain)
