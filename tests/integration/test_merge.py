"""``python -m pytest_isolate merge`` over the files of real shard runs."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

# Domain "db" interleaves with free tests, so output order is not collection order; a second
# module, a class, a failure, a skip and an xfail give the files some variety.
SUITE_A = """
import pytest

@pytest.mark.resource("db")
def test_db_first():
    pass

def test_free_between():
    pass

@pytest.mark.resource("db")
def test_db_second():
    print("db output")

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    pass

class TestGroup:
    @pytest.mark.resource("cfg")
    def test_one(self):
        pass

    @pytest.mark.resource("cfg")
    def test_two(self):
        pytest.skip("not today")
"""

SUITE_B = """
import pytest

@pytest.mark.xfail(reason="known")
def test_known():
    assert False

def test_plain():
    pass
"""

# Under -n a failed test is rerun alone, which adds records of that run's workers to the
# report-log: the failure is checked in-process only.
SUITE_FAIL = """
def test_fails():
    assert 1 == 2
"""

TESTS = 11

# What differs between any two runs of the same suite, sharded or not.
JUNIT_VARYING = {"time", "timestamp", "hostname"}
LOG_VARYING = {"duration", "start", "stop", "worker_id", "testrun_uid", "item_index", "node"}


def merge(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_isolate", "merge", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def junit(path: Path) -> list[object]:
    """The document as nested plain data, what varies between runs left out."""

    def plain(element: ET.Element) -> list[object]:
        attributes = {k: v for k, v in element.attrib.items() if k not in JUNIT_VARYING}
        return [element.tag, attributes, element.text, [plain(c) for c in element]]

    return plain(ET.parse(path).getroot())


def report_log(path: Path) -> list[dict[str, object]]:
    return [
        {k: v for k, v in json.loads(line).items() if k not in LOG_VARYING}
        for line in path.read_text().splitlines()
    ]


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_a=SUITE_A, test_b=SUITE_B)
    # A committed durations file covering every test: each shard computes the same split,
    # whatever its own cache holds (here all shards share one cache, as no CI job would).
    nodeids = [
        "test_a.py::test_db_first",
        "test_a.py::test_free_between",
        "test_a.py::test_db_second",
        *(f"test_a.py::test_free[{i}]" for i in range(4)),
        "test_a.py::TestGroup::test_one",
        "test_a.py::TestGroup::test_two",
        "test_b.py::test_known",
        "test_b.py::test_plain",
        "test_fail.py::test_fails",
    ]
    durations = {nodeid: 0.1 * (i + 1) for i, nodeid in enumerate(nodeids)}
    (pytester.path / "durations.json").write_text(json.dumps(durations))
    return pytester


def run_shard(suite: pytest.Pytester, k: int, n: int, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess(
        "-p",
        "isolate",
        f"--isolate-shard={k}/{n}",
        f"--junitxml=shard-{k}.xml",
        f"--report-log=shard-{k}.jsonl",
        *args,
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "n2"])
def test_three_shards_merge_into_the_single_runs_files(
    suite: pytest.Pytester, workers: list[str]
) -> None:
    # The files named: pytester's own directories stay out of the collection.
    options = ["--isolate-durations=durations.json", "test_a.py", "test_b.py", *workers]
    tests = TESTS
    if not workers:
        suite.makepyfile(test_fail=SUITE_FAIL)
        options.append("test_fail.py")
        tests += 1
    single = suite.runpytest_subprocess(
        "-p", "isolate", "--junitxml=single.xml", "--report-log=single.jsonl", *options
    )
    single.assert_outcomes(passed=9, skipped=1, xfailed=1, failed=0 if workers else 1)
    ran = []
    for k in (1, 2, 3):
        shard = run_shard(suite, k, 3, *options)
        assert shard.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        cases = ET.parse(suite.path / f"shard-{k}.xml").getroot().iter("testcase")
        ran.append(len(list(cases)))
    assert all(ran) and sum(ran) == tests, f"each shard runs some tests, all once: {ran}"

    shards = [f"shard-{k}.{ext}" for ext in ("xml", "jsonl") for k in (3, 1, 2)]
    merged = merge(suite.path, "--junitxml", "all.xml", "--report-log", "all.jsonl", *shards)

    assert merged.returncode == 0, merged.stderr
    assert f"{tests} tests of 3 shards -> all.xml" in merged.stdout
    assert junit(suite.path / "all.xml") == junit(suite.path / "single.xml")
    assert report_log(suite.path / "all.jsonl") == report_log(suite.path / "single.jsonl")
    # In collection order, as a serial run: the free test between the db domain's two tests,
    # although the shards ran the domain whole on one machine and the free test elsewhere.
    names = [c.get("name") for c in ET.parse(suite.path / "all.xml").getroot().iter("testcase")]
    assert names[:3] == ["test_db_first", "test_free_between", "test_db_second"]


def test_shards_split_by_different_durations_miss_and_repeat_tests(
    pytester: pytest.Pytester,
) -> None:
    # Two CI jobs that saw different durations files compute different splits.
    pytester.makepyfile(test_x="".join(f"def test_{t}(): pass\n" for t in "abcd"))
    for name, seconds in {"a": [4, 3, 2, 1], "b": [3, 4, 2, 1]}.items():
        durations = {f"test_x.py::test_{t}": s for t, s in zip("abcd", seconds, strict=True)}
        (pytester.path / f"{name}.json").write_text(json.dumps(durations))
    assert run_shard(pytester, 1, 2, "--isolate-durations=a.json").ret == 0
    assert run_shard(pytester, 2, 2, "--isolate-durations=b.json").ret == 0

    merged = merge(pytester.path, "--junitxml=all.xml", "shard-1.xml", "shard-2.xml")

    assert merged.returncode == 1
    assert merged.stderr.splitlines() == [
        "pytest-isolate merge: all.xml: FAULTS",
        "  1 test missing from every shard:",
        "    test_x.py::test_b",
        "  1 test in more than one shard:",
        "    test_x.py::test_a  (shard-1.xml, shard-2.xml)",
    ]
    # Written all the same, both copies of test_a included, for the CI page to show.
    names = [c.get("name") for c in ET.parse(pytester.path / "all.xml").getroot().iter("testcase")]
    assert names == ["test_a", "test_a", "test_c", "test_d"]


def test_a_lost_shard_names_its_tests(suite: pytest.Pytester) -> None:
    for k in (1, 2):
        assert run_shard(suite, k, 2, "--isolate-durations=durations.json").ret == 0
    lost = {
        json.loads(line)["nodeid"]
        for line in (suite.path / "shard-2.jsonl").read_text().splitlines()
        if '"TestReport"' in line
    }
    assert lost

    merged = merge(suite.path, "--report-log=all.jsonl", "shard-1.jsonl")

    assert merged.returncode == 1
    lines = merged.stderr.splitlines()
    assert "  no file for shard 2: its tests are missing" in lines
    assert f"  {len(lost)} test{'s' if len(lost) > 1 else ''} missing from every shard:" in lines
    assert {line.strip() for line in lines if "::" in line} == lost


def test_a_shard_with_nothing_to_do_merges_as_passed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_only():\n    pass\n")
    for k in (1, 2):
        assert run_shard(pytester, k, 2).ret == 0

    merged = merge(pytester.path, "--report-log=all.jsonl", "shard-1.jsonl", "shard-2.jsonl")

    assert merged.returncode == 0, merged.stderr
    assert "1 test of 2 shards -> all.jsonl" in merged.stdout
    records = [json.loads(line) for line in (pytester.path / "all.jsonl").read_text().splitlines()]
    assert [r["nodeid"] for r in records if r["$report_type"] == "TestReport"] == [
        "test_one.py::test_only"
    ] * 3
    # pytest-reportlog wrote 5 (no tests) for the empty shard; the run as a whole passed.
    assert records[-1] == {"exitstatus": 0, "$report_type": "SessionFinish"}


def test_unusable_input_names_the_file_and_writes_nothing(suite: pytest.Pytester) -> None:
    assert run_shard(suite, 1, 2, "--isolate-durations=durations.json").ret == 0
    single = suite.runpytest_subprocess("-p", "isolate", "--report-log=single.jsonl")
    assert single.ret == 0
    (suite.path / "broken.jsonl").write_text('{"$report_type": "SessionStart"}\n{oops\n')
    (suite.path / "notes.txt").write_text("hello\n")
    cases = [
        (["shard-1.jsonl", "broken.jsonl"], "broken.jsonl, line 2: not JSON"),
        (["shard-1.jsonl", "single.jsonl"], "single.jsonl: no shard record"),
        (["shard-1.jsonl", "gone.jsonl"], "gone.jsonl: cannot read it (No such file"),
        (["shard-1.jsonl", "notes.txt"], "notes.txt: neither JUnit XML nor a report-log"),
        (["shard-1.xml"], "shard-1.xml and the like: give --junitxml OUT"),
    ]
    for files, fault in cases:
        merged = merge(suite.path, "--report-log=all.jsonl", *files)
        assert merged.returncode == 2, (files, merged.stderr)
        assert f"pytest-isolate merge: error: {fault}" in merged.stderr
        assert not (suite.path / "all.jsonl").exists()


def test_no_output_option_is_a_usage_error(tmp_path: Path) -> None:
    merged = merge(tmp_path, "shard-1.xml")
    assert merged.returncode == 2
    assert "give --junitxml OUT, --report-log OUT, or both" in merged.stderr
