"""Synthetic test suites for the benchmark: pure file generation, no timing.

Each builder writes a self-contained pytest project (``pytest.ini`` plus test modules) into an
empty directory and returns a :class:`Suite` saying how to run it and what no schedule can beat:
the *lower bound*, max(total work / workers, longest domain), from the sleeps it planted and
not counting pytest's start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Every contender the runner knows, in table order.
ALL_CONTENDERS = ("serial", "xdist-load", "xdist-worksteal", "xdist-loadgroup", "isolate")

_INI = """\
[pytest]
markers =
    resource(name): pytest-isolate's marker, registered so plain runs accept it too
"""


@dataclass(frozen=True)
class Suite:
    letter: str
    name: str
    description: str
    path: Path
    numprocesses: str  # the value given to -n: "auto" or a number
    work: float  # seconds of sleep in the whole suite
    longest: float  # seconds of the longest chain that must run on one worker
    key_peer: str  # the contender whose ratio is the suite's headline number
    contenders: tuple[str, ...] = ALL_CONTENDERS
    runs: int | None = None  # fixed number of timed rounds, for suites too slow for --runs

    @property
    def workers(self) -> int:
        if self.numprocesses == "auto":
            return auto_workers()
        return int(self.numprocesses)

    @property
    def lower_bound(self) -> float:
        return max(self.work / self.workers, self.longest)


def auto_workers() -> int:
    """What ``-n auto`` gives on this machine (xdist counts the CPUs usable by this process)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _project(path: Path, modules: dict[str, str]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "pytest.ini").write_text(_INI, encoding="utf-8")
    for name, source in modules.items():
        (path / name).write_text(source, encoding="utf-8")


def _trivial_module(count: int) -> str:
    return "".join(f"def test_{i}():\n    assert True\n\n\n" for i in range(count)).rstrip() + "\n"


def _sleep_module(seconds: Sequence[float], mark: str = "") -> str:
    lines = ["import time", "", "import pytest", "", ""]
    if mark:
        lines.append(mark)
    lines += [
        f"@pytest.mark.parametrize('seconds', {list(seconds)!r})",
        "def test_sleep(seconds):",
        "    time.sleep(seconds)",
    ]
    return "\n".join(lines) + "\n"


def write_startup(path: Path) -> None:
    """One trivial test: what a contender's command costs when there is no work."""
    _project(path, {"test_one.py": _trivial_module(1)})


def trivial20(path: Path) -> Suite:
    _project(path, {f"test_trivial_{f}.py": _trivial_module(5) for f in range(4)})
    return Suite(
        "a",
        "trivial20",
        "20 trivial tests in 4 files, -n auto: the fixed cost of going parallel at all",
        path,
        "auto",
        work=0.0,
        longest=0.0,
        key_peer="serial",
    )


def trivial2000(path: Path) -> Suite:
    _project(path, {f"test_trivial_{f:02d}.py": _trivial_module(100) for f in range(20)})
    return Suite(
        "b",
        "trivial2000",
        "2000 trivial tests in 20 files, -n 2: per-test overhead of the scheduler",
        path,
        "2",
        work=0.0,
        longest=0.0,
        key_peer="xdist-load",
    )


SKEWED_SHORT = [0.02] * 60
SKEWED_LONG = [0.6, 0.72, 0.84, 0.96, 1.08, 1.2]


def skewed(path: Path) -> Suite:
    short = [SKEWED_SHORT[i : i + 20] for i in range(0, len(SKEWED_SHORT), 20)]
    modules = {f"test_1_short_{n}.py": _sleep_module(chunk) for n, chunk in enumerate(short)}
    modules["test_2_long.py"] = _sleep_module(SKEWED_LONG)
    _project(path, modules)
    return Suite(
        "c",
        "skewed",
        "60 tests of 0.02 s collected first, then 6 of 0.6-1.2 s collected last, -n 4: "
        "longest-first planning from recorded durations",
        path,
        "4",
        work=sum(SKEWED_SHORT) + sum(SKEWED_LONG),
        longest=max(SKEWED_LONG),
        key_peer="xdist-load",
    )


CHAINS = ("r1", "r2", "r3")
CHAIN_TESTS = [0.1] * 5
FREE_TESTS = [0.05] * 30


def chains(path: Path) -> Suite:
    modules = {
        # xdist_group as well, so that --dist loadgroup keeps each chain on one worker too and
        # is the honest plain-xdist way to run this suite; isolate sees the same domains.
        f"test_chain_{name}.py": _sleep_module(
            CHAIN_TESTS, f"@pytest.mark.resource({name!r})\n@pytest.mark.xdist_group({name!r})"
        )
        for name in CHAINS
    }
    modules["test_free.py"] = _sleep_module(FREE_TESTS)
    _project(path, modules)
    return Suite(
        "d",
        "chains",
        "3 exclusive resource chains of 5 x 0.1 s plus 30 free tests of 0.05 s, -n 4: "
        "domains run in order on one worker (load and worksteal ignore the resources)",
        path,
        "4",
        work=len(CHAINS) * sum(CHAIN_TESTS) + sum(FREE_TESTS),
        longest=sum(CHAIN_TESTS),
        key_peer="xdist-load",
    )


MODULES = 8
MODULE_SETUP = 0.3
MODULE_TESTS = [0.01] * 10

_MODFIXTURE_MODULE = f"""\
import time

import pytest


@pytest.fixture(scope="module")
def expensive():
    time.sleep({MODULE_SETUP})
    yield


@pytest.mark.parametrize("seconds", {MODULE_TESTS!r})
def test_uses_fixture(expensive, seconds):
    time.sleep(seconds)
"""


def modfixtures(path: Path) -> Suite:
    _project(path, {f"test_module_{m}.py": _MODFIXTURE_MODULE for m in range(MODULES)})
    per_module = MODULE_SETUP + sum(MODULE_TESTS)
    return Suite(
        "e",
        "modfixtures",
        f"{MODULES} modules, each a module-scoped fixture of {MODULE_SETUP} s and "
        f"{len(MODULE_TESTS)} tests of 0.01 s, -n 2: a module split over workers pays its "
        "setup twice (the bound counts it once per module)",
        path,
        "2",
        work=MODULES * per_module,
        longest=per_module,
        key_peer="xdist-load",
    )


HUGE_FILES = 50
HUGE_PER_FILE = 1000

_HUGE_MODULE = f"""\
import pytest


@pytest.mark.parametrize("i", range({HUGE_PER_FILE}))
def test_trivial(i):
    assert True
"""


def huge50k(path: Path) -> Suite:
    _project(path, {f"test_huge_{f:02d}.py": _HUGE_MODULE for f in range(HUGE_FILES)})
    return Suite(
        "f",
        "huge50k",
        f"{HUGE_FILES * HUGE_PER_FILE} trivial parametrized tests in {HUGE_FILES} files, -n 2: "
        "collection, planning and dispatch at scale",
        path,
        "2",
        work=0.0,
        longest=0.0,
        key_peer="xdist-load",
        contenders=("xdist-load", "isolate"),
        runs=1,
    )


#: Builders by name, in report order.
BUILDERS: dict[str, Callable[[Path], Suite]] = {
    "trivial20": trivial20,
    "trivial2000": trivial2000,
    "skewed": skewed,
    "chains": chains,
    "modfixtures": modfixtures,
    "huge50k": huge50k,
}
LETTERS = dict(zip("abcdef", BUILDERS, strict=True))
