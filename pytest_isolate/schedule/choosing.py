"""Choosing the next test for a worker: its own work first (bound units, its planned queue,
the pool, whichever comes first in collection order), then, once it runs dry, another
worker's planned work (stolen from the back, in order), a split of a chunk another worker
holds, or a pooled unit nobody can take in order any more. See dispatch.py's docstring for
the invariants every choice keeps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from .state import _SCAN, DispatchState, _Worker


class Choosing(DispatchState):
    """The dispatcher's choices of work; the events and decisions are ``Dispatcher``'s."""

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
