"""The fault harness (bench/faults) on 24 fixed seeds: each generates a suite with planted
faults, runs it under pytest-isolate in a subprocess and checks the invariants (one outcome
per test, no overlap, no internal error, the right exit code and outcomes, nothing left).

``python -m bench.faults --runs 1 --seed S -v`` reproduces one seed with its evidence.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.faults import run_seed
from bench.faults.check import Violation

#: Seeds that run in a few seconds (one with a hang: about 7) and together plant every kind
#: of fault and cover in-process runs, -n 1..4, -x, -k, shards, timeouts and a --lf rerun.
#: No seed with a signal from outside (where it lands depends on the machine's load). The
#: first three found defects, since fixed: 0, a rerun alone killed by its test left its port
#: lease; 133 and 154, a KeyboardInterrupt in a test under -n 4 made xdist shut every worker
#: down at once, which started held-back tests beside what they conflict with (a serial
#: test, a counted resource over capacity). 622: a serial test SIGKILLed under -n 4, then
#: rerun alone and after its predecessors (its rerun crashes too); under load the reruns
#: started while the killed worker was still exiting, and a crashed serial test's span made
#: it a suspect to rerun beside another test.
SEEDS = [
    622,
    0,
    133,
    154,
    23,
    26,
    29,
    30,
    34,
    43,
    72,
    100,
    116,
    138,
    153,
    159,
    160,
    161,
    165,
    170,
    208,
    216,
    222,
    224,
]

#: Defects of the plugin the harness found and that are not fixed yet, as (invariant, text
#: in the message): not failures here, so that the rest of each seed's checks still guard.
#: Drop an entry once its defect is fixed.
KNOWN: list[tuple[str, str]] = []


def _known(v: Violation) -> bool:
    return any(v.invariant == invariant and text in v.message for invariant, text in KNOWN)


@pytest.mark.parametrize("seed", SEEDS)
def test_fault_harness_seed(seed: int, tmp_path: Path) -> None:
    # The workspace goes under tmp_path: pytest's retention removes it.
    result = run_seed(seed, python=sys.executable, parent=tmp_path, hard_timeout=90)
    problems = [
        f"[{v.invariant}] {v.run}: {v.message}\n{v.excerpt}"
        for v in result.checks.violations
        if not _known(v)
    ]
    assert not problems, (
        f"{result.line()}\nreproduce: python -m bench.faults --runs 1 --seed {seed} -v\n"
        + "\n\n".join(problems)
    )
