"""The causes of a failure with workers, told apart in real runs (#22): real xdist workers, real
rerun processes, and suites whose tests depend on each other through process state, as real
suites do (an environment variable set and never undone stands for a registered plugin, a
created schema or a warmed cache).
"""

from __future__ import annotations

import json
import re

import pytest

from .test_rerun import LOGGING_CONFTEST, runs, section

# test_reads_schema passes serially only because test_creates_schema, in another file, ran
# first in the same process.
NEEDS_SUITE = {
    "test_a_setup": """
import os
import time

def test_first():
    time.sleep(0.8)  # long enough for the second worker to start and take the other file

def test_creates_schema():
    os.environ["SCHEMA_READY"] = "1"

def test_third():
    pass
""",
    "test_b_uses": """
import os

def test_plain():
    pass

def test_reads_schema():
    assert os.environ.get("SCHEMA_READY") == "1", "no schema"
""",
}
# Recorded durations that put the two files on different workers under -n 2.
NEEDS_DURATIONS = {
    "test_a_setup.py::test_first": 0.8,
    "test_a_setup.py::test_creates_schema": 0.01,
    "test_a_setup.py::test_third": 0.01,
    "test_b_uses.py::test_plain": 0.4,
    "test_b_uses.py::test_reads_schema": 0.4,
}
NEEDER = "test_b_uses.py::test_reads_schema"
NEEDED = "test_a_setup.py::test_creates_schema"

# test_victim fails whenever test_breaks_mode ran before it in the same process.
POLLUTED_SUITE = {
    "test_a_mode": """
import os

def test_harmless():
    pass

def test_breaks_mode():
    os.environ["APP_MODE"] = "broken"

def test_harmless_too():
    pass
""",
    "test_b_victim": """
import os

def test_victim():
    assert os.environ.get("APP_MODE") != "broken", "a test left APP_MODE broken"
""",
}
VICTIM = "test_b_victim.py::test_victim"
POLLUTER = "test_a_mode.py::test_breaks_mode"


def records(pytester: pytest.Pytester) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for line in (pytester.path / "log.jsonl").read_text().splitlines()
        if '"rerun_alone"' in line
    ]


def test_a_test_that_needs_one_in_another_file_is_named_with_the_test_it_needs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(**NEEDS_SUITE)
    (pytester.path / "durations.json").write_text(json.dumps(NEEDS_DURATIONS))
    serial = pytester.runpytest_subprocess("-p", "no:randomly")
    serial.assert_outcomes(passed=5)

    args = ("-p", "isolate", "-p", "no:randomly", "-n", "2", "--isolate-durations=durations.json")
    # Run on its own file, it fails alone, with nothing before it: a real failure, so far.
    alone = pytester.runpytest_subprocess(*args, "test_b_uses.py")
    assert section(alone)[0].startswith(f"fails alone too {NEEDER}: failed when rerun alone")
    # The whole suite puts new tests before it: known to fail alone is no longer enough.
    result = pytester.runpytest_subprocess(*args, "--report-log=log.jsonl")
    result.assert_outcomes(failed=1, passed=4)
    lines = section(result)
    text = "\n".join(lines)
    assert re.fullmatch(
        rf"NEEDS AN EARLIER TEST {re.escape(NEEDER)} on gw\d: failed when rerun alone, passed "
        r"after the 3 tests before it in collection order that did not run before it on gw\d",
        lines[0],
    ), text
    assert lines[1].startswith(f"  needs: {NEEDED}: the test passes when run after it ("), text
    assert lines[2].startswith(f"  fix: give {NEEDER} what {NEEDED} sets up through a fixture")
    assert "PARALLEL" not in text and "fails alone too" not in text
    (record,) = records(pytester)
    assert (record["cause"], record["culprit"]) == ("needs_earlier", NEEDED)
    remembered = f"isolate: remembered for the next runs: {NEEDER} needs {NEEDED}"
    assert remembered in result.stdout.str()

    # The next run remembers it: the two tests run on one worker, in collection order.
    again = pytester.runpytest_subprocess(*args)
    again.assert_outcomes(passed=5)
    out = again.stdout.str()
    assert "isolate: applying 1 learned finding, each pair on one worker" in out
    assert re.search(
        rf"  {re.escape(NEEDER)} needs {re.escape(NEEDED)} \(from the run of \d{{4}}-\d\d-\d\d "
        rf"\d\d:\d\d UTC\); make it permanent: @pytest.mark.resource\(\"reads_schema\"\) on both",
        out,
    ), out
    one_file = pytester.runpytest_subprocess(*args, "test_b_uses.py")
    assert "learned" not in one_file.stdout.str()  # its pair's other test is not in the run
    plan = pytester.runpytest_subprocess(*args, "--isolate-plan").stdout.str()
    assert "isolate: applying 1 learned finding" in plan
    assert re.search(r"isolate-learned:test_b_uses.py::test_reads_schema", plan), plan

    # Forgotten, it fails again (and is learned again).
    forgot = pytester.runpytest_subprocess(*args, "--isolate-forget")
    assert "isolate: forgot 1 learned finding and the tests known to fail alone" in (
        forgot.stdout.str()
    )
    forgot.assert_outcomes(failed=1, passed=4)

    # A learned pair whose test is gone is dropped, and says so.
    (pytester.path / "test_a_setup.py").unlink()
    gone = pytester.runpytest_subprocess(*args)
    gone.assert_outcomes(passed=1, failed=1)
    assert (
        f"isolate: dropped 1 learned finding naming tests that no longer exist: {NEEDER} needs "
        f"{NEEDED}" in gone.stdout.str()
    )
    assert "applying" not in pytester.runpytest_subprocess(*args).stdout.str()


