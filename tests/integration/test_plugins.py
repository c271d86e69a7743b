"""pytest-isolate beside the plugins and options users already run, in real pytest sessions.

Third-party plugins (the ``plugins`` extra) are installed only in ``tox -e plugins``: they load
themselves into every pytest run, so the main environments stay without them and skip those
tests here. ``PYTEST_ISOLATE_REQUIRE_PLUGINS=1`` (set by that env) turns a missing plugin into
a failure instead of a skip.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Checked
from tests.postgres import databases, postgres_url

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# pytest-randomly shuffles every run it is installed in; the comparisons need one order.
FIXED_ORDER = ("-p", "no:randomly")
# Failed tests are not run again alone (a feature of its own, tested on its own): here every
# test runs once per attempt, and the records show only those attempts.
ONCE = "--no-isolate-rerun-alone"


def need(module: str) -> None:
    """Skip without the plugin, unless the environment promises it (then fail)."""
    if os.environ.get("PYTEST_ISOLATE_REQUIRE_PLUGINS") == "1":
        importlib.import_module(module)
    else:
        pytest.importorskip(module, reason=f"{module} not installed; tox -e plugins runs this")


def records(directory: Path) -> list[dict[str, object]]:
    path = directory / "records.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


RECORD = """
import json, os

def record(**fields):
    fields.setdefault("worker", os.environ.get("PYTEST_XDIST_WORKER", "main"))
    fields.setdefault("pid", os.getpid())
    fields.setdefault("slot", os.environ.get("PYTEST_ISOLATE_SLOT"))
    with open(os.path.join(os.environ["RECORD_DIR"], "records.jsonl"), "a") as f:
        f.write(json.dumps(fields) + "\\n")
"""


@pytest.fixture
def record_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = pytester.path / "_records"
    out.mkdir()
    monkeypatch.setenv("RECORD_DIR", str(out))
    pytester.makepyfile(recording=RECORD)
    pytester.syspathinsert()
    return out


# -- pytest-randomly ----------------------------------------------------------------------

RANDOMLY_SUITE = """
import random
import pytest
from recording import record

@pytest.mark.parametrize("i", range(6))
@pytest.mark.resource("ledger")
def test_ledger(i):
    record(test=f"ledger{i}", draw=random.random())

@pytest.mark.parametrize("i", range(6))
def test_free(i):
    record(test=f"free{i}", draw=random.random())
"""

COLLECTION_LOG = """
import json, os

def pytest_collection_finish(session):
    who = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(os.environ["RECORD_DIR"], f"collected-{who}.json"), "w") as f:
        json.dump([item.nodeid for item in session.items], f)
"""


def test_randomly_seed_is_shared_and_every_worker_keeps_its_shuffled_order(
    pytester: pytest.Pytester, record_dir: Path
) -> None:
    need("pytest_randomly")
    pytester.makepyfile(test_random=RANDOMLY_SUITE)
    pytester.makeconftest(COLLECTION_LOG)
    seed = ("-p", "randomly", "-p", "no:cacheprovider", "--randomly-seed", "4242")

    plain = pytester.runpytest_subprocess("-p", "no:isolate", *seed)
    plain.assert_outcomes(passed=12)
    serial = {str(r["test"]): r["draw"] for r in records(record_dir)}
    plain_order = [str(r["test"]) for r in records(record_dir)]
    shuffled_ledger = [t for t in plain_order if t.startswith("ledger")]
    # The seed really shuffles this domain: the shuffle is the collection order (#19).
    assert shuffled_ledger != [f"ledger{i}" for i in range(6)]
    (record_dir / "records.jsonl").unlink()

    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", *seed)
    result.assert_outcomes(passed=12)
    assert "randomly-seed=4242" in result.stdout.str()
    seen = records(record_dir)
    # Every worker reseeds per test from the one seed: the same draws as the serial run.
    assert {str(r["test"]): r["draw"] for r in seen} == serial
    assert len({r["worker"] for r in seen}) == 2
    # Workers collected identically, in the shuffled order: pytest-randomly's order is the
    # collection order, and each worker runs its tests in it, the domain's too.
    collected = [json.loads(p.read_text()) for p in record_dir.glob("collected-gw*.json")]
    assert len(collected) == 2 and collected[0] == collected[1]
    ledger = [r for r in seen if str(r["test"]).startswith("ledger")]
    assert [r["test"] for r in ledger] == shuffled_ledger
    assert len({r["pid"] for r in ledger}) == 1
    free_order = [t.split("[")[1] for t in collected[0] if "test_free" in t]
    plain_free = [t.removeprefix("free") + "]" for t in plain_order if t.startswith("free")]
    assert free_order == plain_free, "free tests keep the shuffle"
    for worker in {r["worker"] for r in seen}:
        mine = [str(r["test"]) for r in seen if r["worker"] == worker]
        assert mine == [t for t in plain_order if t in mine], f"{worker} left the shuffle"


# -- pytest-rerunfailures -----------------------------------------------------------------

RERUN_SUITE = """
import os, time
import pytest
from recording import record

