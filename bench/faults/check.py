"""Invariants on a finished run of a generated suite (see README.md for what each means).

Input: the suite's spec, a :class:`~bench.faults.run.PytestRun` and its workspace. Output: a
:class:`Checks` that counts every check made, by invariant, and holds the violations, each
with an excerpt of the evidence.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .generate import (
    EXIT,
    HANG,
    KEYBOARD_INTERRUPT,
    SEGFAULT,
    SIGKILL,
    TEARDOWN_ERROR,
    SuiteSpec,
)
from .run import PytestRun, Workspace

NO_HANG = "0-no-hang"
ONE_OUTCOME = "1-one-outcome"
ORDER = "1-collection-order"
NO_OVERLAP = "2-no-overlap"
NO_INTERNAL_ERROR = "3-no-internal-error"
EXIT_CODE = "4-exit-code"
OUTCOMES = "4-outcomes"
NOTHING_LEFT = "5-nothing-left"

INVARIANTS = (
    NO_HANG,
    ONE_OUTCOME,
    ORDER,
    NO_OVERLAP,
    NO_INTERNAL_ERROR,
    EXIT_CODE,
    OUTCOMES,
    NOTHING_LEFT,
)

#: What each crash-like fault's failure must say.
CRASH_TEXT = {
    SEGFAULT: ("crashed", "SIGSEGV"),
    EXIT: ("crashed", "exited with code 1"),
    SIGKILL: ("crashed", "SIGKILL"),
    HANG: ("Timeout: ",),
    KEYBOARD_INTERRUPT: ("crashed",),
}

#: The output says the run was stopped before its end.
INTERRUPTED = re.compile(
    r"^!+ .*(KeyboardInterrupt|Interrupted|stopping after \d+ failures).*!+$"
    r"|^!+ KeyboardInterrupt !+$",
    re.M,
)
SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", re.M)
#: A frame of pytest's long tracebacks (``path.py:12: in function``) in the plugin.
#: pytest's last line: "==== 3 passed, 1 failed in 2.31s ====".
FINAL_LINE = re.compile(r"^=+ .* in [\d.]+s(?: \([\d:]+\))? =+$", re.MULTILINE)
PYTEST_PLUGIN_FRAME = re.compile(r"pytest_isolate/[\w/]+\.py:\d+: in ")
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)')


@dataclass
class PythonTraceback:
    """One ``Traceback (most recent call last):`` block of the output."""

    frames: list[tuple[str, int, str]]  # (file, line, function), outermost first
    error: str  # the exception line
    text: str  # the block, shortened

    @property
    def where(self) -> str:
        if not self.frames:
            return "?"
        path, line, function = self.frames[-1]
        return f"{path.rsplit('/', 1)[-1]}:{line} in {function}"

    @property
    def raised_in_plugin(self) -> bool:
        return bool(self.frames) and "pytest_isolate/" in self.frames[-1][0]


def python_tracebacks(output: str) -> list[PythonTraceback]:
    found = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        at = line.find("Traceback (most recent call last):")
        if at < 0:
            continue
        frames = []
        error = ""
        j = i + 1
        while j < len(lines) and j < i + 400:
            match = _FRAME.match(lines[j])
            if match:
                frames.append((match.group(1), int(match.group(2)), match.group(3)))
            elif lines[j] and not lines[j].startswith(" "):
                error = lines[j]
                break
            j += 1
        block = lines[i : j + 1]
        text = "\n".join(s[:240] for s in [*block[:6], "...", *block[-14:]])
        found.append(PythonTraceback(frames, error, text))
    return found


@dataclass
class Violation:
    seed: int
    run: str
    invariant: str
    message: str
    excerpt: str = ""

    @property
    def reproduce(self) -> str:
        return f"python -m bench.faults --runs 1 --seed {self.seed}"


@dataclass
class Checks:
    counts: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)

    def add(self, other: Checks) -> None:
        self.counts.update(other.counts)
        self.violations += other.violations


@dataclass
class Outcome:
    """A test's reports, folded: its one outcome and what came with it."""

    primary: list[str] = field(default_factory=list)  # "passed"/"failed"/"error"/"skipped"
    teardown_error: bool = False
    longrepr: str = ""

    @property
    def outcome(self) -> str | None:
        return self.primary[0] if self.primary else None


