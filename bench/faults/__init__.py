"""A randomized fault harness for pytest-isolate: seed -> suite with planted faults -> run ->
invariants. ``python -m bench.faults --runs N --seed S``; see README.md.

:func:`run_seed` is the whole round for one seed, for the CLI and for tests/stress.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .check import Checks, check_run
from .generate import SuiteSpec, describe
from .run import (
    HARD_TIMEOUT,
    PytestRun,
    Workspace,
    collect,
    default_python,
    prepare,
    run_pytest,
    workspace_root,
)

__all__ = ["SeedResult", "default_python", "run_seed"]


@dataclass
class SeedResult:
    seed: int
    spec: SuiteSpec
    workspace: Workspace
    runs: list[PytestRun] = field(default_factory=list)
    checks: Checks = field(default_factory=Checks)

    def line(self) -> str:
        codes = ",".join(str(r.returncode) for r in self.runs)
        seconds = sum(r.seconds for r in self.runs)
        made = sum(self.checks.counts.values())
        bad = len(self.checks.violations)
        return (
            f"seed {self.seed}: {'FAIL' if bad else 'ok'} rc={codes} {seconds:.1f}s "
            f"checks={made} violations={bad} | {describe(self.spec)}"
        )


def run_seed(
    seed: int,
    python: str | None = None,
    parent: Path | None = None,
    keep: bool = False,
    hard_timeout: float = HARD_TIMEOUT,
) -> SeedResult:
    """Generate the suite of ``seed``, run it (twice with --lf) and check every run.

    The workspace is removed afterwards unless ``keep`` or a violation was found.
    """
    python = python or default_python()
    spec, space = prepare(seed, workspace_root(parent))
    result = SeedResult(seed, spec, space)
    options = spec.options
    args = options.args()
    runs: list[tuple[str, list[str], str | None]] = [("run1", args, options.signal)]
    if options.last_failed:
        runs.append(("run2", [*args, "--lf"], None))
    for label, run_args, signal in runs:
        if options.shard is not None or "--lf" in run_args:
            selected = collect(space, python, run_args)
        else:
            selected = spec.keyword_selected()
        if selected is None:
            from .check import Violation

            result.checks.counts["1-one-outcome"] += 1
            result.checks.violations.append(
                Violation(seed, label, "1-one-outcome", "--collect-only of the suite failed")
            )
            break
        run = run_pytest(
            space,
            python,
            run_args,
            label,
            selected,
            signal_kind=signal,
            signal_delay=options.signal_delay,
            hard_timeout=hard_timeout,
        )
        result.runs.append(run)
        result.checks.add(check_run(spec, run, space))
    if not keep and not result.checks.violations:
        shutil.rmtree(space.root, ignore_errors=True)
    return result
