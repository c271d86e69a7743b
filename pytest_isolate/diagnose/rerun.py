"""``--isolate-rerun-alone``: after a parallel run, rerun the failed tests alone.

On the controller, at the end of a run under ``-n``: each failed test (up to
``isolate_rerun_max``, within ``isolate_rerun_budget`` seconds) runs again in a fresh pytest
process, with no other test running. One that passes is reported as failing only in
parallel, with the tests that overlapped it on other workers and what the audit saw them
touch; where few did, trials narrow them down to the culprit. A trial starts the suspects in
one fresh process and, at the same moment, the victim in another, rerunning the victim while
the suspects still run: what a parallel run does to it, and nothing else.

The rules (caps, overlaps, bisection, verdicts, texts, kept arguments) are in
:mod:`.diagnosis`; this module holds the pytest side and the processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from .. import compat, options
from ..faults import interrupts
from ..faults.crashes import NEVER_RAN
from ..faults.timeouts import GRACE_SECONDS, stop_group
from ..provision.leases import Leases
from ..provision.tmpdirs import remove_dangling_links
from ..report import outputs
from ..report.reporter import Reporter
from ..report.reports import sort_key
from ..xdist.transport import is_local
from . import diagnosis, rerun_args
from .diagnosis import Caps, Diagnosis, Search, SearchResult, Span, Verdict

#: More failures than this many times isolate_rerun_max: no reruns at all.
BROKEN_BUILD = 5

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
        self.remote: list[str] = []
        self.diagnoses: list[Diagnosis] = []
        self.passes = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed:
            return
        self.failed_reports += 1
        if report.nodeid not in self.failed and str(report.longrepr) != NEVER_RAN:
            self.failed.append(report.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if not is_local(node.gateway):
            self.remote.append(str(node.gateway.id))

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
        chosen, left_out = diagnosis.select_reruns(failed, self.caps.tests)
        budget = diagnosis.Budget(self.caps.seconds, time.monotonic())
        if chosen:
            self._say(
                f"isolate: rerunning {len(chosen)} failed test(s) alone "
                f"(at most {self.caps.seconds:g}s)"
            )
        try:
            with interrupts.interrupting(), Reruns(self.config) as runs:
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
        self.reporter.after_run += time.monotonic() - budget.started
        self.diagnoses += [
            Diagnosis(nodeid, Verdict.NOT_RERUN, f"over isolate_rerun_max ({self.caps.tests})")
            for nodeid in left_out
        ]
        self.reporter.notes.update(diagnosis.timeline_notes(self.diagnoses))
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
            and session.exitstatus == pytest.ExitCode.TESTS_FAILED
            and (diagnosis.run_passes(failed, self.diagnoses))
        ):
            self.passes = True
            session.exitstatus = pytest.ExitCode.OK

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
        """Append a diagnosis per chosen test to ``found``, then add the culprit searches."""
        spans = {
            nodeid: Span(nodeid, worker, start, stop)
            for nodeid, (start, stop, worker, _) in self.reporter.spans().items()
        }
        touched = self._touched()
        for nodeid in chosen:
            left = budget.left(time.monotonic())
            if left <= 0:
                found.append(Diagnosis(nodeid, Verdict.NOT_RERUN, "isolate_rerun_budget spent"))
                continue
            verdict, detail = diagnosis.verdict_of(runs.run([nodeid], left))
            span = spans.get(nodeid)
            overlapped = diagnosis.overlapping(span, spans.values()) if span else ()
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
        # Culprit searches only once every chosen test has its verdict.
        for i, d in enumerate(found):
            if d.verdict is Verdict.PARALLEL_ONLY and d.overlapped:
                found[i] = d._replace(search=self._search(runs, d, budget))

    def _search(self, runs: Reruns, d: Diagnosis, budget: diagnosis.Budget) -> SearchResult:
        suspects = diagnosis.suspects_in_order(d.overlapped, d.touched)
        if len(suspects) > diagnosis.BISECT_MAX:
            return SearchResult(Search.TOO_MANY, suspects, 0)
        started = {span.nodeid: span.start for span in d.overlapped}
        search = diagnosis.bisect_culprit(suspects)
        trial = next(search)
        while True:
            # The suspects run in the order they started in the parallel run.
            beside = sorted(trial.beside, key=lambda nodeid: started[nodeid])
            reproduced = runs.beside(d.nodeid, beside, budget)
            if reproduced is None:
                search.close()
                return diagnosis.stopped_at(trial)
            try:
                trial = search.send(reproduced)
            except StopIteration as done:
                result: SearchResult = done.value
                return result

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
        lines = diagnosis.format_section(self.diagnoses, len(self.failed), self.accept, self.passes)
        for line in lines:
            terminalreporter.write_line(line)

    def _junit_properties(self, text: str, case: Callable[[str], tuple[str, str]]) -> str:
        by_case = {
            case(nodeid): props
            for nodeid, props in diagnosis.junit_properties(self.diagnoses).items()
        }
        return outputs.add_junit_properties(text, by_case)

    def _report_log_records(self, lines: list[str]) -> list[str]:
        records = [json.dumps(diagnosis.report_log_record(d)) for d in self.diagnoses]
        return outputs.insert_records(lines, records)


class Reruns:
    """Fresh pytest processes for reruns: the run's own options, no workers, no outputs.

    Each process gets its own basetemp, cache directory and throwaway outputs under one
    temporary directory, removed at the end, so the run's files, durations and last-failed
    list stay as the run left them.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cwd = Path(config.invocation_params.dir)
        self.rootdir = str(config.rootpath)
        self.kept = rerun_args.kept_args(config.invocation_params.args, _option_specs(config))
        self.count = 0
        self.scratch = Path(tempfile.mkdtemp(prefix="pytest-isolate-rerun-"))
        self.env = dict(os.environ)
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
            self.env.pop(name, None)

    def __enter__(self) -> Reruns:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        # A rerun whose test crashed it left its temp link (its directory went with the
        # scratch) and its port lease.
        remove_dangling_links(Path(tempfile.gettempdir()))
        Leases("ports").reclaim()

    def command(self, nodeids: Sequence[str]) -> tuple[list[str], Path]:
        self.count += 1
        here = self.scratch / f"run{self.count}"
        here.mkdir()
        config = self.config
        # A rerun never reruns anything itself, and its test timeouts end it.
        extra = ["--isolate-rerun-child", f"--rootdir={self.rootdir}"]
        if config.pluginmanager.hasplugin("pytest_cov"):
            # Else it would overwrite the run's own coverage data and reports with one test's.
            extra.append("--no-cov")
        extra.append(f"--basetemp={here / 'basetemp'}")
        if config.pluginmanager.has_plugin("cacheprovider"):
            # Its own cache; under -p no:cacheprovider the key is unknown (a warning, an
            # error under filterwarnings = error).
            extra += ["-o", f"cache_dir={here / 'cache'}"]
        if config.inipath is not None:
            extra += ["-c", str(config.inipath)]
        if options.xdist_loaded(config):
            extra += ["-n", "0", "--dist", "no"]  # wins over -n in addopts
        # Outputs set in addopts or the ini go to throwaway files.
        if config.getoption("xmlpath", None):
            extra.append(f"--junitxml={here / 'junit.xml'}")
        if config.getoption("report_log", None):
            extra.append(f"--report-log={here / 'report-log.jsonl'}")
        if config.getoption("isolate_timeline", None):
            extra.append(f"--isolate-timeline={here / 'timeline.html'}")
        if config.getoption("log_file", None) or config.getini("log_file"):
            extra.append(f"--log-file={here / 'log.txt'}")
        tests = [rerun_args.absolute_nodeid(self.rootdir, nodeid) for nodeid in nodeids]
        return [sys.executable, "-m", "pytest", *self.kept, *extra, *tests], here

    def start(self, nodeids: Sequence[str]) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        command, here = self.command(nodeids)
        output = open(here / "output.txt", "wb")  # noqa: SIM115 - closed by _stop
        process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped whole at the budget's end
        )
        return process, output

    def run(self, nodeids: Sequence[str], timeout: float) -> int | None:
        """The exit code of a fresh pytest process for ``nodeids``; None when out of time."""
        process, output = self.start(nodeids)
        try:
            return _wait(process, timeout)
        finally:
            _stop(process, output)

    def beside(self, victim: str, suspects: Sequence[str], budget: diagnosis.Budget) -> bool | None:
        """Does ``victim`` fail while ``suspects`` run? None when the budget ran out first.

        The suspects start in one process, the victim in another at the same moment, and
        the victim runs again for as long as the suspects still run.
        """
        others, output = self.start(suspects)
        try:
            while True:
                code = self.run([victim], budget.left(time.monotonic()))
                if code is None:
                    return None
                if code != 0:
                    return code == 1 or code < 0  # failed, or crashed, beside them
                if _wait(others, 0) is not None:
                    return False
        finally:
            _stop(others, output)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The exit code once the process ends, None if it runs past ``timeout``.

    The process is not reaped, so its process group id stays its own until ``_stop``.
    """
    if not hasattr(os, "waitid"):  # macOS before Python 3.13
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    deadline = time.monotonic() + timeout
    while True:
        try:
            ended = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        except ChildProcessError:
            return process.returncode  # reaped already
        if ended is not None and ended.si_pid:
            if ended.si_code == os.CLD_EXITED:
                return ended.si_status
            return -ended.si_status  # killed by a signal, as Popen says it
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes], output: IO[bytes]) -> None:
    """End the process and whatever it left running in its group (a test's children).

    SIGTERM first, so a pytest still running tears down (fixtures, its databases), then
    SIGKILL for what is left once it has ended or the grace period is over.
    """
    stop_group(process.pid, GRACE_SECONDS, ended=lambda: _wait(process, 0) is not None)
    process.wait()
    output.close()


def _option_specs(config: pytest.Config) -> dict[str, rerun_args.OptionSpec]:
    """Every command-line option string of this pytest, with its dest and arity."""
    specs = {}
    for name, action in compat.option_actions(config).items():
        nargs = action.nargs
        arity = (
            rerun_args.Arity.NONE
            if nargs == 0
            else rerun_args.Arity.OPTIONAL
            if nargs == "?"
            else rerun_args.Arity.ONE
        )
        specs[name] = rerun_args.OptionSpec(str(action.dest), arity)
    return specs
