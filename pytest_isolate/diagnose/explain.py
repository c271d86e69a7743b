"""The words of a diagnosis: the terminal section, and the records for CI (report-log, JUnit,
timeline). One line per failed test says its cause and the evidence; the next lines name the
test(s) involved and the marker or fix that makes the dependency explicit. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ..words import count
from .diagnosis import BISECT_MAX, Cause, Diagnosis, Search, Verdict, accepted

#: At most this many tests are listed by name in one line.
LISTED = 5


class Role(NamedTuple):
    """How a cause names the test its search found, and what it is to its victim."""

    named: str  # "culprit", "polluter", "needs"
    proof: str  # how the last trial proved it
    junit: str  # the victim's property
    junit_back: str  # the property on the test found
    note_back: str  # the timeline note on the test found, of {victim}


ROLES = {
    Cause.OVERLAP: Role(
        "culprit",
        "the test fails when run beside it",
        "isolate_culprit",
        "isolate_culprit_of",
        "culprit: {victim} fails beside it",
    ),
    Cause.POLLUTED: Role(
        "polluter",
        "the test fails when run after it",
        "isolate_polluter",
        "isolate_polluter_of",
        "polluter: {victim} fails after it",
    ),
    Cause.NEEDS_EARLIER: Role(
        "needs",
        "the test passes when run after it",
        "isolate_needs",
        "isolate_needed_by",
        "needed by {victim}",
    ),
}

HEADLINES = {
    Cause.OVERLAP: "FAILS ONLY IN PARALLEL",
    Cause.POLLUTED: "POLLUTED BY AN EARLIER TEST",
    Cause.NEEDS_EARLIER: "NEEDS AN EARLIER TEST",
    Cause.TIMING: "TIMING OR LOAD",
}


def _names(tests: Sequence[str]) -> str:
    shown = ", ".join(tests[:LISTED])
    return shown if len(tests) <= LISTED else f"{shown} and {len(tests) - LISTED} more"


def evidence(d: Diagnosis) -> str:
    """The reruns that decided its cause, in one clause (and any step left out, and why)."""
    note = f" ({d.note})" if d.note else ""
    return _steps(d) + note


def _steps(d: Diagnosis) -> str:
    on = d.worker or "its worker"
    worker = f"the {count(d.before, 'test')} {on} ran before it"
    elsewhere = (
        f"the {count(d.elsewhere, 'test')} before it in collection order that did not run "
        f"before it on {on}"
    )
    if d.cause is Cause.POLLUTED:
        return f"{d.detail}, failed after {worker}"
    if d.cause is Cause.NEEDS_EARLIER:
        return f"{d.detail}, passed after {elsewhere}"
    if d.cause is Cause.REAL:
        return f"{d.detail}, and after {elsewhere}" if d.elsewhere else d.detail
    steps = [d.detail]
    if d.before:
        steps.append(f"passed after {worker}")
    if d.overlapped and d.cause is Cause.TIMING:
        steps.append(f"and beside the {count(len(d.overlapped), 'test')} that overlapped it")
    return ", ".join(steps)


def _search_line(d: Diagnosis) -> str | None:
    search, cause = d.search, d.cause
    if search is None or cause not in ROLES:
        return None
    role = ROLES[cause]
    listed = _names(search.suspects)
    tried = count(search.trials, "trial")
    what = "the test it needs" if cause is Cause.NEEDS_EARLIER else role.named
    if search.status is Search.FOUND:
        return f"  {role.named}: {search.culprit}: {role.proof} ({tried})"
    if search.status is Search.NEEDS_SEVERAL:
        together = "beside" if cause is Cause.OVERLAP else "after"
        result = "passes" if cause is Cause.NEEDS_EARLIER else "fails"
        return (
            f"  {what} not narrowed down: it {result} {together} {listed} together, but "
            f"{together} neither half alone ({tried})"
        )
    if search.status is Search.DID_NOT_RUN:
        return (
            f"  {what} not narrowed down: the test did not run in a trial ({tried}): among {listed}"
        )
    if search.status is Search.OUT_OF_TIME:
        return f"  {what} not narrowed down within isolate_rerun_budget ({tried}): among {listed}"
    if search.status is Search.TOO_MANY:
        return (
            f"  {what} not searched: {len(search.suspects)} tests overlapped it, "
            f"more than {BISECT_MAX}"
        )
    return None


def _fix_line(d: Diagnosis) -> str | None:
    found = d.culprit
    if d.cause is Cause.OVERLAP:
        other = found or "the test that overlapped it"
        return (
            f'  declare: @pytest.mark.resource("NAME") on {d.nodeid} and {other}, NAME for '
            "what they share"
        )
    if d.cause is Cause.POLLUTED:
        other = found or "an earlier test"
        return (
            f"  fix: {other} leaves state behind: undo it in a fixture's teardown "
            "(monkeypatch, tmp_path), or reset it in a fixture of the victim's"
        )
    if d.cause is Cause.NEEDS_EARLIER:
        other = found or "an earlier test"
        return (
            f"  fix: give {d.nodeid} what {other} sets up through a fixture, not through the "
            "order of tests"
        )
    return None


def format_section(
    diagnoses: Sequence[Diagnosis], failed: int, accept: bool, passes: bool
) -> list[str]:
    """The terminal section's lines (without its heading)."""
    lines: list[str] = []
    for d in diagnoses:
        if d.cause not in HEADLINES and d.verdict is not Verdict.PASSES_ALONE:
            continue
        where = f" on {d.worker}" if d.worker else ""
        if d.cause is None:
            silent = d.search is not None and d.search.status is Search.DID_NOT_RUN
            why = f" ({d.note})" if d.note else ""
            lines.append(
                f"PASSED WHEN RERUN ALONE {d.nodeid}{where}: {d.detail}; the cause was not "
                + (f"found{why}" if silent else f"found within isolate_rerun_budget{why}")
            )
            continue
        lines.append(f"{HEADLINES[d.cause]} {d.nodeid}{where}: {evidence(d)}")
        if d.overlapped and d.cause in (Cause.OVERLAP, Cause.TIMING):
            lines.append("  overlapped on other workers:")
            for span in d.overlapped:
                touched = d.touched.get(span.nodeid, ())
                lines.append(f"    {span.nodeid} ({span.worker})")
                lines.extend(f"      touched {what}" for what in touched)
        if d.cause is Cause.TIMING:
            lines.append(
                "  nothing reproduced it: look at timeouts, waits and the machine's load"
                if d.overlapped or d.before
                else "  no test ran before it on its worker or beside it on another: look at "
                "timeouts, waits and the machine's load"
            )
        lines.extend(line for line in (_search_line(d), _fix_line(d)) if line)
    for verdict in (Verdict.FAILS_ALONE, Verdict.UNDECIDED, Verdict.NOT_RERUN):
        for d in diagnoses:
            if d.verdict is verdict and d.cause not in HEADLINES:
                detail = evidence(d) if d.cause is Cause.REAL else d.detail
                if d.note and d.cause is not Cause.REAL:
                    detail += f" ({d.note})"
                lines.append(f"{verdict.value} {d.nodeid}: {detail}")
    lines.extend(_summary(diagnoses, failed, accept, passes))
    return lines


