"""The scaling curve: one suite at ``-n 1`` to ``-n N``, xdist ``load`` against pytest-isolate.

``python -m bench.scaling [--workers 1-16] [--runs N] [--out bench/scaling.md]``

For each worker count, xdist ``load``, pytest-isolate and the start-up probe (pytest-isolate
on a one-test suite) run once as a warm-up, then once per round in a rotating order, as in
``bench.run``. pytest-isolate keeps one cache for the whole curve, so from the second worker
count on it plans from the durations recorded before. The report gives, per ``-n``, the lower
bound (max(work / workers, longest domain)), the measured start-up, both medians and their
ratio. Run it on a machine with at least as many cores as the largest ``-n``: on fewer,
workers compete for cores and the curve shows the machine, not the scheduler.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from . import suites
from .run import STARTUP, BenchError, SuiteResult, bench_suite, header, publish


def parse_workers(raw: str) -> list[int]:
    """``1-16``, ``1,2,4,8,16`` or a mix: ascending worker counts, each at least 1."""
    counts: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in raw.split(","))):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            counts.update(range(first, last + 1))
    except ValueError:
        raise SystemExit(f"--workers: {raw!r} is not like 1-16 or 1,2,4,8") from None
    if not counts or min(counts) < 1:
        raise SystemExit(f"--workers: {raw!r} names no worker count of 1 or more")
    return sorted(counts)


def curve_table(results: Sequence[SuiteResult]) -> list[str]:
    suite = results[0].suite
    lines = [
        "",
        f"## Scaling: {suite.name}",
        "",
        f"{suite.description}; {suite.work:.2f} s of work, longest domain {suite.longest:.2f} s.",
        "",
        "| -n | lower bound s | start-up s | bound + start-up s | xdist load s | isolate s "
        "| isolate / load | isolate / (bound + start-up) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        bound, startup = result.suite.lower_bound, result.median(STARTUP)
        load, isolate = result.median("xdist-load"), result.median("isolate")
        lines.append(
            f"| {result.suite.workers} | {bound:.2f} | {startup:.2f} | {bound + startup:.2f} "
            f"| {load:.2f} | {isolate:.2f} | {isolate / load:.2f} "
            f"| {isolate / (bound + startup):.2f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling",
        description="Time xdist load and pytest-isolate on one suite at each -n.",
    )
    parser.add_argument("--workers", default="1-16", help="worker counts, e.g. 1-16 or 1,2,4,8")
    parser.add_argument("--runs", type=int, default=3, help="counted rounds per -n (default 3)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "scaling.md")
    args = parser.parse_args(argv)
    counts = parse_workers(args.workers)
    rounds = max(1, args.runs)
    started = time.perf_counter()
    results: list[SuiteResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="isolate-scaling-") as tmp:
            base = suites.scaling(Path(tmp) / "scaling")
            for n in counts:
                suite = dataclasses.replace(base, numprocesses=str(n))
                results.append(bench_suite(suite, Path(tmp) / "startup", rounds))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    top = header(rounds, quick=False, contenders=base.contenders, exception=" per -n")
    publish([*top, *curve_table(results)], args.out, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
