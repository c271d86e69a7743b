"""--isolate-rerun-alone in real runs: real xdist workers, real rerun processes, real files.

The culprit suite is deterministic without clocks in the asserts: ``test_b`` fails when
``shared.txt`` appears while it runs; ``test_a`` writes that file and holds it until
``test_b`` says it saw it (or 2 s pass). Recorded durations make the plan put the two first
on different workers, so they start together under ``-n 2``; the fillers run on ``test_a``'s
worker while ``test_b`` finishes, so the search has more than one suspect.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

SHARED_SUITE = """
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SHARED = HERE / "shared.txt"
SAW = HERE / "b_saw"


def wait_for(path, seconds):
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


MARK
def test_a_holds_the_file():
    SHARED.write_text("a")
    wait_for(SAW, 2.0)  # until test_b saw it
    SHARED.unlink()
    SAW.unlink(missing_ok=True)


MARK
def test_b_needs_it_absent():
    deadline = time.monotonic() + 1.0
    seen = wait_for(SHARED, 1.0)
    if seen:
        SAW.touch()
    time.sleep(max(0.0, deadline - time.monotonic()))
    assert not seen, "shared.txt appeared while test_b ran"
"""

FILLERS = """
import time

import pytest


@pytest.mark.parametrize("i", range(4))
def test_fill(i):
    time.sleep(0.05)
"""

DURATIONS = {
    "test_shared.py::test_b_needs_it_absent": 10.0,
    "test_shared.py::test_a_holds_the_file": 5.0,
    **{f"test_fill.py::test_fill[{i}]": 1.0 for i in range(4)},
}

VICTIM = "test_shared.py::test_b_needs_it_absent"
CULPRIT = "test_shared.py::test_a_holds_the_file"

# Every test of the small suites logs where it ran: the parallel run's workers, or a rerun.
LOGGING_CONFTEST = """
import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _where(request):
    where = os.environ.get("PYTEST_XDIST_WORKER", "alone")
    with open(Path(str(request.config.rootpath)) / "ran.log", "a") as log:
        log.write(f"{request.node.nodeid} {where}\\n")