def failed_before(name):
    marker = os.path.join(os.environ["RECORD_DIR"], name)
    if os.path.exists(marker):
        return True
    open(marker, "w").close()
    return False

@pytest.mark.resource("ledger")
def test_open():
    record(test="open")
    time.sleep(0.1)

@pytest.mark.resource("ledger")
@pytest.mark.flaky(reruns=2)
def test_flaky():
    record(test="flaky")
    time.sleep(0.1)
    assert failed_before("flaky"), "the first attempt fails"

@pytest.mark.resource("ledger")
@pytest.mark.flaky(reruns=1)
def test_crashes_once():
    record(test="crash")
    if not failed_before("crash"):
        os._exit(3)

@pytest.mark.resource("ledger")
def test_close():
    record(test="close")

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    record(test=f"free{i}")
    time.sleep(0.1)
"""


def test_rerunfailures_reruns_stay_in_the_domain_and_its_worker(
    checked: Checked, record_dir: Path
) -> None:
    need("pytest_rerunfailures")
    checked.pytester.makepyfile(test_rerun=RERUN_SUITE)
    run = checked.run("-n", "2", *FIXED_ORDER, ONCE)
    assert run.result.parseoutcomes() == {"passed": 8, "rerun": 2}
    assert run.violations == []  # no other "ledger" test overlapped any attempt
    ledger = [r for r in records(record_dir) if not str(r["test"]).startswith("free")]
    assert [r["test"] for r in ledger] == ["open", "flaky", "flaky", "crash", "crash", "close"]
    # A failed attempt reruns on its worker. A crashed one runs first on the worker that
    # takes the domain over (the replacement in the crashed slot, or a worker gone idle
    # meanwhile: since workers start at different moments, which one is a race), and the
    # rest of the domain follows it there.
    before, after = ledger[:4], ledger[4:]
    assert len({r["pid"] for r in before}) == 1
    assert len({r["pid"] for r in after}) == 1 and after[0]["pid"] != before[0]["pid"]


# -- pytest-timeout -----------------------------------------------------------------------

TIMEOUT_SUITE = """
import signal, time
import pytest
from recording import record

@pytest.mark.resource("svc")
@pytest.mark.timeout(0.5)
def test_marker_limit():
    record(test="marker")
    time.sleep(30)

@pytest.mark.resource("svc")
def test_option_limit():
    record(test="option")
    time.sleep(30)

@pytest.mark.resource("svc")
def test_signal_blocked():
    # pytest-timeout's SIGALRM can no longer interrupt this: only the hard kill can.
    record(test="blocked")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(30)

@pytest.mark.resource("svc")
def test_after():
    record(test="after")
"""


def test_timeout_marker_and_option_work_beside_isolate_timeout(
    pytester: pytest.Pytester, record_dir: Path
) -> None:
    need("pytest_timeout")
    pytester.makepyfile(test_hang=TIMEOUT_SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", *FIXED_ORDER, ONCE, "--timeout", "1", "--isolate-timeout", "3"
    )
    result.assert_outcomes(passed=1, failed=3)
    out = result.stdout.str()
    assert re.search(r"test_marker_limit[\s\S]*Timeout \(>0\.5s\) from pytest-timeout", out)
    assert re.search(r"test_option_limit[\s\S]*Timeout \(>1\.0s\) from pytest-timeout", out)
    assert "test_signal_blocked ran longer than 3s (--isolate-timeout" in out
    by_test = {str(r["test"]): r for r in records(record_dir)}
    # pytest-timeout failed its tests inside the worker, which went on; the hard kill
    # cost the worker, and the slot's replacement ran the rest of the domain.
    assert by_test["marker"]["pid"] == by_test["option"]["pid"] == by_test["blocked"]["pid"]
    assert by_test["after"]["pid"] != by_test["blocked"]["pid"]
    assert by_test["after"]["slot"] == by_test["blocked"]["slot"]


# -- pytest-cov ---------------------------------------------------------------------------

CALC = """
def classify(n):
    if n < 0:
        return "negative"
    if n == 0:
        return "zero"
    return "positive"

