"""Failed with workers: the pure parts of ``--isolate-rerun-alone``.

Input: each test's span in the parallel run (worker, start, stop), the tests that failed, what
the audit saw tests touch, and the outcomes of the reruns. Output: which failed tests to rerun
within the caps, the tests that overlapped a victim on other workers, the trials that narrow
a set of tests down to the one involved (a generator fed with each trial's result), and the
verdicts. :mod:`.causes` tells the causes apart, :mod:`.explain` words them. No pytest
imports, no I/O.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import NamedTuple

from ..declare.claims import PLAIN, TestClaims, conflicts

#: Overlapping sets larger than this are reported, not narrowed down: each halving costs
#: fresh pytest processes.
BISECT_MAX = 16

# -- caps ---------------------------------------------------------------------------------


class Caps(NamedTuple):
    tests: int  # rerun at most this many failed tests
    seconds: float  # all reruns and bisections together


def parse_caps(raw_tests: object, raw_seconds: object) -> Caps:
    """The caps from option or ini values; a ``ValueError`` names the setting and the fault."""
    try:
        tests = int(str(raw_tests))
    except ValueError:
        tests = -1
    if tests < 0:
        raise ValueError(
            f"--isolate-rerun-max / isolate_rerun_max: {raw_tests!r} is not a whole number "
            "of tests (0 or more)"
        )
    try:
        seconds = float(str(raw_seconds))
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(
            f"--isolate-rerun-budget / isolate_rerun_budget: {raw_seconds!r} is not a positive "
            "number of seconds"
        )
    return Caps(tests, seconds)


def select_reruns(failed: Iterable[str], limit: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The failed tests to rerun (the first ``limit``, once each) and those left out."""
    unique = tuple(dict.fromkeys(failed))
    return unique[:limit], unique[limit:]


class Budget(NamedTuple):
    """A time budget started at ``started`` (any monotonic clock)."""

    seconds: float
    started: float

    def left(self, now: float) -> float:
        return max(0.0, self.started + self.seconds - now)


# -- who overlapped whom --------------------------------------------------------------------


class Span(NamedTuple):
    """One test in the parallel run: its worker, and setup start to teardown end."""

    nodeid: str
    worker: str
    start: float
    stop: float


def overlapping(victim: Span, spans: Iterable[Span]) -> tuple[Span, ...]:
    """The tests on other workers that ran while the victim ran, in the order they started."""
    found = [
        span
        for span in spans
        if span.nodeid != victim.nodeid
        and span.worker != victim.worker
        and span.start < victim.stop
        and victim.start < span.stop
    ]
    return tuple(sorted(found, key=lambda span: (span.start, span.nodeid)))


def allowed_beside(
    victim: TestClaims,
    overlapped: Sequence[Span],
    claims: Mapping[str, TestClaims],
    capacity: Mapping[str, int] = {},
) -> tuple[Span, ...]:
    """The overlapping tests the plan let run beside the victim. A serial test, or one whose
    claims conflict with the victim's, never did: its span only seems to overlap (a crashed
    test's lasts until the crash is reported), and rerunning it beside the victim would break
    the declarations."""
    return tuple(
        span
        for span in overlapped
        if not _excludes(victim, claims.get(span.nodeid, PLAIN), capacity)
    )


def _excludes(a: TestClaims, b: TestClaims, capacity: Mapping[str, int]) -> bool:
    if a.serial or b.serial:
        return True
    # A counted resource of capacity 1 is never held twice.
    if any(name in b.counted and capacity.get(name, 1) < 2 for name in a.counted):
        return True
    return any(conflicts(x, y) for x in a.claims for y in b.claims)


