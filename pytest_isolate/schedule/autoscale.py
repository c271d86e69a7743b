"""Autoscale: how many workers ``-n auto`` should start, from the last run's history.

Input: what the last run measured (:class:`RunHistory`) and the core count. Output: a worker
count, 0 meaning "run in-process", and the reason, for one header line. Pure.

Starting workers is not free: each one starts an interpreter, imports the suite and collects
it (about 0.4 s each on two cores, one after another). When the whole run's test time is too
small for parallelism to win that back, one process is faster. Jest has the same rule
(run in band when history says every file is fast); without history we behave as xdist does.
"""

from __future__ import annotations

from typing import NamedTuple

#: Estimated seconds before parallel work starts: a fixed part, plus a part per worker.
STARTUP_BASE = 0.3
STARTUP_PER_WORKER = 0.2


class RunHistory(NamedTuple):
    work: float  # summed test time of the last run, seconds
    units: int  # independent domains (free tests included) in the last run
    tests: int


class Decision(NamedTuple):
    workers: int
    reason: str


def startup_cost(workers: int) -> float:
    return STARTUP_BASE + STARTUP_PER_WORKER * workers


def choose_workers(history: RunHistory, cores: int) -> Decision:
    cores = max(1, cores)
    workers = max(1, min(cores, history.units))
    # The best parallelism can save is the work the other workers take off the first one.
    saving = history.work * (1 - 1 / workers) if workers > 1 else 0.0
    if saving <= startup_cost(workers):
        return Decision(
            0,
            f"the last run took {history.work:.2f}s of test time; starting {workers} "
            f"worker(s) would cost about {startup_cost(workers):.1f}s: running in-process",
        )
    return Decision(
        workers,
        f"{workers} workers ({cores} cores, {history.units} independent domains last run)",
    )
