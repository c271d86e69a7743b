"""Faults that must cost only the test at fault: hangs past --isolate-timeout, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_isolate.provision.leases import Leases
from tests.postgres import databases, postgres_url

from .conftest import Checked

HANGS = """
import ctypes, os, subprocess, threading, time
import pytest

def test_before():
    pass

@pytest.mark.resource("db")
def test_deadlock():
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()  # never returns: no signal.alarm-based timeout can get it out

@pytest.mark.resource("db")
def test_rest_of_the_domain():
    pass

@pytest.mark.isolate_timeout(1)
def test_stuck_in_c_with_a_child():
    child = subprocess.Popen(["sleep", "60"])
    with open("child.pid", "w") as f:
        f.write(str(child.pid))
    ctypes.CDLL(None).sleep(30)  # C code, the GIL released, no Python frame to interrupt

def test_after():
    pass
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_hung_tests_fail_with_their_stack_and_the_run_goes_on(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_hangs=HANGS)
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "--isolate-timeout", "2", "-rf", "--no-isolate-rerun-alone"
    )
    # Every collected test has exactly one outcome.
    result.assert_outcomes(passed=3, failed=2)
    out = result.stdout.str()
    assert "Timeout: test_hangs.py::test_deadlock ran longer than 2s" in out
    assert "Timeout: test_hangs.py::test_stuck_in_c_with_a_child ran longer than 1s" in out
    # The stacks point at the lines where each test hung.
    assert 'test_hangs.py", line 11 in test_deadlock' in out
    assert 'test_hangs.py", line 22 in test_stuck_in_c_with_a_child' in out
    child = int((pytester.path / "child.pid").read_text())
    assert not alive(child), "the timed-out test's child process was left running"