def test_a_test_polluted_by_an_earlier_one_on_its_worker_names_the_polluter(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(**POLLUTED_SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-p", "no:randomly", "-n", "1", "--report-log=log.jsonl",
        "--junitxml=junit.xml", "--isolate-parallel-only-ok",
    )  # fmt: skip
    result.assert_outcomes(failed=1, passed=3)
    lines = section(result)
    text = "\n".join(lines)
    assert lines[0] == (
        f"POLLUTED BY AN EARLIER TEST {VICTIM} on gw0: passed when rerun alone, failed after "
        "the 3 tests gw0 ran before it"
    ), text
    assert lines[1].startswith(f"  polluter: {POLLUTER}: the test fails when run after it ("), text
    assert lines[2].startswith(f"  fix: {POLLUTER} leaves state behind")
    # At -n 1 nothing ran beside anything.
    assert "PARALLEL" not in text and "beside" not in text, text
    assert "in parallel" not in result.stdout.str()
    junit = (pytester.path / "junit.xml").read_text()
    assert 'name="isolate_rerun_alone" value="passed alone"' in junit
    assert 'name="isolate_polluter" value="test_a_mode.py::test_breaks_mode"' in junit
    # A serial run in this order fails it too: --isolate-parallel-only-ok does not accept it.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (record,) = records(pytester)
    assert (record["cause"], record["culprit"]) == ("polluted", POLLUTER)
    assert record["before_on_worker"] == 3


def test_a_test_proven_to_fail_alone_is_not_rerun_until_a_python_file_changes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(LOGGING_CONFTEST)
    # Passing tests before it, on both workers: they would be rerun before it too.
    fine = "".join(f"def test_fine{i}():\n    time.sleep(0.1)\n\n" for i in range(6))
    pytester.makepyfile(test_bad=f"import time\n\n{fine}def test_bad():\n    assert 0\n")
    args = ("-p", "isolate", "-p", "no:randomly", "-n", "2")

    def reruns() -> int:
        return sum(1 for _, where in runs(pytester) if where == "alone")

    first = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(failed=1, passed=6)
    assert section(first)[0].startswith(
        "fails alone too test_bad.py::test_bad: failed when rerun alone"
    )
    rerun_once = reruns()
    assert rerun_once >= 1

    second = pytester.runpytest_subprocess(*args)
    second.assert_outcomes(failed=1, passed=6)
    assert section(second)[0] == (
        "fails alone too test_bad.py::test_bad: failed when rerun alone in an earlier run, after "
        "the same tests, and no Python file has changed since"
    )
    assert "rerunning" not in second.stdout.str()
    assert reruns() == rerun_once, "rerun again though nothing changed"

    # A changed Python file: the proof no longer holds, and the test is rerun alone.
    pytester.makepyfile(helper="VALUE = 1\n")
    third = pytester.runpytest_subprocess(*args)
    assert section(third)[0].startswith(
        "fails alone too test_bad.py::test_bad: failed when rerun alone"
    )
    assert "earlier run" not in section(third)[0]
    assert reruns() > rerun_once


def test_the_check_for_a_needed_test_costs_at_most_a_quarter_of_the_budget(
    pytester: pytest.Pytester,
) -> None:
    # A real failure after 3 s of tests: about half ran on the other worker, more than a
    # quarter of a 4 s budget, so the run does not rerun them only to find it fails anyway.
    slow = "".join(f"def test_slow{i}():\n    time.sleep(0.25)\n\n" for i in range(12))
    pytester.makepyfile(test_late=f"import time\n\n{slow}def test_bad():\n    assert 0\n")
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-p", "no:randomly", "-n", "2", "--isolate-rerun-budget=4"
    )  # fmt: skip
    result.assert_outcomes(failed=1, passed=12)
    line = section(result)[0]
    assert line.startswith(
        "fails alone too test_late.py::test_bad: failed when rerun alone (not rerun after its "
        "predecessors on other workers: they ran "
    ), line
    assert line.endswith("s, more than a quarter of isolate_rerun_budget (1s))"), line
    # The check would cost as much again: known to fail alone, the next run reruns nothing.
    again = pytester.runpytest_subprocess(
        "-p", "isolate", "-p", "no:randomly", "-n", "2", "--isolate-rerun-budget=4"
    )  # fmt: skip
    assert "rerunning" not in again.stdout.str()
    assert section(again)[0].startswith(
        "fails alone too test_late.py::test_bad: failed when rerun alone in an earlier run, "
        "after the same tests, and no Python file has changed since (not rerun after its "
        "predecessors on other workers: they ran "
    )
    # Not called real: whether it needs an earlier test was never checked.
    assert "causes:" not in again.stdout.str()
    # With a budget that lets the check run, it is rerun and checked.
    checked = pytester.runpytest_subprocess(
        "-p", "isolate", "-p", "no:randomly", "-n", "2", "--isolate-rerun-budget=60"
    )  # fmt: skip
    assert "rerunning 1 failed test alone" in checked.stdout.str()
    assert "isolate: causes: a real failure: 1" in checked.stdout.str()


