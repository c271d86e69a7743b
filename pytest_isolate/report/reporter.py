"""The reporting adapter: pytest's and xdist's reports in stable order, the closing line and
the timeline page.

Input: the collection and its domains (known on the controller once the first worker has
collected, or in-process after collection), and the reports as pytest and xdist deliver them.
Output, whatever the worker count or timing:

- failure/error sections, the short summary, ``--junitxml`` and ``--report-log`` in
  collection order;
- with ``-v`` under xdist, each test's lines released through a reorder buffer, so domains
  come out whole and in order while the head of the run stays live;
- one closing line after pytest's own summary, and ``--isolate-timeline`` if asked for.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import pytest

from .. import compat
from ..declare.claims import TestClaims
from ..declare.domains import build_domains
from ..declare.markers import LATE_PROPERTY
from ..options import EXPLICIT_DIST
from ..schedule import durations
from ..schedule.autoscale import RunHistory
from . import reports


class Reporter:
    def __init__(self, config: pytest.Config, measured: defaultdict[str, float]) -> None:
        self.config = config
        self.measured = measured  # nodeid -> seconds, setup + call + teardown
        self._domain_number: dict[str, int] = {}
        self.nodeids: list[str] = []
        self.domains: list[tuple[int, ...]] = []
        self.claims: list[TestClaims] = []
        self.late: dict[str, str] = {}  # nodeid -> what it declared after collection
        self.positions: dict[str, int] = {}
        self.started = time.time()
        self._spans: dict[str, list[Any]] = {}  # nodeid -> [start, stop, worker, outcome]
        self.notes: dict[str, str] = {}  # nodeid -> a remark on its timeline bar (rerun.py)
        # More changes to the output files, made in the same pass as the reordering (rerun.py).
        self.junit_edits: list[Callable[[str, Callable[[str], tuple[str, str]]], str]] = []
        self.report_log_edits: list[Callable[[list[str]], list[str]]] = []
        # nodeid -> the audit's findings, hatched on its timeline bar (audit.py)
        self.audited: dict[str, tuple[str, ...]] = {}
        self.after_run = 0.0  # seconds spent once the tests ran (reruns): not the run's wall
        self._buffer: reports.ReorderBuffer[Callable[[], None]] | None = None
        # --isolate-shard: (K, N, the whole collection's node ids in output order).
        self.shard: tuple[int, int, list[str]] | None = None

    # -- the collection ------------------------------------------------------------------

    def set_collection(self, nodeids: Sequence[str], claims: Sequence[TestClaims]) -> None:
        if self.nodeids:
            return
        self.nodeids = list(nodeids)
        self.claims = list(claims)
        self.domains = build_domains(claims)
        self._domain_number = {
            self.nodeids[i]: number for number, domain in enumerate(self.domains) for i in domain
        }
        # The final report is in collection order; -v lines come a domain at a time.
        self.positions = {nodeid: i for i, nodeid in enumerate(self.nodeids)}
        dsession = self.config.pluginmanager.get_plugin("dsession")
        if dsession is not None and self.config.option.verbose > 0:
            sequence = reports.output_sequence(self.nodeids, self.domains)
            self._buffer = reports.ReorderBuffer(sequence)
            _buffer_dsession(dsession, self._buffer)

    # -- recording -----------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Three reports per test on the controller's busiest path: one hook for all of it.
        nodeid = report.nodeid
        self.measured[nodeid] += report.duration
        start = report.start
        # A crash report (xdist's, or a test that never ran) carries no times: it ends now.
        stop = report.stop if start else time.time()
        if not start:
            start = stop
        span = self._spans.get(nodeid)
        if span is None:
            span = self._spans[nodeid] = [start, stop, "main", ""]
        else:
            if start < span[0]:
                span[0] = start
            if stop > span[1]:
                span[1] = stop
        node = getattr(report, "node", None)
        if node is not None:
            span[2] = node.gateway.id
        span[3] = _outcome(report, span[3])
        if report.when == "call" and report.user_properties:
            for name, value in report.user_properties:
                if name == LATE_PROPERTY:
                    self.late[nodeid] = str(value)

    @pytest.hookimpl(optionalhook=True)  # xdist's hook: absent under -p no:xdist
    def pytest_handlecrashitem(self, crashitem: str) -> None:
        if self._buffer is not None:
            for release in self._buffer.done(crashitem):
                release()

    # -- ordering at the end, then the closing line ------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        # Outermost wrapper: sort before the terminal summarizes; the timeline comes last.
        if self._buffer is not None:
            for release in self._buffer.flush():
                release()
        self._sort_reports()
        try:
            return (yield)
        finally:
            if self._ran():
                work = sum(self.measured.get(nodeid, 0.0) for nodeid in self.nodeids)
                durations.store_run(
                    self.config, RunHistory(work, len(self.domains), len(self.nodeids))
                )
            timeline = self.config.getoption("isolate_timeline")
            if timeline and self._ran():
                try:
                    self.write_timeline(Path(timeline))
                except OSError as exc:  # checked at configure; the disk may still fill up
                    terminal = self.config.pluginmanager.get_plugin("terminalreporter")
                    if terminal is not None:
                        terminal.write_line(f"isolate: --isolate-timeline {timeline}: {exc}")

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self) -> Generator[None, None, None]:
        # After pytest's short summary, before its final "N passed in Xs" line, which tools
        # (and pytester) read as the last word of the run.
        try:
            return (yield)
        finally:
            if self.late:
                self._write_late_declarations()
            if self._ran() and self.config.pluginmanager.has_plugin("dsession"):
                # Only where tests ran on workers: in-process, pytest's own line says it all.
                self._write_closing_line()

    def _ran(self) -> bool:
        """Tests were collected to run (not --collect-only, not --isolate-plan)."""
        option = self.config.option
        return bool(self.nodeids) and not (option.isolate_plan or option.collectonly)

    def _sort_reports(self) -> None:
        if not self.positions:
            return
        key = reports.sort_key(self.positions)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for found in reporter.stats.values():
                found.sort(key=lambda rep: key(getattr(rep, "nodeid", None) or ""))

    def _write_late_declarations(self) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        key = reports.sort_key(self.positions)
        for nodeid in sorted(self.late, key=key):
            reporter.write_line(
                f"isolate: {nodeid} declared {self.late[nodeid]} while it ran (a fixture's "
                "request.applymarker?): the schedule was made at collection, so it was not "
                "enforced; declare it on the test, its class or module, or in "
                "pytest_collection_modifyitems"
            )

    def _write_closing_line(self) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        if self.config.stash.get(EXPLICIT_DIST, False):
            # xdist's own scheduler ran the tests: no domain was kept, no resource enforced.
            declared = sum(1 for claims in self.claims if not claims.is_plain)
            if declared:
                reporter.write_line(
                    f"isolate: --dist {self.config.option.dist} was given, so xdist's own "
                    f"scheduler ran the tests: the declarations of {declared} of them "
                    "(resource, serial, counted resources) were not enforced; leave --dist "
                    "out to have pytest-isolate schedule them"
                )
            return
        reporter.write_line(reports.format_summary(self.summary()))

    def summary(self) -> reports.RunSummary:
        """The run's figures, for the closing line and the timeline alike."""
        workers = 1
        if self.config.pluginmanager.has_plugin("dsession"):
            from ..xdist.scheduler import worker_count

            workers = worker_count(self.config)
        return reports.summarize(
            self.nodeids,
            self.domains,
            self.measured,
            workers,
            time.time() - self.started - self.after_run,
        )

    def write_timeline(self, path: Path) -> None:
        from .timeline import TimelineRecord, render_timeline

        records = [
            TimelineRecord(
                nodeid,
                worker,
                start,
                stop,
                outcome or "passed",
                self._domain_of(nodeid),
                self.notes.get(nodeid, ""),
                self.audited.get(nodeid, ()),
            )
            for nodeid, (start, stop, worker, outcome) in self._spans.items()
        ]
        key = reports.sort_key(self.positions)
        records.sort(key=lambda r: key(r.nodeid))
        title = f"pytest-isolate run, {time.ctime(self.started)}"
        page = render_timeline(records, title=title, summary=self.summary())
        path.write_text(page, encoding="utf-8")

    def spans(self) -> dict[str, tuple[float, float, str, str]]:
        """Each test's (start, stop, worker, outcome), setup start to teardown end."""
        return {nodeid: (s[0], s[1], s[2], s[3]) for nodeid, s in self._spans.items()}

    def _domain_of(self, nodeid: str) -> int:
        return self._domain_number.get(nodeid, -1)

    def rewrite_junitxml(self) -> None:
        """junitxml writes test cases as reports arrive: put them in output order, add the
        shard record and the reruns' properties (``junit_edits``), in one pass."""
        path = junit_file(self.config)
        if path is None or not (self.positions or self.shard or self.junit_edits):
            return
        from . import outputs, shardfiles  # only where there is a junit file

        case = junit_case(self.config)
        cases: dict[tuple[str, str], int] = {}
        for nodeid, position in self.positions.items():
            cases.setdefault(case(nodeid), position)
        text = outputs.reorder_junit(path.read_text(encoding="utf-8"), cases)
        if self.shard is not None:
            k, n, order = self.shard
            text = shardfiles.annotate_junit(text, k, n, [(i, *case(i)) for i in order])
        for edit in self.junit_edits:
            text = edit(text, case)
        path.write_text(text, encoding="utf-8")

    def rewrite_report_log(self) -> None:
        """The same for the --report-log file (``report_log_edits``)."""
        path = report_log_file(self.config)
        if path is None or not (self.positions or self.shard or self.report_log_edits):
            return
        from . import outputs, shardfiles

        lines = path.read_text(encoding="utf-8").splitlines()
        lines = outputs.reorder_report_log(lines, self.positions, reports.sort_key(self.positions))
        if self.shard is not None:
            lines = shardfiles.annotate_report_log(lines, *self.shard)
        for edit in self.report_log_edits:
            lines = edit(lines)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def junit_file(config: pytest.Config) -> Path | None:
    """The --junitxml file this run wrote, if any: rewritten after junitxml is done."""
    raw = config.getoption("xmlpath", None)
    if not raw:
        return None
    path = Path(config.invocation_params.dir) / raw
    return path if path.exists() else None