def suspects_in_order(
    overlapped: Sequence[Span], touched: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """Suspects for bisection: those the audit saw touch shared state first, then by start.

    The likelier culprits land in the first half, so a lucky first trial ends the search.
    """
    ordered = sorted(overlapped, key=lambda span: (not touched.get(span.nodeid), span.start))
    return tuple(span.nodeid for span in ordered)


# -- bisection -------------------------------------------------------------------------------


class Search(enum.Enum):
    FOUND = "found"
    NOT_REPRODUCED = "not reproduced"
    NEEDS_SEVERAL = "needs several"
    OUT_OF_TIME = "out of time"
    TOO_MANY = "too many"
    NOTHING_OVERLAPPED = "nothing overlapped"
    DID_NOT_RUN = "the test did not run"  # in a trial: an earlier test ended the process


class Trial(NamedTuple):
    """Run the victim beside ``beside``; the culprit is known to be among ``suspects``."""

    beside: tuple[str, ...]
    suspects: tuple[str, ...]
    number: int  # 1 for the first trial


class SearchResult(NamedTuple):
    status: Search
    suspects: tuple[str, ...]  # the narrowest set known to reproduce (all, when not found)
    trials: int

    @property
    def culprit(self) -> str | None:
        return self.suspects[0] if self.status is Search.FOUND else None


def bisect_culprit(candidates: Sequence[str]) -> Generator[Trial, bool, SearchResult]:
    """Propose trials; send back whether the victim failed beside each.

    The whole set first (does it reproduce at all?), then halves: the half that reproduces
    is kept; when neither half does alone, the culprits need each other (or the failure needs
    timing a rerun does not give), and the search stops with the set it had. A single
    suspect left is the culprit, and the last trial that kept it proved it.
    """
    suspects = tuple(candidates)
    if not suspects:
        return SearchResult(Search.NOTHING_OVERLAPPED, (), 0)
    trials = 1
    if not (yield Trial(suspects, suspects, trials)):
        return SearchResult(Search.NOT_REPRODUCED, suspects, trials)
    while len(suspects) > 1:
        half = len(suspects) // 2
        for part in (suspects[:half], suspects[half:]):
            trials += 1
            if (yield Trial(part, suspects, trials)):
                suspects = part
                break
        else:
            return SearchResult(Search.NEEDS_SEVERAL, suspects, trials)
    return SearchResult(Search.FOUND, suspects, trials)


def stopped_at(trial: Trial) -> SearchResult:
    """The search stopped before ``trial`` ran (the time budget ran out)."""
    return SearchResult(Search.OUT_OF_TIME, trial.suspects, trial.number - 1)


# -- verdicts ---------------------------------------------------------------------------------


class Verdict(enum.Enum):
    PASSES_ALONE = "passed alone"
    FAILS_ALONE = "fails alone too"
    UNDECIDED = "not decided"
    NOT_RERUN = "not rerun"


_EXIT_CODES = {
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "the test was not collected",
}


def verdict_of(exit_code: int | None) -> tuple[Verdict, str]:
    """A rerun's verdict from the exit code of its pytest process (``None``: out of time)."""
    if exit_code is None:
        return Verdict.UNDECIDED, "the rerun did not finish within isolate_rerun_budget"
    if exit_code == 0:
        return Verdict.PASSES_ALONE, "passed when rerun alone"
    if exit_code == 1:
        return Verdict.FAILS_ALONE, "failed when rerun alone"
    if exit_code < 0:
        # A crash alone is a failure alone: whatever kills it is not another test.
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return Verdict.FAILS_ALONE, f"crashed when rerun alone (killed by {name})"
    what = _EXIT_CODES.get(exit_code, "unexpected exit code")
    return Verdict.UNDECIDED, f"the rerun ended with exit code {exit_code} ({what})"


class Cause(enum.Enum):
    """Why a test failed in a run with workers (:mod:`.causes` tells them apart)."""

    POLLUTED = "polluted by an earlier test on its worker"
    NEEDS_EARLIER = "needs an earlier test"
    OVERLAP = "fails beside a test on another worker"
    TIMING = "timing or load"
    REAL = "a real failure"


class Outcome(enum.Enum):
    """The victim's outcome in one trial."""

    PASSED = "passed"  # skipped and xfailed count as passed: it did not fail
    FAILED = "failed"  # a failed phase, or the process died while it ran
    NOT_RUN = "not run"  # the process ended before the victim started


class Diagnosis(NamedTuple):
    nodeid: str
    verdict: Verdict
    detail: str = ""
    worker: str = ""
    overlapped: tuple[Span, ...] = ()
    touched: Mapping[str, tuple[str, ...]] = {}  # by overlapping test; never mutated
    search: SearchResult | None = None  # the bisection that named the test(s) involved
    cause: Cause | None = None
    before: int = 0  # tests its worker ran before it
    elsewhere: int = 0  # tests before it in collection order, run on other workers
    note: str = ""  # why a step was left out

    @property
    def culprit(self) -> str | None:
        """The one test the search named: the culprit, the polluter or the test it needs."""
        return self.search.culprit if self.search else None


def accepted(d: Diagnosis) -> bool:
    """``--isolate-parallel-only-ok`` may accept this failure."""
    return d.verdict is Verdict.PASSES_ALONE and d.cause in (Cause.OVERLAP, Cause.TIMING)


def run_passes(failed: Iterable[str], diagnoses: Iterable[Diagnosis]) -> bool:
    """With parallel-only failures accepted: was every failed test shown to fail only beside
    other tests or by timing?"""
    # Shown to fail only beside others or by timing; not polluted (a serial run in the
    # worker's order fails it too), nor undecided (it might be polluted).
    parallel_only = {d.nodeid for d in diagnoses if accepted(d)}
    failed = set(failed)
    return bool(failed) and failed <= parallel_only
