"""Every worker its own slot, temp dir, port block and database: real runs, real workers."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

RECORDER = """
import json, os, subprocess, sys, tempfile
import pytest

OUT = os.environ["RECORD_DIR"]

@pytest.fixture(autouse=True)
def record(request, isolate_worker, isolate_ports, isolate_db):
    seen = subprocess.run(
        [sys.executable, "-c",
         "import os, tempfile, json; print(json.dumps([os.environ['TMPDIR'], "
         "os.environ['PYTEST_ISOLATE_PORTS'], tempfile.gettempdir()]))"],
        capture_output=True, text=True, check=True,
    ).stdout
    data = {
        "nodeid": request.node.nodeid,
        "slot": isolate_worker.slot,
        "id": isolate_worker.id,
        "run_id": isolate_worker.run_id,
        "tmp": str(isolate_worker.tmp_path),
        "real_tmp": os.path.realpath(isolate_worker.tmp_path),
        "ports": [isolate_ports.start, isolate_ports.stop],
        "taken": isolate_ports.take(2),
        "db": [isolate_db.url, isolate_db.name, isolate_db.backend],
        "env": {k: os.environ.get(k) for k in (
            "TMPDIR", "TEMP", "TMP", "PYTEST_ISOLATE_TMP", "PYTEST_ISOLATE_SLOT",
            "PYTEST_ISOLATE_PORTS", "DATABASE_URL", "MY_DB")},
        "gettempdir": tempfile.gettempdir(),
        "subprocess": json.loads(seen),
        "pid": os.getpid(),
    }
    name = request.node.nodeid.replace("/", "_").replace(":", "_")
    with open(os.path.join(OUT, f"{name}-{os.getpid()}.json"), "w") as f:
        json.dump(data, f)
    yield
"""


@pytest.fixture
def recorded(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = pytester.path / "_records"
    out.mkdir()
    monkeypatch.setenv("RECORD_DIR", str(out))
    monkeypatch.setenv("PYTEST_ISOLATE_LEASE_DIR", str(pytester.path / "_leases"))
    pytester.makeconftest(RECORDER)
    return out


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]


def many_tests(pytester: pytest.Pytester, count: int = 12, nap: float = 0.1) -> None:
    pytester.makepyfile(
        test_many=f"""
import time, pytest

@pytest.mark.parametrize("i", range({count}))
def test_t(i):
    time.sleep({nap})
"""
    )


def by_worker(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    workers: dict[str, dict[str, Any]] = {}
    for row in rows:
        first = workers.setdefault(row["id"], row)
        for key in ("slot", "tmp", "ports", "db", "env", "run_id", "pid"):
            assert row[key] == first[key], f"{row['id']} changed its {key} between tests"
    return workers


def assert_private(workers: dict[str, dict[str, Any]]) -> None:
    rows = list(workers.values())
    for key in ("slot", "tmp", "db", "pid"):
        values = [json.dumps(row[key]) for row in rows]
        assert len(set(values)) == len(values), f"workers share {key}: {values}"
    spans = sorted(tuple(row["ports"]) for row in rows)
    for (_, stop), (start, _) in itertools.pairwise(spans):
        assert stop <= start, f"port blocks overlap: {spans}"
    for row in rows:
        start, stop = row["ports"]
        tmp = row["tmp"]
        assert all(start <= port < stop for port in row["taken"])
        assert row["env"]["TMPDIR"] == row["env"]["TEMP"] == row["env"]["TMP"] == tmp
        assert row["env"]["PYTEST_ISOLATE_TMP"] == tmp
        assert row["gettempdir"] == tmp
        assert row["env"]["PYTEST_ISOLATE_SLOT"] == str(row["slot"])
        assert row["env"]["PYTEST_ISOLATE_PORTS"] == f"{start}-{stop}"
        assert row["subprocess"] == [tmp, f"{start}-{stop}", tmp]
        assert row["env"]["DATABASE_URL"] == row["db"][0]


def test_three_workers_share_nothing(pytester: pytest.Pytester, recorded: Path) -> None:
    many_tests(pytester)
    pytester.makeini("[pytest]\nisolate_db_env = DATABASE_URL\n")
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "3")
    result.assert_outcomes(passed=12)
    workers = by_worker(records(recorded))
    assert {row["slot"] for row in workers.values()} == {0, 1, 2}
    assert len({row["run_id"] for row in workers.values()}) == 1
    assert_private(workers)
    for row in workers.values():
        real = Path(row["real_tmp"])
        assert row["db"][2] == "sqlite"
        assert row["db"][0] == f"sqlite:///{real.parent / 'db.sqlite3'}"
        assert str(pytester.path) in str(real)  # under pytest's basetemp
        # What the tests see is a short link in the user's temp dir, gone after the run.
        assert row["tmp"] == os.path.join(tempfile.gettempdir(), f"pi-{row['run_id']}-{row['id']}")
        assert not os.path.lexists(row["tmp"])


SOCKETS = """
import os, socket, tempfile, time