@pytest.mark.parametrize("option", [["--isolate-timeout", "60"], []], ids=["option", "marker"])
def test_the_marker_alone_also_stops_a_hung_tests_children(
    pytester: pytest.Pytester, option: list[str]
) -> None:
    pytester.makepyfile(
        test_hangs="""
import ctypes, subprocess, pytest

@pytest.mark.isolate_timeout(1)
def test_stuck():
    child = subprocess.Popen(["sleep", "60"])
    with open("child.pid", "w") as f:
        f.write(str(child.pid))
    ctypes.CDLL(None).sleep(30)

def test_fine():
    pass
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", *option, "--no-isolate-rerun-alone"
    )
    result.assert_outcomes(passed=1, failed=1)
    assert "Timeout: test_hangs.py::test_stuck ran longer than 1s" in result.stdout.str()
    assert not alive(int((pytester.path / "child.pid").read_text()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--isolate-timeout", "soon"], "--isolate-timeout: 'soon' is not a positive, finite"),
        (["--isolate-timeout", "-3"], "--isolate-timeout: '-3' is not a positive, finite"),
        (["--isolate-timeout", "inf"], "--isolate-timeout: 'inf' is not a positive, finite"),
        (["--isolate-timeout", "nan"], "--isolate-timeout: 'nan' is not a positive, finite"),
        (["--isolate-timeline", "no/such/dir/t.html"], "--isolate-timeline no/such/dir/t.html"),
        (["--isolate-timeline", "."], "--isolate-timeline .: is a directory"),
        (["--isolate-durations", "nan.json"], "nan.json: test_one.py::test_one: nan is not a"),
        (["--isolate-ports-per-worker", "0"], "'0' is not a whole number from 1 to 10000"),
        (["--isolate-db-url", "mysql://x/y"], "--isolate-db-url"),
        (["-o", "isolate_capacity=gpu"], "isolate_capacity: 'gpu' is not NAME:COUNT"),
    ],
)
def test_bad_options_are_one_usage_error(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    (pytester.path / "nan.json").write_text('{"test_one.py::test_one": NaN}')
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "passed" not in result.stdout.str()


@pytest.mark.parametrize(
    ("mark", "fault"),
    [
        ('resource("db", mode="sometimes")', "mode='sometimes' is unknown"),
        ('resource("port:http")', "'port:http' is not a port number"),
        ("resource()", "needs at least one resource name"),
        ('resource("")', "names must be non-empty strings"),
        ('resource("db", moed="shared")', "unknown keyword argument(s): moed"),
        ('isolate_timeout("never")', "isolate_timeout(): 'never' is not a positive, finite number"),
        ("isolate_timeout()", "isolate_timeout() needs the seconds"),
        ('serial("db")', "serial takes no arguments, got serial('db')"),
    ],
)
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "n2"])
def test_malformed_declarations_are_collection_errors_naming_the_test(
    pytester: pytest.Pytester, mark: str, fault: str, workers: list[str]
) -> None:
    pytester.makepyfile(
        test_bad=f"""
import pytest

def test_fine():
    pass

@pytest.mark.{mark}
def test_wrong():
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "isolate", *workers)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    (line,) = [line for line in result.stdout.lines if line.startswith("test_bad.py::test_wrong: ")]
    assert fault in line
    assert "test_fine PASSED" not in out and " passed" not in out
    assert os.path.exists(pytester.path / "test_bad.py")


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "n2"])
def test_a_malformed_mark_added_at_collection_is_a_collection_error_naming_the_test(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makeconftest(
        """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        if item.name == "test_wrong":
            item.add_marker(pytest.mark.resource("db", mode="sometimes"))
"""
    )
    pytester.makepyfile(test_late="def test_fine():\n    pass\n\ndef test_wrong():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "isolate", *workers)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (line,) = [line for line in result.stdout.lines if line.startswith("test_late.py::test_wrong")]
    assert "mode='sometimes' is unknown" in line
    assert " passed" not in result.stdout.str()


#: gw1 collects once gw0 has run a test, so that gw0's collection is the plan's.
LATE_GW1 = """
import os, pathlib, time
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session):
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw1":
        ran = pathlib.Path(str(session.config.rootpath)) / "ran"
        deadline = time.monotonic() + 30
        while not ran.exists() and time.monotonic() < deadline:
            time.sleep(0.01)


def on_gw1():
    return os.environ.get("PYTEST_XDIST_WORKER") == "gw1"

CHANGE
"""

LIMITED = """
import time
import pytest

@pytest.mark.resource("gpu")
@pytest.mark.parametrize("i", range(3))
def test_gpu(request, i):
    (request.config.rootpath / "ran").touch()
    time.sleep(0.2)

@pytest.mark.serial
def test_alone(request):
    (request.config.rootpath / "ran").touch()
    time.sleep(0.1)

@pytest.mark.parametrize("i", range(6))
def test_a(request, i):
    (request.config.rootpath / "ran").touch()
    time.sleep(0.1)
"""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "def pytest_collection_modifyitems(items):\n    if on_gw1():\n        del items[-1]",
            [
                # gw0 or gw2: whichever collected first made the plan.
                "*gw1 collected different tests than gw[02]*randomized or time-dependent*",
                "-test_a.py::test_a[[]5[]]",
            ],
        ),
        (
            "def pytest_itemcollected(item):\n"
            '    if on_gw1() and item.name == "test_a[2]":\n'
            '        item.add_marker(pytest.mark.resource("db"))',
            [
                "*gw1 read different declarations than gw[02] for test_a.py::test_a[[]2[]]: "
                "db on gw1, nothing on gw[02]",
            ],
        ),
    ],
    ids=["tests", "declarations"],
)
def test_workers_that_collect_differently_are_a_collection_error_naming_them(
    checked: Checked, change: str, expected: list[str]
) -> None:
    # The run started on the first worker to collect (gw0 or gw2; gw1 collects late). gw1
    # is sent away as if it had never
    # started; the others run every test, within capacity and serial (the overlap checker
    # sees every moment), and the run fails with the difference, as xdist's schedulers do.
    conftest = checked.pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text() + LATE_GW1.replace("CHANGE", change))
    checked.pytester.makepyfile(test_a=LIMITED)
    run = checked.run("-n", "3", "-o", "isolate_capacity=gpu:1")
    result = run.result
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ERROR collecting gw1*", *expected])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=10, errors=1)
    assert run.violations == [], "\n".join(run.violations)
    assert "gw1" not in run.workers_of("test_")


