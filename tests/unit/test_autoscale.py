"""``-n auto``: the decision from history, as a table."""

from __future__ import annotations

import pytest

from pytest_isolate.schedule.autoscale import (
    RunHistory,
    Selection,
    choose_workers,
    covers,
    estimate,
    startup_cost,
)


@pytest.mark.parametrize(
    ("work", "units", "cores", "workers"),
    [
        pytest.param(0.02, 20, 2, 0, id="20-trivial-tests-in-process"),
        pytest.param(1.2, 20, 2, 0, id="saving-0.6s-below-startup-0.7s"),
        pytest.param(2.0, 20, 2, 2, id="saving-1s-pays-off"),
        pytest.param(60.0, 3, 16, 3, id="no-more-workers-than-domains"),
        pytest.param(60.0, 500, 16, 16, id="no-more-workers-than-cores"),
        pytest.param(60.0, 1, 8, 0, id="one-domain-cannot-be-split"),
    ],
)
def test_decision(work: float, units: int, cores: int, workers: int) -> None:
    decision = choose_workers(RunHistory(work, units, units), cores)
    assert decision.workers == workers
    if workers == 0:
        assert "running in-process" in decision.reason
        assert f"{work:.2f}s" in decision.reason
    else:
        assert decision.reason.startswith(f"{workers} workers")


def test_startup_cost_grows_with_workers() -> None:
    assert startup_cost(16) > startup_cost(2) > 0


RECORDED = {
    **{f"tests/test_a.py::test_{i}": 0.3 for i in range(16)},
    "tests/test_b.py::test_x": 0.02,
    "tests/test_b.py::TestC::test_y": 0.02,
    "tests/sub/test_c.py::test_z": 1.0,
}


def test_the_estimate_is_the_selected_tests_durations_whatever_ran_last() -> None:
    # The last run was a 2-test -k run: its total says nothing about the whole suite.
    tiny_last_run = RunHistory(0.04, 2, 2)
    whole = estimate(RECORDED, Selection(), tiny_last_run)
    assert whole is not None
    assert whole.work == pytest.approx(16 * 0.3 + 0.04 + 1.0)
    assert whole.tests == 19
    assert choose_workers(whole, 2).workers == 2


@pytest.mark.parametrize(
    ("prefixes", "work"),
    [
        (("tests/test_b.py",), 0.04),
        (("tests/test_b.py::TestC",), 0.02),
        (("tests/sub",), 1.0),
        (("tests/sub/",), 1.0),
        (("tests/test_b.py", "tests/sub"), 1.04),
        (("tests/test_a.py::test_1",), 0.3),
    ],
)
def test_paths_select_their_tests(prefixes: tuple[str, ...], work: float) -> None:
    found = estimate(RECORDED, Selection(prefixes), None)
    assert found is not None and found.work == pytest.approx(work)


def test_a_prefix_does_not_match_a_longer_name() -> None:
    assert estimate(RECORDED, Selection(("tests/test_",)), None) is None
    assert not covers("tests/test_a.py::test_1", "tests/test_a.py::test_10")


def test_what_only_collection_can_tell_has_no_estimate() -> None:
    assert estimate(RECORDED, Selection(filtered=True), None) is None
    assert estimate({}, Selection(), None) is None


def test_a_shard_is_its_share_and_units_follow_the_last_run() -> None:
    last = RunHistory(10.0, 5, 20)  # a quarter of the tests were independent units
    found = estimate(RECORDED, Selection(fraction=0.5), last)
    assert found is not None
    assert found.work == pytest.approx((16 * 0.3 + 0.04 + 1.0) / 2)
    assert (found.tests, found.units) == (10, 2)