def test_socket_nested_in_temp_dirs():
    # What tests of servers do: a socket a few directories down in tempfile's directory.
    inner = tempfile.mkdtemp(dir=tempfile.mkdtemp(dir=tempfile.mkdtemp()))
    path = os.path.join(inner, "server.sock")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(path)

def test_crash():
    time.sleep(0.5)
    os._exit(3)
"""


def test_worker_temp_dirs_are_short_and_their_links_go_away(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """A worker's TMPDIR is a short link (AF_UNIX paths fit in 107 bytes); the links go
    away with the run, a crashed worker's too, and those left by a killed run are swept."""
    base = Path(tempfile.mkdtemp())  # the user's temp dir: short, as /tmp is
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.delenv("PYTEST_ISOLATE_TMP", raising=False)
    killed = base / "pi-0badc0de-gw0"  # what a run killed with SIGKILL leaves, once
    killed.symlink_to(pytester.path / "gone")  # pytest's retention removed its basetemp
    pytester.makepyfile(test_sockets=SOCKETS)
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*PASSED test_sockets.py::test_socket_nested_in_temp_dirs*"])
    assert os.listdir(base) == []  # ours gone, the crashed worker's and the killed run's too


# Without xdist too: `-p no:xdist` is how users debug one test, and the plugin must not need it.
@pytest.mark.parametrize("xdist", [[], ["-p", "no:xdist"]], ids=["xdist-loaded", "no-xdist"])
def test_in_process_run_has_the_same_fixtures(
    pytester: pytest.Pytester, recorded: Path, xdist: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process, TMPDIR is the run's private temp dir unless the user set it (this test
    # runs on a worker of our own suite, which did).
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    many_tests(pytester, count=2, nap=0)
    pytester.makeini("[pytest]\nisolate_db_env = MY_DB\n")
    result = pytester.runpytest_subprocess("-p", "isolate", *xdist)
    result.assert_outcomes(passed=2)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    (row,) = by_worker(records(recorded)).values()
    assert (row["slot"], row["id"]) == (0, "main")
    assert row["env"]["MY_DB"] == row["db"][0]
    assert row["env"]["DATABASE_URL"] is None
    row["env"]["DATABASE_URL"] = row["db"][0]
    assert_private({"main": row})


def test_two_concurrent_runs_get_disjoint_port_blocks(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    many_tests(pytester, count=4, nap=1.0)
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "isolate",
                "-n",
                "2",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--basetemp={pytester.path / f'base{n}'}",
            ],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for n in range(2)
    ]
    for run in runs:
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, out.decode()
    workers: dict[int, dict[str, Any]] = {}
    for row in records(recorded):
        workers.setdefault(row["pid"], row)
    assert len(workers) == 4
    assert len({row["run_id"] for row in workers.values()}) == 2
    spans = sorted(tuple(row["ports"]) for row in workers.values())
    for (_, stop), (start, _) in itertools.pairwise(spans):
        assert stop <= start, f"port blocks of concurrent runs overlap: {spans}"
    # Each test sleeps 1 s and both runs started together: they really were concurrent.
    starts = sorted(Path(p).stat().st_mtime for p in recorded.glob("*.json"))
    assert starts[-1] - starts[0] < 4


