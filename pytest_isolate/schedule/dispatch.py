"""Dispatch: the online half of scheduling, as a state machine over plain data.

Input: a :class:`~pytest_isolate.schedule.plan.Plan`, the tests' claims and the capacity table; then
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
the units bound to it) and the pool (units anyone may take, see
:func:`~pytest_isolate.schedule.plan.make_plan`), it takes the one whose next test comes
first, and only tests that come after everything it has been sent (its *mark*); a dry worker
steals only such tests too. Exceptions, all rare: a test that waits on a counted resource or
a ``serial`` barrier may be passed by later tests of its worker; the work of a worker that
is gone (an orphan queue) may go to anyone; and a pooled unit that no running worker can
take in order any more (every mark is past it) goes to the first worker that runs dry.

A test is released by sending another test after it, or by a shutdown: both are checked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from typing import NamedTuple

from .choosing import Choosing
from .plan import setup_free_modules
from .state import (
    BUFFER_SECONDS,
    MAX_DEPTH,
    PER_TEST_SECONDS,
    UNKNOWN_LONG_SECONDS,
    _Worker,
)

__all__ = [
    "BUFFER_SECONDS",
    "MAX_DEPTH",
    "PER_TEST_SECONDS",
    "UNKNOWN_LONG_SECONDS",
    "Action",
    "Dispatcher",
    "Send",
    "Shutdown",
    "setup_free_modules",
]


class Send(NamedTuple):
    worker: str
    tests: tuple[int, ...]


class Shutdown(NamedTuple):
    worker: str


Action = Send | Shutdown


class Dispatcher(Choosing):
    """Decides what each worker runs next; see the module docstring for the invariants."""

    # -- events ---------------------------------------------------------------------------

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

    def stop(self, name: str) -> None:
        """xdist is ending the run (-x, a worker's KeyboardInterrupt, restarts used up): the
        worker gets nothing more, and its shutdown comes once its parked test may start (a
        shutdown starts it, and at once it could run beside what it conflicts with)."""
        worker = self._workers.get(name)
        if worker is None or worker.shutdown:
            return
        worker.stopping = True
        worker.satisfied = False

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
        if worker.stopping:
            if not worker.shutdown:
                self._shutdown(worker, sent, actions)  # no-op until its parked test may start
            return
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