SLOW = """
import os, time, pytest

@pytest.mark.parametrize("i", range(4))
def test_slow(i, isolate_db, isolate_worker):
    name = f"started-{isolate_worker.slot}-{i}"
    with open(os.path.join(os.environ["RECORD_DIR"], name), "w") as f:
        f.write(isolate_db.name)
    time.sleep(30)
"""


def _start(pytester: pytest.Pytester, server: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "isolate",
            "-n",
            "2",
            "--isolate-db-url",
            server,
            "-p",
            "no:cacheprovider",
            "test_slow.py",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # As from a terminal: a harness started in the background (`cmd &` in a script)
        # hands its children SIGINT ignored, and Python then installs no Ctrl-C handler.
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(records: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 60
    while len(list(records.glob("started-*"))) < count:
        assert time.monotonic() < deadline, "the run never started its tests"
        time.sleep(0.1)
    return sorted({p.read_text() for p in records.glob("started-*")})


@pytest.fixture
def slow_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> tuple[pytest.Pytester, Path, str]:
    records = pytester.path / "_records"
    records.mkdir()
    monkeypatch.setenv("RECORD_DIR", str(records))
    monkeypatch.setenv("PYTEST_ISOLATE_LEASE_DIR", str(pytester.path / "_leases"))
    pytester.makepyfile(test_slow=SLOW)
    return pytester, records, postgres_url()


def test_sigterm_to_the_controller_cleans_up_and_reports(
    slow_suite: tuple[pytest.Pytester, Path, str],
) -> None:
    pytester, records, server = slow_suite
    run = _start(pytester, server)
    names = _wait_for(records, 2)
    assert len(names) == 2 and set(names) <= databases(server)
    os.kill(run.pid, signal.SIGTERM)
    out, _ = run.communicate(timeout=60)
    text = out.decode()
    assert run.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "KeyboardInterrupt" in text or "Interrupted" in text
    assert not set(names) & databases(server), "a worker database survived SIGTERM"
    assert Leases("ports", pytester.path / "_leases").held() == {}, "a port lease remains"
    assert not _group_alive(run.pid), "a worker outlived the controller"


FINISHING = """
import os, time

def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        return
    open(os.path.join(str(session.config.rootpath), "finishing"), "w").close()
    time.sleep(3)
"""


def test_sigterm_while_the_run_writes_its_reports_is_ignored(pytester: pytest.Pytester) -> None:
    """Past the tests, pytest no longer turns KeyboardInterrupt into "interrupted": a
    SIGTERM then ended the process with a traceback, exit -2 and no JUnit file (found by
    the fault harness, seed 119)."""
    pytester.makeconftest(FINISHING)
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "isolate", "-n", "2", "--junitxml=j.xml"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not (pytester.path / "finishing").exists():
        assert run.poll() is None and time.monotonic() < deadline, "never reached its finish"
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGTERM)
    out = run.communicate(timeout=60)[0].decode()
    assert run.returncode == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert (pytester.path / "j.xml").is_file()


def test_a_rerun_killed_by_its_own_test_leaves_no_port_lease(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crashing test crashes its rerun alone too; the rerun's lease is released (found
    by the fault harness, seed 0: the next run freed it as "left by killed runs")."""
    leases = pytester.path / "_leases"
    monkeypatch.setenv("PYTEST_ISOLATE_LEASE_DIR", str(leases))
    pytester.makepyfile(test_crash="import os\n\ndef test_crash():\n    os._exit(1)\n")
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*rerunning 1 failed test alone*"])
    assert Leases("ports", leases).held() == {}


def test_sigkill_leaves_databases_that_the_next_run_drops(
    slow_suite: tuple[pytest.Pytester, Path, str],
) -> None:
    pytester, records, server = slow_suite
    run = _start(pytester, server)
    names = _wait_for(records, 2)
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate()  # reaps it and closes its pipe
    time.sleep(0.5)
    assert set(names) <= databases(server)  # nobody could clean up

    pytester.makepyfile(test_slow="def test_quick(isolate_db):\n    pass\n")
    again = pytester.runpytest_subprocess("-p", "isolate", "--isolate-db-url", server)
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["isolate: dropped 2 databases left by killed runs: *"])
    assert not set(names) & databases(server)


def _group_alive(pgid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        # Zombies still count for killpg; look for a live member.
        members = [p for p in os.listdir("/proc") if p.isdigit() and _in_group(int(p), pgid)]
        if not members:
            return False
        time.sleep(0.2)
    return True


def _in_group(pid: int, pgid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z" and int(fields[2]) == pgid


CRASHES = """
import ctypes, os, signal, time
import pytest

@pytest.mark.resource("db")
@pytest.mark.parametrize("i", range(4))
def test_db(i):
    time.sleep(0.05)
    if i == 1:
        {crash}

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    time.sleep(0.05)
"""


@pytest.mark.parametrize(
    ("crash", "cause"),
    [
        pytest.param("ctypes.string_at(0)", "was killed by SIGSEGV (signal 11)", id="segfault"),
        pytest.param("os._exit(3)", "was exited with code 3", id="os-exit"),
        pytest.param(
            "os.kill(os.getpid(), signal.SIGKILL)",
            "was killed by SIGKILL (signal 9): killed from outside, often by the kernel's "
            "out-of-memory killer",
            id="sigkill",
        ),
    ],
)
@pytest.mark.parametrize("timeout", [[], ["--isolate-timeout", "60"]], ids=["", "timeout"])
def test_a_crash_costs_only_its_test_and_the_domain_goes_on(
    pytester: pytest.Pytester, crash: str, cause: str, timeout: list[str]
) -> None:
    # With --isolate-timeout too: a crash is named by what happened, never a timeout (the
    # watchdog's file, written as each test starts, once made every crash one).
    pytester.makepyfile(test_crash=CRASHES.replace("{crash}", crash))
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "-v", "--no-isolate-rerun-alone", *timeout
    )
    # Every collected test has exactly one outcome; the rest of the domain ran.
    result.assert_outcomes(passed=7, failed=1)
    out = result.stdout.str()
    assert "crashed while running 'test_crash.py::test_db[1]'" in out
    assert cause in out  # the signal or exit code, in the crashed test's report
    assert "Timeout" not in out
    for i in (2, 3):
        assert f"PASSED test_crash.py::test_db[{i}]" in out
    assert "replacing crashed worker" in out


def test_a_replacement_still_collecting_when_the_run_ends_leaves_cleanly(
    pytester: pytest.Pytester,
) -> None:
    # The crashed worker's replacement (gw2) is slow to collect: the other worker finishes
    # the run first, and the replacement, known to xdist but not yet to the dispatcher, is
    # shut down. It once ended the run with an INTERNALERROR (KeyError: 'gw2').
    pytester.makeconftest(
        """
        import os, time

        def pytest_collection(session):
            if os.environ.get("PYTEST_XDIST_WORKER") == "gw2":
                time.sleep(4)
        """
    )
    # The surviving worker's share takes about 2 s; the replacement's start-up alone is ~1 s.
    crashes = CRASHES.replace("{crash}", "os._exit(3)")
    pytester.makepyfile(
        test_crash=crashes.replace(
            "def test_free(i):\n    time.sleep(0.05)", "def test_free(i):\n    time.sleep(0.5)"
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "-v", "--no-isolate-rerun-alone"
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=7, failed=1)
    out = result.stdout.str()
    # Either first worker may crash: the run starts on whichever collected first.
    assert "replacing crashed worker gw0" in out or "replacing crashed worker gw1" in out
    assert "[gw2]" not in out, "the replacement ran tests: the race this test needs never came"


def test_ctrl_c_stops_the_run_and_cleans_up(
    slow_suite: tuple[pytest.Pytester, Path, str],
) -> None:
    pytester, records, server = slow_suite
    run = _start(pytester, server)
    names = _wait_for(records, 2)
    os.killpg(run.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    out, _ = run.communicate(timeout=60)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    assert not set(names) & databases(server), "a worker database survived Ctrl-C"
    assert not _group_alive(run.pid), "a worker outlived the controller"


def test_when_restarts_run_out_every_unrun_test_still_gets_an_outcome(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_crash="""
import os, time, pytest

@pytest.mark.resource("db")
@pytest.mark.parametrize("i", range(4))
def test_db(i):
    time.sleep(0.05)
    if i == 1:
        os._exit(3)

@pytest.mark.parametrize("i", range(6))
def test_free(i):
    time.sleep(0.3)
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "--max-worker-restart", "0", "-rf", "--no-isolate-rerun-alone"
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes["failed"] == 10  # one outcome per test
    lines, out = result.stdout.lines, result.stdout.str()
    assert "crashed while running 'test_crash.py::test_db[1]'" in out
    assert "not run: its workers crashed and --max-worker-restart allows no more" in out
    for i in (2, 3):  # the rest of the dead worker's domain is reported, not lost
        assert any(line.startswith(f"FAILED test_crash.py::test_db[{i}]") for line in lines)


def test_tests_that_never_ran_are_not_rerun_alone(pytester: pytest.Pytester) -> None:
    # Restarts used up: the tests that never ran fail, but they are not failures to
    # diagnose; rerun alone they would "pass" and be called failures only in parallel.
    pytester.makepyfile(
        test_crash="""
import os, time, pytest

@pytest.mark.resource("db")
@pytest.mark.parametrize("i", range(3))
def test_db(i):
    time.sleep(0.05)
    if i == 0:
        os._exit(3)
"""
    )
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", "--max-worker-restart", "0")
    out = result.stdout.str()
    assert "not run: its workers crashed" in out
    assert "rerunning 1 failed test alone" in out  # the crashed test only
    for headline in ("FAILS ONLY IN PARALLEL", "POLLUTED BY", "TIMING OR LOAD", "PASSED WHEN"):
        assert f"{headline} test_crash.py::test_db[1]" not in out
        assert f"{headline} test_crash.py::test_db[2]" not in out


@pytest.mark.parametrize(
    "args",
    [["--collect-only"], ["--markers"], ["--fixtures"], ["--isolate-plan"]],
    ids=["collect-only", "markers", "fixtures", "plan"],
)
def test_modes_that_run_no_test_touch_no_server_lease_or_run_record(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    unreachable = "postgresql://nobody@127.0.0.1:1/app"
    result = pytester.runpytest_subprocess("-p", "isolate", "--isolate-db-url", unreachable, *args)
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    assert not list((pytester.path / "_leases").glob("runs/*.json"))


def test_running_out_of_memory_fails_only_that_test(pytester: pytest.Pytester) -> None:
    # An address-space limit makes the allocation fail as it does when memory runs out;
    # the kernel's OOM killer instead sends SIGKILL, covered by the crash test above.
    pytester.makepyfile(
        test_memory="""
import resource, pytest

@pytest.mark.resource("db")
@pytest.mark.parametrize("i", range(3))
def test_db(i):
    if i == 1:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, hard))
        try:
            hog = bytearray(4 * 1024**3)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

@pytest.mark.parametrize("i", range(3))
def test_free(i):
    pass
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "-rf", "--no-isolate-rerun-alone"
    )
    result.assert_outcomes(passed=5, failed=1)
    assert "FAILED test_memory.py::test_db[1] - MemoryError" in result.stdout.str()
    assert "crashed" not in result.stdout.str()  # the worker itself survived


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "n2"])
def test_an_unused_capacity_name_is_a_line_naming_it_not_a_warning(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    # Not a Python warning: under filterwarnings = error that was an INTERNALERROR.
    pytester.makeini("[pytest]\nisolate_capacity = gpu:2 gpus:1\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_gpu='import pytest\n\n@pytest.mark.resource("gpu")\ndef test_a():\n    pass\n'
    )
    result = pytester.runpytest_subprocess("-p", "isolate", *workers)
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "isolate_capacity names 'gpus', but no test of this run declares resource('gpus')" in out
    assert "INTERNALERROR" not in out
    assert "warnings summary" not in out and " warning" not in out.splitlines()[-1]
    assert "names 'gpu'," not in out


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "n2"])
def test_capacity_names_are_checked_against_the_whole_collection(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    """A name that only deselected tests declare (-k, --lf, a shard) is in use; where the
    command line names paths, the rest of the suite is unknown and nothing is said."""
    pytester.makeini("[pytest]\nisolate_capacity = gpu:2 gpus:1 tpu:1\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_gpu="""
import pytest

@pytest.mark.resource("gpu")
def test_a():
    pass

@pytest.mark.resource("gpus")
def test_b():
    pass
"""
    )
    selected = pytester.runpytest_subprocess("-p", "isolate", *workers, "-k", "test_a")
    selected.assert_outcomes(passed=1)
    out = selected.stdout.str()
    assert "names 'tpu', but no test of this run declares resource('tpu')" in out
    assert "names 'gpus'" not in out
    by_path = pytester.runpytest_subprocess("-p", "isolate", *workers, "test_gpu.py::test_a")
    by_path.assert_outcomes(passed=1)
    assert "isolate_capacity names" not in by_path.stdout.str()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "n2"])
def test_without_the_tmpdir_plugin_the_workers_still_get_their_directories(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(
        test_dirs="""
import os

def test_dirs(isolate_worker):
    assert isolate_worker.tmp_path.is_dir()
    assert os.environ["PYTEST_ISOLATE_TMP"] == str(isolate_worker.tmp_path)
"""
    )
    result = pytester.runpytest_subprocess("-p", "isolate", "-p", "no:tmpdir", *workers)
    result.assert_outcomes(passed=1)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


SURROGATES = r"""
import sys
import pytest

BAD = b"caf\xe9 \xff".decode("utf-8", "surrogateescape") + "\ud800"

@pytest.mark.parametrize("i", range(3))
def test_before(i):
    pass

def test_bad_encodings():
    print("printed:", BAD)
    sys.stderr.write("to stderr: " + BAD + "\n")
    assert BAD == "plain", "message: " + BAD

@pytest.mark.parametrize("i", range(3))
def test_after(i):
    pass
"""


def test_a_report_with_lone_surrogates_is_sent_escaped_and_the_run_goes_on(
    pytester: pytest.Pytester,
) -> None:
    # Under plain xdist execnet refuses such a report ("strings must be utf-8 encodable"),
    # the worker goes down and the tests after it are never reported.
    pytester.makepyfile(test_enc=SURROGATES)
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "-p", "no:randomly", "--no-isolate-rerun-alone", "-rf"
    )
    result.assert_outcomes(passed=6, failed=1)
    out = result.stdout.str()
    assert "FAILED test_enc.py::test_bad_encodings" in out
    assert "\\udce9" in out and "\\udcff" in out and "\\ud800" in out  # shown, escaped
    assert "crashed" not in out and "node down" not in out


OBJECTS = """
import unittest
from fractions import Fraction

def test_property(record_property):
    record_property("span", range(3))
    record_property("ratio", Fraction(1, 3))

class Numbers(unittest.TestCase):
    def test_sub(self):
        for r in (range(2), Fraction(1, 2)):
            with self.subTest(r=r):
                self.assertTrue(r is not None)

def test_after():
    pass
"""


def test_a_report_holding_objects_is_sent_as_their_repr(pytester: pytest.Pytester) -> None:
    # A user property, or (pytest 9) a unittest subTest's parameters, holding an object
    # execnet cannot send: under plain xdist an INTERNALERROR ("can't serialize <class
    # 'range'>"); more-itertools' suite fails 21 tests that way. Carried as repr, it passes.
    pytester.makepyfile(test_obj=OBJECTS)
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", "--junitxml=junit.xml")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "passed" in result.stdout.lines[-1] and "failed" not in result.stdout.lines[-1]
    junit = (pytester.path / "junit.xml").read_text()
    assert 'name="span" value="range(0, 3)"' in junit
    assert 'name="ratio" value="Fraction(1, 3)"' in junit


TWO_CRASHES = """
import ctypes, os, time
import pytest

@pytest.mark.resource("a")
@pytest.mark.parametrize("i", range(5))
def test_a(i):
    time.sleep(0.05)
    if i == 1:
        ctypes.string_at(0)

@pytest.mark.resource("b")
@pytest.mark.parametrize("i", range(5))
def test_b(i):
    time.sleep(0.05)
    if i == 1:
        os._exit(1)

@pytest.mark.parametrize("i", range(10))
def test_free(i):
    time.sleep(0.05)
"""


def test_two_crashes_close_together_cost_only_their_tests(pytester: pytest.Pytester) -> None:
    # A segfault in one domain and os._exit in another, at -n 3: the scheduler could send
    # to a worker that had died before xdist reported it down, and the run ended in an
    # INTERNALERROR ("cannot send (already closed?)") with most tests never run. Timing
    # decides whether the sends cross; a few runs (10 of 10 passed on a loaded machine).
    pytester.makepyfile(test_two=TWO_CRASHES)
    for _ in range(3):
        result = pytester.runpytest_subprocess(
            "-p", "isolate", "-n", "3", "-p", "no:cacheprovider", "--no-isolate-rerun-alone"
        )
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(passed=18, failed=2)
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


LATE = """
import time
import pytest

@pytest.fixture
def redis(request):
    request.applymarker(pytest.mark.resource("redis"))  # too late: scheduled already

@pytest.mark.parametrize("i", range(2))
def test_uses_redis(redis, i):
    time.sleep(0.05)

@pytest.mark.resource("db")
def test_declared(request):
    pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "n2"])
def test_a_resource_declared_while_the_test_runs_is_named_as_not_enforced(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(test_late=LATE)
    result = pytester.runpytest_subprocess("-p", "isolate", "-p", "no:randomly", *workers)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "isolate: test_late.py::test_uses_redis[[]0[]] declared resource('redis') while "
            "it ran (*): the schedule was made at collection, so it was not enforced; *",
            "isolate: test_late.py::test_uses_redis[[]1[]] declared resource('redis') *",
        ]
    )
    assert "test_declared declared" not in result.stdout.str()


