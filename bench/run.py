"""Time whole pytest processes on the synthetic suites: pytest-isolate against its peers.

``python -m bench.run [--quick] [--runs N] [--out bench/results.md] [--only a,c,...]``

Per suite, every contender (and the start-up probe) runs once as a warm-up, not counted, then
once per round, in an order that rotates each round so drift on a noisy machine hits every
contender alike. The report gives median wall times and pytest-isolate's median divided by each
peer's. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from statistics import median as median_of

from pytest_isolate.declare.claims import TestClaims
from pytest_isolate.schedule.dispatch import Action, Dispatcher, Send
from pytest_isolate.schedule.plan import module_of, plan_collection

from . import suites
from .suites import Suite

STARTUP = "start-up"  # isolate's command on a one-test suite; not a contender
# hypothesis is this project's test dependency, not the users': its plugin imports all of
# hypothesis at the end of every process (~0.15 s each), which would dilute every ratio.
COMMON = ("-q", "-p", "no:randomly", "-p", "no:hypothesispytest")
PEER = ("-p", "no:isolate")  # the plugin truly absent; pytest's default plugins, as users run
PEER_CACHE = ".peer_cache"  # the peers' cache provider writes here, not into isolate's history
TIMEOUT = 1200.0
PLANNING_TESTS = 50_000
PLANNING_WORKERS = 2
PLANNING_REPEATS = 3


class BenchError(RuntimeError):
    """A run failed or hung: the numbers would mean nothing, so the benchmark stops."""


def pytest_args(contender: str, numprocesses: str, cache_dir: Path) -> list[str]:
    peer = [*COMMON, *PEER, "-o", f"cache_dir={cache_dir.with_name(PEER_CACHE)}"]
    if contender == "serial":
        return peer
    if contender.startswith("xdist-"):
        dist = contender.removeprefix("xdist-")
        return [*peer, "-n", numprocesses, "--dist", dist]
    if contender in ("isolate", STARTUP, suites.AUDIT):
        # Keeps its cache, so every counted round plans from the durations recorded before.
        isolate = [*COMMON, "-p", "isolate", "-n", numprocesses, "-o", f"cache_dir={cache_dir}"]
        return [*isolate, "--isolate-audit"] if contender == suites.AUDIT else isolate
    raise ValueError(f"unknown contender {contender!r}")


def command(contender: str, numprocesses: str, cache_dir: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", *pytest_args(contender, numprocesses, cache_dir)]


def _environment() -> dict[str, str]:
    # No PYTEST_ADDOPTS, PYTEST_PLUGINS or PYTEST_ISOLATE_* from the caller's shell, and
    # bytecode caching on as on a developer's machine: with PYTHONDONTWRITEBYTECODE set,
    # pytest re-rewrites and recompiles every plugin module in every process, every run.
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTEST_") and k != "PYTHONDONTWRITEBYTECODE"
    }


def time_run(cmd: Sequence[str], cwd: Path) -> float:
    """Wall seconds of one pytest process, which must exit 0."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {TIMEOUT:.0f} s: {shlex.join(cmd)} (in {cwd})") from exc
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(
            f"exit {proc.returncode}: {shlex.join(cmd)} (in {cwd})\n"
            f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
        )
    return wall


def rotation(names: Sequence[str], round_: int) -> list[str]:
    """Round r starts with the r-th name: A B C, then B C A, then C A B, ..."""
    shift = round_ % len(names)
    return [*names[shift:], *names[:shift]]


@dataclass(frozen=True)
class SuiteResult:
    suite: Suite
    times: dict[str, list[float]]  # contender (and STARTUP) -> wall seconds per counted round
    # The warm-up round's walls: for isolate, the run without history (a fresh suite).
    first: dict[str, float]

    def median(self, name: str) -> float:
        return median_of(self.times[name])

    def ratio(self, peer: str) -> float:
        return self.median("isolate") / self.median(peer)

    @property
    def makespan(self) -> float:  # isolate's median less its start-up: running the tests
        return self.median("isolate") - self.median(STARTUP)


def bench_suite(suite: Suite, startup_dir: Path, rounds: int) -> SuiteResult:
    suites.write_startup(startup_dir)
    entries = [*suite.contenders, STARTUP]
    where = {name: suite.path for name in suite.contenders} | {STARTUP: startup_dir}
    times: dict[str, list[float]] = {name: [] for name in entries}
    first: dict[str, float] = {}
    rounds = suite.runs or rounds
    for round_ in range(rounds + 1):  # round 0 is the warm-up
        for name in rotation(entries, round_):
            cmd = command(name, suite.numprocesses, where[name] / ".isolate_cache")
            wall = time_run(cmd, where[name])
            label = "warm-up" if round_ == 0 else f"round {round_}/{rounds}"
            progress = f"[{suite.letter}] {suite.name:12} {label:11} {name:16} {wall:7.2f} s"
            print(progress, file=sys.stderr, flush=True)
            if round_:
                times[name].append(wall)
            else:
                first[name] = wall
    return SuiteResult(suite, times, first)


