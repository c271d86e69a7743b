"""Helpers for the integration tests: real pytest runs with real xdist workers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKER = Path(__file__).with_name("checker_conftest.py").read_text()


@dataclass
class Interval:
    nodeid: str
    worker: str
    start: float
    end: float

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass
class CheckedRun:
    result: pytest.RunResult
    intervals: dict[str, Interval]
    violations: list[str]

    def workers_of(self, *nodeid_parts: str) -> set[str]:
        return {
            iv.worker
            for iv in self.intervals.values()
            if any(part in iv.nodeid for part in nodeid_parts)
        }

    def ordered(self, part: str) -> list[str]:
        """Node ids containing ``part``, in the order they started."""
        chosen = [iv for iv in self.intervals.values() if part in iv.nodeid]
        return [iv.nodeid for iv in sorted(chosen, key=lambda iv: iv.start)]

    def max_concurrency(self, part: str) -> int:
        """Most tests containing ``part`` running at one moment (a sweep over the intervals)."""
        edges = sorted(
            (t, step)
            for iv in self.intervals.values()
            if part in iv.nodeid
            for t, step in ((iv.start, 1), (iv.end, -1))
        )
        running = peak = 0
        for _, step in edges:  # an end sorts before a start at the same instant
            running += step
            peak = max(peak, running)
        return peak


class Checked:
    """Runs a suite in a subprocess with the overlap checker installed."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pytester = pytester
        self.state = pytester.path / "_check"
        self.state.mkdir()
        monkeypatch.setenv("ISOLATE_CHECK_DIR", str(self.state))
        pytester.makeconftest(CHECKER)

    def run(self, *args: str) -> CheckedRun:
        for stale in ("log.jsonl", "violations.txt"):
            (self.state / stale).unlink(missing_ok=True)
        result = self.pytester.runpytest_subprocess("-p", "isolate", *args)
        return CheckedRun(result, self._intervals(), self._violations())

    def _intervals(self) -> dict[str, Interval]:
        log = self.state / "log.jsonl"
        starts: dict[str, dict[str, object]] = {}
        intervals: dict[str, Interval] = {}
        if not log.exists():
            return intervals
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if record["event"] == "start":
                starts[record["nodeid"]] = record
            else:
                begin = starts[record["nodeid"]]
                intervals[record["nodeid"]] = Interval(
                    record["nodeid"], record["worker"], float(begin["t"]), float(record["t"])
                )
        return intervals

    def _violations(self) -> list[str]:
        path = self.state / "violations.txt"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(autouse=True)
def outer_run_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suites under test must not inherit this run's worker identity or resources.

    This very suite runs under pytest-isolate with -n: its workers export PYTEST_XDIST_*,
    and a DATABASE_URL of their own, which a nested run would otherwise take as its own.
    """
    for name in (
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "PYTEST_ADDOPTS",
        "DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def checked(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Checked:
    return Checked(pytester, monkeypatch)
