"""Telling the five causes apart (pytest_isolate.diagnose.causes), against simulated reruns.

Each test plants one cause in a small world: which tests before the victim break it (a
polluter), which it needs, which break it when they run beside it. The simulated reruns answer
from that world, as fresh pytest processes would, and the classification must find the
planted cause and name the planted test.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_isolate.diagnose.causes import (
    Facts,
    Finding,
    Rerun,
    classify,
    drive,
    elsewhere_before,
    worker_before,
)
from pytest_isolate.diagnose.diagnosis import BISECT_MAX, Cause, Outcome, Search


class World:
    """The victim's outcome in a rerun, from what is planted; counts the reruns."""

    def __init__(
        self,
        polluter: str | None = None,
        needed: str | None = None,
        culprit: str | None = None,
        budget: int = 1000,
    ) -> None:
        self.polluter, self.needed, self.culprit = polluter, needed, culprit
        self.reruns: list[Rerun] = []
        self.budget = budget

    def __call__(self, rerun: Rerun) -> Outcome | None:
        if len(self.reruns) >= self.budget:
            return None
        self.reruns.append(rerun)
        if rerun.before:
            if self.needed is not None:
                return Outcome.PASSED if self.needed in rerun.before else Outcome.FAILED
            return Outcome.FAILED if self.polluter in rerun.before else Outcome.PASSED
        return Outcome.FAILED if self.culprit in rerun.beside else Outcome.PASSED


class Silent(World):
    """Every rerun after other tests ends before the victim runs (an earlier test ends the
    process, or its module does not import there)."""

    def __call__(self, rerun: Rerun) -> Outcome | None:
        answer = super().__call__(rerun)
        return Outcome.NOT_RUN if rerun.before and answer is not None else answer


def run(facts: Facts, world: World) -> Finding:
    return drive(classify(facts), world)


WORKER = ("w1", "w2", "w3", "w4", "w5")
ELSEWHERE = ("e1", "e2", "e3")
OVERLAPPED = ("o1", "o2", "o3")


def test_polluted_names_the_polluter_and_keeps_the_order_of_its_worker() -> None:
    world = World(polluter="w4")
    finding = run(Facts("v", False, WORKER, (), OVERLAPPED), world)
    assert finding.cause is Cause.POLLUTED
    assert finding.search is not None and finding.search.culprit == "w4"
    # Every trial ran a part of the worker's tests in the order they ran, nothing beside.
    for rerun in world.reruns:
        assert not rerun.beside
        assert list(rerun.before) == sorted(rerun.before, key=WORKER.index)


def test_needs_earlier_names_the_test_it_needs() -> None:
    finding = run(Facts("v", True, (), ELSEWHERE), World(needed="e2"))
    assert finding.cause is Cause.NEEDS_EARLIER
    assert finding.search is not None and finding.search.culprit == "e2"


def test_overlap_is_tried_only_after_the_worker_order_did_not_reproduce() -> None:
    world = World(culprit="o3")
    finding = run(Facts("v", False, WORKER, (), OVERLAPPED), world)
    assert finding.cause is Cause.OVERLAP
    assert finding.search is not None and finding.search.culprit == "o3"
    assert world.reruns[0] == Rerun(before=WORKER)
    assert all(r.beside for r in world.reruns[1:])


def test_timing_when_nothing_reproduces_it() -> None:
    world = World()
    assert run(Facts("v", False, WORKER, (), OVERLAPPED), world).cause is Cause.TIMING
    assert world.reruns == [Rerun(before=WORKER), Rerun(beside=OVERLAPPED)]
    # Nothing before it, nothing beside it: timing, with no rerun at all.
    nothing = World()
    assert run(Facts("v", False), nothing) == Finding(Cause.TIMING)
    assert nothing.reruns == []


def test_nothing_reproducing_is_no_proof_of_timing_when_a_rerun_was_left_out() -> None:
    # The budget left out the rerun after its worker's earlier tests (they ran too long).
    finding = run(Facts("v", False, (), (), OVERLAPPED, left_out=True), World())
    assert finding == Finding(None)


def test_a_victim_that_did_not_run_shows_nothing() -> None:
    # Neither timing (it may be polluted) nor real (it may need one of them).
    finding = run(Facts("v", False, WORKER, (), OVERLAPPED), Silent())
    assert finding.cause is None
    assert finding.search is not None and finding.search.status is Search.DID_NOT_RUN
    assert run(Facts("v", True, (), ELSEWHERE), Silent(needed="e1")).cause is None


