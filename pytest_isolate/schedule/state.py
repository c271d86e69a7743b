"""The dispatcher's state: the work not yet sent (units' remaining tests, the planned
queues, the pool), each worker's pending tests, and the checks on them (counted resources,
the serial barrier, queue depth and budget, guesses for tests without history).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence

from ..declare.claims import TestClaims
from .plan import Plan, setup_free_modules

#: How many queued units of another worker's plan a dry worker looks through for one it can
#: start now, before it takes the last one anyway.
_SCAN = 64

#: At most this many tests queued on a worker at once; fewer when their estimates add up to
#: more than the time buffer. Deep queues of tiny tests mean few messages.
MAX_DEPTH = 256
#: Seconds of estimated work queued on a worker at most: what a wrong guess can leave on one
#: worker at the end of the run, against one message per few tests when tests are short.
BUFFER_SECONDS = 0.2
#: A test without history whose family's tests have run this long on average (or longer)
#: is released only when its worker is free, not queued behind another: see _maybe_long.
UNKNOWN_LONG_SECONDS = 0.02
#: What pytest and xdist add to each test's recorded duration (hooks, reports, transport):
#: queues of tiny tests are measured with it, or they hold far more time than the buffer.
PER_TEST_SECONDS = 0.0005


class _Worker:
    __slots__ = (
        "bound",
        "cursor",
        "head",
        "mark",
        "name",
        "pending",
        "pooled",
        "released_estimate",
        "satisfied",
        "serial_pending",
        "shutdown",
        "slot",
        "stopping",
    )

    def __init__(self, name: str, slot: int) -> None:
        self.name = name
        self.slot = slot
        self.pending: deque[int] = deque()
        self.shutdown = False
        self.stopping = False  # xdist is ending the run: shut down once the parked test may start
        self.released_estimate = 0.0
        self.serial_pending = 0
        self.bound: list[int] = []  # units with unsent tests, in bind order
        # Has enough queued until one of its own tests completes: nothing another worker's
        # event changes (the queue budget only shrinks between such events) can make it want
        # more, so dispatch skips it. Rare events (a worker leaving, a retry) clear it for all.
        self.satisfied = False
        # The test it is running now and since when (tests start when another is queued
        # behind them, or the shutdown): how long a test without history has run so far.
        self.head: tuple[int, float] | None = None
        # The latest test in collection order sent to this process: it takes only later ones
        # from other workers, so its tests run in collection order.
        self.mark = -1
        self.cursor = 0  # position in the pool before which nothing is for this worker
        self.pooled = 0  # units it took from the pool

    @property
    def released(self) -> int:
        if self.shutdown:
            return len(self.pending)
        return max(0, len(self.pending) - 1)

    @property
    def parked(self) -> int | None:
        if self.shutdown or not self.pending:
            return None
        return self.pending[-1]


class DispatchState:
    """What is queued, pooled, sent and released; see dispatch.py for the decisions."""

    def __init__(
        self,
        plan: Plan,
        claims: Sequence[TestClaims],
        estimates: Sequence[float],
        capacity: Mapping[str, int],
        max_depth: int = MAX_DEPTH,
        buffer_seconds: float = BUFFER_SECONDS,
        guessed: Collection[int] = (),
        clock: Callable[[], float] = time.monotonic,
        modules: Sequence[str] = (),
    ) -> None:
        self._claims = claims
        self._estimates = estimates
        # Tests without history: how deep to queue them follows the mean of what has run,
        # so a first run of many tiny tests is not sent one message per test.
        self._guessed = frozenset(guessed)
        self._observed = (0.0, 0)  # summed seconds, count
        self._clock = clock
        # Estimated seconds of the tests not sent yet: near the end of the run a worker's
        # queue holds at most its share of them, so no worker idles while another has a
        # queue it cannot give away.
        self._unsent = sum(estimates[test] for unit in plan.units for test in unit.tests)
        self._unsent_tests = sum(len(unit.tests) for unit in plan.units)
        self._charged: dict[int, float] = {}  # released test -> the estimate it was charged
        self._capacity = capacity
        self._any_serial = any(test_claims.serial for test_claims in claims)
        self._max_depth = max(2, max_depth)
        self._buffer = buffer_seconds
        self._remaining: list[deque[int]] = [deque(unit.tests) for unit in plan.units]
        # A chunk of free tests (plan.group_neighbours) stays on one worker only so module
        # fixtures are set up once. One cut from guesses (no history) may be split by a dry
        # worker; one cut from recorded durations only where its module shows no setup cost
        # (setup_free_modules): elsewhere a split would set the module's fixtures up again, and
        # the test that paid for them would record their cost as its own, skewing the next
        # plan. Domains never split.
        setup_free = setup_free_modules(modules, estimates, self._guessed)
        self._splittable: list[bool] = [
            len(unit.tests) > 1
            and all(
                claims[test].is_plain
                and (test in self._guessed or (bool(modules) and modules[test] in setup_free))
                for test in unit.tests
            )
            for unit in plan.units
        ]
        self._unit_of: dict[int, int] = {
            test: index for index, unit in enumerate(plan.units) for test in unit.tests
        }
        # A unit's family is the module of its first test (``modules``: each test's; without
        # them, one family for all); a unit split off a chunk stays in the chunk's family.
        # What a family's tests showed so far (completed durations, time running) is the
        # best guess for the rest of them.
        module_ids: dict[str, int] = {}
        self._family: list[int] = [
            module_ids.setdefault(modules[unit.tests[0]] if modules else "", len(module_ids))
            for unit in plan.units
        ]
        self._family_observed: dict[int, tuple[float, int]] = {}
        # Planned queues by slot; a slot with no live worker is an orphan others steal from.
        self._queues: list[deque[int]] = [deque() for _ in plan.queues]
        self._queue_load: list[float] = [0.0 for _ in plan.queues]
        self._queued: dict[int, tuple[int, float]] = {}  # unit -> (slot, estimate)
        for slot, queue in enumerate(plan.queues):
            for unit in queue:
                self._enqueue(slot, unit, front=False)
        # Planned queues no worker has taken yet: workers join as they finish starting, in
        # no fixed order. The first to join takes queue 0 (serial units, then the longest),
        # the next queue 1, and so on, so the last to start gets the shortest, most
        # divisible work. Until its worker comes (or never will: abandon), nobody steals
        # from such a queue: a worker that has run out of its own work would take the unit
        # as the test parked behind its running one (the worker protocol commits it), and
        # the worker that joins a moment later would find nothing to do.
        self._untaken: set[int] = set(range(len(plan.queues)))
        # The pool, in collection order, and which of its units were taken (plan.make_plan).
        self._pool: list[int] = list(plan.pool)
        self._pool_taken: set[int] = set()
        self._pool_start = 0  # before it, every unit of the pool is taken
        # Until every planned worker has joined, each takes at most its share of the pool:
        # one that starts late still finds work, as the plan's queues wait for theirs.
        self._pool_share = -(-len(self._pool) // max(1, len(plan.queues)))
        self._rank: list[int] = list(range(len(plan.queues)))  # the plan's index of a queue
        self._workers: dict[str, _Worker] = {}
        self._by_slot: list[_Worker] = []
        self._holders: dict[str, int] = {name: 0 for name in capacity}
        self._total = len(self._unit_of)
        self._done = 0
        self._finished: set[int] = set()

    def _swap_queues(self, slot: int, other: int) -> None:
        """Exchange two planned queues, so ``slot`` takes ``other``'s, and the other way."""
        if slot == other:
            return
        queues, loads, rank = self._queues, self._queue_load, self._rank
        queues[slot], queues[other] = queues[other], queues[slot]
        loads[slot], loads[other] = loads[other], loads[slot]
        rank[slot], rank[other] = rank[other], rank[slot]
        for new_slot in (slot, other):
            for unit in queues[new_slot]:
                self._queued[unit] = (new_slot, self._queued[unit][1])

    def _holds(self, worker: _Worker, unit: int) -> bool:
        return unit in worker.bound or any(self._unit_of[t] == unit for t in worker.pending)

    def _unsatisfy(self) -> None:
        for worker in self._by_slot:
            worker.satisfied = False

    def _coming_back(self) -> bool:
        """A worker already shut down holds a unit with tests it will not be sent (a retried
        crash that follows the rest of its domain there): they are queued again when that
        worker leaves, for a worker still running to take."""
        return any(
            worker.shutdown and any(self._remaining[unit] for unit in worker.bound)
            for worker in self._by_slot
        )

    def _queue_budget(self) -> float:
        """Seconds of released work a worker may hold: the buffer, or near the end of the
        run its share of what is left to send, whichever is less."""
        share = self._unsent / max(1, len(self._workers))
        return min(self._buffer, share)

    def _below_low_water(self, worker: _Worker) -> bool:
        # Refill in batches: once a worker of short tests has half its queue, leave it until
        # it drops below that, so one message carries many tests instead of one per test.
        if worker.released < 2:
            return True
        return (
            worker.released < self._max_depth // 2
            and worker.released_estimate < self._queue_budget() / 2
        )

    def _wants_more(self, worker: _Worker) -> bool:
        # Two released tests keep a worker busy while the controller answers; more only help
        # when tests are short compared with that round trip.
        if worker.released < 2:
            return True
        return worker.released < self._max_depth and worker.released_estimate < self._queue_budget()

    def _release(self, worker: _Worker, test: int) -> None:
        for name in self._claims[test].counted:
            self._holders[name] += 1
        estimate = self._estimates[test]
        if test in self._guessed:
            estimate = self._guess(self._unit_of[test])
        estimate += PER_TEST_SECONDS
        self._charged[test] = estimate
        worker.released_estimate += estimate

    def _unrelease(self, worker: _Worker, test: int) -> None:
        for name in self._claims[test].counted:
            self._holders[name] -= 1
        estimate = self._charged.pop(test, self._estimates[test])
        worker.released_estimate = max(0.0, worker.released_estimate - estimate)

    def _note_head(self, worker: _Worker) -> None:
        if not worker.released:
            worker.head = None
        elif worker.head is None or worker.head[0] != worker.pending[0]:
            worker.head = (worker.pending[0], self._clock())

    def _guess(self, unit: int) -> float:
        """Seconds per test of a unit of tests without history.

        Its family's completed tests' mean, else the mean of all completed tests; at least
        as long as any test of the family has been running. Nothing has run yet: a guess
        may be a test of seconds, so it is charged the whole buffer and a worker gets two
        such tests, not a chunk of them at once.
        """
        family = self._family[unit]
        total, count = self._family_observed.get(family, self._observed)
        guess = total / count if count else self._buffer
        now: float | None = None
        for worker in self._by_slot:
            if worker.head is not None and self._family[self._unit_of[worker.head[0]]] == family:
                now = self._clock() if now is None else now
                guess = max(guess, now - worker.head[1])
        return guess

    def _can_release(self, test: int, worker: _Worker) -> bool:
        claims = self._claims[test]
        if not claims.counted and not self._any_serial:
            return True  # most tests of most runs: nothing below applies
        if (claims.counted or claims.serial) and worker.released:
            # It would wait behind the worker's running test while holding its units or its
            # barrier; release it when it can start at once instead.
            return False
        for name in claims.counted:
            if self._holders[name] >= self._capacity[name]:
                return False
        others = [w for w in self._workers.values() if w is not worker]
        if claims.serial:
            return all(other.released == 0 for other in others)
        # A serial test elsewhere is running, or waiting for the others to drain.
        return not any(other.serial_pending for other in others)

    def _ready(self, unit: int, worker: _Worker) -> bool:
        return self._can_release(self._remaining[unit][0], worker)

    def _next_test(self, unit: int) -> int:
        return self._remaining[unit][0]

    def _in_order(self, worker: _Worker, unit: int) -> bool:
        """``unit`` comes after everything ``worker`` has been sent (see _Worker.mark)."""
        return self._remaining[unit][0] > worker.mark

    def _running_slots(self) -> set[int]:
        """Slots of the workers that may still be sent work (joined, not shut down)."""
        return {worker.slot for worker in self._by_slot if not worker.shutdown}

    def _orphans(self) -> set[int]:
        """Slots with work and no worker that may take it (none, or one shut down), and none
        still to come: anyone may take from them."""
        live = self._running_slots()
        return {
            slot
            for slot, queue in enumerate(self._queues)
            if queue and slot not in live and slot not in self._untaken
        }

    def _enqueue(self, slot: int, unit: int, front: bool) -> None:
        estimate = sum(self._estimates[test] for test in self._remaining[unit])
        self._queued[unit] = (slot, estimate)
        self._queue_load[slot] += estimate
        if front:
            self._queues[slot].appendleft(unit)
        else:
            self._queues[slot].append(unit)

    def _dequeued(self, slot: int, unit: int) -> int:
        self._queue_load[slot] -= self._queued.pop(unit)[1]
        return unit

    def _take_pooled(self, unit: int, worker: _Worker) -> None:
        worker.pooled += 1
        self._pool_taken.add(unit)
        pool = self._pool
        while self._pool_start < len(pool) and pool[self._pool_start] in self._pool_taken:
            self._pool_start += 1

    def _per_test(self, unit: int) -> float:
        """Seconds per unsent test of a chunk: the guess, or the mean of the estimates."""
        rest = self._remaining[unit]
        if rest[0] in self._guessed:
            return self._guess(unit)
        return sum(self._estimates[test] for test in rest) / len(rest)

    def _maybe_long(self, test: int) -> bool:
        """Too little known for the round trip saved by releasing it early to matter: no
        history, and either nothing of its family has completed or its family's guess is
        over UNKNOWN_LONG_SECONDS (a guess from the first completions is low: long tests
        complete last). A recorded test was placed by a plan that knew its duration."""
        if test in self._guessed:
            unit = self._unit_of[test]
            if self._family[unit] not in self._family_observed:
                return True
            return self._guess(unit) >= UNKNOWN_LONG_SECONDS
        return False  # recorded: the plan placed it knowing how long it runs

    def _parked_long(self, worker: _Worker) -> bool:
        """The worker's parked test is expected to run longer than the buffer."""
        parked = worker.parked
        if parked is None:
            return False
        if parked in self._guessed:
            return self._guess(self._unit_of[parked]) >= self._buffer
        return self._estimates[parked] >= self._buffer

    def _next_is_fixed(self, worker: _Worker) -> bool:
        """Its next test comes from a unit that cannot leave it (a domain, or a chunk that
        may not be split): committing it early takes nothing from another worker."""
        return any(self._remaining[u] and not self._splittable[u] for u in worker.bound)
