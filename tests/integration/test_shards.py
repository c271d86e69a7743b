"""--isolate-shard K/N in real runs: whole domains, the union is the collection."""

from __future__ import annotations

import re

import pytest

SUITE = """
import pytest

@pytest.mark.resource("db")
@pytest.mark.parametrize("i", range(3))
def test_db(i):
    pass

@pytest.mark.parametrize("i", range(5))
def test_free(i):
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_sharded=SUITE)
    return pytester


def passed(result: pytest.RunResult) -> set[str]:
    return {
        match
        for line in result.stdout.lines
        if "PASSED" in line
        for match in re.findall(r"test_sharded\.py::\S+", line)
    }


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "n2"])
def test_three_shards_cover_the_suite_once(suite: pytest.Pytester, workers: list[str]) -> None:
    seen: list[str] = []
    for k in (1, 2, 3):
        result = suite.runpytest_subprocess(
            "-p", "isolate", "-v", "-p", "no:cacheprovider", f"--isolate-shard={k}/3", *workers
        )
        assert result.ret == 0
        ran = sorted(n for n in passed(result) if n.startswith("test_sharded.py::"))
        assert ran, f"shard {k}/3 ran nothing"
        db = [n for n in ran if "test_db" in n]
        assert db == [] or len(db) == 3, "the db domain was split"
        seen += ran
    assert sorted(seen) == sorted(
        [f"test_sharded.py::test_db[{i}]" for i in range(3)]
        + [f"test_sharded.py::test_free[{i}]" for i in range(5)]
    )


def test_more_shards_than_domains_exit_zero_with_a_line(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_sharded="def test_only():\n    pass\n")
    result = suite.runpytest_subprocess("-p", "isolate", "--isolate-shard=2/2")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["isolate: shard 2/2 has no tests to run"])


def test_plan_shows_the_shards_share(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("-p", "isolate", "--isolate-plan", "--isolate-shard=1/2")
    result.stdout.fnmatch_lines(["pytest-isolate plan: *", "isolate: shard 1/2: * of 8 tests*"])


def test_bad_shard_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("-p", "isolate", "--isolate-shard=3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--isolate-shard '3/2'" in result.stderr.str()