def test_a_rerun_in_which_the_victim_never_ran_decides_nothing(pytester: pytest.Pytester) -> None:
    # test_a.py imports only on a worker: in the rerun after it, the victim never runs.
    pytester.makepyfile(
        test_a="""
import os
WORKER = os.environ["PYTEST_XDIST_WORKER"]

def test_polluter():
    os.environ["POLLUTED"] = "1"
""",
        test_b="""
import os

def test_victim():
    assert "POLLUTED" not in os.environ
""",
    )
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-p", "no:randomly", "-n", "1", "--isolate-parallel-only-ok"
    )  # fmt: skip
    result.assert_outcomes(failed=1, passed=1)
    assert section(result)[0] == (
        "PASSED WHEN RERUN ALONE test_b.py::test_victim on gw0: passed when rerun alone; the "
        "cause was not found (it did not run in a rerun after other tests: one of them ended "
        "the process, or a module failed to import there)"
    )
    # Not shown to need other workers or timing: the run is not accepted.
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_learned_pairs_never_change_which_tests_a_shard_runs(pytester: pytest.Pytester) -> None:
    tests = "".join(f"def test_{name}():\n    pass\n\n" for name in "abcdefgh")
    pytester.makepyfile(test_s=tests)
    args = ("-p", "isolate", "-p", "no:randomly", "-q", "--collect-only")

    def shard(k: int) -> list[str]:
        out = pytester.runpytest_subprocess(*args, f"--isolate-shard={k}/2").outlines
        return [line for line in out if line.startswith("test_s.py::")]

    before = [shard(1), shard(2)]
    # A pair learned in this job's cache (say, by an earlier run of it).
    cache = pytester.path / ".pytest_cache" / "v" / "isolate" / "findings"
    cache.parent.mkdir(parents=True, exist_ok=True)
    pair = {"cause": "overlap", "learned": "the run of X"}
    cache.write_text(
        json.dumps([{**pair, "victim": "test_s.py::test_a", "other": "test_s.py::test_h"}])
    )
    assert [shard(1), shard(2)] == before
    assert sorted(before[0] + before[1]) == sorted(f"test_s.py::test_{n}" for n in "abcdefgh")


