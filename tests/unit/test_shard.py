"""Shards over plain data: a partition of whole domains, balanced, the same everywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_isolate.schedule.shard import assign_shards, parse_shard, select


@pytest.mark.parametrize(("raw", "parsed"), [("1/1", (1, 1)), ("2/4", (2, 4)), (" 3/3 ", (3, 3))])
def test_parse(raw: str, parsed: tuple[int, int]) -> None:
    assert parse_shard(raw) == parsed


@pytest.mark.parametrize("raw", ["0/4", "5/4", "1/0", "a/b", "1-4", "", "2/"])
def test_parse_rejects_with_the_value(raw: str) -> None:
    with pytest.raises(ValueError, match="--isolate-shard"):
        parse_shard(raw)


def suite(
    sizes: list[int], times: list[float]
) -> tuple[list[tuple[int, ...]], list[str], list[float]]:
    domains, nodeids, estimates = [], [], []
    for d, size in enumerate(sizes):
        domains.append(tuple(range(len(nodeids), len(nodeids) + size)))
        for t in range(size):
            nodeids.append(f"test_{d}.py::test_{t}")
            estimates.append(times[d % len(times)])
    return domains, nodeids, estimates


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=25),
    times=st.lists(st.floats(0.01, 10.0), min_size=1, max_size=5),
    shards=st.integers(1, 5),
)
def test_shards_partition_whole_domains_and_balance_like_lpt(
    sizes: list[int], times: list[float], shards: int
) -> None:
    domains, nodeids, estimates = suite(sizes, times)
    parts = [select(domains, nodeids, estimates, k, shards) for k in range(1, shards + 1)]
    # Union is the collection, shards are disjoint.
    assert sorted(i for part in parts for i in part) == list(range(len(nodeids)))
    # Every domain lands whole in one shard.
    for domain in domains:
        assert sum(1 for part in parts if set(domain) <= part) == 1
    # No shard is empty when there are at least N domains.
    if len(domains) >= shards:
        assert all(parts)
    # LPT's guarantee: the fullest shard is within max domain time of the emptiest one.
    loads = [sum(estimates[i] for i in part) for part in parts]
    biggest = max(sum(estimates[i] for i in d) for d in domains)
    assert max(loads) - min(loads) <= biggest + 1e-6


def test_the_split_is_identical_in_another_process() -> None:
    domains, nodeids, estimates = suite([1, 2, 3, 1, 1, 2, 4, 1], [1.0, 0.5, 2.0])
    here = assign_shards(domains, nodeids, estimates, 3)
    code = (
        "import json, sys; from pytest_isolate.schedule.shard import assign_shards; "
        "d, n, e = json.load(sys.stdin); "
        "print(json.dumps(assign_shards([tuple(x) for x in d], n, e, 3)))"
    )
    import json

    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([domains, nodeids, estimates]),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert json.loads(out) == here