def _summary(diagnoses: Sequence[Diagnosis], failed: int, accept: bool, passes: bool) -> list[str]:
    parallel_only = sum(1 for d in diagnoses if d.verdict is Verdict.PASSES_ALONE)
    # Of the tests a rerun decided: one cut short, or never rerun (the caps), decided nothing.
    decided = sum(1 for d in diagnoses if d.verdict in (Verdict.PASSES_ALONE, Verdict.FAILS_ALONE))
    summary = f"isolate: {parallel_only} of {count(decided, 'failed test')} passed when rerun alone"
    if failed > decided:
        summary += f" ({failed - decided} more not rerun or not decided)"
    if passes:
        summary += "; accepted by --isolate-parallel-only-ok, the run passes"
    elif any(accepted(d) for d in diagnoses) and not accept:
        summary += (
            "; the run stays failed (--isolate-parallel-only-ok accepts failures shown to need "
            "other workers or timing)"
        )
    elif parallel_only and accept:
        summary += (
            "; the run stays failed: not every failed test was shown to need other workers or "
            "timing"
        )
    causes = [
        f"{cause.value}: {sum(1 for d in diagnoses if d.cause is cause)}"
        for cause in Cause
        if any(d.cause is cause for d in diagnoses)
    ]
    lines = [f"isolate: causes: {'; '.join(causes)}"] if causes else []
    return [*lines, summary]


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
        "cause": d.cause.name.lower() if d.cause else None,
        "detail": d.detail,
        "evidence": evidence(d) if d.cause else d.detail + (f" ({d.note})" if d.note else ""),
        "worker": d.worker,
        "before_on_worker": d.before,
        "before_elsewhere": d.elsewhere,
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
    """``<property>`` name/value pairs by node id: on each rerun test, and on the test its
    search named (culprit, polluter, or the test it needs)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for d in diagnoses:
        props = found.setdefault(d.nodeid, [])
        props.append(("isolate_rerun_alone", d.verdict.value))
        if d.cause:
            props.append(("isolate_cause", d.cause.value))
        if d.overlapped:
            props.append(("isolate_overlapped", " ".join(s.nodeid for s in d.overlapped)))
        role = ROLES.get(d.cause) if d.cause else None
        if d.culprit and role:
            props.append((role.junit, d.culprit))
            found.setdefault(d.culprit, []).append((role.junit_back, d.nodeid))
    return found


def timeline_notes(diagnoses: Iterable[Diagnosis]) -> dict[str, str]:
    """A note by node id for the timeline: on each test whose cause is not its own failure,
    and on the test its search named."""
    notes: dict[str, str] = {}
    for d in diagnoses:
        if d.cause is None or d.cause is Cause.REAL:
            continue
        note = d.cause.value
        role = ROLES.get(d.cause)
        if d.culprit and role:
            note += f"; {role.named}: {d.culprit}"
            _add(notes, d.culprit, role.note_back.format(victim=d.nodeid))
        _add(notes, d.nodeid, note)
    return notes


def _add(notes: dict[str, str], nodeid: str, note: str) -> None:
    """A test may be a victim and another's culprit, or pollute two tests: every note stays."""
    notes[nodeid] = f"{notes[nodeid]}; {note}" if nodeid in notes else note