def test_leases_of_a_killed_run_are_reclaimed(pytester: pytest.Pytester, recorded: Path) -> None:
    # Blocks so big that the pool holds only two: the second run needs the dead run's.
    pytester.makepyfile(
        test_hang="""
import os, time, pytest
@pytest.mark.parametrize("i", range(2))
def test_hang(i, isolate_ports):
    open(os.path.join(os.environ["RECORD_DIR"], "started-" + str(os.getpid())), "w").close()
    time.sleep(60)
"""
    )
    size = "10000"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "isolate",
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            "--isolate-ports-per-worker",
            size,
            "-k",
            "hang",
            "test_hang.py",
        ],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while len(list(recorded.glob("started-*"))) < 2:
        assert time.monotonic() < deadline, "the first run never started both its tests"
        time.sleep(0.1)
    while len(list((pytester.path / "_leases").glob("ports-*.lease"))) < 2:
        assert time.monotonic() < deadline, "the first run's workers never leased their blocks"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(0.5)  # let the killed workers be reaped

    pytester.makepyfile(
        test_hang="def test_quick(isolate_ports):\n    assert len(isolate_ports) == 10000\n"
    )
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "--isolate-ports-per-worker", size
    )
    result.assert_outcomes(passed=1)
    # The controller says what it cleaned, before any worker starts.
    result.stdout.fnmatch_lines(
        ["isolate: freed 2 port leases left by killed runs: 10000-19999, 20000-29999"]
    )


def test_bad_ports_setting_is_a_usage_error(pytester: pytest.Pytester, recorded: Path) -> None:
    many_tests(pytester, count=1, nap=0)
    result = pytester.runpytest_subprocess("-p", "isolate", "--isolate-ports-per-worker", "lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--isolate-ports-per-worker*'lots' is not a whole number*"])


@pytest.mark.parametrize(
    "workers", [["-n", "3"], ["--tx", "3*popen", "--dist", "load"]], ids=["n3", "tx"]
)
def test_a_port_pool_too_small_for_the_workers_is_a_usage_error(
    pytester: pytest.Pytester, recorded: Path, workers: list[str]
) -> None:
    many_tests(pytester, count=3, nap=0)
    result = pytester.runpytest_subprocess(
        "-p", "isolate", *workers, "--isolate-ports-per-worker", "10000"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*isolate_ports_per_worker = 10000: the port pool 10000-32767 holds 2 blocks of "
            "10000, too few for 3 workers*"
        ]
    )
    assert "bringing up nodes" not in result.stdout.str()  # nothing half-started
    assert not list((pytester.path / "_leases").glob("ports-*.lease"))


HOOKS = """
import json, os, pytest

def _note(name, data):
    with open(os.path.join(os.environ["RECORD_DIR"], name), "a") as f:
        f.write(json.dumps(data) + "\\n")

def pytest_isolate_setup_worker(worker):
    worker.extra["redis_db"] = worker.slot + 1
    worker.extra["s3_prefix"] = f"run-{worker.run_id}/slot-{worker.slot}/"
    _note("setup", {"slot": worker.slot, "id": worker.id, "pid": os.getpid()})

def pytest_isolate_teardown_worker(worker, crashed):
    _note("teardown", {"slot": worker.slot, "id": worker.id, "crashed": crashed,
                       "redis_db": worker.extra["redis_db"], "pid": os.getpid()})
"""