def report_log_file(config: pytest.Config) -> Path | None:
    """The --report-log file this run wrote, if any and not compressed."""
    raw = config.getoption("report_log", None)
    if not raw or Path(raw).suffix in (".gz", ".bz2", ".xz"):
        return None
    path = Path(config.invocation_params.dir) / raw
    return path if path.exists() else None


def junit_case(config: pytest.Config) -> Callable[[str], tuple[str, str]]:
    """Node id -> (classname, name) of its junit test case, as junitxml names it."""
    prefix = config.getoption("junitprefix", None)

    def case(nodeid: str) -> tuple[str, str]:
        names = compat.junit_address(nodeid)
        return ".".join(([prefix] if prefix else []) + names[:-1]), names[-1]

    return case


def _outcome(report: pytest.TestReport, previous: str) -> str:
    if previous in ("failed", "error"):
        return previous
    if report.failed:
        return "failed" if report.when in ("call", "???") else "error"
    if report.skipped:
        return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    if report.when == "call":
        return "xpassed" if hasattr(report, "wasxfail") else "passed"
    return previous


def _buffer_dsession(dsession: Any, buffer: reports.ReorderBuffer[Callable[[], None]]) -> None:
    """Route xdist's per-test events through the reorder buffer.

    Only the hook calls are delayed: ``-x``/``--maxfail`` bookkeeping stays immediate.
    """
    hook = dsession.config.hook

    def release(events: list[Callable[[], None]]) -> None:
        for event in events:
            event()

    def worker_logstart(node: Any, nodeid: str, location: Any) -> None:
        release(
            buffer.add(
                nodeid, lambda: hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
            )
        )

    def worker_testreport(node: Any, rep: pytest.TestReport) -> None:
        rep.node = node  # type: ignore[attr-defined]
        release(buffer.add(rep.nodeid, lambda: hook.pytest_runtest_logreport(report=rep)))
        compat.count_failure(dsession, rep)

    def worker_logfinish(node: Any, nodeid: str, location: Any) -> None:
        release(
            buffer.add(
                nodeid, lambda: hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)
            )
        )
        release(buffer.done(nodeid))

    compat.route_test_events(dsession, worker_logstart, worker_testreport, worker_logfinish)