def halve(n):
    if n % 2:
        raise ValueError("odd")
    return n // 2

def never_called():
    return "never"
"""


def test_coverage_under_workers_is_the_serial_coverage(
    pytester: pytest.Pytester, record_dir: Path
) -> None:
    need("pytest_cov")
    pytester.makepyfile(calc=CALC)
    cases = {
        "test_negative": "assert calc.classify(-1) == 'negative'",
        "test_zero": "assert calc.classify(0) == 'zero'",
        "test_even": "assert calc.halve(4) == 2",
        "test_odd": "with pytest.raises(ValueError): calc.halve(3)",
    }
    for name, body in cases.items():
        pytester.makepyfile(
            **{
                name: "import pytest, calc\nfrom recording import record\n"
                f"def {name}():\n    record(test={name!r})\n    {body}\n"
            }
        )
    cov = ("--cov=calc", "--cov-branch", *FIXED_ORDER)
    serial = pytester.runpytest_subprocess("-p", "no:isolate", *cov, "--cov-report=json:s.json")
    serial.assert_outcomes(passed=4)
    (record_dir / "records.jsonl").unlink()
    parallel = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "4", *cov, "--cov-report=json:p.json"
    )
    parallel.assert_outcomes(passed=4)
    assert len({r["worker"] for r in records(record_dir)}) >= 2, "combining had work to do"

    def lines(report: str) -> dict[str, object]:
        data = json.loads((pytester.path / report).read_text())["files"]["calc.py"]
        keys = ("executed_lines", "missing_lines", "executed_branches", "missing_branches")
        return {key: data[key] for key in keys}

    assert lines("p.json") == lines("s.json")
    assert lines("s.json")["missing_lines"], "the suite leaves lines out: a real comparison"
    assert lines("s.json")["executed_lines"]

    # A failing test is rerun alone after the run: its rerun must not replace the run's
    # coverage data and report with its own (one test's) coverage.
    pytester.makepyfile(
        test_zero="import calc\ndef test_zero():\n    assert calc.classify(0) == 'no'\n"
    )
    failing = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "4", *cov, "--cov-report=json:f.json"
    )
    failing.assert_outcomes(passed=3, failed=1)
    failing.stdout.fnmatch_lines(["*isolate: rerunning 1 failed test alone*"])
    assert lines("f.json") == lines("s.json")


# -- pytest-django ------------------------------------------------------------------------

RECORD_DJANGO = """
import json, os, time
import pytest
from django.db import connection
from recording import record

