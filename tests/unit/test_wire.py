"""Unit tests for pytest_isolate.xdist.wire: the claims of a collection as builtins and back."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_isolate.declare.claims import EXCLUSIVE, SHARED, Claim, TestClaims
from pytest_isolate.xdist import wire

PLAIN = TestClaims()
REDIS = TestClaims((Claim("name", "redis"),))
READER = TestClaims((Claim("name", "cfg", SHARED),))
SERIAL = TestClaims(serial=True)
GPU = TestClaims(counted=("gpu",))
EVERYTHING = TestClaims(
    (
        Claim("dir", "/repo/out"),
        Claim("group", "db"),
        Claim("name", "cfg", SHARED),
        Claim("port", "8080"),
    ),
    ("browser", "gpu"),
    True,
)


@pytest.mark.parametrize(
    "tests",
    [
        pytest.param([], id="empty"),
        pytest.param([PLAIN], id="one-plain"),
        pytest.param([PLAIN, PLAIN, PLAIN], id="all-plain"),
        pytest.param([REDIS], id="one-declaring"),
        pytest.param([PLAIN, REDIS, PLAIN, READER, SERIAL, GPU, PLAIN], id="mixture"),
        pytest.param([EVERYTHING, PLAIN, EVERYTHING], id="everything"),
    ],
)
def test_round_trip(tests: list[TestClaims]) -> None:
    decoded = wire.decode(wire.encode(tests))
    assert decoded == tests
    assert [test.is_plain for test in decoded] == [test.is_plain for test in tests]


@pytest.mark.parametrize(
    ("tests", "payload"),
    [
        pytest.param([], {}, id="empty"),
        pytest.param([PLAIN, PLAIN], {}, id="plain-only"),
        pytest.param(
            [PLAIN, REDIS, PLAIN, SERIAL, GPU, READER],
            {
                1: ([["name", "redis", EXCLUSIVE]], [], False),
                3: ([], [], True),
                4: ([], ["gpu"], False),
                5: ([["name", "cfg", SHARED]], [], False),
            },
            id="mixture",
        ),
        pytest.param(
            [EVERYTHING],
            {
                0: (
                    [
                        ["dir", "/repo/out", EXCLUSIVE],
                        ["group", "db", EXCLUSIVE],
                        ["name", "cfg", SHARED],
                        ["port", "8080", EXCLUSIVE],
                    ],
                    ["browser", "gpu"],
                    True,
                )
            },
            id="everything",
        ),
    ],
)
def test_encode_is_sparse(tests: list[TestClaims], payload: dict[int, Any]) -> None:
    assert wire.encode(tests) == {
        "version": wire.VERSION,
        "count": len(tests),
        "claims": payload,
        "malformed": 0,
    }


def test_the_malformed_count_travels() -> None:
    message = wire.encode([PLAIN], malformed=3)
    assert wire.malformed(message) == 3
    assert wire.malformed(wire.encode([PLAIN])) == 0


def test_large_plain_suite_stays_small() -> None:
    message = wire.encode([PLAIN] * 10_000 + [REDIS])
    assert message["count"] == 10_001
    assert list(message["claims"]) == [10_000]


def _builtins_only(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_builtins_only(k) and _builtins_only(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_builtins_only(item) for item in value)
    return type(value) in (str, int, bool, float, type(None))


def test_encode_uses_builtins_only() -> None:
    assert _builtins_only(wire.encode([PLAIN, EVERYTHING, REDIS, SERIAL]))


def test_round_trip_through_execnet_serializer() -> None:
    execnet = pytest.importorskip("execnet")
    tests = [PLAIN, EVERYTHING, READER, PLAIN, GPU]
    assert wire.decode(execnet.loads(execnet.dumps(wire.encode(tests)))) == tests


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        pytest.param({"version": 3, "count": 0, "claims": {}}, "'version': 3", id="newer-version"),
        pytest.param({"version": 0, "count": 0, "claims": {}}, "'version': 0", id="older-version"),
        pytest.param(
            {"version": "2", "count": 0, "claims": {}}, "'version': '2'", id="str-version"
        ),
        pytest.param({"count": 0, "claims": {}}, "'count': 0", id="no-version"),
        pytest.param([1, 0, {}], "[1, 0, {}]", id="list"),
        pytest.param(None, "None", id="none"),
        pytest.param("claims", "'claims'", id="str"),
    ],
)
def test_decode_rejects_unknown_format(message: Any, shown: str) -> None:
    with pytest.raises(ValueError) as info:
        wire.decode(message)
    text = str(info.value)
    assert "unknown format" in text
    assert "same pytest-isolate version" in text
    assert shown in text


def test_decode_error_truncates_huge_messages() -> None:
    message = {"version": 99, "claims": {i: "x" * 50 for i in range(1000)}}
    with pytest.raises(ValueError) as info:
        wire.decode(message)
    assert len(str(info.value)) < 300


# ---------------------------------------------------------------------------------- properties

claims_strategy = st.builds(
    Claim,
    st.sampled_from(("name", "dir", "port", "group")),
    st.text(min_size=1, max_size=8),
    st.sampled_from((EXCLUSIVE, SHARED)),
)

one_test = st.one_of(
    st.just(PLAIN),
    st.builds(
        TestClaims,
        st.lists(claims_strategy, max_size=4, unique=True).map(lambda cs: tuple(sorted(cs))),
        st.lists(st.text(min_size=1, max_size=5), max_size=2, unique=True).map(
            lambda names: tuple(sorted(names))
        ),
        st.booleans(),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(one_test, max_size=20))
def test_property_round_trip(tests: list[TestClaims]) -> None:
    message = wire.encode(tests)
    assert wire.decode(message) == tests
    assert set(message["claims"]) == {i for i, test in enumerate(tests) if not test.is_plain}
    assert _builtins_only(message)