def test_custom_resource_hooks_run_once_per_worker(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    pytester.makeconftest(RECORDER + HOOKS)
    pytester.makepyfile(
        test_redis="""
import os, time, pytest

@pytest.mark.parametrize("i", range(6))
def test_t(i, isolate_worker):
    assert isolate_worker.extra["redis_db"] == isolate_worker.slot + 1
    assert isolate_worker.extra["s3_prefix"].endswith(f"slot-{isolate_worker.slot}/")
    time.sleep(0.1)
"""
    )
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2")
    result.assert_outcomes(passed=6)
    setups = [json.loads(line) for line in (recorded / "setup").read_text().splitlines()]
    teardowns = [json.loads(line) for line in (recorded / "teardown").read_text().splitlines()]
    assert sorted(s["slot"] for s in setups) == [0, 1]
    assert sorted((t["slot"], t["crashed"], t["redis_db"]) for t in teardowns) == [
        (0, False, 1),
        (1, False, 2),
    ]
    assert {s["pid"] for s in setups} == {t["pid"] for t in teardowns}


def test_crashed_worker_is_torn_down_and_replaced_in_its_slot(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    pytester.makeconftest(RECORDER + HOOKS)
    pytester.makepyfile(
        test_crash="""
import os, time, pytest

@pytest.mark.resource("db")
@pytest.mark.parametrize("i", range(3))
def test_db(i, isolate_worker):
    time.sleep(0.1)
    if i == 1 and not os.path.exists(os.environ["RECORD_DIR"] + "/crashed"):
        open(os.environ["RECORD_DIR"] + "/crashed", "w").close()
        os._exit(1)

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    time.sleep(0.1)
"""
    )
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", "--no-isolate-rerun-alone")
    result.assert_outcomes(passed=6, failed=1)
    setups = [json.loads(line) for line in (recorded / "setup").read_text().splitlines()]
    teardowns = [json.loads(line) for line in (recorded / "teardown").read_text().splitlines()]
    crashed = [t for t in teardowns if t["crashed"]]
    assert len(crashed) == 1
    (dead,) = crashed
    # The controller tore the dead worker down; a new worker took over the same slot.
    assert dead["pid"] not in {s["pid"] for s in setups if s["id"] == dead["id"]}
    replacement = [s for s in setups if s["slot"] == dead["slot"] and s["id"] != dead["id"]]
    assert len(replacement) == 1
    assert sorted(s["slot"] for s in setups) == sorted([0, 1, dead["slot"]])
    assert len([t for t in teardowns if not t["crashed"]]) == 2


EXIT_PROBE = """
import atexit, gc, os

OUT = os.environ["EXIT_DIR"]
WHO = os.environ.get("PYTEST_XDIST_WORKER", "main")

def _after_the_plugin():
    # Registered at conftest import, before the plugin's configure: runs after its handler.
    with open(os.path.join(OUT, f"frozen-{WHO}"), "w") as f:
        f.write(str(gc.get_freeze_count()))

atexit.register(_after_the_plugin)
"""

CYCLE_AT_EXIT = """
import atexit, os

class Cycle:
    def __init__(self, who):
        self.me, self.who = self, who

    def __del__(self):
        open(os.path.join(os.environ["EXIT_DIR"], f"finalized-{self.who}"), "w").close()

def _garbage():
    Cycle(os.environ.get("PYTEST_XDIST_WORKER", "main"))  # unreachable at once: a cycle

@pytest.mark.parametrize("i", range(4))
def test_leaves_garbage_at_exit(i):
    # Registered during the run: runs before the plugin's handler, which collects first.
    atexit.register(_garbage)
    who = os.environ.get("PYTEST_XDIST_WORKER", "main")
    open(os.path.join(os.environ["EXIT_DIR"], f"ran-{who}"), "w").close()
"""


@pytest.mark.parametrize("workers", [None, "2"])
def test_processes_exit_without_the_final_collections_yet_finalize_garbage(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str | None
) -> None:
    """Every process of a run freezes its heap at exit after one collection (so the
    interpreter's teardown collections skip it), and cyclic garbage still there at exit is
    finalized as in a run without the plugin."""
    out = pytester.path / "_exit"
    out.mkdir()
    monkeypatch.setenv("EXIT_DIR", str(out))
    monkeypatch.setenv("PYTEST_ISOLATE_LEASE_DIR", str(pytester.path / "_leases"))
    pytester.makeconftest(EXIT_PROBE)
    pytester.makepyfile(test_exit="import pytest\n" + CYCLE_AT_EXIT)
    xdist = ["-n", workers] if workers else []
    processes = ["main", "gw0", "gw1"] if workers else ["main"]

    def ran_tests() -> list[str]:
        ran = sorted(path.name.removeprefix("ran-") for path in out.glob("ran-*"))
        assert ran, "no process recorded running a test"
        return ran

    result = pytester.runpytest_subprocess("-p", "isolate", *xdist)
    result.assert_outcomes(passed=4)
    for who in processes:
        assert int((out / f"frozen-{who}").read_text()) > 0, who
    for who in ran_tests():
        assert (out / f"finalized-{who}").exists(), who

    # The same run without the plugin freezes nothing: what the probe sees is the plugin's.
    for path in out.iterdir():
        path.unlink()
    result = pytester.runpytest_subprocess("-p", "no:isolate", *xdist)
    result.assert_outcomes(passed=4)
    for who in processes:
        assert (out / f"frozen-{who}").read_text() == "0", who
    for who in ran_tests():
        assert (out / f"finalized-{who}").exists(), who
