"""Autoscale: how many workers ``-n auto`` should start, from the recorded durations.

Input: each test's recorded duration, what the command line selects (:class:`Selection`),
the last run's shape (:class:`RunHistory`) and the core count. Output: a worker count, 0
meaning "run in-process", and the reason, for one header line. Pure.

The estimate is the selected tests' own durations, whatever ran last: a small ``-k`` run
in between does not make the next full run go in-process.

Starting workers is not free: each one starts an interpreter, imports the suite and collects
it (about 0.4 s each on two cores, one after another). When the whole run's test time is too
small for parallelism to win that back, one process is faster. Jest has the same rule
(run in band when history says every file is fast); without history we behave as xdist does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from ..words import count

#: Estimated seconds before parallel work starts: a fixed part, plus a part per worker.
STARTUP_BASE = 0.3
STARTUP_PER_WORKER = 0.2


class RunHistory(NamedTuple):
    work: float  # summed test time of the last run, seconds
    units: int  # independent domains (free tests included) in the last run
    tests: int


class Selection(NamedTuple):
    """What the command line selects, as far as it can be known before collection."""

    prefixes: tuple[str, ...] = ()  # node id prefixes of the paths given; () = every test
    filtered: bool = False  # -k, -m, --lf, --deselect, ...: unknown until collected
    fraction: float = 1.0  # a shard's share: 1/N

    @property
    def whole(self) -> bool:
        """Every test of the suite is selected."""
        return not self.prefixes and not self.filtered and self.fraction == 1.0


def covers(prefix: str, nodeid: str) -> bool:
    """``prefix`` (a path or node id from the command line) names ``nodeid`` or a parent."""
    if nodeid == prefix or nodeid.startswith(prefix + "::"):
        return True
    return nodeid.startswith(prefix.rstrip("/") + "/")


def estimate(
    recorded: Mapping[str, float], selection: Selection, last: RunHistory | None
) -> RunHistory | None:
    """The selected tests' recorded work; None when it cannot be known (a filter, or no
    recorded test selected). Independent units follow the last run's share of them."""
    if selection.filtered:
        return None
    chosen = [
        seconds
        for nodeid, seconds in recorded.items()
        if not selection.prefixes or any(covers(p, nodeid) for p in selection.prefixes)
    ]
    if not chosen:
        return None
    tests = max(1, round(len(chosen) * selection.fraction))
    share = last.units / last.tests if last is not None and last.tests else 1.0
    return RunHistory(sum(chosen) * selection.fraction, max(1, round(tests * share)), tests)


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
            f"the selected tests took {history.work:.2f}s of test time when they last ran; "
            f"starting {count(workers, 'worker')} would cost about "
            f"{startup_cost(workers):.1f}s: running in-process",
        )
    return Decision(
        workers,
        f"{workers} workers ({cores} cores, about {history.units} independent domains, "
        f"{history.work:.1f}s of recorded test time)",
    )