"""


def shared_suite(pytester: pytest.Pytester, mark: str = "") -> None:
    pytester.makepyfile(test_shared=SHARED_SUITE.replace("MARK\n", mark + "\n" if mark else ""))
    pytester.makepyfile(test_fill=FILLERS)
    (pytester.path / "durations.json").write_text(json.dumps(DURATIONS))


def runs(pytester: pytest.Pytester) -> list[tuple[str, str]]:
    log = pytester.path / "ran.log"
    if not log.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def section(result: pytest.RunResult) -> list[str]:
    """The lines of the rerun section, heading excluded."""
    lines = result.outlines
    heads = [i for i, line in enumerate(lines) if "isolate: failed tests rerun alone" in line]
    if not heads:
        return []
    out = []
    for line in lines[heads[0] + 1 :]:
        if line.startswith(("=", "-")) and line.endswith(("=", "-")):
            break
        out.append(line)
    return out


def test_fails_only_beside_an_undeclared_test_names_it_the_culprit(
    pytester: pytest.Pytester,
) -> None:
    shared_suite(pytester)
    result = pytester.runpytest_subprocess(
        "-p",
        "isolate",
        "-n",
        "2",
        "--isolate-durations",
        "durations.json",
        "--isolate-audit",
        "--junitxml=junit.xml",
        "--report-log=log.jsonl",
        "--isolate-timeline=timeline.html",
    )
    # The run stays failed: the suite is not safe in parallel.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, passed=5)
    lines = section(result)
    text = "\n".join(lines)
    head = re.fullmatch(
        rf"FAILS ONLY IN PARALLEL {re.escape(VICTIM)} on (gw\d): passed when rerun alone"
        r"(, passed after the \d+ tests? gw\d ran before it)?",
        lines[0],
    )
    assert head, text
    assert lines[1] == "  overlapped on other workers:"
    # Among the tests that overlapped it (in collection order), the culprit, on the other
    # worker.
    (beside,) = [
        m
        for line in lines[2:]
        if (m := re.fullmatch(rf"    {re.escape(CULPRIT)} \((gw\d)\)", line))
    ]
    assert beside.group(1) != head.group(1), text
    assert re.search(r"touched file: wrote .*shared\.txt", text), text
    assert '@pytest.mark.resource("dir:shared.txt")' in text
    (culprit_line,) = [line for line in lines if "culprit" in line]
    assert culprit_line.startswith(f"  culprit: {CULPRIT}: the test fails when run beside it (")
    assert lines[-1].startswith("isolate: 1 of 1 failed test passed when rerun alone")
    assert "the run stays failed" in lines[-1]
    assert not (pytester.path / "shared.txt").exists()

    # For CI: a report-log record, JUnit properties, a note in the timeline.
    records = [
        json.loads(line)
        for line in (pytester.path / "log.jsonl").read_text().splitlines()
        if '"pytest_isolate"' in line
    ]
    (record,) = [r for r in records if r.get("event") == "rerun_alone"]
    assert record["nodeid"] == VICTIM
    assert record["verdict"] == "passes_alone"
    assert record["cause"] == "overlap"
    assert record["culprit"] == CULPRIT
    assert CULPRIT in [entry["nodeid"] for entry in record["overlapped"]]
    last = json.loads((pytester.path / "log.jsonl").read_text().splitlines()[-1])
    assert last["$report_type"] == "SessionFinish"
    root = ET.parse(pytester.path / "junit.xml").getroot()
    props = {
        (case.get("name"), p.get("name")): p.get("value")
        for case in root.iter("testcase")
        for p in case.iter("property")
    }
    assert props[("test_b_needs_it_absent", "isolate_rerun_alone")] == "passed alone"
    assert props[("test_b_needs_it_absent", "isolate_culprit")] == CULPRIT
    assert props[("test_b_needs_it_absent", "isolate_cause")] == (
        "fails beside a test on another worker"
    )
    assert props[("test_a_holds_the_file", "isolate_culprit_of")] == VICTIM
    page = (pytester.path / "timeline.html").read_text()
    assert f'"x":"fails beside a test on another worker; culprit: {CULPRIT}"' in page

    # Remembered: the next run keeps the pair apart in time (one worker), and passes.
    again = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "--isolate-durations", "durations.json"
    )
    again.assert_outcomes(passed=6)
    assert f"  {VICTIM} fails beside {CULPRIT} (from the run of " in again.stdout.str()


def test_with_the_resource_declared_the_run_is_green(pytester: pytest.Pytester) -> None:
    shared_suite(pytester, mark='@pytest.mark.resource("dir:shared.txt")')
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "--isolate-durations", "durations.json"
    )
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=6)
    assert section(result) == []


def test_parallel_only_ok_lets_the_run_pass_and_reruns_keep_the_runs_options(
    pytester: pytest.Pytester,
) -> None:
    # Passes only without workers, and only with the run's own option, ini override and
    # -p plugin, which the rerun must keep.
    pytester.makeconftest(
        LOGGING_CONFTEST
        + """
def pytest_addoption(parser):
    parser.addoption("--flavor")
"""
    )
    pytester.makepyfile(
        helper_plugin="def pytest_configure(config):\n    config.helper_loaded = True\n"
    )
    pytester.makeini("[pytest]\nmarkers =\n    slow: a mark\n")
    pytester.makepyfile(
        test_env="""
import os

def test_needs_no_workers(request):
    config = request.config
    assert config.getoption("flavor") == "mint"
    assert config.getini("xfail_strict") is True
    assert getattr(config, "helper_loaded", False)
    assert "PYTEST_XDIST_WORKER" not in os.environ