@pytest.mark.django_db
@pytest.mark.parametrize("i", range(4))
def test_record_database(i, isolate_db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM shop_order")  # migrated
    record(database=name, isolate=isolate_db.name)
    # Hold until the other worker has recorded too (at most 60 s): on a loaded machine the
    # first worker could otherwise run all four before the second one starts.
    deadline = time.monotonic() + 60
    while len({r["worker"] for r in seen()}) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

def seen():
    path = os.path.join(os.environ["RECORD_DIR"], "records.jsonl")
    with open(path) as f:
        return [json.loads(line) for line in f]
"""


def test_django_test_database_is_the_workers_database(
    pytester: pytest.Pytester, record_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("pytest_django")
    server = postgres_url()
    shutil.copytree(EXAMPLES / "django", pytester.path, dirs_exist_ok=True)
    pytester.makepyfile(test_record=RECORD_DJANGO)
    monkeypatch.setenv("PYTEST_ISOLATE_DB_URL", server)
    before = databases(server)
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", *FIXED_ORDER)
    result.assert_outcomes(passed=8)  # the example app's own tests and the recording ones
    seen = records(record_dir)
    assert all(r["database"] == r["isolate"] for r in seen)
    names = {str(r["database"]) for r in seen}
    assert len(names) == len({r["worker"] for r in seen}) == 2
    # pytest-isolate dropped the workers' databases, and Django made none of its own
    # (pytest-django's would be test_postgres, test_postgres_gw0, ...).
    after = databases(server)
    assert not names & after
    assert not [name for name in after - before if name.startswith("test_postgres")]


# -- selection and cache options: as without the plugin -----------------------------------

SELECTION_SUITE = """
import pytest

@pytest.mark.resource("db")
def test_db_write():
    pass

@pytest.mark.resource("db")
def test_db_read():
    assert False

@pytest.mark.slow
def test_slow():
    pass

def test_fast():
    pass

def test_fails():
    assert 0

class TestGroup:
    @pytest.mark.resource("db")
    def test_in_class(self):
        pass

    @pytest.mark.slow
    def test_slow_in_class(self):
        pass
"""

ODD_SUITE = """
import pytest

IDS = ["a b", "x::y", "a/b", "\\u00fc", "[x]", "-k", "dot.", "tab\\t", "q'\\"", "semi;c", "b\\\\s"]

@pytest.mark.parametrize("value", IDS, ids=IDS)
def test_odd(value):
    assert value not in ("x::y", "[x]")

@pytest.mark.parametrize("value", IDS, ids=IDS)
@pytest.mark.resource("odd")
def test_odd_domain(value):
    assert value != "a/b"
"""


def summary(result: pytest.RunResult) -> list[str]:
    """The -rA short summary: one line per test, sorted (a domain's lines come out together)."""
    lines = result.outlines
    start = next(
        (i for i, line in enumerate(lines) if "short test summary info" in line), len(lines)
    )
    return sorted(line for line in lines[start + 1 :] if re.match(r"(PASSED|FAILED|ERROR) ", line))


class Compare:
    """The same command with the plugin under -n 2 and without it, each with its own cache."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester

    def run(self, *args: str) -> tuple[pytest.RunResult, pytest.RunResult]:
        common = (*FIXED_ORDER, "-rA", "-p", "no:rerunfailures")
        plain = self.pytester.runpytest_subprocess(
            "-p", "no:isolate", "-o", "cache_dir=.cache-plain", *common, *args
        )
        isolated = self.pytester.runpytest_subprocess(
            "-p", "isolate", "-n", "2", ONCE, "-o", "cache_dir=.cache-isolate", *common, *args
        )
        return plain, isolated

    def same(self, *args: str) -> list[str]:
        plain, isolated = self.run(*args)
        assert isolated.ret == plain.ret
        # Under -n the closing line has no "N deselected": workers deselect, as with xdist alone.
        assert isolated.parseoutcomes() == without(plain.parseoutcomes(), "deselected")
        assert summary(isolated) == summary(plain)
        return summary(plain)


def without(outcomes: dict[str, int], key: str) -> dict[str, int]:
    return {k: v for k, v in outcomes.items() if k != key}


@pytest.fixture
def compare(pytester: pytest.Pytester) -> Compare:
    # Registered here too, so -p no:isolate warns of no unknown mark.
    pytester.makeini("[pytest]\nmarkers =\n    slow: a slow test\n    resource: a resource\n")
    return Compare(pytester)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("-k", "db and not read"), 1),
        (("-m", "slow"), 2),
        (("-m", "not slow", "-k", "not fails"), 4),
        (("--deselect", "test_sel.py::test_fast", "--deselect", "test_sel.py::TestGroup"), 4),
    ],
    ids=["-k", "-m", "-m and -k", "--deselect"],
)
def test_selection_is_as_without_the_plugin(
    compare: Compare, args: tuple[str, ...], expected: int
) -> None:
    compare.pytester.makepyfile(test_sel=SELECTION_SUITE)
    assert len(compare.same(*args)) == expected


def test_last_failed_and_failed_first_are_as_without_the_plugin(compare: Compare) -> None:
    compare.pytester.makepyfile(test_sel=SELECTION_SUITE)
    assert len(compare.same()) == 7
    last_failed = compare.same("--lf")
    assert [line.split()[1] for line in last_failed] == [
        "test_sel.py::test_db_read",
        "test_sel.py::test_fails",
    ]
    assert len(compare.same("--ff")) == 7


def test_stepwise_is_as_without_the_plugin(compare: Compare) -> None:
    suite = "\n".join(f"def test_{i}():\n    assert {i} != 3\n" for i in range(6))
    compare.pytester.makepyfile(test_steps=suite)
    plain, isolated = compare.run("--sw")
    assert isolated.ret == plain.ret != pytest.ExitCode.OK
    for result in (plain, isolated):
        result.stdout.fnmatch_lines(["*Interrupted: Test failed, continuing from this test*"])
        assert [line for line in summary(result) if line.startswith("FAILED")] == [
            "FAILED test_steps.py::test_3 - assert 3 != 3"
        ]
    # Fixed: both resume at the test that failed, leaving out the ones before it.
    compare.pytester.makepyfile(test_steps=suite.replace("!= 3", "!= -1"))
    assert [line.split()[1] for line in compare.same("--sw")] == [
        f"test_steps.py::test_{i}" for i in range(3, 6)
    ]


def test_parametrize_ids_with_odd_characters_are_as_without_the_plugin(
    compare: Compare,
) -> None:
    compare.pytester.makepyfile(test_odd=ODD_SUITE)
    assert len(compare.same()) == 22
    assert len(compare.same("--lf")) == 3
    odd = "test_odd.py::test_odd_domain[x::y]"
    lines = compare.same("--deselect", odd, "--deselect", "test_odd.py::test_odd[a b]")
    assert len(lines) == 20 and not any(odd in line for line in lines)


# -- debugging needs a terminal -----------------------------------------------------------


@pytest.mark.parametrize("flag", ["--pdb", "--trace"])
def test_debugger_with_workers_is_an_early_usage_error(
    pytester: pytest.Pytester, record_dir: Path, flag: str
) -> None:
    pytester.makepyfile(test_one="from recording import record\ndef test_one():\n    record()\n")
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", flag)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{flag} is incompatible with" in result.stderr.str()
    assert "try using -n0" in result.stderr.str() or "try -n0" in result.stderr.str()
    assert records(record_dir) == []


@pytest.mark.parametrize("workers", [(), ("-n", "auto"), ("-n", "0")])
@pytest.mark.parametrize("flag", ["--pdb", "--trace"])
def test_debugger_without_workers_runs_in_process(
    pytester: pytest.Pytester, record_dir: Path, flag: str, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_one="from recording import record\ndef test_one():\n    record()\n")
    # "continue" at the --trace prompt; at end of input pdb would quit the test unrun.
    result = pytester.run(
        sys.executable,
        "-m",
        "pytest",
        f"--basetemp={pytester.path / 'basetemp'}",
        "-p",
        "isolate",
        flag,
        *workers,
        stdin=b"continue\n",
    )
    result.assert_outcomes(passed=1)
    assert [r["worker"] for r in records(record_dir)] == ["main"]


def test_randomly_a_seed_that_puts_the_polluter_first_is_diagnosed_as_pollution(
    pytester: pytest.Pytester,
) -> None:
    """#22: under pytest-randomly, a seed that runs the polluter first fails the victim: the
    diagnosis reruns the worker's tests in the shuffled order and names the polluter; with
    one worker, never "in parallel"."""
    need("pytest_randomly")
    from tests.integration.test_causes import POLLUTED_SUITE, POLLUTER, VICTIM
    from tests.integration.test_rerun import section

    pytester.makepyfile(**POLLUTED_SUITE)
    for seed in range(1, 40):
        order = ("-p", "randomly", "-p", "no:cacheprovider", f"--randomly-seed={seed}")
        listed = pytester.runpytest_subprocess("-p", "no:isolate", *order, "--collect-only", "-q")
        nodeids = [line for line in listed.outlines if "::" in line]
        if nodeids.index(POLLUTER) < nodeids.index(VICTIM):
            break
    else:
        pytest.fail("no seed in 1-39 puts the polluter before the victim")
    serial = pytester.runpytest_subprocess("-p", "no:isolate", *order)
    serial.assert_outcomes(failed=1, passed=3)  # the seed's serial run fails it too

    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "1", *order)
    result.assert_outcomes(failed=1, passed=3)
    lines = section(result)
    text = "\n".join(lines)
    assert lines[0].startswith(f"POLLUTED BY AN EARLIER TEST {VICTIM} on gw0: "), text
    assert lines[1].startswith(f"  polluter: {POLLUTER}: the test fails when run after it"), text
    assert "PARALLEL" not in text and "beside" not in text, text
