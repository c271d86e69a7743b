"""Fails only in parallel: the pure parts of ``--isolate-rerun-alone``.

Input: each test's span in the parallel run (worker, start, stop), the tests that failed, what
the audit saw tests touch, and the outcomes of the reruns. Output: which failed tests to rerun
within the caps, the tests that overlapped a victim on other workers, the trials that narrow
those down to a culprit (a generator fed with each trial's result), the verdicts, and their
text for the terminal, the report-log, JUnit and the timeline. Also which of the run's own
arguments a rerun keeps. No pytest imports, no I/O.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..report.reports import count

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
    PARALLEL_ONLY = "fails only in parallel"
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
        return Verdict.PARALLEL_ONLY, "passed when rerun alone"
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


class Diagnosis(NamedTuple):
    nodeid: str
    verdict: Verdict
    detail: str = ""
    worker: str = ""
    overlapped: tuple[Span, ...] = ()
    touched: Mapping[str, tuple[str, ...]] = {}  # by overlapping test; never mutated
    search: SearchResult | None = None

    @property
    def culprit(self) -> str | None:
        return self.search.culprit if self.search else None


def run_passes(failed: Iterable[str], diagnoses: Iterable[Diagnosis]) -> bool:
    """With parallel-only failures accepted: did every failed test pass alone?"""
    parallel_only = {d.nodeid for d in diagnoses if d.verdict is Verdict.PARALLEL_ONLY}
    failed = set(failed)
    return bool(failed) and failed <= parallel_only


def _search_line(d: Diagnosis) -> str | None:
    search = d.search
    if search is None:
        return None
    listed = ", ".join(search.suspects)
    tried = count(search.trials, "trial")
    if search.status is Search.FOUND:
        return f"  culprit: {search.culprit}: the test fails when run beside it ({tried})"
    if search.status is Search.NOT_REPRODUCED:
        return (
            f"  culprit not found: it passed again beside the overlapping tests ({tried}); "
            "the failure needs the parallel run's timing"
        )
    if search.status is Search.NEEDS_SEVERAL:
        return (
            f"  culprit not narrowed down: it fails beside {listed} together, but beside "
            f"neither half alone ({tried})"
        )
    if search.status is Search.OUT_OF_TIME:
        return f"  culprit not narrowed down within isolate_rerun_budget ({tried}): among {listed}"
    if search.status is Search.TOO_MANY:
        return (
            f"  culprit not searched: {len(search.suspects)} tests overlapped it, "
            f"more than {BISECT_MAX}"
        )
    return None


def format_section(
    diagnoses: Sequence[Diagnosis], failed: int, accept: bool, passes: bool
) -> list[str]:
    """The terminal section's lines (without its heading)."""
    lines: list[str] = []
    for d in diagnoses:
        if d.verdict is not Verdict.PARALLEL_ONLY:
            continue
        where = f" on {d.worker}" if d.worker else ""
        # "In parallel" only where something ran beside it: at -n 1, or alone on the
        # machine at the time, the cause is its worker's earlier tests or the load.
        headline = "FAILS ONLY IN PARALLEL" if d.overlapped else "FAILS ONLY IN THE RUN"
        lines.append(f"{headline} {d.nodeid}{where}: {d.detail}")
        if d.overlapped:
            lines.append("  overlapped on other workers:")
            for span in d.overlapped:
                touched = d.touched.get(span.nodeid, ())
                lines.append(f"    {span.nodeid} ({span.worker})")
                lines.extend(f"      touched {what}" for what in touched)
        else:
            lines.append(
                "  no test ran beside it on another worker: look at the tests before it on "
                "its own worker, or at the machine's load"
            )
        search_line = _search_line(d)
        if search_line:
            lines.append(search_line)
    for verdict in (Verdict.FAILS_ALONE, Verdict.UNDECIDED, Verdict.NOT_RERUN):
        for d in diagnoses:
            if d.verdict is verdict:
                lines.append(f"{verdict.value} {d.nodeid}: {d.detail}")
    parallel_only = sum(1 for d in diagnoses if d.verdict is Verdict.PARALLEL_ONLY)
    # Of the tests a rerun decided: one cut short, or never rerun (the caps), decided nothing.
    decided = sum(1 for d in diagnoses if d.verdict in (Verdict.PARALLEL_ONLY, Verdict.FAILS_ALONE))
    summary = f"isolate: {parallel_only} of {count(decided, 'failed test')} passed when rerun alone"
    if failed > decided:
        summary += f" ({failed - decided} more not rerun or not decided)"
    if passes:
        summary += "; accepted by --isolate-parallel-only-ok, the run passes"
    elif parallel_only and not accept:
        summary += (
            "; the run stays failed (--isolate-parallel-only-ok accepts failures only in parallel)"
        )
    elif parallel_only:
        summary += "; the run stays failed: not every failed test passed alone"
    lines.append(summary)
    return lines


# -- records for CI: report-log, JUnit, timeline ----------------------------------------------

REPORT_TYPE = "pytest_isolate"


def report_log_record(d: Diagnosis) -> dict[str, Any]:
    """One JSON line for pytest-reportlog's file, ``{"$report_type": "pytest_isolate", ...}``."""
    search = d.search
    return {
        "$report_type": REPORT_TYPE,
        "event": "rerun_alone",
        "nodeid": d.nodeid,
        "verdict": d.verdict.name.lower(),
        "detail": d.detail,
        "worker": d.worker,
        "overlapped": [
            {
                "nodeid": span.nodeid,
                "worker": span.worker,
                "touched": list(d.touched.get(span.nodeid, ())),
            }
            for span in d.overlapped
        ],
        "search": search.status.value if search else None,
        "culprit": d.culprit,
        "suspects": list(search.suspects) if search else [],
        "trials": search.trials if search else 0,
    }


def junit_properties(diagnoses: Iterable[Diagnosis]) -> dict[str, list[tuple[str, str]]]:
    """``<property>`` name/value pairs by node id: on each rerun test, and on each culprit."""
    found: dict[str, list[tuple[str, str]]] = {}
    for d in diagnoses:
        props = found.setdefault(d.nodeid, [])
        props.append(("isolate_rerun_alone", d.verdict.value))
        if d.overlapped:
            props.append(("isolate_overlapped", " ".join(s.nodeid for s in d.overlapped)))
        if d.culprit:
            props.append(("isolate_culprit", d.culprit))
            found.setdefault(d.culprit, []).append(("isolate_culprit_of", d.nodeid))
    return found


def timeline_notes(diagnoses: Iterable[Diagnosis]) -> dict[str, str]:
    """A note by node id for the timeline: on each test failing only in parallel and its culprit."""
    notes: dict[str, str] = {}
    for d in diagnoses:
        if d.verdict is not Verdict.PARALLEL_ONLY:
            continue
        note = "fails only in parallel" if d.overlapped else "fails only in the run"
        if d.culprit:
            note += f"; culprit: {d.culprit}"
            notes[d.culprit] = f"culprit: {d.nodeid} fails beside it"
        notes[d.nodeid] = note
    return notes
