"""Unit tests for pytest_isolate.declare.domains: hand-built claims in, exact partitions out."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_isolate.declare.claims import EXCLUSIVE, SHARED, Claim, TestClaims, conflicts
from pytest_isolate.declare.domains import build_domains


def t(*claims: Claim, counted: tuple[str, ...] = (), serial: bool = False) -> TestClaims:
    return TestClaims(tuple(sorted(set(claims))), counted, serial)


def X(key: str) -> Claim:
    return Claim("name", key, EXCLUSIVE)


def R(key: str) -> Claim:
    return Claim("name", key, SHARED)


def D(key: str, mode: str = EXCLUSIVE) -> Claim:
    return Claim("dir", key, mode)


def P(key: str, mode: str = EXCLUSIVE) -> Claim:
    return Claim("port", key, mode)


def G(key: str, mode: str = EXCLUSIVE) -> Claim:
    return Claim("group", key, mode)


FREE = t()

CASES = [
    pytest.param([], [], id="empty"),
    pytest.param([FREE], [(0,)], id="one-free"),
    pytest.param([FREE, FREE, FREE], [(0,), (1,), (2,)], id="free-stay-singletons"),
    pytest.param([t(X("a")), t(X("b"))], [(0,), (1,)], id="different-names"),
    pytest.param([t(X("a"))], [(0,)], id="lone-holder"),
    pytest.param([t(X("a")), FREE, t(X("a"))], [(0, 2), (1,)], id="two-exclusive-holders"),
    pytest.param(
        [t(X("a")), t(X("a")), t(X("a"))],
        [(0, 1, 2)],
        id="three-exclusive-holders",
    ),
    pytest.param([t(R("a")), t(R("a")), t(R("a"))], [(0,), (1,), (2,)], id="readers-apart"),
    pytest.param(
        [t(R("a")), t(R("a")), t(X("a")), t(R("b"))],
        [(0, 1, 2), (3,)],
        id="writer-joins-all-readers",
    ),
    pytest.param(
        [t(R("a")), FREE, t(R("a")), t(X("a"))],
        [(0, 2, 3), (1,)],
        id="writer-last-joins-readers",
    ),
    pytest.param(
        [t(X("a")), t(R("b")), t(R("b"))],
        [(0,), (1,), (2,)],
        id="writer-of-other-name-joins-nothing",
    ),
    pytest.param(
        [t(X("x")), t(X("x"), X("y")), t(X("y"))],
        [(0, 1, 2)],
        id="transitive-chain",
    ),
    pytest.param(
        [t(X("x")), FREE, t(X("z")), t(X("x"), X("y")), t(X("y"), X("z")), FREE],
        [(0, 2, 3, 4), (1,), (5,)],
        id="transitive-long-chain",
    ),
    pytest.param(
        [t(R("x")), t(X("x"), R("y")), t(R("y"))],
        [(0, 1), (2,)],
        id="chain-broken-by-readers",
    ),
    pytest.param([t(D("/a")), t(D("/a/b"))], [(0, 1)], id="dir-parent-child"),
    pytest.param([t(D("/a/b")), t(D("/a"))], [(0, 1)], id="dir-child-parent"),
    pytest.param([t(D("/a")), t(D("/a/b/c"))], [(0, 1)], id="dir-grandchild"),
    pytest.param([t(D("/a/b")), t(D("/a/c"))], [(0,), (1,)], id="dir-siblings"),
    pytest.param([t(D("/a")), t(D("/ab"))], [(0,), (1,)], id="dir-name-prefix"),
    pytest.param(
        [t(D("/a")), t(D("/a-c")), t(D("/a/b"))],
        [(0, 2), (1,)],
        id="dir-a-ac-ab",
    ),
    pytest.param(
        [t(D("/a-c")), t(D("/a/b")), t(D("/a"))],
        [(0,), (1, 2)],
        id="dir-a-ac-ab-reordered",
    ),
    pytest.param([t(D("/")), t(D("/x/y"))], [(0, 1)], id="dir-root"),
    pytest.param([t(D("/a")), t(D("/a"))], [(0, 1)], id="dir-same"),
    pytest.param(
        [t(D("/a", SHARED)), t(D("/a", SHARED))],
        [(0,), (1,)],
        id="dir-readers-same-path",
    ),
    pytest.param(
        [t(D("/a", SHARED)), t(D("/a/b", SHARED)), t(D("/a/b/c", SHARED))],
        [(0,), (1,), (2,)],
        id="dir-shared-only-nested-apart",
    ),
    pytest.param(
        [t(D("/a", SHARED)), t(D("/a/b"))],
        [(0, 1)],
        id="dir-shared-parent-writer-child",
    ),
    pytest.param(
        [t(D("/a")), t(D("/a/b", SHARED)), t(D("/a/c", SHARED))],
        [(0, 1, 2)],
        id="dir-writer-parent-shared-children",
    ),
    pytest.param(
        [t(D("/a/b")), t(D("/a/c")), t(D("/a", SHARED))],
        [(0, 1, 2)],
        id="dir-shared-parent-joins-writer-children",
    ),
    pytest.param(
        [t(D("/a/b/c", SHARED)), t(D("/a", SHARED)), t(D("/a/b"))],
        [(0, 1, 2)],
        id="dir-writer-in-the-middle",
    ),
    pytest.param(
        [t(D("/a/b", SHARED)), t(D("/a/c", SHARED)), t(D("/a/b/x"))],
        [(0, 2), (1,)],
        id="dir-writer-below-one-reader",
    ),
    pytest.param(
        [t(D("/a/b")), t(D("/a/c")), t(D("/b"))],
        [(0,), (1,), (2,)],
        id="dir-unrelated-writers",
    ),
    pytest.param([t(G("g")), t(G("g")), t(G("h"))], [(0, 1), (2,)], id="groups-join"),
    pytest.param(
        [t(G("g", SHARED)), t(G("g", SHARED))],
        [(0, 1)],
        id="groups-join-whatever-the-mode",
    ),
    pytest.param([t(P("80")), t(P("81")), t(P("80"))], [(0, 2), (1,)], id="ports"),
    pytest.param(
        [t(P("80", SHARED)), t(P("80", SHARED))],
        [(0,), (1,)],
        id="port-readers-apart",
    ),
    pytest.param(
        [t(X("8080")), t(P("8080")), t(G("8080")), t(D("/8080"))],
        [(0,), (1,), (2,), (3,)],
        id="same-key-different-kinds",
    ),
    pytest.param(
        [t(serial=True), t(serial=True), t(counted=("gpu",)), t(counted=("gpu",))],
        [(0,), (1,), (2,), (3,)],
        id="serial-and-counted-do-not-join",
    ),
    pytest.param(
        [t(X("b")), t(X("a")), t(X("b")), t(X("a"))],
        [(0, 2), (1, 3)],
        id="interleaved-domains",
    ),
    pytest.param(
        [FREE, t(X("b")), t(X("a")), t(X("b")), t(X("a"))],
        [(0,), (1, 3), (2, 4)],
        id="sorted-by-first-index",
    ),
    pytest.param(
        [t(X("a")), FREE, t(X("b")), t(X("a"), X("b"))],
        [(0, 2, 3), (1,)],
        id="late-bridge",
    ),
    pytest.param(
        [t(X("a"), D("/d"), G("g")), t(D("/d/e")), t(G("g")), t(R("a"))],
        [(0, 1, 2, 3)],
        id="one-test-bridges-every-kind",
    ),
]


@pytest.mark.parametrize(("tests", "expected"), CASES)
def test_build_domains(tests: list[TestClaims], expected: list[tuple[int, ...]]) -> None:
    assert build_domains(tests) == expected


def test_domains_are_tuples() -> None:
    domains = build_domains([t(X("a")), t(X("a")), FREE])
    assert all(type(domain) is tuple for domain in domains)


# ----------------------------------------------------------------------------- properties

NAMES = ("x", "y", "z")
PORTS = ("80", "81")
GROUPS = ("g", "h")
DIRS = ("/", "/a", "/a/b", "/a/b/c", "/a/c", "/a-c", "/ab", "/b", "/b/a")
MODES = (EXCLUSIVE, SHARED)

claim_strategy = st.one_of(
    st.builds(Claim, st.just("name"), st.sampled_from(NAMES), st.sampled_from(MODES)),
    st.builds(Claim, st.just("port"), st.sampled_from(PORTS), st.sampled_from(MODES)),
    st.builds(Claim, st.just("group"), st.sampled_from(GROUPS), st.just(EXCLUSIVE)),
    st.builds(Claim, st.just("dir"), st.sampled_from(DIRS), st.sampled_from(MODES)),
)

one_test_strategy = st.builds(
    TestClaims,
    st.lists(claim_strategy, max_size=3).map(lambda cs: tuple(sorted(set(cs)))),
    st.lists(st.sampled_from(("gpu", "browser")), max_size=1, unique=True).map(tuple),
    st.booleans(),
)

suites = st.lists(one_test_strategy, max_size=14)


def pair_conflicts(a: TestClaims, b: TestClaims) -> bool:
    return any(conflicts(x, y) for x in a.claims for y in b.claims)


def components(tests: Sequence[TestClaims]) -> set[frozenset[int]]:
    """Connected components of the conflict graph, by brute force."""
    n = len(tests)
    seen: set[int] = set()
    result: set[frozenset[int]] = set()
    for start in range(n):
        if start in seen:
            continue
        component = {start}
        todo = [start]
        while todo:
            here = todo.pop()
            for other in range(n):
                if other not in component and pair_conflicts(tests[here], tests[other]):
                    component.add(other)
                    todo.append(other)
        seen |= component
        result.add(frozenset(component))
    return result


@settings(max_examples=300, deadline=None)
@given(suites)
def test_property_partition(tests: list[TestClaims]) -> None:
    domains = build_domains(tests)
    flat = [index for domain in domains for index in domain]
    assert sorted(flat) == list(range(len(tests)))
    assert all(list(domain) == sorted(domain) and domain for domain in domains)
    assert [domain[0] for domain in domains] == sorted(domain[0] for domain in domains)


@settings(max_examples=300, deadline=None)
@given(suites)
def test_property_conflicting_tests_share_a_domain(tests: list[TestClaims]) -> None:
    domain_of = {index: d for d, domain in enumerate(build_domains(tests)) for index in domain}
    for i, a in enumerate(tests):
        for j, b in enumerate(tests):
            if pair_conflicts(a, b):
                assert domain_of[i] == domain_of[j], (i, j)


@settings(max_examples=300, deadline=None)
@given(suites, st.data())
def test_property_order_independent(tests: list[TestClaims], data: st.DataObject) -> None:
    perm = data.draw(st.permutations(range(len(tests))))
    shuffled = [tests[perm[i]] for i in range(len(tests))]
    original = {frozenset(domain) for domain in build_domains(tests)}
    mapped = {frozenset(perm[i] for i in domain) for domain in build_domains(shuffled)}
    assert mapped == original


@settings(max_examples=300, deadline=None)
@given(suites)
def test_property_domains_connected_by_conflicts(tests: list[TestClaims]) -> None:
    # Together with the property above: the domains are exactly the connected components
    # of the conflict graph, nothing joined without a chain of conflicts.
    domains = build_domains(tests)
    for domain in domains:
        members = set(domain)
        reached = {domain[0]}
        todo = [domain[0]]
        while todo:
            here = todo.pop()
            for other in members - reached:
                if pair_conflicts(tests[here], tests[other]):
                    reached.add(other)
                    todo.append(other)
        assert reached == members, domain
    assert {frozenset(domain) for domain in domains} == components(tests)
