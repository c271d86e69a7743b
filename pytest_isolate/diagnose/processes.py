"""The fresh pytest processes of ``--isolate-rerun-alone``: a test alone, tests in a given order
then the victim (reading back each test's outcome), or the victim beside other tests.

Each process runs the run's own options, no workers and no outputs of the run's, in its own
process group, stopped whole when the time budget ends.
"""

from __future__ import annotations

import json
import locale
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from .. import compat, options
from ..faults.timeouts import GRACE_SECONDS, stop_group
from ..provision.leases import Leases
from ..provision.tmpdirs import remove_dangling_links
from . import diagnosis, rerun_args
from .diagnosis import Outcome


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
        args = _expanded(config.invocation_params.args, self.cwd)
        self.kept = rerun_args.kept_args(args, _option_specs(config))
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
        # A rerun never reruns anything itself, and its test timeouts end it. Each test's
        # outcome goes to a file of its own (the exit code tells only the whole process's).
        extra = [
            "--isolate-rerun-child",
            f"--rootdir={self.rootdir}",
            f"--isolate-rerun-outcomes={here / 'outcomes.jsonl'}",
        ]
        if config.pluginmanager.has_plugin("randomly"):
            # The tests run in the order given: pytest-randomly would shuffle them.
            extra.append("--randomly-dont-reorganize")
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
        if len(tests) > 1 and all(_listable(test) for test in tests):
            # Thousands of node ids overflow the command line (E2BIG): pytest reads them from
            # a file, one per line (argparse's @file).
            listed = here / "tests.txt"
            listed.write_text("".join(f"{test}\n" for test in tests), encoding="utf-8")
            tests = [f"@{listed}"]
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

    def in_order(self, tests: Sequence[str], victim: str, timeout: float) -> Outcome | None:
        """The victim's outcome when it runs after ``tests``, in that order, in one fresh
        process; None when out of time."""
        process, output = self.start([*tests, victim])
        outcomes = self.scratch / f"run{self.count}" / "outcomes.jsonl"
        try:
            if _wait(process, timeout) is None:
                return None
        finally:
            _stop(process, output)
        return outcome_of(victim, outcomes)

    def beside(
        self, victim: str, suspects: Sequence[str], budget: diagnosis.Budget
    ) -> Outcome | None:
        """The victim's outcome while ``suspects`` run; None when the budget ran out first,
        NOT_RUN when none of the suspects ran (their process ended before them).

        The suspects start in one process, the victim in another at the same moment, and
        the victim runs again for as long as the suspects still run.
        """
        others, output = self.start(suspects)
        theirs = self.scratch / f"run{self.count}" / "outcomes.jsonl"
        try:
            while True:
                code = self.run([victim], budget.left(time.monotonic()))
                if code is None:
                    return None
                if code == 1 or code < 0:
                    return Outcome.FAILED  # failed, or crashed, beside them
                if code != 0:
                    return Outcome.NOT_RUN  # a usage or internal error: nothing shown
                if _wait(others, 0) is not None:
                    break
        finally:
            _stop(others, output)
        ran = any(outcome_of(test, theirs) is not Outcome.NOT_RUN for test in suspects)
        return Outcome.PASSED if ran else Outcome.NOT_RUN


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


class OutcomeLog:
    """In a rerun's process: each test's start and the outcome of each of its phases, one JSON
    line each, flushed at once, so a process that dies mid-test still tells who started."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed at unconfigure

    def _write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self._write({"nodeid": nodeid, "when": "start"})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._write({"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome})

    def pytest_unconfigure(self) -> None:
        self.file.close()


def outcome_of(nodeid: str, path: Path) -> Outcome:
    """The test's outcome from an :class:`OutcomeLog` file."""
    started = failed = finished = False
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return Outcome.NOT_RUN
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the last line of a process killed while writing it
        if record.get("nodeid") != nodeid:
            continue
        when = record.get("when")
        started = True
        failed = failed or record.get("outcome") == "failed"
        finished = finished or when == "teardown"
    if not started:
        return Outcome.NOT_RUN
    # Started and never torn down: its process died while it ran.
    return Outcome.FAILED if failed or not finished else Outcome.PASSED


def _expanded(args: Sequence[str], where: Path, depth: int = 0) -> list[str]:
    """The arguments with each ``@file`` replaced by its lines, as pytest's argparse reads
    them: a rerun keeps the options the user put in such a file."""
    found: list[str] = []
    for arg in args:
        if not arg.startswith("@") or depth > 8:
            found.append(arg)
            continue
        try:
            lines = (where / arg[1:]).read_text().splitlines()
        except OSError:
            found.append(arg)  # not a file: argparse says so in the rerun too
            continue
        found += _expanded(lines, where, depth + 1)
    return found


def _listable(test: str) -> bool:
    """argparse reads an @file in the locale's encoding and splits it with splitlines()."""
    if len(test.splitlines()) != 1:
        return False
    return test.isascii() or locale.getpreferredencoding(False).lower().replace("-", "") == "utf8"


#: At most this long, the reruns wait for the run's workers to be gone: a worker killed
#: mid-test (the OOM killer) may take seconds to exit, and holds its files and ports till then.
WORKERS_EXIT_SECONDS = 5.0


def wait_for_exit(workers: Sequence[subprocess.Popen[bytes]], seconds: float) -> None:
    """Until every worker process has exited (reaping it), or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    for popen in workers:
        try:
            popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, OSError):
            continue  # still exiting, or reaped elsewhere: the reruns go on