def test_a_victim_that_stops_running_mid_search_keeps_the_cause_and_the_suspects() -> None:
    class SilentAfterOne(World):
        def __call__(self, rerun: Rerun) -> Outcome | None:
            answer = super().__call__(rerun)
            return answer if len(self.reruns) == 1 else Outcome.NOT_RUN

    finding = run(Facts("v", False, WORKER), SilentAfterOne(polluter="w2"))
    assert finding.cause is Cause.POLLUTED
    assert finding.search is not None
    assert finding.search.status is Search.DID_NOT_RUN
    assert finding.search.suspects == WORKER


def test_real_when_it_fails_after_its_predecessors_too() -> None:
    world = World(needed="nobody")
    assert run(Facts("v", True, (), ELSEWHERE), world).cause is Cause.REAL
    assert world.reruns == [Rerun(before=ELSEWHERE)]
    # At -n 1 every predecessor ran on its worker: a real failure with no rerun at all.
    assert run(Facts("v", True), World()) == Finding(Cause.REAL)
    # Unless the rerun after its predecessors elsewhere was left out for the budget.
    assert run(Facts("v", True, left_out=True), World()) == Finding(None)


def test_out_of_time_before_the_first_answer_decides_nothing() -> None:
    assert run(Facts("v", False, WORKER), World(budget=0)).cause is None
    assert run(Facts("v", True, (), ELSEWHERE), World(budget=0)).cause is None


def test_out_of_time_after_the_confirmation_keeps_the_cause_and_the_suspects() -> None:
    finding = run(Facts("v", False, WORKER), World(polluter="w5", budget=1))
    assert finding.cause is Cause.POLLUTED
    assert finding.search is not None
    assert finding.search.status is Search.OUT_OF_TIME
    assert finding.search.suspects == WORKER


def test_too_many_overlapping_is_confirmed_once_and_not_narrowed() -> None:
    many = tuple(f"o{i}" for i in range(BISECT_MAX + 1))
    world = World(culprit="o7")
    finding = run(Facts("v", False, (), (), many), world)
    assert finding.cause is Cause.OVERLAP
    assert finding.search is not None and finding.search.status is Search.TOO_MANY
    assert world.reruns == [Rerun(beside=many)]


@given(st.data())
def test_the_planted_cause_and_test_are_found(data: st.DataObject) -> None:
    worker = tuple(f"w{i}" for i in range(data.draw(st.integers(0, 12))))
    elsewhere = tuple(f"e{i}" for i in range(data.draw(st.integers(0, 12))))
    overlapped = tuple(f"o{i}" for i in range(data.draw(st.integers(0, BISECT_MAX))))
    choices: list[tuple[Cause, Callable[[str], World], tuple[str, ...]]] = [
        (Cause.TIMING, lambda _: World(), ()),
        (Cause.POLLUTED, lambda t: World(polluter=t), worker),
        (Cause.OVERLAP, lambda t: World(culprit=t), overlapped),
        (Cause.NEEDS_EARLIER, lambda t: World(needed=t), elsewhere),
        (Cause.REAL, lambda _: World(needed="nobody"), ()),
    ]
    named = (Cause.POLLUTED, Cause.OVERLAP, Cause.NEEDS_EARLIER)  # need a test to plant
    possible = [c for c in choices if c[2] or c[0] not in named]
    cause, make, pool = data.draw(st.sampled_from(possible))
    planted = data.draw(st.sampled_from(pool)) if pool else ""
    failed_alone = cause in (Cause.NEEDS_EARLIER, Cause.REAL)
    finding = run(Facts("v", failed_alone, worker, elsewhere, overlapped), make(planted))
    assert finding.cause is cause
    if pool:
        assert finding.search is not None and finding.search.culprit == planted


STARTED = [
    ("a", "gw0", 1.0),
    ("b", "gw1", 1.5),
    ("c", "gw0", 2.0),
    ("v", "gw0", 3.0),
    ("d", "gw0", 4.0),
]


def test_worker_before_is_its_workers_earlier_tests_in_the_order_they_started() -> None:
    assert worker_before("v", "gw0", list(reversed(STARTED))) == ("a", "c")
    assert worker_before("missing", "gw0", STARTED) == ()


@pytest.mark.parametrize(
    ("collection", "expected"),
    [
        (["a", "b", "c", "v", "d"], ("b",)),
        # d came before it in collection order but its worker ran it later (work stealing):
        # a candidate too; a comes after it.
        (["b", "d", "v", "a"], ("b", "d")),
        (["v", "b"], ()),
    ],
)
def test_elsewhere_before_is_earlier_in_collection_order_and_not_run_before_it_on_its_worker(
    collection: list[str], expected: tuple[str, ...]
) -> None:
    ran_before = worker_before("v", "gw0", STARTED)  # a and c
    assert elsewhere_before("v", collection, ran_before) == expected
