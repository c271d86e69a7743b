"""Learned pairs (pytest_isolate.schedule.learned): applied as a common resource, merged, dropped
when a test is gone, and read back safely from whatever the cache holds."""

from __future__ import annotations

from pytest_isolate.declare.claims import EXCLUSIVE, PLAIN, Claim, TestClaims
from pytest_isolate.declare.domains import build_domains
from pytest_isolate.schedule.learned import Learned, apply, decode, encode, merge, split_existing

NEEDS = Learned("needs_earlier", "t.py::test_reads[1]", "s.py::test_creates", "the run of X")
BESIDE = Learned("overlap", "u.py::test_u", "v.py::test_v", "the run of Y")
NODEIDS = ["s.py::test_creates", "s.py::test_other", "t.py::test_reads[1]", "u.py::test_u"]


def test_a_pair_becomes_one_domain_and_the_rest_stays_free() -> None:
    claims, applied = apply(NODEIDS, [PLAIN] * 4, [NEEDS, BESIDE])
    assert applied == [NEEDS]  # v.py::test_v is not in this run
    domains = build_domains(claims)
    assert domains == [(0, 2), (1,), (3,)]  # the pair in one, in collection order
    assert claims[1] is PLAIN and claims[3] is PLAIN


def test_the_common_resource_joins_what_the_tests_declared() -> None:
    own = TestClaims(claims=(Claim("name", "db", EXCLUSIVE),))
    claims, _ = apply(NODEIDS, [own, PLAIN, PLAIN, PLAIN], [NEEDS, NEEDS])
    assert claims[0].claims[0] == Claim("name", "db", EXCLUSIVE)
    assert len(claims[0].claims) == 2  # added once, however often it is learned
    assert claims[2].claims == claims[0].claims[1:]


def test_the_marker_names_the_victim_without_its_parameters() -> None:
    assert NEEDS.resource == "reads"
    assert NEEDS.marker() == '@pytest.mark.resource("reads") on both'
    assert NEEDS.words() == "t.py::test_reads[1] needs s.py::test_creates"
    assert BESIDE.words() == "u.py::test_u fails beside v.py::test_v"


def test_merge_keeps_one_record_per_pair_the_newest() -> None:
    newer = NEEDS._replace(learned="the run of Z")
    assert merge([NEEDS, BESIDE], [newer]) == [BESIDE, newer]


def test_split_existing_drops_a_pair_when_either_test_is_gone() -> None:
    kept, gone = split_existing([NEEDS, BESIDE], set(NODEIDS))
    assert (kept, gone) == ([NEEDS], [BESIDE])


def test_decode_reads_back_what_encode_wrote_and_skips_anything_else() -> None:
    raw = encode([NEEDS, BESIDE])
    assert decode(raw) == [NEEDS, BESIDE]
    junk = [{"cause": "telepathy", "victim": "a", "other": "b", "learned": "x"}, {"cause": 1}, 3]
    assert decode([*junk, *raw]) == [NEEDS, BESIDE]
    assert decode({"not": "a list"}) == [] and decode(None) == []