# -- planning cost at scale --------------------------------------------------------------------


@dataclass(frozen=True)
class PlanningCost:
    tests: int
    plan_seconds: float  # plan_collection alone; median of PLANNING_REPEATS, no tracemalloc
    seconds: float  # plan_collection, then the Dispatcher built and drained; likewise
    peak_mib: float  # tracemalloc's peak during one more plan-and-drain; inputs not counted


def plan_and_drain(
    nodeids: Sequence[str], claims: Sequence[TestClaims], recorded: dict[str, float], workers: int
) -> int:
    """Plan, then dispatch everything to simulated xdist workers; returns tests completed.

    Like xdist, a worker runs its head test only once another test (or the shutdown) is queued
    behind it, and the scheduler is asked for more after every completion.
    """
    planned = plan_collection(nodeids, claims, recorded, workers)
    dispatcher = Dispatcher(
        planned.plan,
        claims,
        planned.estimates,
        {},
        guessed=[i for i, nodeid in enumerate(nodeids) if nodeid not in recorded],
        modules=[module_of(nodeid) for nodeid in nodeids],
    )
    names = [f"gw{i}" for i in range(workers)]
    for name in names:
        dispatcher.add_worker(name)
    queues: dict[str, deque[int]] = {name: deque() for name in names}
    shut: set[str] = set()

    def apply(actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                queues[action.worker].extend(action.tests)
            else:
                shut.add(action.worker)

    apply(dispatcher.dispatch())
    completed = 0
    while not dispatcher.finished:
        progressed = False
        for name in names:
            queue = queues[name]
            if len(queue) >= 2 or (queue and name in shut):
                dispatcher.complete(name, queue.popleft())
                completed += 1
                apply(dispatcher.dispatch())
                progressed = True
        if not progressed:
            raise BenchError(f"simulated dispatch stalled after {completed} tests")
    return completed


def planning_cost(tests: int = PLANNING_TESTS, workers: int = PLANNING_WORKERS) -> PlanningCost:
    per_file = suites.HUGE_PER_FILE
    nodeids = [
        f"test_huge_{i // per_file:02d}.py::test_trivial[{i % per_file}]" for i in range(tests)
    ]
    claims = [TestClaims() for _ in range(tests)]
    recorded = dict.fromkeys(nodeids, 0.0002)  # a second run: every test has history
    plan_walls, walls = [], []
    for _ in range(PLANNING_REPEATS):
        start = time.perf_counter()
        plan_collection(nodeids, claims, recorded, workers)
        middle = time.perf_counter()
        if (done := plan_and_drain(nodeids, claims, recorded, workers)) != tests:
            raise BenchError(f"simulated dispatch completed {done} of {tests} tests")
        plan_walls.append(middle - start)
        walls.append(time.perf_counter() - middle)
    tracemalloc.start()
    try:
        plan_and_drain(nodeids, claims, recorded, workers)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return PlanningCost(tests, median_of(plan_walls), median_of(walls), peak / 2**20)


# -- report ------------------------------------------------------------------------------------


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text(encoding="utf-8").splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return models[0] if models else platform.processor() or "unknown"


def header(
    rounds: int,
    quick: bool,
    contenders: Sequence[str] = (*suites.ALL_CONTENDERS, suites.AUDIT),
    exception: str = " (huge50k: 1)",
) -> list[str]:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    versions = ", ".join(f"{n} {version(n)}" for n in ("pytest", "pytest-xdist", "pytest-isolate"))
    sample = Path("<suite>") / ".isolate_cache"
    lines = [
        "# pytest-isolate benchmark",
        "",
        f"- machine: {platform.platform()}; CPU: {_cpu_model()}; os.cpu_count(): {os.cpu_count()}",
        f"- date: {now}",
        f"- python {platform.python_version()}, {versions}",
        f"- runs per contender: {rounds} counted{exception} after 1 warm-up round, "
        f"rotating order{'; --quick' if quick else ''}",
        "- wall clock of whole pytest processes; `isolate / this` < 1 means isolate is faster",
        "",
        "Command lines (`N` is the suite's `-n`; run in the suite's directory):",
        "",
    ]
    for name in (*contenders, STARTUP):
        cmd = ["python", "-m", "pytest", *pytest_args(name, "N", sample)]
        where = " (on a one-test suite)" if name == STARTUP else ""
        lines.append(f"- {name}: `{' '.join(cmd)}`{where}")
    return lines


def suite_table(result: SuiteResult) -> list[str]:
    suite = result.suite
    startup = result.median(STARTUP)
    lines = [
        "",
        f"## ({suite.letter}) {suite.name}",
        "",
        suite.description + ".",
        "",
        f"`-n {suite.numprocesses}` ({suite.workers} workers); lower bound "
        f"{suite.lower_bound:.2f} s; start-up {startup:.2f} s; lower bound + start-up "
        f"{suite.lower_bound + startup:.2f} s; runs {len(result.times['isolate'])}",
        "",
        "| contender | median s | min-max s | isolate / this | first run s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in suite.contenders:
        walls = result.times[name]
        key = " (key)" if name == suite.key_peer else ""
        lines.append(
            f"| {name}{key} | {result.median(name):.2f} | {min(walls):.2f}-{max(walls):.2f} "
            f"| {result.ratio(name):.2f} | {result.first[name]:.2f} |"
        )
    lines += [
        "",
        "First run: the warm-up round, one sample each; isolate's is its run without history.",
    ]
    return lines


def _row(target: str, measured: str, goal: str, met: bool | None) -> str:
    verdict = "-" if met is None else ("yes" if met else "**no**")
    return f"| {target} | {measured} | {goal} | {verdict} |"


def summary(results: dict[str, SuiteResult], planning: PlanningCost | None) -> list[str]:
    lines = ["", "## Targets", "", "| target | measured | goal | met? |", "|---|---:|---:|---|"]
    ratios = [
        ("skewed", "-n4", "xdist-load", 0.80),
        ("trivial20", "-n auto", "serial", 1.15),
        ("trivial2000", "-n2", "xdist-load", 1.05),
        ("chains", "-n4", "xdist-load", 1.00),
    ]
    for name, flag, peer, goal in ratios:
        if name in results:
            ratio = results[name].ratio(peer)
            target = f"{name} {flag} isolate / {peer}"
            lines.append(_row(target, f"{ratio:.2f}", f"<= {goal:.2f}", ratio <= goal))
    for name in ("skewed", "chains"):
        if name in results:
            result = results[name]
            bound = result.suite.lower_bound
            measured = f"{result.makespan:.2f} s ({result.makespan / bound:.2f} x bound)"
            # Start-up noise larger than the work itself: no verdict.
            met = result.makespan <= 1.1 * bound if result.makespan > 0 else None
            target = f"{name} makespan (isolate - start-up) vs lower bound {bound:.2f} s"
            lines.append(_row(target, measured, "<= 1.10 x bound", met))
    for name, result in results.items():
        if suites.AUDIT in result.suite.contenders:
            cost = result.median(suites.AUDIT) / result.median("isolate")
            target = f"{name} -n{result.suite.numprocesses} audit cost: isolate-audit / isolate"
            lines.append(_row(target, f"{cost:.2f}", "report", None))
    if planning is not None:
        what = f"planning + dispatch of {planning.tests:,} plain tests, 2 workers"
        timing = f"{planning.seconds:.2f} s (plan alone {planning.plan_seconds:.2f} s)"
        lines.append(_row(f"{what}: time", timing, "report", None))
        lines.append(_row(f"{what}: peak memory", f"{planning.peak_mib:.1f} MiB", "report", None))
    return lines


# -- command line ------------------------------------------------------------------------------


def publish(lines: Sequence[str], out: Path, started: float) -> None:
    """The report to stdout and to ``out``; how long the benchmark took to stderr."""
    report = "\n".join(lines) + "\n"
    sys.stdout.write(report)
    out.write_text(report, encoding="utf-8")
    print(f"done in {time.perf_counter() - started:.0f} s; wrote {out}", file=sys.stderr)


def selected(only: str | None) -> list[str]:
    names = {suites.LETTERS.get(t.strip(), t.strip()) for t in (only or "").split(",") if t.strip()}
    if unknown := names - set(suites.BUILDERS):
        choices = ", ".join(f"{letter}={name}" for letter, name in suites.LETTERS.items())
        raise SystemExit(f"--only: unknown suite(s) {sorted(unknown)}; choose from {choices}")
    return [name for name in suites.BUILDERS if not names or name in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description="Time pytest-isolate against pytest and xdist."
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds; skip huge50k's pytest runs")
    parser.add_argument("--runs", type=int, default=None, help="counted rounds (default 5)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results.md")
    parser.add_argument("--only", default=None, help="suites by letter or name, e.g. a,c,skewed")
    args = parser.parse_args(argv)
    rounds = max(1, args.runs or (2 if args.quick else 5))
    names = selected(args.only)
    started = time.perf_counter()
    results: dict[str, SuiteResult] = {}
    planning = None
    try:
        with tempfile.TemporaryDirectory(prefix="isolate-bench-") as tmp:
            for name in names:
                if name == "huge50k":
                    print("[f] planning cost of 50,000 tests ...", file=sys.stderr, flush=True)
                    planning = planning_cost()
                    if args.quick:
                        continue
                suite = suites.BUILDERS[name](Path(tmp) / name)
                results[name] = bench_suite(suite, Path(tmp) / f"{name}-startup", rounds)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    lines = header(rounds, args.quick)
    for result in results.values():
        lines += suite_table(result)
    lines += summary(results, planning)
    publish(lines, args.out, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