SLOT_AFTER_CRASH = """
import os, time
import pytest

def record(name, worker):
    with open(os.path.join(os.environ["SLOTS_DIR"], name), "w") as f:
        f.write(str(worker.slot))

@pytest.mark.resource("svc")
def test_first(isolate_worker):
    record("first", isolate_worker)
    time.sleep(1.5)  # meanwhile the other worker, with nothing to do, ends and leaves

@pytest.mark.resource("svc")
def test_crash():
    os._exit(1)

@pytest.mark.resource("svc")
def test_after(isolate_worker):
    record("after", isolate_worker)
"""


def test_a_replacement_takes_its_predecessors_slot_when_a_lower_one_is_free(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The idle worker has left slot 0 free when the domain's worker (slot 1, say) crashes:
    # the replacement must take slot 1 (its queue, its port block), not the lowest free.
    monkeypatch.setenv("SLOTS_DIR", str(pytester.path))
    pytester.makepyfile(test_slots=SLOT_AFTER_CRASH)
    # gw0 (slot 0) collects late, so gw1 (slot 1) joins first and takes the domain.
    pytester.makeconftest(
        """
        import os, time

        def pytest_collection_modifyitems(items):
            if os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
                time.sleep(1.0)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "-p", "no:randomly", "--no-isolate-rerun-alone"
    )
    result.assert_outcomes(passed=2, failed=1)
    assert (pytester.path / "first").read_text() == "1"
    assert (pytester.path / "after").read_text() == "1"


def test_an_in_process_timeout_shows_the_stack_past_output_capture(
    pytester: pytest.Pytester,
) -> None:
    # Without -n the deadline dumps the stack and the test goes on; the dump went to the
    # captured stderr, and for a test that then passes nobody ever saw it.
    pytester.makepyfile(
        test_slow="""
import time

def test_slow_but_passes():
    time.sleep(1.5)
"""
    )
    result = pytester.runpytest_subprocess("-p", "isolate", "--isolate-timeout", "0.5")
    result.assert_outcomes(passed=1)
    err = result.stderr.str()
    assert "Timeout (0:00:00.500000)!" in err, err
    assert "test_slow_but_passes" in err
