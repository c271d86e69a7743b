"""``python -m bench.faults --runs N --seed S [--python PATH] [--keep] [-v] [-j 2]``

Run ``i`` uses seed ``S + i``. One line per run, then a summary: runs, faults planted by
kind, invariant checks made, and every violation with its seed and a command reproducing it.
Exit status 1 when any invariant was violated.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import SeedResult, default_python, run_seed
from .check import INVARIANTS, Violation
from .generate import FAULT_KINDS
from .run import HARD_TIMEOUT


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="how many seeds (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument(
        "--python",
        default=None,
        help=f"the Python whose pytest runs the suites (default {default_python()})",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep every workspace (those with violations stay)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print each violation")
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, help="seeds run at the same time (default 1)"
    )
    parser.add_argument(
        "--hard-timeout",
        type=float,
        default=HARD_TIMEOUT,
        help=f"seconds before a pytest run counts as hung (default {HARD_TIMEOUT:g})",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where workspaces go (default: TMPDIR)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    python = args.python or default_python()
    started = time.monotonic()
    results: list[SeedResult] = []

    def one(seed: int) -> SeedResult:
        return run_seed(seed, python, args.workdir, args.keep, args.hard_timeout)

    seeds = range(args.seed, args.seed + args.runs)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for result in pool.map(one, seeds):
            results.append(result)
            print(result.line(), flush=True)
            if args.verbose:
                for v in result.checks.violations:
                    print(_violation(v, full=True), flush=True)
                if result.checks.violations:
                    print(f"    workspace kept: {result.workspace.root}", flush=True)
    print(summary(results, time.monotonic() - started, args.verbose))
    return 1 if any(r.checks.violations for r in results) else 0


def _violation(v: Violation, full: bool) -> str:
    head = f"  [{v.invariant}] seed {v.seed} {v.run}: {v.message}\n    reproduce: {v.reproduce}"
    if full and v.excerpt:
        head += "\n" + "\n".join("      | " + line for line in v.excerpt.splitlines()[:40])
    return head


def summary(results: Sequence[SeedResult], seconds: float, verbose: bool) -> str:
    faults: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    processes = 0
    for r in results:
        faults.update(f.kind for f in r.spec.faults)
        checks.update(r.checks.counts)
        processes += len(r.runs)
    violations = [v for r in results for v in r.checks.violations]
    lines = [
        "",
        f"== summary: {len(results)} runs ({processes} pytest processes) in {seconds:.0f}s",
        "faults planted: "
        + (", ".join(f"{k} {faults[k]}" for k in FAULT_KINDS if faults[k]) or "none")
        + f" (total {sum(faults.values())})",
        "invariant checks: "
        + ", ".join(f"{k} {checks[k]}" for k in INVARIANTS if checks[k])
        + f" (total {sum(checks.values())})",
        f"violations: {len(violations)} in {len({v.seed for v in violations})} run(s)",
    ]
    by_invariant: dict[str, list[Violation]] = {}
    for v in violations:
        by_invariant.setdefault(v.invariant, []).append(v)
    for invariant in INVARIANTS:
        for v in by_invariant.get(invariant, []):
            lines.append(_violation(v, full=False) if not verbose else _violation(v, True))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