def test_parallel_only_ok_never_passes_a_run_where_tests_never_ran(
    pytester: pytest.Pytester,
) -> None:
    # The crash takes the only worker (no restarts): the tests after it never run.
    pytester.makepyfile(
        test_a="""
import os
from pathlib import Path

def test_crash_once():
    mark = Path(__file__).with_name("crashed")
    if not mark.exists():
        mark.touch()
        os._exit(3)

def test_after():
    pass
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-p", "no:randomly", "-n", "1", "--max-worker-restart=0",
        "--isolate-parallel-only-ok",
    )  # fmt: skip
    assert "not run: its workers crashed" in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_module_that_fails_to_collect_keeps_its_learned_pairs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_s="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    cache = pytester.path / ".pytest_cache" / "v" / "isolate" / "findings"
    cache.parent.mkdir(parents=True, exist_ok=True)
    pair = {"cause": "overlap", "victim": "test_s.py::test_a", "other": "test_s.py::test_b"}
    cache.write_text(json.dumps([{**pair, "learned": "the run of X"}]))
    (pytester.path / "test_s.py").write_text("def test_a(:\n")  # a syntax error
    broken = pytester.runpytest_subprocess("-p", "isolate", "-p", "no:randomly", "-n", "2")
    assert "dropped" not in broken.stdout.str()
    assert json.loads(cache.read_text())[0]["victim"] == "test_s.py::test_a"
    # Fixed, the pair applies again; renamed away, it is dropped.
    (pytester.path / "test_s.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    fixed = pytester.runpytest_subprocess("-p", "isolate", "-p", "no:randomly", "-n", "2")
    assert "isolate: applying 1 learned finding" in fixed.stdout.str()
    # (A name of another length: a rewrite within the same second and of the same size
    # would let pytest load the stale cached bytecode.)
    renamed_source = "def test_renamed():\n    pass\n\ndef test_b():\n    pass\n"
    (pytester.path / "test_s.py").write_text(renamed_source)
    renamed = pytester.runpytest_subprocess("-p", "isolate", "-p", "no:randomly", "-n", "2")
    assert "isolate: dropped 1 learned finding naming tests that no longer exist" in (
        renamed.stdout.str()
    )


def test_under_an_explicit_dist_every_overlapping_test_is_a_suspect(
    pytester: pytest.Pytester,
) -> None:
    # xdist's own scheduling enforces no declaration: the writer may overlap the reader.
    pytester.makepyfile(
        test_db="""
import time
from pathlib import Path

import pytest

FLAG = Path(__file__).with_name("writing")

@pytest.mark.resource("db")
def test_writer():
    FLAG.touch()
    time.sleep(1.5)
    FLAG.unlink()

@pytest.mark.resource("db")
def test_reader():
    time.sleep(0.5)
    assert not FLAG.exists()
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-p", "no:randomly", "-n", "2", "--dist", "load"
    )  # fmt: skip
    result.assert_outcomes(failed=1, passed=1)
    text = "\n".join(section(result))
    assert "FAILS ONLY IN PARALLEL test_db.py::test_reader" in text, text
    assert "culprit: test_db.py::test_writer" in text, text
