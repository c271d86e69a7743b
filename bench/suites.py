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
#: pytest-isolate with --isolate-audit: its cost is the ratio to "isolate" on the same suite.
AUDIT = "isolate-audit"

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
        "2000 trivial tests in 20 files, -n 2: per-test overhead of the scheduler "
        "(and of --isolate-audit)",
        path,
        "2",
        work=0.0,
        longest=0.0,
        key_peer="xdist-load",
        contenders=(*ALL_CONTENDERS, AUDIT),
    )


# Work well above start-up (several seconds with -n 4 on 2 cores), or the ratio measures
# start-up noise rather than scheduling.
SKEWED_SHORT = [0.1] * 80
SKEWED_LONG = [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


def skewed(path: Path) -> Suite:
    short = [SKEWED_SHORT[i : i + 20] for i in range(0, len(SKEWED_SHORT), 20)]  # 4 files
    modules = {f"test_1_short_{n}.py": _sleep_module(chunk) for n, chunk in enumerate(short)}
    modules["test_2_long.py"] = _sleep_module(SKEWED_LONG)
    _project(path, modules)
    return Suite(
        "c",
        "skewed",
        "80 tests of 0.1 s collected first, then 6 of 3-8 s collected last, -n 4: "
        "longest-first planning from recorded durations",
        path,
        "4",
        work=sum(SKEWED_SHORT) + sum(SKEWED_LONG),
        longest=max(SKEWED_LONG),
        key_peer="xdist-load",
    )


CHAINS = ("r1", "r2", "r3")
CHAIN_TESTS = [0.6] * 5
FREE_TESTS = [0.2] * 30


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
        "3 exclusive resource chains of 5 x 0.6 s plus 30 free tests of 0.2 s, -n 4: "
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


REAL_FILES = 10
REAL_PER_FILE = 30
REAL_NAP = 0.002

_REAL_MODULE = f"""\
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading

import pytest


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "settings.json"
    path.write_text(json.dumps({{"retries": 3, "names": list("abcdef")}}))
    return path


@pytest.mark.parametrize("i", range({REAL_PER_FILE}))
def test_realistic(i, tmp_path, monkeypatch, config_file, isolate_ports, isolate_db):
    settings = json.loads(config_file.read_text())
    monkeypatch.setenv("APP_RETRIES", str(settings["retries"]))
    out = tmp_path / "out"
    out.mkdir()
    for name in settings["names"]:
        (out / f"{{name}}.txt").write_text(name * 100)
    assert sorted(p.name for p in out.iterdir())[0] == "a.txt"
    kind = i % 10
    if kind == 0:  # a subprocess in the worker's temp dir
        subprocess.run([sys.executable, "-c", "pass"], cwd=os.environ["TMPDIR"], check=True)
    elif kind == 1:  # a server on a port of the worker's block, and a client
        port = isolate_ports.take()[0]
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            server.listen()
            with socket.create_connection(("127.0.0.1", port)):
                pass
    elif kind == 2:  # the worker's database
        with sqlite3.connect(isolate_db.url.removeprefix("sqlite:///")) as db:
            db.execute("create table if not exists t (i integer)")
            db.execute("insert into t values (?)", (i,))
    elif kind == 3:  # a helper thread, joined
        done = []
        helper = threading.Thread(target=done.append, args=(i,))
        helper.start()
        helper.join()
        assert done == [i]
    threading.Event().wait({REAL_NAP})
"""


def realistic(path: Path) -> Suite:
    _project(path, {f"test_real_{f:02d}.py": _REAL_MODULE for f in range(REAL_FILES)})
    tests = REAL_FILES * REAL_PER_FILE
    return Suite(
        "g",
        "realistic",
        f"{tests} tests in {REAL_FILES} files, -n 2, each writing files under tmp_path, "
        "setting the environment with monkeypatch and, one in ten each, running a subprocess, "
        "a socket server on isolate_ports, the isolate_db database or a thread: the cost of "
        "--isolate-audit on tests that do I/O (pytest-isolate only: the peers lack its fixtures)",
        path,
        "2",
        work=tests * REAL_NAP,
        longest=0.0,
        key_peer="isolate",
        contenders=("isolate", AUDIT),
    )


#: Builders by name, in report order.
SCALING_MODULE = [0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.1, 0.12, 0.15, 0.2]
SCALING_MODULES = 16
SCALING_LONG = [0.6] * 4
SCALING_CHAINS = ("s1", "s2")
SCALING_CHAIN = [0.3] * 4


def scaling(path: Path) -> Suite:
    """Enough independent work for 16 workers, with a domain that bounds the run from about
    -n 14 on: 160 short tests in 16 modules, 4 of 0.6 s, and 2 resource chains of 1.2 s
    (18.6 s in all). Not in ``BUILDERS``: ``bench.scaling`` runs it at every ``-n``."""
    modules = {
        f"test_mod_{m:02d}.py": _sleep_module(SCALING_MODULE) for m in range(SCALING_MODULES)
    }
    modules["test_long.py"] = _sleep_module(SCALING_LONG)
    for name in SCALING_CHAINS:
        modules[f"test_chain_{name}.py"] = _sleep_module(
            SCALING_CHAIN, f"@pytest.mark.resource({name!r})\n@pytest.mark.xdist_group({name!r})"
        )
    _project(path, modules)
    return Suite(
        "s",
        "scaling",
        "160 tests of 0.01-0.2 s in 16 modules, 4 of 0.6 s and 2 resource chains of 4 x 0.3 s",
        path,
        "1",
        work=SCALING_MODULES * sum(SCALING_MODULE)
        + sum(SCALING_LONG)
        + len(SCALING_CHAINS) * sum(SCALING_CHAIN),
        longest=sum(SCALING_CHAIN),
        key_peer="xdist-load",
        contenders=("xdist-load", "isolate"),
    )


BUILDERS: dict[str, Callable[[Path], Suite]] = {
    "trivial20": trivial20,
    "trivial2000": trivial2000,
    "skewed": skewed,
    "chains": chains,
    "modfixtures": modfixtures,
    "huge50k": huge50k,
    "realistic": realistic,
}
LETTERS = dict(zip("abcdefg", BUILDERS, strict=True))
