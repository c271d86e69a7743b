"""Why a test failed in a run with workers: the five causes, and the reruns that tell them apart.

A failed test has been rerun alone. From there (:func:`classify`):

* it *passed* alone: rerun it after the tests its worker ran before it, in that order, in one
  fresh process. Fails: *polluted* by an earlier test on its worker; bisect those tests to the
  polluter. Passes: rerun it beside the tests that overlapped it on other workers. Fails:
  *overlap*; bisect to the culprit. Passes too: *timing or load*, nothing reproduces it.
* it *failed* alone: rerun it after the tests before it in collection order that ran on other
  workers (those on its own worker ran before it and it still failed). Passes: it *needs an
  earlier test*; bisect to the one it needs. Fails: a *real failure*.

Each step is a :class:`Rerun` the caller carries out and answers with the victim's
:class:`Outcome` (``None`` when the time budget ran out first). Pure: no pytest, no processes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Sequence
from typing import NamedTuple

from .diagnosis import (
    BISECT_MAX,
    Cause,
    Outcome,
    Search,
    SearchResult,
    bisect_culprit,
    stopped_at,
)

__all__ = ["Cause", "Facts", "Finding", "Outcome", "Rerun", "classify", "drive"]


class Rerun(NamedTuple):
    """One trial in fresh processes.

    ``before``: these tests, then the victim, in this order, in one process. ``beside``: these
    tests in one process while the victim reruns in another, as long as they run.
    """

    before: tuple[str, ...] = ()
    beside: tuple[str, ...] = ()


class Facts(NamedTuple):
    """What the run and the rerun alone tell about one failed test."""

    victim: str
    failed_alone: bool
    worker_before: tuple[str, ...] = ()  # on its worker before it, in the order they ran
    elsewhere_before: tuple[str, ...] = ()  # before it in collection order, on other workers
    overlapped: tuple[str, ...] = ()  # on other workers while it ran, likeliest culprit first
    left_out: bool = False  # a rerun was left out (the budget): nothing reproducing is no proof


class Finding(NamedTuple):
    cause: Cause | None  # None: the budget ran out before anything was shown
    search: SearchResult | None = None  # the bisection that named the test(s) involved


Answer = Outcome | None
Steps = Generator[Rerun, Answer, Finding]


def classify(facts: Facts) -> Steps:
    """Propose reruns until the cause is known; send back the victim's outcome in each."""
    if facts.failed_alone:
        if not facts.elsewhere_before:
            # Proven real only where the rerun after its predecessors was not left out.
            return Finding(None if facts.left_out else Cause.REAL)
        needs = yield from _bisect(facts.elsewhere_before, _before, Outcome.PASSED)
        if _unstarted(needs) or _silent(needs):
            return Finding(None, needs)
        if needs.status is Search.NOT_REPRODUCED:
            return Finding(Cause.REAL, needs)
        return Finding(Cause.NEEDS_EARLIER, needs)
    if facts.worker_before:
        polluted = yield from _bisect(facts.worker_before, _before, Outcome.FAILED)
        if _unstarted(polluted) or _silent(polluted):
            return Finding(None, polluted)
        if polluted.status is not Search.NOT_REPRODUCED:
            return Finding(Cause.POLLUTED, polluted)
    if facts.overlapped:
        suspects = facts.overlapped
        if len(suspects) > BISECT_MAX:
            # Confirmed in one trial, not narrowed down: each halving costs fresh processes.
            answer = yield Rerun(beside=suspects)
            if answer is None or answer is Outcome.NOT_RUN:
                status = Search.OUT_OF_TIME if answer is None else Search.DID_NOT_RUN
                return Finding(None, SearchResult(status, suspects, 0))
            if answer is Outcome.FAILED:
                return Finding(Cause.OVERLAP, SearchResult(Search.TOO_MANY, suspects, 1))
            return _nothing_reproduced(facts)
        overlap = yield from _bisect(suspects, _beside, Outcome.FAILED)
        if _unstarted(overlap) or _silent(overlap):
            return Finding(None, overlap)
        if overlap.status is not Search.NOT_REPRODUCED:
            return Finding(Cause.OVERLAP, overlap)
    return _nothing_reproduced(facts)


def _nothing_reproduced(facts: Facts) -> Finding:
    """Timing or load, where every rerun ran; else not decided."""
    return Finding(None if facts.left_out else Cause.TIMING)


def _before(tests: tuple[str, ...]) -> Rerun:
    return Rerun(before=tests)


def _beside(tests: tuple[str, ...]) -> Rerun:
    return Rerun(beside=tests)


def _unstarted(search: SearchResult) -> bool:
    """The budget ran out before the first trial answered: nothing was shown."""
    return search.status is Search.OUT_OF_TIME and search.trials == 0


def _silent(search: SearchResult) -> bool:
    """The victim did not run in the first trial (an earlier test ended the process, or its
    module failed to import there): nothing was shown either way."""
    return search.status is Search.DID_NOT_RUN and search.trials == 0


def _bisect(
    candidates: Sequence[str], make: Callable[[tuple[str, ...]], Rerun], wanted: Outcome
) -> Generator[Rerun, Answer, SearchResult]:
    """:func:`bisect_culprit` over ``candidates`` (kept in their order in every trial): a
    trial reproduces when the victim's outcome is ``wanted``."""
    search = bisect_culprit(candidates)
    trial = next(search)
    while True:
        answer = yield make(trial.beside)
        if answer is None:
            search.close()
            return stopped_at(trial)
        if answer is Outcome.NOT_RUN:
            # No evidence either way: the search stops with what it had.
            search.close()
            return SearchResult(Search.DID_NOT_RUN, trial.suspects, trial.number - 1)
        try:
            trial = search.send(answer is wanted)
        except StopIteration as done:
            result: SearchResult = done.value
            return result


def drive(steps: Steps, carry_out: Callable[[Rerun], Answer]) -> Finding:
    """Run a :func:`classify` to its end, carrying out each rerun with ``carry_out``."""
    try:
        rerun = next(steps)
        while True:
            rerun = steps.send(carry_out(rerun))
    except StopIteration as done:
        finding: Finding = done.value
        return finding


def worker_before(
    victim: str, worker: str, started: Sequence[tuple[str, str, float]]
) -> tuple[str, ...]:
    """The tests ``worker`` started before ``victim``, in that order, from (nodeid, worker,
    start) triples."""
    start = next((s for nodeid, _, s in started if nodeid == victim), None)
    if start is None:
        return ()
    mine = [
        (s, nodeid) for nodeid, w, s in started if w == worker and s < start and nodeid != victim
    ]
    return tuple(nodeid for _, nodeid in sorted(mine))


def elsewhere_before(
    victim: str, collection: Sequence[str], ran_before: Collection[str]
) -> tuple[str, ...]:
    """The tests before ``victim`` in collection order that its worker did not run before it:
    on other workers, or later on its own (a unit moved by work stealing). Those it ran
    before it were before it in the run, where it failed."""
    if victim not in collection:
        return ()
    found = []
    for nodeid in collection:
        if nodeid == victim:
            break
        if nodeid not in ran_before:
            found.append(nodeid)
    return tuple(found)