"""
    )
    args = ["-p", "isolate", "-p", "helper_plugin", "-n", "2", "--flavor", "mint"]
    args += ["-o", "xfail_strict=true"]
    result = pytester.runpytest_subprocess(*args, "--isolate-parallel-only-ok")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(failed=1)
    lines = section(result)
    # Nothing ran beside it (the only test): not "in parallel".
    assert lines[0].startswith("TIMING OR LOAD test_env.py::test_needs_no_workers on gw")
    assert lines[-1].endswith("accepted by --isolate-parallel-only-ok, the run passes")
    first, second = sorted(where for _, where in runs(pytester))
    assert first == "alone" and second.startswith("gw")

    # Without the opt-out the same run stays failed.
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "the run stays failed" in section(result)[-1]


def test_a_test_failing_alone_too_is_not_parallel_only(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(LOGGING_CONFTEST)
    pytester.makepyfile(test_bad="def test_bad():\n    assert 0\n\ndef test_fine():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, passed=1)
    assert section(result) == [
        "fails alone too test_bad.py::test_bad: failed when rerun alone",
        "isolate: causes: a real failure: 1",
        "isolate: 0 of 1 failed test passed when rerun alone",
    ], result.stdout.str()
    assert [r for r in runs(pytester) if r[1] == "alone"] == [("test_bad.py::test_bad", "alone")]


def test_reruns_decide_without_the_cache_and_with_warnings_as_errors(
    pytester: pytest.Pytester,
) -> None:
    # A common configuration: the rerun once added -o cache_dir=..., an unknown key under
    # -p no:cacheprovider, which filterwarnings = error made an internal error in every rerun.
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    pytester.makepyfile(test_bad="def test_bad():\n    assert 0\n\ndef test_fine():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=1)
    assert section(result) == [
        "fails alone too test_bad.py::test_bad: failed when rerun alone",
        "isolate: causes: a real failure: 1",
        "isolate: 0 of 1 failed test passed when rerun alone",
    ], result.stdout.str()


def test_reruns_are_capped_in_count_and_in_time(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(LOGGING_CONFTEST)
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.parametrize("i", range(3))
def test_bad(i):
    assert 0
"""
    )
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2", "--isolate-rerun-max=1")
    result.assert_outcomes(failed=3)
    assert section(result)[:3] == [
        "fails alone too test_bad.py::test_bad[0]: failed when rerun alone",
        "not rerun test_bad.py::test_bad[1]: over isolate_rerun_max (1)",
        "not rerun test_bad.py::test_bad[2]: over isolate_rerun_max (1)",
    ]
    assert [r for r in runs(pytester) if r[1] == "alone"] == [("test_bad.py::test_bad[0]", "alone")]

    (pytester.path / "ran.log").unlink()
    pytester.makeini("[pytest]\nisolate_rerun_budget = 0.001\n")
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2")
    result.assert_outcomes(failed=3)
    # The first rerun is stopped, or the budget is spent before it starts: either way no
    # test runs alone.
    first, *rest = section(result)[:3]
    assert first in (
        "not decided test_bad.py::test_bad[0]: the rerun did not finish within "
        "isolate_rerun_budget",
        "not rerun test_bad.py::test_bad[0]: isolate_rerun_budget spent",
    ), result.stdout.str()
    assert rest == [
        "not rerun test_bad.py::test_bad[1]: isolate_rerun_budget spent",
        "not rerun test_bad.py::test_bad[2]: isolate_rerun_budget spent",
    ]
    # The summary counts what was decided: nothing here.
    assert section(result)[-1] == (
        "isolate: 0 of 0 failed tests passed when rerun alone (3 more not rerun or not decided)"
    )
    assert [r for r in runs(pytester) if r[1] == "alone"] == []


def test_a_rerun_keeps_the_tests_timeout_and_leaves_nothing_running(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_hangs="""
import ctypes, subprocess, pytest

@pytest.mark.isolate_timeout(1)
def test_stuck():
    child = subprocess.Popen(["sleep", "60"])
    with open("children.txt", "a") as f:
        f.write(f"{child.pid}\\n")
    ctypes.CDLL(None).sleep(30)
"""
    )
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2")
    result.assert_outcomes(failed=1)
    # Alone, the timeout ends the rerun too: not a test that fails only in parallel.
    assert (
        section(result)[0] == "fails alone too test_hangs.py::test_stuck: failed when rerun alone"
    )
    children = [int(pid) for pid in (pytester.path / "children.txt").read_text().split()]
    assert len(children) == 2  # the parallel run's, and the rerun's
    assert not [pid for pid in children if alive(pid)]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_nothing_is_rerun_without_workers_or_when_switched_off(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(LOGGING_CONFTEST)
    pytester.makepyfile(test_bad="def test_bad():\n    assert 0\n")
    for args in (
        ["-p", "isolate"],
        ["-p", "isolate", "-n", "2", "--no-isolate-rerun-alone"],
        ["-p", "isolate", "-n", "2", "-o", "isolate_rerun_alone=false"],
    ):
        result = pytester.runpytest_subprocess(*args)
        result.assert_outcomes(failed=1)
        assert section(result) == [], args
    # One line per run: the first ran in-process ("alone"), the others on a worker only.
    first, *on_workers = [where for _, where in runs(pytester)]
    assert first == "alone"
    assert len(on_workers) == 2
    assert all(where.startswith("gw") for where in on_workers)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--isolate-rerun-max", "ten"], "--isolate-rerun-max / isolate_rerun_max: 'ten'"),
        (["-o", "isolate_rerun_budget=0"], "--isolate-rerun-budget / isolate_rerun_budget: '0'"),
    ],
)
def test_bad_rerun_settings_are_a_usage_error_naming_them(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "isolate", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
