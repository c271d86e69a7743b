"""First runs (no history), simulated: pytest-isolate's dispatcher against xdist's load.

A first run is where the plan knows nothing and the dispatcher has to learn as tests finish;
its quality depends on the worker count more than on this 2-core machine can show. Both
schedulers run in the same simulation of xdist workers (tests/unit/test_dispatch.py's
``simulate``: a worker starts a test only once another is queued behind it, or it is shut
down), over random suites of several shapes, and each makespan is divided by the suite's
lower bound, max(total work / workers, longest test). No start-up, no per-test overhead, no
module fixtures: this measures decisions only.

    .venv/bin/python -m bench.firstrun [--suites 400] [--seed 7]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import statistics
from collections import deque
from collections.abc import Callable, Sequence

from pytest_isolate.schedule.dispatch import MAX_DEPTH
from tests.unit.test_dispatch import PLAIN, simulate


def xdist_load(durations: Sequence[float], workers: int) -> float:
    """The makespan of xdist 3.8's LoadScheduling, in collection order."""
    pending = list(range(len(durations)))
    queues: list[deque[int]] = [deque() for _ in range(workers)]
    shut: set[int] = set()

    def send(worker: int, count: int) -> None:
        for _ in range(min(count, len(pending))):
            queues[worker].append(pending.pop(0))

    if len(pending) < 2 * workers:
        cycle = itertools.cycle(range(workers))
        for _ in range(len(pending)):
            send(next(cycle), 1)
    else:
        chunk = max((len(durations) // workers) // 4, 2)
        for worker in range(workers):
            send(worker, chunk)
    if not pending:
        shut.update(range(workers))

    def check_schedule(worker: int, duration: float) -> None:
        if worker in shut:
            return
        if not pending:
            shut.add(worker)
            return
        low = max(2, len(pending) // workers // 4)
        high = max(2, len(pending) // workers // 2)
        queue = queues[worker]
        if len(queue) < low and not (duration >= 0.1 and len(queue) >= 2):
            send(worker, high - len(queue))

    now = 0.0
    events: list[tuple[float, int, int]] = []
    running: set[int] = set()
    while True:
        for worker, queue in enumerate(queues):
            if worker not in running and queue and (len(queue) >= 2 or worker in shut):
                running.add(worker)
                heapq.heappush(events, (now + durations[queue[0]], worker, queue[0]))
        if not events:
            break
        now, worker, test = heapq.heappop(events)
        running.discard(worker)
        queues[worker].popleft()
        check_schedule(worker, durations[test])
    assert not pending and not any(queues), "xdist_load stalled"
    return now


def isolate(durations: Sequence[float], workers: int, nodeids: Sequence[str]) -> float:
    count = len(durations)
    run = simulate(
        [PLAIN] * count,
        list(durations),
        workers,
        estimates=[0.01] * count,  # nothing recorded: every test is guessed alike
        max_depth=MAX_DEPTH,
        nodeids=list(nodeids),
        guessed=True,
    )
    return run.makespan


#: Suite shapes: a test's duration from the module index, the module count and a random source.
SHAPES: dict[str, Callable[[int, int, random.Random], float]] = {
    "short": lambda m, n, r: r.uniform(0.01, 0.3),
    "lognormal": lambda m, n, r: min(20.0, r.lognormvariate(-2, 1.5)),
    "long module last": lambda m, n, r: r.uniform(2, 8) if m == n - 1 else r.uniform(0.01, 0.2),
    "mixed": lambda m, n, r: r.choice([0.01, 0.05, 0.5, 3.0]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows: list[tuple[str, int, float, float]] = []  # shape, workers, isolate, xdist (/ bound)
    shapes = list(SHAPES.items())
    for case in range(args.suites):
        shape, duration_of = shapes[case % len(shapes)]
        modules = rng.randint(1, 12)
        nodeids: list[str] = []
        durations: list[float] = []
        for module in range(modules):
            for index in range(rng.randint(1, 30)):
                nodeids.append(f"test_m{module}.py::test_{index}")
                durations.append(duration_of(module, modules, rng))
        workers = rng.randint(2, 8)
        bound = max(sum(durations) / workers, max(durations))
        ours = isolate(durations, workers, nodeids) / bound
        rows.append((shape, workers, ours, xdist_load(durations, workers) / bound))

    print(
        "| suites | n | isolate / bound (worst) | xdist load / bound (worst) | isolate >5% slower |"
    )
    print("|---|---:|---:|---:|---:|")
    groups = [("all", rows)]
    groups += [(shape, [r for r in rows if r[0] == shape]) for shape in SHAPES]
    groups += [(f"{w} workers", [r for r in rows if r[1] == w]) for w in range(2, 9)]
    for name, group in groups:
        mine = [r[2] for r in group]
        peer = [r[3] for r in group]
        slower = sum(1 for r in group if r[2] > 1.05 * r[3])
        print(
            f"| {name} | {len(group)} | {statistics.mean(mine):.3f} ({max(mine):.2f}) "
            f"| {statistics.mean(peer):.3f} ({max(peer):.2f}) | {slower} |"
        )


if __name__ == "__main__":
    main()