def read_report_log(path: Path) -> tuple[dict[str, Outcome], list[str], int | None, str | None]:
    """Outcomes by node id, node ids in order of first report, the exit status and a problem."""
    outcomes: dict[str, Outcome] = {}
    order: list[str] = []
    exitstatus: int | None = None
    if not path.exists():
        return outcomes, order, None, f"no report log at {path}"
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError as exc:
            return outcomes, order, exitstatus, f"unparsable report log line: {exc}"
        kind = record.get("$report_type")
        if kind == "SessionFinish":
            exitstatus = int(record.get("exitstatus", -1))
        if kind != "TestReport":
            continue
        nodeid, when, result = record["nodeid"], record["when"], record["outcome"]
        if nodeid not in outcomes:
            outcomes[nodeid] = Outcome()
            order.append(nodeid)
        folded = outcomes[nodeid]
        if result == "failed":
            folded.longrepr += _text(record.get("longrepr"))
        if when == "setup" and result != "passed":
            folded.primary.append("error" if result == "failed" else result)
        elif when in ("call", "???"):
            folded.primary.append(result)
        elif when == "teardown" and result == "failed":
            folded.teardown_error = True
    return outcomes, order, exitstatus, None


def _text(longrepr: object) -> str:
    if longrepr is None:
        return ""
    if isinstance(longrepr, str):
        return longrepr
    return json.dumps(longrepr)


def read_junit(path: Path, spec: SuiteSpec) -> tuple[list[str], int, str | None]:
    """Node ids of the testcases, in file order (unknown ones as ``?classname::name``), and
    how many testcases have no name: pytest's junitxml writes ``<testcase time=".."/>`` for
    a test that had its setup report and no other when the run was interrupted (plain
    pytest and xdist alike)."""
    by_case = {
        (t.module[: -len(".py")] + (f".{t.klass}" if t.klass else ""), t.name): t.nodeid
        for t in spec.tests
    }
    if not path.exists():
        return [], 0, f"no JUnit XML at {path}"
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        return [], 0, f"JUnit XML does not parse: {exc}"
    found = []
    nameless = 0
    for case in tree.iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        if key == ("", ""):
            nameless += 1
            continue
        found.append(by_case.get(key, f"?{key[0]}::{key[1]}"))
    return found, nameless, None


def read_checker(space: Workspace) -> tuple[list[str], list[str]]:
    """The overlap checker's violations and the node ids it saw start."""
    violations_path = space.check / "violations.txt"
    violations = violations_path.read_text().splitlines() if violations_path.exists() else []
    started: list[str] = []
    log = space.check / "log.jsonl"
    if log.exists():
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if record["event"] == "start" and record["nodeid"] not in started:
                started.append(record["nodeid"])
    return violations, started


