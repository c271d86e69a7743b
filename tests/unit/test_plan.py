"""Unit tests for pytest_isolate.schedule.plan and .planreport: exact queues and loads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_isolate.declare.claims import SHARED, Claim, TestClaims
from pytest_isolate.schedule.plan import (
    DEFAULT_ESTIMATE,
    CollectionPlan,
    Plan,
    Unit,
    estimate_durations,
    make_plan,
    make_units,
    plan_collection,
)
from pytest_isolate.schedule.planreport import format_plan

FREE = TestClaims()
SERIAL = TestClaims(serial=True)


def U(*tests: int, est: float, serial: bool = False, guessed: bool = False) -> Unit:
    return Unit(tests=tests, estimate=est, serial=serial, guessed=guessed)


def S(*tests: int, est: float) -> Unit:
    return Unit(tests=tests, estimate=est, serial=True)


def holds(key: str) -> TestClaims:
    return TestClaims((Claim("name", key),))


# --------------------------------------------------------------------------- estimate_durations


@pytest.mark.parametrize(
    ("nodeids", "recorded", "expected", "known"),
    [
        pytest.param([], {}, [], 0, id="empty"),
        pytest.param(["a", "b"], {"a": 1.0, "b": 2.0}, [1.0, 2.0], 2, id="all-known"),
        pytest.param(
            ["a", "b", "c", "d"],
            {"a": 1.0, "b": 3.0, "c": 10.0},
            [1.0, 3.0, 10.0, 3.0],
            3,
            id="unknown-gets-median-odd",
        ),
        pytest.param(
            ["a", "b", "c"],
            {"a": 1.0, "c": 3.0},
            [1.0, 2.0, 3.0],
            2,
            id="unknown-gets-median-even",
        ),
        pytest.param(
            ["a", "b"],
            {},
            [DEFAULT_ESTIMATE, DEFAULT_ESTIMATE],
            0,
            id="no-history-default",
        ),
        pytest.param(
            ["a"],
            {"gone": 5.0},
            [DEFAULT_ESTIMATE],
            0,
            id="history-of-uncollected-tests-ignored",
        ),
        pytest.param(
            ["a", "b", "c"],
            {"a": 4.0, "gone": 100.0},
            [4.0, 4.0, 4.0],
            1,
            id="median-of-collected-only",
        ),
        pytest.param(["a", "b"], {"a": 0.0}, [0.0, 0.0], 1, id="zero-is-history"),
    ],
)
def test_estimate_durations(
    nodeids: list[str], recorded: dict[str, float], expected: list[float], known: int
) -> None:
    assert estimate_durations(nodeids, recorded) == (expected, known)


def test_default_estimate_is_positive() -> None:
    assert DEFAULT_ESTIMATE > 0


# ---------------------------------------------------------------------------------- make_units


@pytest.mark.parametrize(
    ("domains", "claims", "estimates", "expected"),
    [
        pytest.param([], [], [], (), id="empty"),
        pytest.param(
            [(0,), (1, 2), (3,)],
            [FREE] * 4,
            [1.0, 2.0, 3.0, 0.5],
            (U(1, 2, est=5.0), U(0, est=1.0), U(3, est=0.5)),
            id="longest-first-summed",
        ),
        pytest.param(
            [(2,), (0,), (1,)],
            [FREE] * 3,
            [1.0, 1.0, 1.0],
            (U(0, est=1.0), U(1, est=1.0), U(2, est=1.0)),
            id="ties-by-first-index",
        ),
        pytest.param(
            [(0,), (1,), (2,)],
            [FREE, SERIAL, FREE],
            [5.0, 1.0, 3.0],
            (S(1, est=1.0), U(0, est=5.0), U(2, est=3.0)),
            id="serial-first",
        ),
        pytest.param(
            [(0,), (1,), (2,), (3,)],
            [SERIAL, FREE, SERIAL, FREE],
            [1.0, 9.0, 2.0, 1.0],
            (S(2, est=2.0), S(0, est=1.0), U(1, est=9.0), U(3, est=1.0)),
            id="serial-units-longest-first",
        ),
        pytest.param(
            [(0, 1), (2,)],
            [FREE, SERIAL, FREE],
            [1.0, 1.0, 8.0],
            (S(0, 1, est=2.0), U(2, est=8.0)),
            id="one-serial-test-makes-domain-serial",
        ),
        pytest.param(
            [(0, 2), (1,), (3,)],
            [holds("a"), FREE, holds("a"), FREE],
            [1.0, 2.0, 1.0, 2.0],
            (U(0, 2, est=2.0), U(1, est=2.0), U(3, est=2.0)),
            id="domain-ties-free-tests",
        ),
    ],
)
def test_make_units(
    domains: list[tuple[int, ...]],
    claims: list[TestClaims],
    estimates: list[float],
    expected: tuple[Unit, ...],
) -> None:
    assert make_units(domains, claims, estimates) == expected


def test_unit_first() -> None:
    assert U(3, 5, 9, est=1.0).first == 3


# ----------------------------------------------------------------------------------- make_plan


@pytest.mark.parametrize(
    ("units", "workers", "queues", "loads"),
    [
        pytest.param([], 3, ((), (), ()), (0.0, 0.0, 0.0), id="nothing"),
        pytest.param(
            [
                U(0, est=5.0),
                U(1, est=4.0),
                U(2, est=3.0),
                U(3, est=3.0),
                U(4, est=2.0),
                U(5, est=2.0),
            ],
            2,
            ((0, 3, 5), (1, 2, 4)),
            (10.0, 9.0),
            id="lpt-two-workers",
        ),
        pytest.param(
            [U(0, est=3.0), U(1, est=3.0), U(2, est=2.0), U(3, est=2.0), U(4, est=2.0)],
            2,
            ((0, 2, 4), (1, 3)),
            (7.0, 5.0),
            id="lpt-classic",
        ),
        pytest.param(
            [U(0, est=8.0), U(1, est=3.0), U(2, est=3.0), U(3, est=1.0)],
            3,
            ((0,), (1, 3), (2,)),
            (8.0, 4.0, 3.0),
            id="lpt-three-workers",
        ),
        pytest.param(
            [U(0, est=1.0), U(1, est=1.0), U(2, est=1.0)],
            2,
            ((0, 2), (1,)),
            (2.0, 1.0),
            id="ties-go-to-lowest-worker",
        ),
        pytest.param(
            [U(0, est=3.0), U(1, est=2.0), U(2, est=1.0)],
            4,
            ((0,), (1,), (2,), ()),
            (3.0, 2.0, 1.0, 0.0),
            id="more-workers-than-units",
        ),
        pytest.param(
            [U(0, est=3.0), U(1, est=2.0), U(2, est=1.0)],
            1,
            ((0, 1, 2),),
            (6.0,),
            id="one-worker",
        ),
        pytest.param(
            [U(0, est=3.0), U(1, est=2.0)],
            0,
            ((0, 1),),
            (5.0,),
            id="zero-workers-means-one",
        ),
        pytest.param(
            [S(0, est=2.0), S(1, est=1.0), U(2, est=3.0), U(3, est=1.0)],
            3,
            ((0, 1, 2), (3,), ()),
            (6.0, 4.0, 3.0),
            id="serial-on-worker-0-advance-every-clock",
        ),
        pytest.param(
            [S(0, est=2.0), S(1, est=3.0)],
            2,
            ((0, 1), ()),
            (5.0, 5.0),
            id="serial-only",
        ),
        pytest.param(
            [S(0, est=4.0), U(1, est=1.0), U(2, est=1.0), U(3, est=1.0)],
            2,
            ((0, 1, 3), (2,)),
            (6.0, 5.0),
            id="serial-then-lpt",
        ),
    ],
)
def test_make_plan(
    units: list[Unit],
    workers: int,
    queues: tuple[tuple[int, ...], ...],
    loads: tuple[float, ...],
) -> None:
    plan = make_plan(units, workers)
    assert plan == Plan(tuple(units), queues, loads)
    assert plan.makespan == max(loads)


@pytest.mark.parametrize(
    ("units", "workers", "bound"),
    [
        pytest.param([], 2, 0.0, id="empty"),
        pytest.param([U(0, est=4.0), U(1, est=2.0), U(2, est=2.0)], 2, 4.0, id="balanced"),
        pytest.param([U(0, est=10.0), U(1, est=1.0), U(2, est=1.0)], 2, 10.0, id="longest"),
        pytest.param([U(i, est=1.0) for i in range(6)], 4, 1.5, id="average"),
        pytest.param([U(0, est=3.0), U(1, est=1.0)], 0, 4.0, id="zero-workers"),
        pytest.param(
            [S(0, est=2.0), U(1, est=4.0), U(2, est=4.0)],
            2,
            6.0,
            id="serial-not-divided",
        ),
        pytest.param(
            [S(0, est=1.0), S(1, est=1.0), U(2, est=1.0)],
            4,
            2.25,
            id="serial-plus-share",
        ),
        pytest.param([S(0, est=7.0), U(1, est=1.0)], 2, 7.5, id="serial-longest"),
    ],
)
def test_lower_bound(units: list[Unit], workers: int, bound: float) -> None:
    # max((total - serial) / workers + serial, longest unit)
    plan = make_plan(units, workers)
    assert plan.lower_bound() == bound
    assert plan.makespan >= plan.lower_bound()


@pytest.mark.parametrize(
    ("units", "total", "longest"),
    [
        pytest.param([], 0.0, None, id="empty"),
        pytest.param([U(0, est=1.0), U(1, est=2.0)], 3.0, U(1, est=2.0), id="max"),
        pytest.param(
            [U(3, est=2.0), U(1, est=2.0), U(5, est=2.0)],
            6.0,
            U(1, est=2.0),
            id="tie-earliest-test",
        ),
    ],
)
def test_plan_total_and_longest(units: list[Unit], total: float, longest: Unit | None) -> None:
    plan = make_plan(units, 2)
    assert plan.total == total
    assert plan.longest == longest


unit_lists = st.lists(
    st.tuples(st.integers(0, 20).map(float), st.booleans()),
    max_size=15,
).map(
    lambda items: make_units(
        [(i,) for i in range(len(items))],
        [TestClaims(serial=serial) for _, serial in items],
        [est for est, _ in items],
    )
)


@settings(max_examples=300, deadline=None)
@given(unit_lists, st.integers(1, 6), st.sampled_from([0.0, 0.5, 5.0]))
def test_property_plan(units: tuple[Unit, ...], workers: int, pool_below: float) -> None:
    plan = make_plan(units, workers, pool_below)
    assert len(plan.queues) == workers
    placed = [index for queue in plan.queues for index in queue]
    assert sorted(placed + list(plan.pool)) == list(range(len(units)))
    # Short units are pooled, in collection order; serial ones never.
    assert set(plan.pool) == {
        i for i, unit in enumerate(units) if not unit.serial and unit.estimate < pool_below
    }
    assert [units[i].first for i in plan.pool] == sorted(units[i].first for i in plan.pool)
    for queue in plan.queues:
        # Each worker runs its units in collection order, whatever their length.
        firsts = [units[i].first for i in queue]
        assert firsts == sorted(firsts)
    serial = [index for index, unit in enumerate(units) if unit.serial]
    assert set(serial) <= set(plan.queues[0])
    clock = sum(units[i].estimate for i in serial)
    if not plan.pool:
        for worker, queue in enumerate(plan.queues):
            work = sum(units[i].estimate for i in queue if not units[i].serial)
            assert plan.loads[worker] == clock + work
    assert plan.lower_bound() <= plan.makespan <= 2 * plan.lower_bound()


# ------------------------------------------------------------------------------ plan_collection

NODEIDS = ["t.py::a", "t.py::b", "t.py::c", "t.py::d", "t.py::e"]
CLAIMS = [holds("redis"), FREE, holds("redis"), SERIAL, FREE]
RECORDED = {"t.py::a": 2.0, "t.py::b": 4.0, "t.py::c": 1.0, "t.py::d": 0.5, "gone": 99.0}


def test_plan_collection() -> None:
    # e is unknown: the median of 2, 4, 1 and 0.5 is 1.5.
    result = plan_collection(NODEIDS, CLAIMS, RECORDED, workers=2)
    units = (S(3, est=0.5), U(1, est=4.0), U(0, 2, est=3.0), U(4, est=1.5, guessed=True))
    assert result == CollectionPlan(
        # Worker 0 runs b before d, as collected; e, a guess, is pooled: whichever worker
        # reaches it first in collection order takes it.
        plan=Plan(units=units, queues=((1, 0), (2,)), loads=(4.5, 5.0), pool=(3,)),
        estimates=(2.0, 4.0, 1.0, 0.5, 1.5),
        recorded=4,
    )
    assert result.plan.makespan == 5.0
    assert result.plan.total == 9.0
    assert result.plan.lower_bound() == 4.75


def test_plan_collection_without_history() -> None:
    result = plan_collection(["a", "b"], [holds("x"), holds("x")], {}, workers=3)
    estimate = 2 * DEFAULT_ESTIMATE
    assert result == CollectionPlan(
        plan=Plan(
            units=(U(0, 1, est=estimate, guessed=True),),
            queues=((), (), ()),
            loads=(estimate, 0, 0),
            pool=(0,),
        ),
        estimates=(DEFAULT_ESTIMATE, DEFAULT_ESTIMATE),
        recorded=0,
    )


# ---------------------------------------------------------------------------------- planreport


def test_format_plan() -> None:
    result = plan_collection(NODEIDS, CLAIMS, RECORDED, workers=2)
    lines = format_plan(result.plan, NODEIDS, CLAIMS, result.estimates, result.recorded)
    text = "\n".join(lines)
    for nodeid in NODEIDS:
        assert nodeid in text
    assert "gone" not in text
    assert lines[0] == (
        "pytest-isolate plan: 5 tests, 1 domain and 3 free tests, "
        "4 with recorded durations, 2 workers"
    )
    assert lines == [
        lines[0],
        "",
        "domains (priority order):",
        "  [1] 0.500s  1 test  serial",
        "      0.500s  t.py::d",
        "  [2] 4.000s  1 test  free",
        "      4.000s  t.py::b",
        "  [3] 3.000s  2 tests  redis",
        "      2.000s  t.py::a",
        "      1.000s  t.py::c",
        "  [4] 1.500s  1 test  free",
        "      1.500s  t.py::e",
        "",
        "schedule:",
        "  worker 0: 4.500s  [2] [1]",
        "  worker 1: 5.000s  [3]",
        "  pooled, to the first worker free in collection order: [4]",
        "estimated makespan 5.000s, lower bound 4.750s, total work 9.000s",
    ]


def test_format_plan_idle_worker() -> None:
    claims = [FREE]
    result = plan_collection(["t.py::only"], claims, {"t.py::only": 1.0}, workers=2)
    lines = format_plan(result.plan, ["t.py::only"], claims, result.estimates, result.recorded)
    assert "  worker 0: 1.000s  [1]" in lines
    assert "  worker 1: 0.000s  -" in lines
    assert lines[-1] == "estimated makespan 1.000s, lower bound 1.000s, total work 1.000s"


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        pytest.param(TestClaims(), "free", id="free"),
        pytest.param(holds("redis"), "redis", id="name"),
        pytest.param(TestClaims((Claim("name", "cfg", SHARED),)), "cfg (shared)", id="shared"),
        pytest.param(TestClaims((Claim("dir", "/repo/out"),)), "dir:/repo/out", id="dir"),
        pytest.param(TestClaims((Claim("port", "8080"),)), "port:8080", id="port"),
        pytest.param(TestClaims((Claim("group", "db"),)), "group:db", id="group"),
        pytest.param(TestClaims(counted=("gpu",)), "gpu (counted)", id="counted"),
        pytest.param(TestClaims(serial=True), "serial", id="serial"),
        pytest.param(
            TestClaims((Claim("name", "s3"), Claim("port", "1")), ("gpu",), True),
            "gpu (counted), port:1, s3, serial",
            id="several-sorted",
        ),
    ],
)
def test_format_plan_describes_claims(claims: TestClaims, description: str) -> None:
    result = plan_collection(["t.py::x"], [claims], {}, workers=1)
    lines = format_plan(result.plan, ["t.py::x"], [claims], result.estimates, result.recorded)
    assert lines[3] == f"  [1] 0.010s  1 test  {description}"


def test_group_neighbours_chunks_consecutive_free_tests_of_one_module() -> None:
    from pytest_isolate.schedule.plan import group_neighbours

    nodeids = ["a.py::t0", "a.py::t1", "a.py::t2", "b.py::t0", "a.py::t3", "a.py::t4"]
    plain = TestClaims()
    claims = [plain, plain, TestClaims(serial=True), plain, plain, plain]
    estimates = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    domains = [(i,) for i in range(6)]
    # Cap 2 s: a chunk holds at most two 1 s tests; a declaring test or another module ends it.
    assert group_neighbours(domains, nodeids, claims, estimates, cap=2.0) == [
        (0, 1),
        (2,),
        (3,),
        (4, 5),
    ]
    assert group_neighbours(domains, nodeids, claims, estimates, cap=0.5) == [
        (i,) for i in range(6)
    ]
    # Multi-test domains are kept whole and break chunks.
    assert group_neighbours(
        [(0, 4), (1,), (2,), (3,), (5,)], nodeids, [plain] * 6, estimates, 9
    ) == [
        (0, 4),
        (1, 2),
        (3,),
        (5,),
    ]


def test_a_module_up_to_twice_the_cap_stays_one_chunk() -> None:
    from pytest_isolate.schedule.plan import group_neighbours

    # Its last test ran on another worker once and recorded the module fixture's 0.3 s as
    # its own. Cut off by the cap again, it would run apart again: the cut feeds itself.
    nodeids = [f"m.py::t{i}" for i in range(10)] + [f"n.py::t{i}" for i in range(6)]
    estimates = [0.31] + [0.013] * 8 + [0.31] + [0.3] * 6
    claims = [TestClaims()] * 16
    domains = [(i,) for i in range(16)]
    # m.py: 0.72 s <= 2 x 0.5, whole; n.py: 1.8 s > 1.0, cut at the cap as before.
    assert group_neighbours(domains, nodeids, claims, estimates, cap=0.5) == [
        tuple(range(10)),
        (10,),
        (11,),
        (12,),
        (13,),
        (14,),
        (15,),
    ]
