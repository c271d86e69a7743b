"""``--isolate-rerun-alone``: after a run with workers, find why each failed test failed.

On the controller, at the end of a run under ``-n``: each failed test (up to
``isolate_rerun_max``, within ``isolate_rerun_budget`` seconds) runs again alone in a fresh
pytest process; then, by the rules of :mod:`.causes`, after the tests its worker ran before
it, beside the tests that overlapped it, or after its predecessors elsewhere, each bisected to
the test involved. The verdicts and causes are reported (:mod:`.explain`), the pairs proven
and the tests that fail alone are kept for later runs (:mod:`.memory`). The processes are
:mod:`.processes`'; the rules (caps, overlaps, bisection) :mod:`.diagnosis`'.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from .. import compat
from ..declare.claims import PLAIN, parse_capacity
from ..faults import interrupts
from ..faults.crashes import NEVER_RAN
from ..options import EXPLICIT_DIST
from ..report import outputs
from ..report.reporter import Reporter
from ..report.reports import sort_key
from ..schedule.learned import Learned
from ..words import count
from ..xdist.transport import is_local
from . import causes, diagnosis, explain, memory
from .diagnosis import Caps, Cause, Diagnosis, Outcome, Search, Span, Verdict
from .processes import WORKERS_EXIT_SECONDS, Reruns, wait_for_exit

#: More failures than this many times isolate_rerun_max: no reruns at all.
BROKEN_BUILD = 5
#: The share of isolate_rerun_budget a rerun after a failed-alone test's predecessors may
#: cost (the check for a test it needs).
NEEDS_SHARE = 0.25
#: Marks a test kept as failing alone whose check for a needed test was too costly.
CAPPED = "capped:"
#: Why a test was not rerun: an earlier run proved it fails alone.
KNOWN_DETAIL = (
    "failed when rerun alone in an earlier run, after the same tests, and no Python file has "
    "changed since"
)

__all__ = ["configure"]


def _flag(config: pytest.Config, name: str) -> bool:
    value = config.getoption(name)
    return bool(value if value is not None else config.getini(name))


def configure(config: pytest.Config, reporter: Reporter) -> None:
    """Validate the settings (a usage error names the fault); register on the controller."""
    caps = _caps(config)
    if hasattr(config, "workerinput") or config.getoption("isolate_rerun_child"):
        return
    if not _flag(config, "isolate_rerun_alone"):
        return
    accept = _flag(config, "isolate_parallel_only_ok")
    config.pluginmanager.register(RerunAlone(config, reporter, caps, accept), "isolate-rerun")


def _caps(config: pytest.Config) -> Caps:
    raw_max = config.getoption("isolate_rerun_max") or config.getini("isolate_rerun_max")
    raw_budget = config.getoption("isolate_rerun_budget") or config.getini("isolate_rerun_budget")
    try:
        return diagnosis.parse_caps(raw_max, raw_budget)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc


class RerunAlone:
    """The controller's plugin: notes failures, reruns them at the end, reports."""

    def __init__(self, config: pytest.Config, reporter: Reporter, caps: Caps, accept: bool):
        self.config = config
        self.reporter = reporter
        self.caps = caps
        self.accept = accept
        self.failed: list[str] = []
        self.failed_reports = 0
        self.never_ran = 0
        self.remote: list[str] = []
        self.workers: list[subprocess.Popen[bytes]] = []  # the run's local worker processes
        self.diagnoses: list[Diagnosis] = []
        self.passes = False
        self.remembered: list[Learned] = []
        self.project: str | None = None  # the content hash of the project's Python files
        self.capped: set[str] = set()  # failed alone; the check for a needed test cost too much

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed:
            return
        self.failed_reports += 1
        if str(report.longrepr) == NEVER_RAN:
            self.never_ran += 1  # never rerun, never accepted: it did not run at all
        elif report.nodeid not in self.failed:
            self.failed.append(report.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if not is_local(node.gateway):
            self.remote.append(str(node.gateway.id))
            return
        popen = compat.local_popen(node.gateway)
        if popen is not None:
            self.workers.append(popen)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Inside the terminal reporter's sessionfinish wrapper: before the summary is written.
        if not self._parallel() or session.exitstatus != pytest.ExitCode.TESTS_FAILED:
            return
        if not self.failed:
            return
        if self.remote:
            # The suite and its environment live on the workers' hosts, not necessarily here.
            self._say(
                "isolate: no reruns alone: workers ran on other hosts "
                f"({', '.join(self.remote)}); rerun failures there"
            )
            return
        if len(self.failed) > BROKEN_BUILD * self.caps.tests:
            self._say(
                f"isolate: no reruns alone: {len(self.failed)} tests failed, more than "
                f"{BROKEN_BUILD} x isolate_rerun_max ({self.caps.tests}); that is a broken "
                "build, not tests that fail only in parallel"
            )
            return
        positions = self.reporter.positions
        failed = sorted(self.failed, key=sort_key(positions))
        budget = diagnosis.Budget(self.caps.seconds, time.monotonic())
        # No work twice: a test an earlier run proved to fail alone, with no Python file
        # changed since, would fail alone again.
        # Known only with the same tests before it in collection order: a new one may be the
        # test it needs.
        proven = self._known_to_fail_alone()
        known: dict[str, Diagnosis] = {}
        for nodeid in failed:
            if proven.get(nodeid) == self._before(nodeid):
                known[nodeid] = Diagnosis(
                    nodeid, Verdict.FAILS_ALONE, KNOWN_DETAIL, cause=Cause.REAL
                )
            elif proven.get(nodeid) == CAPPED + self._before(nodeid):
                # Its check for a needed test was too costly: known while it still is.
                note = self._capped_note(nodeid)
                if note:
                    known[nodeid] = Diagnosis(nodeid, Verdict.FAILS_ALONE, KNOWN_DETAIL, note=note)
        self.diagnoses += [known[nodeid] for nodeid in failed if nodeid in known]
        chosen, left_out = diagnosis.select_reruns(
            [nodeid for nodeid in failed if nodeid not in known], self.caps.tests
        )
        if chosen:
            self._say(
                f"isolate: rerunning {count(len(chosen), 'failed test')} alone "
                f"(at most {self.caps.seconds:g}s)"
            )
        try:
            with interrupts.interrupting(), Reruns(self.config) as runs:
                wait_for_exit(self.workers, WORKERS_EXIT_SECONDS)
                self._diagnose(runs, chosen, budget, self.diagnoses)
        except KeyboardInterrupt:
            # Ctrl-C (or SIGTERM) during the reruns ends them; the run's report still comes,
            # with the exit status of an interrupted run.
            session.exitstatus = pytest.ExitCode.INTERRUPTED
            done = {d.nodeid for d in self.diagnoses}
            self.diagnoses += [
                Diagnosis(nodeid, Verdict.NOT_RERUN, "the reruns were interrupted")
                for nodeid in chosen
                if nodeid not in done
            ]
        except OSError as exc:
            # A process that cannot start (out of processes or memory): the run's report
            # still comes, with what was decided.
            done = {d.nodeid for d in self.diagnoses}
            self.diagnoses += [
                Diagnosis(nodeid, Verdict.NOT_RERUN, f"a rerun could not start: {exc}")
                for nodeid in chosen
                if nodeid not in done
            ]
        self._remember()
        self.reporter.after_run += time.monotonic() - budget.started
        self.diagnoses += [
            Diagnosis(nodeid, Verdict.NOT_RERUN, f"over isolate_rerun_max ({self.caps.tests})")
            for nodeid in left_out
        ]
        self.reporter.notes.update(explain.timeline_notes(self.diagnoses))
        if self.diagnoses:
            # The reporter rewrites the output files once junitxml and pytest-reportlog have
            # written them: the diagnoses go in with its pass.
            self.reporter.junit_edits.append(self._junit_properties)
            self.reporter.report_log_edits.append(self._report_log_records)
        # Accepted only when the failed tests are all that failed (not --cov-fail-under, say).
        alone = session.testsfailed == self.failed_reports
        if (
            self.accept
            and alone
            and not self.never_ran
            and session.exitstatus == pytest.ExitCode.TESTS_FAILED
            and (diagnosis.run_passes(failed, self.diagnoses))
        ):
            self.passes = True
            session.exitstatus = pytest.ExitCode.OK

    def _project(self) -> str:
        if self.project is None:
            self.project = memory.project_hash(self.config.rootpath)
        return self.project

    def _known_to_fail_alone(self) -> dict[str, str]:
        if not memory.has_fails_alone(self.config):
            return {}  # nothing to compare: no need to hash the project
        return memory.known_to_fail_alone(self.config, self._project())

    def _capped_note(self, nodeid: str) -> str:
        """The note of a check for a needed test that would cost more than its share now;
        empty when it would fit."""
        spans = self._spans()
        _, elsewhere = self._predecessors(nodeid, spans)
        cost, cap = _cost(elsewhere, spans), NEEDS_SHARE * self.caps.seconds
        return _left_out(ELSEWHERE, cost, _share(cap)) if cost > cap else ""

    def _spans(self) -> dict[str, Span]:
        return {
            nodeid: Span(nodeid, worker, start, stop)
            for nodeid, (start, stop, worker, _) in self.reporter.spans().items()
        }

    def _predecessors(
        self, nodeid: str, spans: Mapping[str, Span]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The tests its worker ran before it, in that order; and the tests before it in
        collection order that its worker did not run before it."""
        started = [(span.nodeid, span.worker, span.start) for span in spans.values()]
        worker = spans[nodeid].worker if nodeid in spans else ""
        before = causes.worker_before(nodeid, worker, started)
        return before, causes.elsewhere_before(nodeid, self.reporter.nodeids, set(before))

    def _before(self, nodeid: str) -> str:
        return memory.predecessors_digest(nodeid, self.reporter.nodeids)

    def _remember(self) -> None:
        """Keep what the diagnoses proved for later runs (pytest's cache)."""
        # Said only of pairs not known already (a polluted pair fails again where applied).
        self.remembered = memory.remember(self.config, memory.found_pairs(self.diagnoses))
        # Proven only where every rerun ran (a step left out for the budget proves nothing),
        # or where the check for a test it needs would cost more than its share again.
        real = {
            d.nodeid: self._before(d.nodeid)
            for d in self.diagnoses
            if d.detail != KNOWN_DETAIL and d.cause is Cause.REAL and not d.note
        }
        real.update(
            (d.nodeid, CAPPED + self._before(d.nodeid))
            for d in self.diagnoses
            if d.detail != KNOWN_DETAIL
            and d.cause is None
            and d.verdict is Verdict.FAILS_ALONE
            and d.nodeid in self.capped
        )
        if real and memory.has_cache(self.config):
            memory.remember_fails_alone(self.config, self._project(), real)

    def _say(self, line: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            # After xdist's progress dots, which leave the line open.
            if compat.line_is_open(terminal):
                terminal.write("\n")
            terminal.write_line(line)

    def _parallel(self) -> bool:
        return self.config.pluginmanager.hasplugin("dsession") and not (
            self.config.getoption("isolate_plan") or self.config.getoption("collectonly")
        )

    def _diagnose(
        self,
        runs: Reruns,
        chosen: Sequence[str],
        budget: diagnosis.Budget,
        found: list[Diagnosis],
    ) -> None:
        """Append a diagnosis per chosen test to ``found``, then find each one's cause."""
        spans = self._spans()
        touched = self._touched()
        claims = dict(zip(self.reporter.nodeids, self.reporter.claims, strict=False))
        explicit = self.config.stash.get(EXPLICIT_DIST, False)
        capacity = parse_capacity(self.config.getini("isolate_capacity"))
        for nodeid in chosen:
            left = budget.left(time.monotonic())
            if left <= 0:
                found.append(Diagnosis(nodeid, Verdict.NOT_RERUN, "isolate_rerun_budget spent"))
                continue
            verdict, detail = diagnosis.verdict_of(runs.run([nodeid], left))
            span = spans.get(nodeid)
            overlapped = diagnosis.overlapping(span, spans.values()) if span else ()
            if not explicit:  # isolate's scheduler kept conflicting tests apart
                overlapped = diagnosis.allowed_beside(
                    claims.get(nodeid, PLAIN), overlapped, claims, capacity
                )
            found.append(
                Diagnosis(
                    nodeid,
                    verdict,
                    detail,
                    span.worker if span else "",
                    overlapped,
                    {s.nodeid: touched[s.nodeid] for s in overlapped if s.nodeid in touched},
                )
            )
        # The causes only once every chosen test has its verdict alone.
        for i, d in enumerate(found):
            if (
                d.cause is None
                and d.detail != KNOWN_DETAIL
                and d.verdict in (Verdict.PASSES_ALONE, Verdict.FAILS_ALONE)
            ):
                found[i] = self._cause(runs, d, spans, budget)

    def _cause(
        self, runs: Reruns, d: Diagnosis, spans: Mapping[str, Span], budget: diagnosis.Budget
    ) -> Diagnosis:
        failed_alone = d.verdict is Verdict.FAILS_ALONE
        before, elsewhere = self._predecessors(d.nodeid, spans)
        notes: list[str] = []

        def affordable(tests: tuple[str, ...], which: str, share: float) -> tuple[str, ...]:
            # A rerun after other tests costs as long as they ran: not tried when that is more
            # than the budget has left, or than its share of the budget.
            cost = _cost(tests, spans)
            left, cap = budget.left(time.monotonic()), share * budget.seconds
            if tests and cost > min(left, cap):
                if cap < left:
                    # The same next time: kept as failing alone, not rerun again for nothing.
                    self.capped.add(d.nodeid)
                notes.append(
                    _left_out(which, cost, _share(cap) if cap < left else "the budget left")
                )
                return ()
            return tests

        worker = f"the tests {d.worker} ran before it"
        facts = causes.Facts(
            d.nodeid,
            failed_alone,
            () if failed_alone else affordable(before, worker, 1.0),
            # Most failures that fail alone are real: the check for a needed test gets a
            # quarter of the budget, so a real failure late in a long suite costs no rerun of
            # half the suite in every run.
            affordable(elsewhere, ELSEWHERE, NEEDS_SHARE) if failed_alone else (),
            diagnosis.suspects_in_order(d.overlapped, d.touched),
            left_out=bool(notes),
        )
        finding = causes.drive(
            causes.classify(facts),
            lambda rerun: self._carry_out(runs, d.nodeid, rerun, spans, budget),
        )
        if finding.search is not None and finding.search.status is Search.DID_NOT_RUN:
            notes.append(
                "it did not run in a rerun after other tests: one of them ended the process, or "
                "a module failed to import there"
            )
        return d._replace(
            cause=finding.cause,
            search=finding.search,
            before=len(facts.worker_before),  # those it was rerun after
            elsewhere=len(facts.elsewhere_before),
            note="; ".join(notes),
        )

    def _carry_out(
        self,
        runs: Reruns,
        victim: str,
        rerun: causes.Rerun,
        spans: Mapping[str, Span],
        budget: diagnosis.Budget,
    ) -> Outcome | None:
        left = budget.left(time.monotonic())
        if left <= 0:
            return None
        if rerun.before:
            return runs.in_order(rerun.before, victim, left)
        # The suspects run in the order they started in the parallel run.
        beside = sorted(rerun.beside, key=lambda nodeid: spans[nodeid].start)
        return runs.beside(victim, beside, budget)

    def _touched(self) -> dict[str, tuple[str, ...]]:
        """What the audit saw each test touch, when --isolate-audit ran."""
        from . import audit, findings

        recorded = self.config.stash.get(audit.FINDINGS, {})
        return {
            nodeid: tuple(
                f"{f.kind}: {f.detail} "
                f"({'declare' if f.kind in findings.DECLARABLE else 'fix'}: {f.marker})"
                for f in found
            )
            for nodeid, found in recorded.items()
            if found
        }

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.diagnoses:
            return
        terminalreporter.write_sep("=", "isolate: failed tests rerun alone")
        lines = explain.format_section(self.diagnoses, len(self.failed), self.accept, self.passes)
        lines[-1:-1] = memory.remembered_lines(self.remembered)  # the summary stays last
        for line in lines:
            terminalreporter.write_line(line)

    def _junit_properties(self, text: str, case: Callable[[str], tuple[str, str]]) -> str:
        by_case = {
            case(nodeid): props
            for nodeid, props in explain.junit_properties(self.diagnoses).items()
        }
        return outputs.add_junit_properties(text, by_case)

    def _report_log_records(self, lines: list[str]) -> list[str]:
        records = [json.dumps(explain.report_log_record(d)) for d in self.diagnoses]
        return outputs.insert_records(lines, records)


#: The tests a failed-alone test is rerun after, in words.
ELSEWHERE = "its predecessors on other workers"


def _cost(tests: Sequence[str], spans: Mapping[str, Span]) -> float:
    """What rerunning ``tests`` costs: as long as they ran in the run."""
    return sum(spans[t].stop - spans[t].start for t in tests if t in spans)


def _share(cap: float) -> str:
    return f"a quarter of isolate_rerun_budget ({cap:g}s)"


def _left_out(which: str, cost: float, limit: str) -> str:
    return f"not rerun after {which}: they ran {cost:.1f}s, more than {limit}"