def excerpt(output: str, pattern: str, around: int = 3, limit: int = 30) -> str:
    """Lines of ``output`` around the first match of ``pattern``, shortened."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if re.search(pattern, line):
            chosen = lines[max(0, i - around) : i + limit - around]
            return "\n".join(s[:300] for s in chosen)
    return ""


def tail(output: str, count: int = 25) -> str:
    return "\n".join(s[:300] for s in output.splitlines()[-count:])


def check_run(spec: SuiteSpec, run: PytestRun, space: Workspace) -> Checks:
    checks = Checks()

    def check(invariant: str, ok: bool, message: str, evidence: str = "") -> bool:
        checks.counts[invariant] += 1
        if not ok:
            checks.violations.append(Violation(spec.seed, run.label, invariant, message, evidence))
        return ok

    # 0. The run ended by itself.
    if not check(
        NO_HANG,
        not run.hard_timeout,
        f"pytest still ran after {run.seconds:.0f}s (hard timeout): killed",
        tail(run.output),
    ):
        return checks

    outcomes, log_order, _, log_problem = read_report_log(run.report_log)
    junit, nameless, junit_problem = read_junit(run.junit, spec)
    overlaps, started = read_checker(space)
    output = run.output
    selected = set(run.selected)
    reported = {nodeid for nodeid, o in outcomes.items() if o.primary}
    failed_any = any(
        o.outcome in ("failed", "error") or o.teardown_error for o in outcomes.values()
    )

    # Was the run cut short, and for a reason we caused?
    interrupted = INTERRUPTED.search(output)
    ki_ran = any(
        t.fault is not None
        and t.fault.kind == KEYBOARD_INTERRUPT
        and (t.nodeid in reported or t.nodeid in started)
        for t in spec.tests
    )
    exitfirst_hit = spec.options.exitfirst and failed_any
    signalled = run.signal_sent is not None
    traces = python_tracebacks(output)
    # Our signal raised KeyboardInterrupt where pytest does not catch it (before or after the
    # session: start-up, session finish, unconfigure) and not in the plugin's code: Python
    # prints the traceback and dies of SIGINT. pytest's limits, not the plugin's: the run is
    # cut short, and may have no JUnit XML, no summary and exit code -2.
    late_signal = signalled and any(
        t.error.startswith("KeyboardInterrupt") and not t.raised_in_plugin for t in traces
    )
    cut_short = late_signal or (interrupted is not None and (signalled or ki_ran or exitfirst_hit))
    check(
        ONE_OUTCOME,
        interrupted is None or cut_short,
        "the output says the run was interrupted, but no signal, KeyboardInterrupt or -x "
        "explains it",
        excerpt(output, INTERRUPTED.pattern) if interrupted else "",
    )

    # 1. Every selected test has exactly one outcome (or the run was cut short, and then
    #    the terminal's summary names exactly the tests that have one).
    check(ONE_OUTCOME, log_problem is None, log_problem or "", tail(output))
    # pytest writes the JUnit XML at session finish, which an interruption during session
    # start (xdist starting its workers) skips: then no test may have run.
    nothing_ran = not outcomes and not started
    check(
        ONE_OUTCOME,
        junit_problem is None
        or late_signal
        or (cut_short and nothing_ran and not run.junit.exists()),
        junit_problem or "",
        tail(output),
    )
    for nodeid, folded in outcomes.items():
        check(
            ONE_OUTCOME,
            len(folded.primary) <= 1,
            f"{nodeid}: {len(folded.primary)} outcomes {folded.primary}",
            excerpt(output, re.escape(nodeid)),
        )
        check(
            ONE_OUTCOME,
            nodeid in selected,
            f"{nodeid}: reported, but not selected",
            excerpt(output, re.escape(nodeid)),
        )
    for nodeid in started:
        check(ONE_OUTCOME, nodeid in selected, f"{nodeid}: started, but not selected")
    missing = [n for n in run.selected if n not in reported]
    if late_signal:
        pass  # pytest's session finish may not have run: no summary to compare with
    elif cut_short:
        listed = {m.group(2) for m in SUMMARY_LINE.finditer(_summary(output))}
        check(
            ONE_OUTCOME,
            listed == reported,
            "interrupted run: the short summary does not list exactly the tests with an "
            f"outcome (summary only: {sorted(listed - reported)}; reports only: "
            f"{sorted(reported - listed)})",
            excerpt(output, "short test summary info", 1, 40),
        )
    else:
        check(
            ONE_OUTCOME,
            not missing,
            f"no outcome for {len(missing)} selected test(s): {missing[:8]}"
            + (f" (they started: {[m for m in missing if m in started][:8]})" if started else ""),
            tail(output),
        )
    if junit_problem is None and log_problem is None:
        unfinished = [n for n, o in outcomes.items() if not o.primary]
        check(
            ONE_OUTCOME,
            nameless == 0 or (cut_short and nameless <= len(unfinished)),
            f"{nameless} nameless <testcase> in the JUnit XML ({len(unfinished)} tests started "
            f"and had no outcome; cut short: {cut_short})",
        )
        counts = Counter(junit)
        check(
            ONE_OUTCOME,
            set(counts) == reported and all(c == 1 for c in counts.values()),
            "JUnit XML and report log disagree: "
            f"JUnit only {sorted(set(counts) - reported)[:6]}, report log only "
            f"{sorted(reported - set(counts))[:6]}, repeated "
            f"{sorted(n for n, c in counts.items() if c > 1)[:6]}",
        )
        expected_order = [n for n in run.selected if n in reported]
        # The plugin puts both files in order in pytest_unconfigure: a late signal that
        # ends the process in another plugin's unconfigure, before it, leaves them as the
        # writers left them (seed 360: Ctrl-C in pytest's unraisableexception teardown).
        in_order = late_signal or [n for n in junit if n in reported] == expected_order
        check(
            ORDER,
            in_order,
            "JUnit XML not in collection order",
            f"junit: {junit}\ncollection: {expected_order}",
        )
        check(
            ORDER,
            late_signal or [n for n in log_order if n in reported] == expected_order,
            "report log not in collection order",
            f"report log: {log_order}\ncollection: {expected_order}",
        )

    # 2. No two conflicting tests ran at once (the checker conftest's records).
    check(
        NO_OVERLAP,
        not overlaps,
        f"{len(overlaps)} overlap(s) recorded by the checker conftest",
        "\n".join(overlaps[:10]),
    )

    # 3. No INTERNALERROR, no traceback of the plugin or of pytest itself.
    check(
        NO_INTERNAL_ERROR,
        "INTERNALERROR" not in output,
        "INTERNALERROR in the output",
        excerpt(output, "INTERNALERROR", 2, 40),
    )
    for trace in traces:
        # Raised in the plugin's code: its own. Raised elsewhere while a signal we sent was
        # being handled: Python's or pytest's KeyboardInterrupt outside the session (pytest
        # catches it only around the run): not the plugin's. Anything else: a violation too.
        ours = trace.raised_in_plugin
        check(
            NO_INTERNAL_ERROR,
            not ours and (signalled or ki_ran),
            f"a Python traceback ({trace.error[:120]}) raised in "
            + ("pytest_isolate's code" if ours else f"{trace.where}, no signal sent"),
            trace.text,
        )
    frame = PYTEST_PLUGIN_FRAME.search(output)
    check(
        NO_INTERNAL_ERROR,
        frame is None,
        "a pytest-style traceback through pytest_isolate's code in the output",
        excerpt(output, PYTEST_PLUGIN_FRAME.pattern, 10, 40),
    )
    check(
        NO_INTERNAL_ERROR,
        "Exception ignored" not in output,
        "'Exception ignored' in the output",
        excerpt(output, "Exception ignored", 2, 20),
    )

    # 4. The exit code, and each test's outcome.
    if signalled and run.signal_at is not None:
        check(
            EXIT_CODE,
            interrupted is not None or run.seconds - run.signal_at < 1.0,
            f"{run.signal_sent} reached the controller at {run.signal_at:.2f}s, but the run "
            f"was not interrupted: it went on to {run.seconds:.2f}s and exited with "
            f"{run.returncode}",
            tail(output, 12),
        )
    allowed = _expected_exit(spec, run, cut_short, bool(signalled), failed_any, ki_ran)
    if late_signal:
        allowed.add(-2)  # Python re-raises the uncaught SIGINT to die of it
    if run.returncode == -15 and "SIGTERM" in str(run.signal_sent) and FINAL_LINE.search(output):
        # The run was over (its last line written) and the user's handler back, the default
        # one: the SIGTERM ended the process, as it ends any program.
        allowed.add(-15)
    check(
        EXIT_CODE,
        run.returncode in allowed,
        f"exit code {run.returncode}, expected {sorted(allowed)}"
        + (" (cut short)" if cut_short else ""),
        tail(output, 12),
    )
    for nodeid in reported:
        test = spec.test(nodeid)
        if test is None:
            continue  # reported, but no such test: counted above
        folded = outcomes[nodeid]
        got = folded.outcome
        want = test.expected
        fault = test.fault
        crashed_by_us = (
            (signalled or ki_ran)
            and got == "failed"
            and ("crashed" in folded.longrepr or "KeyboardInterrupt" in folded.longrepr)
        )
        check(
            OUTCOMES,
            got == want or crashed_by_us,
            f"{nodeid} ({fault.label if fault else 'no fault'}): {got}, expected {want}",
            folded.longrepr[:1500] or excerpt(output, re.escape(nodeid)),
        )
        if got == "passed":
            want_td = fault is not None and fault.kind == TEARDOWN_ERROR
            check(
                OUTCOMES,
                folded.teardown_error == want_td,
                f"{nodeid}: teardown error {folded.teardown_error}, expected {want_td}",
                folded.longrepr[:1500],
            )
        if fault is not None and fault.kind in CRASH_TEXT and got == "failed":
            words = CRASH_TEXT[fault.kind]
            if spec.options.workers is None and fault.kind == KEYBOARD_INTERRUPT:
                continue
            check(
                OUTCOMES,
                all(w in folded.longrepr for w in words),
                f"{nodeid} ({fault.label}): the failure does not say {words}",
                folded.longrepr[:1500],
            )

    # 5. Nothing left behind.
    check(
        NOTHING_LEFT,
        not run.leftovers,
        f"{len(run.leftovers)} process(es) of the run alive after pytest exited",
        "\n".join(run.leftovers),
    )
    leases = sorted(str(p.relative_to(space.leases)) for p in space.leases.rglob("*.lease"))
    holders = sorted({_holder(space.leases / p, run) for p in leases})
    check(
        NOTHING_LEFT,
        not leases,
        f"{len(leases)} lease file(s) left in the run's lease dir, held by: {'; '.join(holders)}",
        "\n".join(_lease_text(space.leases / p, run) for p in leases[:4]),
    )
    runs_dir = space.leases / "runs"
    records = sorted(p.name for p in runs_dir.iterdir()) if runs_dir.is_dir() else []
    check(NOTHING_LEFT, not records, f"run records left: {records}")
    left_tmp = sorted(p.name for p in space.tmp.iterdir())
    check(
        NOTHING_LEFT,
        not left_tmp,
        f"left in TMPDIR (outside the basetemp): {left_tmp[:10]}",
    )
    return checks


def _lease_text(path: Path, run: PytestRun) -> str:
    try:
        return f"{path.name}: {path.read_text()[:300]} ({_holder(path, run)})"
    except OSError as exc:
        return f"{path.name}: {exc}"


def _holder(path: Path, run: PytestRun) -> str:
    try:
        pid = int(json.loads(path.read_text())["holder"]["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable lease"
    alive = Path(f"/proc/{pid}").exists()
    return f"{run.role(pid)}, {'alive' if alive else 'dead'}"


def _summary(output: str) -> str:
    """The short test summary section (empty if there is none)."""
    at = output.rfind("short test summary info")
    return output[at:] if at >= 0 else ""


def _expected_exit(
    spec: SuiteSpec,
    run: PytestRun,
    cut_short: bool,
    signalled: bool,
    failed_any: bool,
    ki_ran: bool,
) -> set[int]:
    if cut_short:
        if signalled or ki_ran:
            return {2}
        # -x alone: in-process pytest ends normally (1). Under xdist, DSession raises
        # Interrupted (2) after a failure it counts, but a crashed worker's test does not
        # count toward --maxfail there: the run then goes on and ends with 1 (plain xdist
        # does the same).
        return {1} if spec.options.workers is None else {1, 2}
    if not run.selected:
        return {0} if spec.options.shard else {5}
    allowed = {1} if failed_any else {0}
    if signalled:
        allowed.add(2)  # the signal came as the run ended: it may still say interrupted
    return allowed
