"""``-n auto``: the decision from history, as a table."""

from __future__ import annotations

import pytest

from pytest_isolate.schedule.autoscale import RunHistory, choose_workers, startup_cost


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
