"""Dispatch: the online half of scheduling, as a state machine over plain data.

Input: a :class:`~pytest_isolate.plan.Plan`, the tests' claims and the capacity table; then
events: workers joining and leaving, tests completing. Output: :class:`Send` and
:class:`Shutdown` actions for the adapter to carry out.

The worker model is xdist's: a worker runs the test at the head of its queue only once another
test (or a shutdown) is queued behind it, because pytest needs ``nextitem`` for teardown. So
the last queued test of a worker is *parked*: it cannot start until we send more. Every other
queued test is *released*: it may be running now or start at any moment. The invariants hold
over released tests:

- a counted resource has at most its capacity of released holders;
- a released ``serial`` test is the only released work outside its own worker's queue, and
  while a serial test waits parked for the others to drain, nothing new is released elsewhere;
- a domain never leaves its worker, so conflicting claims never overlap;
- a test holding a counted resource or ``serial`` is released only when it would start at
  once, so it never holds units or the barrier while it waits in a queue.

Order: each worker runs its tests in collection order. Of its own work (its planned queue,
the units bound to it) and the pool (units anyone may take, see :func:`~pytest_isolate.plan.
make_plan`), it takes the one whose next test comes first, and only tests that come after
everything it has been sent (its *mark*); a dry worker steals only such tests too. Exceptions,
all rare: a test that waits on a counted resource or a ``serial`` barrier may be passed by
later tests of its worker; the work of a worker that is gone (an orphan queue) may go to
anyone; and a pooled unit that no running worker can take in order any more (every mark is
past it) goes to the first worker that runs dry.

A test is released by sending another test after it, or by a shutdown: both are checked.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import NamedTuple

from .claims import TestClaims
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


class Send(NamedTuple):
    worker: str
    tests: tuple[int, ...]


class Shutdown(NamedTuple):
    worker: str


Action = Send | Shutdown


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
    )

    def __init__(self, name: str, slot: int) -> None:
        self.name = name
        self.slot = slot
        self.pending: deque[int] = deque()
        self.shutdown = False
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


class Dispatcher:
    """Decides what each worker runs next; see the module docstring for the invariants."""

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

    # -- events -------------------------------------------------------------------------

    def add_worker(self, name: str, slot: int | None = None) -> int:
        """Register a worker in ``slot``, by default the lowest free one (a crashed worker's)."""
        taken = {worker.slot for worker in self._workers.values()}
        if slot is None:
            slot = next(s for s in range(len(taken) + 1) if s not in taken)
        elif slot in taken:
            raise ValueError(f"slot {slot} is taken; {name} cannot have it")
        while slot >= len(self._queues):
            self._queues.append(deque())
            self._queue_load.append(0.0)
        if slot in self._untaken:
            self._swap_queues(slot, min(self._untaken, key=self._rank.__getitem__))
            self._untaken.remove(slot)
        self._workers[name] = _Worker(name, slot)
        self._by_slot = sorted(self._workers.values(), key=lambda w: w.slot)
        self._unsatisfy()
        return slot

    def abandon(self, slot: int) -> None:
        """No worker is coming for ``slot`` (it failed to start): others may steal from it."""
        self._untaken.discard(slot)
        self._unsatisfy()

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

    def complete(self, name: str, test: int, duration: float | None = None) -> None:
        worker = self._workers[name]
        if not worker.pending or worker.pending[0] != test:
            raise ValueError(f"{name} completed test {test}, expected {list(worker.pending)[:1]}")
        if duration is not None:
            total, count = self._observed
            self._observed = (total + duration, count + 1)
            if test in self._guessed:
                family = self._family[self._unit_of[test]]
                total, count = self._family_observed.get(family, (0.0, 0))
                self._family_observed[family] = (total + duration, count + 1)
        self._unrelease(worker, worker.pending.popleft())
        self._note_head(worker)
        # Still above its low-water mark (most completions of short tests): dispatch skips
        # it, as its top-up would decide at once.
        worker.satisfied = worker.parked is not None and not self._below_low_water(worker)
        worker.serial_pending -= self._claims[test].serial
        self._finished.add(test)
        self._done += 1

    def remove_worker(self, name: str, undelivered: Collection[int] = ()) -> int | None:
        """Forget a worker. Returns the test it was running, if any; the rest is requeued.

        The crashed test counts as done: xdist reports it as failed. ``undelivered``: tests
        sent to it that never reached it (the send failed: it had died), never the crash.
        """
        worker = self._workers.pop(name)
        self._by_slot.remove(worker)
        self._unsatisfy()
        crashed = worker.pending[0] if worker.released else None
        if crashed in undelivered:
            crashed = None
        for test in list(worker.pending)[: worker.released]:
            self._unrelease(worker, test)
        requeue = [test for test in worker.pending if test != crashed]
        self._unsent += sum(self._estimates[test] for test in requeue)
        self._unsent_tests += len(requeue)
        # In-flight tests go back in front of their units' unsent ones, in collection order,
        # and the units go to the front of the slot's queue for a replacement (or a thief).
        touched = dict.fromkeys(self._unit_of[test] for test in requeue)
        touched.update(dict.fromkeys(worker.bound))
        for unit in reversed(list(touched)):
            tests = [test for test in requeue if self._unit_of[test] == unit]
            self._remaining[unit].extendleft(reversed(tests))
            if self._remaining[unit]:
                self._enqueue(worker.slot, unit, front=True)
        if crashed is not None:
            self._finished.add(crashed)
            self._done += 1
        return crashed

    def shut_down(self, name: str) -> None:
        """xdist shut the worker down itself (-x, restarts used up): it runs what it has, the
        parked test included, and gets nothing more."""
        worker = self._workers.get(name)
        if worker is None or worker.shutdown:
            return
        parked = worker.parked
        if parked is not None:
            self._release(worker, parked)
        worker.shutdown = True
        self._note_head(worker)
        self._unsatisfy()

    def retry(self, test: int) -> None:
        """Run a finished (crashed) test again, first in its unit; for rerun plugins."""
        if test not in self._finished:
            return  # already waiting to run again: a second retry must not queue it twice
        unit = self._unit_of[test]
        self._remaining[unit].appendleft(test)
        self._finished.discard(test)
        self._done -= 1
        self._unsatisfy()
        self._unsent += self._estimates[test]
        self._unsent_tests += 1
        if unit in self._queued:
            slot, estimate = self._queued[unit]
            self._queued[unit] = (slot, estimate + self._estimates[test])
            self._queue_load[slot] += self._estimates[test]
        elif holder := next((w for w in self._by_slot if self._holds(w, unit)), None):
            # The rest of the unit went to that worker before the retry came (a worker gone
            # dry took a crashed worker's domain): the test follows it there, never beside it.
            # (If that worker was shut down meanwhile, it comes back when the worker leaves.)
            if unit not in holder.bound:
                holder.bound.append(unit)
        else:
            # An orphan slot, which the others steal from; not one whose worker is still to
            # come (nobody steals from that), else a running worker's own (a worker shut
            # down takes nothing more).
            live = self._running_slots()
            slot = next(
                (s for s in range(len(self._queues)) if s not in live and s not in self._untaken),
                min(live, default=0),
            )
            self._enqueue(slot, unit, front=True)

    def _coming_back(self) -> bool:
        """A worker already shut down holds a unit with tests it will not be sent (a retried
        crash that follows the rest of its domain there): they are queued again when that
        worker leaves, for a worker still running to take."""
        return any(
            worker.shutdown and any(self._remaining[unit] for unit in worker.bound)
            for worker in self._by_slot
        )

    def _holds(self, worker: _Worker, unit: int) -> bool:
        return unit in worker.bound or any(self._unit_of[t] == unit for t in worker.pending)

    # -- state ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._done >= self._total

    def never_finished(self) -> list[int]:
        """Tests that neither completed nor crashed: what a run cut short never ran."""
        return [test for test in sorted(self._unit_of) if test not in self._finished]

    def pending_of(self, name: str) -> tuple[int, ...]:
        return tuple(self._workers[name].pending)

    def slot_of(self, name: str) -> int:
        return self._workers[name].slot

    def _unsatisfy(self) -> None:
        for worker in self._by_slot:
            worker.satisfied = False

    # -- decisions -----------------------------------------------------------------------

    def dispatch(self) -> list[Action]:
        """Top every worker up as far as the invariants allow."""
        actions: list[Action] = []
        workers = [worker for worker in self._by_slot if not worker.satisfied]
        if self._pool_start < len(self._pool):
            # Who has had least of the pool chooses first: a worker that joins late finds
            # its share, not what the others left.
            workers.sort(key=lambda worker: worker.pooled)
        # Every worker takes its own planned work before any worker may steal, so a worker
        # early in the loop cannot take what the plan gave a neighbour that has not started.
        for steal in (False, True):
            for worker in workers:
                self._top_up(worker, actions, steal)
        return actions

    def _top_up(self, worker: _Worker, actions: list[Action], steal: bool) -> None:
        sent: list[int] = []
        if worker.parked is not None and not self._below_low_water(worker):
            worker.satisfied = True
            return
        while not worker.shutdown:
            parked = worker.parked
            if parked is not None and not (
                self._wants_more(worker) and self._can_release(parked, worker)
            ):
                break
            if parked is not None and not worker.released and self._others_cover(worker, parked):
                # It must start its parked test, which may run long, and xdist starts a test
                # only with another queued behind it: that one would wait behind it in turn.
                # The other workers can each take one of what is left, so a shutdown starts
                # it instead (at the end of a first run: long tests one per worker).
                self._shutdown(worker, sent, actions)
                break
            if (
                parked is not None
                and worker.released
                and self._maybe_long(parked)
                and not self._next_is_fixed(worker)
            ):
                # Releasing it would commit the next test to this worker, behind two that
                # may each run for seconds; wait until it must start instead, and leave the
                # rest to whichever worker runs dry first (xdist's pull, one per completion).
                break
            test = self._pick(worker, steal)
            if test is None:
                if (
                    not self._may_take_later(worker)
                    and self._chunk_to_split(worker) is None
                    and not self._coming_back()
                ):
                    # Nothing is left anywhere: the shutdown lets the parked test run.
                    self._shutdown(worker, sent, actions)
                break  # else it steals once it runs dry
            self._send(worker, test, sent)
        if sent:
            actions.append(Send(worker.name, tuple(sent)))

    def _others_cover(self, worker: _Worker, parked: int) -> bool:
        if parked not in self._guessed or not self._unsent_tests or self._untaken:
            return False
        if self._family[self._unit_of[parked]] in self._family_observed:
            return False  # its family has run: the guess is a measurement, not a fear
        if self._queues[worker.slot] or any(self._remaining[u] for u in worker.bound):
            return False  # its own work (planned, or started) stays with it, in order
        others = sum(1 for other in self._by_slot if other is not worker and not other.shutdown)
        return self._unsent_tests <= others

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

    def _queue_budget(self) -> float:
        """Seconds of released work a worker may hold: the buffer, or near the end of the
        run its share of what is left to send, whichever is less."""
        share = self._unsent / max(1, len(self._workers))
        return min(self._buffer, share)

    def _send(self, worker: _Worker, test: int, sent: list[int]) -> None:
        parked = worker.parked
        if parked is not None:
            self._release(worker, parked)
        worker.pending.append(test)
        worker.mark = max(worker.mark, test)
        worker.serial_pending += self._claims[test].serial
        self._unsent -= self._estimates[test]
        self._unsent_tests -= 1
        sent.append(test)
        self._note_head(worker)

    def _shutdown(self, worker: _Worker, sent: list[int], actions: list[Action]) -> None:
        parked = worker.parked
        if parked is not None:
            if not self._can_release(parked, worker):
                return
            self._release(worker, parked)
        worker.shutdown = True
        self._note_head(worker)
        if sent:
            actions.append(Send(worker.name, tuple(sent)))
            sent.clear()
        actions.append(Shutdown(worker.name))

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

    # -- choosing the next test ----------------------------------------------------------

    def _pick(self, worker: _Worker, steal: bool) -> int | None:
        """The next test for ``worker``: its bound units, then its queue, then stolen work.

        A test that could start now is preferred over one waiting on a counted resource or a
        serial barrier, so a worker does not idle on a lock while other work is ready.
        """
        worker.bound = [unit for unit in worker.bound if self._remaining[unit]]
        unit = next((u for u in self._candidates(worker, steal) if u is not None), None)
        if unit is None:
            return None
        if unit not in worker.bound:
            worker.bound.append(unit)
        return self._remaining[unit].popleft()

    def _candidates(self, worker: _Worker, steal: bool) -> Iterator[int | None]:
        """Units to take from, best first; evaluated lazily, each may take a unit.

        Stealing waits until the worker would otherwise run dry (nothing released), so a
        worker topping up its queue does not take what the plan gave a busy neighbour.
        """
        dry = steal and worker.released == 0
        yield self._next_own(worker, ready_only=True)
        if dry:
            yield self._steal(worker, ready_only=True)
        yield self._next_own(worker, ready_only=False)
        if dry:
            yield self._steal(worker, ready_only=False)
            yield self._split(worker)
            yield self._take_stranded(worker)

    def _ready(self, unit: int, worker: _Worker) -> bool:
        return self._can_release(self._remaining[unit][0], worker)

    def _next_own(self, worker: _Worker, ready_only: bool) -> int | None:
        """Of the units bound to the worker (domains it has started), the first of its queue
        and the pool's next for it, the one whose next test comes first in collection order.

        With ``ready_only``, only units whose next test can start now: a test waiting on a
        counted resource or barrier may be passed by a later one."""
        key = self._next_test
        bound = [u for u in worker.bound if not ready_only or self._ready(u, worker)]
        best = min(bound, key=key, default=None)
        queue = self._queues[worker.slot]
        scan = min(_SCAN, len(queue)) if ready_only else min(1, len(queue))
        position = next(
            (p for p in range(scan) if not ready_only or self._ready(queue[p], worker)), None
        )
        queued = None if position is None else queue[position]
        pooled = self._pool_next(worker, ready_only)
        if (
            self._untaken
            and pooled is not None
            and queued is not None
            and key(pooled) < key(queued)
        ):
            # While workers are still starting, one takes its planned work first: the
            # pooled tests before it are left to those to come, which start from the pool's
            # beginning (so the long unit the plan gave this one starts at once).
            pooled = None
        choice = min(
            (unit for unit in (best, queued, pooled) if unit is not None), key=key, default=None
        )
        if choice is None or choice == best:
            return best
        if choice == queued:
            assert position is not None
            del queue[position]
            return self._dequeued(worker.slot, choice)
        self._take_pooled(choice, worker)
        return choice

    def _next_test(self, unit: int) -> int:
        return self._remaining[unit][0]

    def _pool_next(self, worker: _Worker, ready_only: bool) -> int | None:
        """The pool's first untaken unit after the worker's mark (ready, with ``ready_only``)."""
        pool, taken = self._pool, self._pool_taken
        if self._untaken and worker.pooled >= self._pool_share:
            return None  # the rest waits for the workers still to come (abandon frees it)
        cursor = worker.cursor
        while cursor < len(pool) and (
            pool[cursor] in taken or not self._in_order(worker, pool[cursor])
        ):
            cursor += 1  # taken, or before the mark, which only grows: never for this worker
        worker.cursor = cursor
        for position in range(cursor, min(len(pool), cursor + _SCAN)):
            unit = pool[position]
            if unit in taken or not self._in_order(worker, unit):
                continue
            if not ready_only or self._ready(unit, worker):
                return unit
        return None

    def _take_pooled(self, unit: int, worker: _Worker) -> None:
        worker.pooled += 1
        self._pool_taken.add(unit)
        pool = self._pool
        while self._pool_start < len(pool) and pool[self._pool_start] in self._pool_taken:
            self._pool_start += 1

    def _stranded(self, worker: _Worker) -> int | None:
        """The pool's first untaken unit, if no running worker can take it in order any more
        (every mark is past it): it goes to whoever runs dry, out of order."""
        if self._pool_start >= len(self._pool) or self._untaken:
            return None  # nothing pooled, or workers to come may take it in order
        unit = self._pool[self._pool_start]
        running = [other for other in self._by_slot if not other.shutdown]
        if any(self._in_order(other, unit) for other in running if other is not worker):
            return None
        return unit

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

    def _take_stranded(self, worker: _Worker) -> int | None:
        unit = self._stranded(worker)
        if unit is not None:
            self._take_pooled(unit, worker)
        return unit

    def _may_take_later(self, worker: _Worker) -> bool:
        """Work is queued that this worker may still be given: on a slot whose worker is to
        come or gone, after its mark on another's or in the pool, or stranded in the pool.

        No worker is shut down while a planned worker is still to join: one that ended its
        session before another started would have its files at the mercy of the late one's
        set-up (pytest-cov's workers erase the coverage data files they find as they start).
        """
        if self._untaken:
            return True
        if self._pool_next(worker, ready_only=False) is not None:
            return True
        if self._stranded(worker) is not None:
            return True
        live = self._running_slots()
        for slot, queue in enumerate(self._queues):
            if not queue:
                continue
            if slot == worker.slot or slot not in live:
                return True
            if any(self._in_order(worker, unit) for unit in queue):
                return True
        return False

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

    def _take_from_back(
        self, slot: int, worker: _Worker, ready_only: bool, in_order: bool
    ) -> int | None:
        queue = self._queues[slot]
        size = len(queue)
        for position in range(size - 1, max(-1, size - 1 - _SCAN), -1):
            unit = queue[position]
            if in_order and not self._in_order(worker, unit):
                continue
            if not ready_only or self._ready(unit, worker):
                del queue[position]
                return self._dequeued(slot, unit)
        return None

    def _steal(self, worker: _Worker, ready_only: bool) -> int | None:
        """Take from the back (the latest units) of the queue with the most planned work:
        from a live worker's queue only what comes after this worker's mark."""
        orphans = self._orphans()
        by_load = sorted(
            (
                slot
                for slot in range(len(self._queues))
                if slot != worker.slot and slot not in self._untaken
            ),
            key=lambda slot: (-self._queue_load[slot], slot),
        )
        for slot in by_load:
            unit = self._take_from_back(slot, worker, ready_only, slot not in orphans)
            if unit is not None:
                return unit
        return None

    def _split(self, worker: _Worker) -> int | None:
        """A dry worker's last resort: the back half (rounded down) of the unsent tests of the
        splittable chunk, bound to another worker, with the most estimated work left.

        Without history, chunks are cut from guesses: five tests of seconds each can share
        one. With history, a module kept whole for its fixtures is a coarse piece for the
        plan to balance with; where it shows no setup cost, the end of the run evens out.
        Waiting for its worker to run them one by one would leave this one idle. The stolen
        tests become a unit of their own, bound to the thief.
        """
        best = self._chunk_to_split(worker)
        if best is None:
            return None
        rest = self._remaining[best]
        guess = self._per_test(best)
        if self._parked_long(worker):
            # It holds a long test and needs another behind it to start it (xdist's
            # protocol): one, of the chunk with the shortest guess.
            take = 1
        else:
            # Half, rounded down (of three unknown tests the thief takes one, and two more
            # dry workers can each take one of the others), and no more than the buffer
            # holds by the guess: one test, where the family's tests run for seconds.
            fits = int(self._buffer / guess) if guess > 0 else len(rest)
            take = max(1, min(len(rest) // 2, fits))
        if rest[0] > worker.mark and not self._parked_long(worker):
            # From the front: the thief's mark stays as low as it can, so it may take more
            # of the chunk later, in order; the chunk's worker goes on with the rest.
            moved = deque(rest.popleft() for _ in range(take))
        else:
            # Only tests after the thief's mark: it runs its tests in collection order.
            take = min(take, sum(1 for test in rest if test > worker.mark))
            moved = deque(rest.pop() for _ in range(take))
            moved.reverse()
        unit = len(self._remaining)
        self._remaining.append(moved)
        self._splittable.append(True)
        self._family.append(self._family[best])
        for test in moved:
            self._unit_of[test] = unit
        return unit

    def _per_test(self, unit: int) -> float:
        """Seconds per unsent test of a chunk: the guess, or the mean of the estimates."""
        rest = self._remaining[unit]
        if rest[0] in self._guessed:
            return self._guess(unit)
        return sum(self._estimates[test] for test in rest) / len(rest)

    def _next_is_fixed(self, worker: _Worker) -> bool:
        """Its next test comes from a unit that cannot leave it (a domain, or a chunk that
        may not be split): committing it early takes nothing from another worker."""
        return any(self._remaining[u] and not self._splittable[u] for u in worker.bound)

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

    def _chunk_to_split(self, worker: _Worker) -> int | None:
        """The chunk with the most work left by the guesses; for a worker that needs a test
        behind its parked one, the one with the shortest guess."""
        best: int | None = None
        top = float("-inf")
        cheapest = self._parked_long(worker)
        for other in self._by_slot:
            if other is worker:
                continue
            for unit in other.bound:
                rest = self._remaining[unit]
                if not rest or not self._splittable[unit]:
                    continue
                guess = self._per_test(unit)
                score = -guess if cheapest else guess * len(rest)
                if score > top and rest[-1] > worker.mark and self._can_release(rest[-1], worker):
                    best, top = unit, score
        return best
