"""The dispatcher against a simulated xdist: every moment of every run is checked.

The simulated workers follow xdist's rule: a worker starts the head of its queue only when
another test is queued behind it, or after a shutdown. Any moment where two conflicting tests
run at once, a counted resource goes over capacity, a serial test shares the machine, a domain
leaves its worker or its order, a test runs twice or never, or the run stalls, fails the test.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_isolate.declare.claims import EXCLUSIVE, SHARED, Claim, TestClaims, conflicts
from pytest_isolate.declare.domains import build_domains
from pytest_isolate.schedule.dispatch import (
    BUFFER_SECONDS,
    MAX_DEPTH,
    Dispatcher,
    Send,
    Shutdown,
    setup_free_modules,
)
from pytest_isolate.schedule.plan import (
    make_plan,
    make_units,
    module_of,
    plan_tests,
)


@dataclass
class SimWorker:
    name: str
    queue: deque[int] = field(default_factory=deque)
    shutdown: bool = False
    running: int | None = None


@dataclass
class Run:
    started: list[tuple[float, str, int]]  # (time, worker, test) in start order
    makespan: float
    crashed: list[int]


class Violation(AssertionError):
    pass


JOIN = -1  # an event's "test" when the event is a worker joining
STOP = -2  # ... when xdist ends the run (-x, a worker's KeyboardInterrupt)
ABANDON = -3  # ... when a planned worker is known never to come (it failed to start)


def simulate(
    claims: list[TestClaims],
    durations: list[float],
    workers: int,
    capacity: dict[str, int] | None = None,
    estimates: list[float] | None = None,
    max_depth: int = 16,
    crash_at: int | None = None,
    dispatcher_class: type[Dispatcher] = Dispatcher,
    buffer_seconds: float = BUFFER_SECONDS,
    nodeids: list[str] | None = None,
    guessed: bool = False,
    joins: list[float | None] | None = None,
    retry_crash: bool = False,
    stop_at: float | None = None,
) -> Run:
    """Run the dispatcher against simulated xdist workers; raise Violation on any fault.

    ``crash_at``: the worker running the test with this start number dies mid-test and is
    replaced by a new worker, as xdist does. ``nodeids``: free tests of one module are
    chunked together as plan_collection does. ``joins``: when each worker (by slot) has
    collected and joins the run (None: it never does, and is abandoned at 0.5 s); by default
    all at 0. ``retry_crash``: the crashed test is asked for again at once (a rerun plugin,
    through xdist's mark_test_pending). ``stop_at``: xdist ends the run then, shutting every
    worker down (Dispatcher.stop); tests not sent by then never run, and none is replaced.
    """
    capacity = capacity or {}
    estimates = estimates or durations
    # The scheduler's own pipeline (plan.plan_collection), with the simulation's estimates.
    plan = plan_tests(
        claims, estimates, workers, nodeids or (), range(len(claims)) if guessed else ()
    )
    dispatcher = dispatcher_class(
        plan,
        claims,
        estimates,
        capacity,
        max_depth=max_depth,
        buffer_seconds=buffer_seconds,
        guessed=range(len(claims)) if guessed else (),
        clock=lambda: now,
        modules=[module_of(nodeid) for nodeid in nodeids] if nodeids else (),
    )
    names = itertools.count(workers)
    sims: dict[str, SimWorker] = {}
    now = 0.0
    events: list[tuple[float, int, str, int]] = []  # (time, seq, worker, test or JOIN)
    sequence = itertools.count()
    for slot, when in enumerate(joins or [0.0] * workers):
        if when is None:
            heapq.heappush(events, (0.5, next(sequence), f"gw{slot}", ABANDON))
        elif when == 0.0:
            sims[f"gw{slot}"] = SimWorker(f"gw{slot}")
            dispatcher.add_worker(f"gw{slot}", slot)
        else:
            heapq.heappush(events, (when, next(sequence), f"gw{slot}", JOIN))
    started: list[tuple[float, str, int]] = []
    running: dict[str, int] = {}
    crashed: list[int] = []
    completed: set[int] = set()
    sent_by_stop: set[int] | None = None  # what had been sent when xdist ended the run
    if stop_at is not None:
        heapq.heappush(events, (stop_at, next(sequence), "", STOP))

    def apply(actions: list[Send | Shutdown]) -> None:
        for action in actions:
            sim = sims[action.worker]
            assert not sim.shutdown, f"{action} sent after shutdown"
            if isinstance(action, Send):
                sim.queue.extend(action.tests)
            else:
                sim.shutdown = True

    def check_start(name: str, test: int) -> None:
        mine = claims[test]
        others = [t for w, t in running.items() if w != name]
        for other in others:
            theirs = claims[other]
            if mine.serial or theirs.serial:
                raise Violation(f"serial overlap: {test} and {other}")
            for a in mine.claims:
                for b in theirs.claims:
                    if conflicts(a, b):
                        raise Violation(f"{test} and {other} overlap on {a} / {b}")
        for resource in mine.counted:
            holders = sum(1 for t in others if resource in claims[t].counted) + 1
            if holders > capacity[resource]:
                raise Violation(f"{resource} held {holders} times > {capacity[resource]}")

    apply(dispatcher.dispatch())
    while True:
        for name, sim in sims.items():
            if name in running or not sim.queue:
                continue
            if len(sim.queue) >= 2 or sim.shutdown:
                test = sim.queue[0]
                if sent_by_stop is not None and test not in sent_by_stop:
                    raise Violation(f"{test} was sent after xdist ended the run")
                check_start(name, test)
                running[name] = test
                started.append((now, name, test))
                heapq.heappush(events, (now + durations[test], next(sequence), name, test))
        if not events:
            break
        now, _, name, test = heapq.heappop(events)
        if test == STOP:
            sent_by_stop = completed | set(crashed) | {t for s in sims.values() for t in s.queue}
            for worker in list(sims):
                dispatcher.stop(worker)
            apply(dispatcher.dispatch())
            continue
        if test == ABANDON:
            dispatcher.abandon(int(name[2:]))
            apply(dispatcher.dispatch())
            continue
        if test == JOIN:
            if sent_by_stop is not None:
                continue  # xdist starts no worker once it is shutting down
            sims[name] = SimWorker(name)
            dispatcher.add_worker(name, int(name[2:]))
            apply(dispatcher.dispatch())
            continue
        del running[name]
        sims[name].queue.popleft()
        if crash_at is not None and len(started) > crash_at and started[crash_at][2] == test:
            crash_at = None
            slot = dispatcher.slot_of(name)
            lost = dispatcher.remove_worker(name)
            assert lost == test, (lost, test)
            crashed.append(test)
            del sims[name]
            if retry_crash:
                dispatcher.retry(test)
            if sent_by_stop is None:
                replacement = f"gw{next(names)}"
                sims[replacement] = SimWorker(replacement)
                dispatcher.add_worker(replacement, slot)
        else:
            assert test not in completed, f"test {test} ran twice"
            completed.add(test)
            dispatcher.complete(name, test, durations[test])
        apply(dispatcher.dispatch())

    ran = [test for _, _, test in started]
    stuck = {n: list(s.queue) for n, s in sims.items() if s.queue}
    if sent_by_stop is not None:
        # Ended by xdist: every worker was shut down and ran what it had; the rest never ran.
        if stuck or not all(sim.shutdown for sim in sims.values()):
            raise Violation(f"stalled after xdist ended the run: queues {stuck}")
        unfinished = set(dispatcher.never_finished())
        if unfinished & (completed | set(crashed)) or len(
            unfinished | completed | set(crashed)
        ) != len(claims):
            raise Violation(f"never_finished {sorted(unfinished)} is not what never ran")
        return Run(started, now, crashed)
    expected = len(claims) if retry_crash else len(claims) - len(crashed)
    if sorted(set(ran) - (set() if retry_crash else set(crashed))) != sorted(completed) or (
        len(completed) != expected
    ):
        raise Violation(f"stalled: {len(completed)}/{len(claims)} done, queues {stuck}")
    assert dispatcher.finished
    for domain in build_domains(claims):
        runs = [(w, t) for _, w, t in started if t in domain and t not in crashed]
        order = [t for _, t in runs]
        assert order == sorted(order), f"domain {domain} ran out of order: {order}"
        if crash_at is None and not crashed:
            assert len({w for w, _ in runs}) <= 1, f"domain {domain} split over workers"
    if not crashed and not any(c.serial or c.counted for c in claims):
        # Each worker runs its tests in collection order (the exceptions need a counted
        # resource, a serial test or a lost worker).
        for name in {w for _, w, _ in started}:
            mine = [t for _, w, t in started if w == name]
            if mine != sorted(mine):
                raise Violation(f"{name} ran its tests out of collection order: {mine}")
    return Run(started, now, crashed)


def exclusive(*names: str) -> TestClaims:
    return TestClaims(tuple(Claim("name", n, EXCLUSIVE) for n in names))


PLAIN = TestClaims()


def test_free_tests_spread_over_all_workers() -> None:
    run = simulate([PLAIN] * 8, [1.0] * 8, workers=4)
    assert run.makespan == pytest.approx(2.0)
    assert {w for _, w, _ in run.started} == {"gw0", "gw1", "gw2", "gw3"}


def test_no_worker_takes_the_only_unit_planned_for_a_neighbour() -> None:
    # One domain and two free tests on three workers: all three start at once.
    claims = [exclusive("build")] * 3 + [PLAIN, PLAIN]
    run = simulate(claims, [1.0, 1.0, 1.0, 2.0, 2.0], workers=3)
    assert sorted(when for when, _, t in run.started if t in (0, 3, 4)) == [0.0, 0.0, 0.0]
    assert run.makespan == pytest.approx(3.0)


def test_a_domain_stays_on_one_worker_in_order() -> None:
    claims = [exclusive("db")] * 4 + [PLAIN] * 4
    run = simulate(claims, [1.0] * 8, workers=2)
    assert run.makespan == pytest.approx(4.0)
    assert len({w for _, w, t in run.started if t < 4}) == 1


def test_longest_domains_start_first() -> None:
    # Four short free tests come first in collection order, the long domain last.
    claims = [PLAIN] * 4 + [exclusive("slow")] * 2
    durations = [0.5] * 4 + [3.0, 3.0]
    run = simulate(claims, durations, workers=2)
    first = [t for when, _, t in run.started if when == 0.0]
    assert 4 in first
    assert run.makespan == pytest.approx(6.0)


def test_serial_test_runs_alone() -> None:
    claims = [PLAIN] * 6 + [TestClaims(serial=True)] + [PLAIN] * 6
    run = simulate(claims, [1.0] * 13, workers=3)
    (start,) = [when for when, _, t in run.started if t == 6]
    assert all(when + 1.0 <= start or when >= start + 1.0 for when, _, t in run.started if t != 6)


def test_capacity_is_never_exceeded_and_is_used() -> None:
    claims = [TestClaims(counted=("gpu",))] * 6
    run = simulate(claims, [1.0] * 6, workers=4, capacity={"gpu": 2})
    assert run.makespan == pytest.approx(3.0)


def test_worker_does_not_idle_on_a_lock_while_free_work_is_ready() -> None:
    # Two gpu tests, capacity 1, and free work: the free work fills the wait.
    claims = [TestClaims(counted=("gpu",))] * 2 + [PLAIN] * 4
    run = simulate(claims, [2.0, 2.0, 1.0, 1.0, 1.0, 1.0], workers=2, capacity={"gpu": 1})
    assert run.makespan == pytest.approx(4.0)


def test_maxfail_depth_keeps_queues_short() -> None:
    dispatcher = Dispatcher(
        make_plan(make_units(build_domains([PLAIN] * 50), [PLAIN] * 50, [0.001] * 50), 2),
        [PLAIN] * 50,
        [0.001] * 50,
        {},
        max_depth=2,
    )
    dispatcher.add_worker("gw0")
    dispatcher.add_worker("gw1")
    dispatcher.dispatch()
    assert len(dispatcher.pending_of("gw0")) == 3  # two released, one parked
    assert len(dispatcher.pending_of("gw1")) == 3


def _one_worker(tests: int, estimate: float, guessed: bool) -> Dispatcher:
    claims = [PLAIN] * tests
    dispatcher = Dispatcher(
        make_plan(make_units(build_domains(claims), claims, [estimate] * tests), 1),
        claims,
        [estimate] * tests,
        {},
        guessed=range(tests) if guessed else (),
    )
    dispatcher.add_worker("gw0")
    return dispatcher


def _drain(dispatcher: Dispatcher, duration: float) -> int:
    """Complete every released test with ``duration``; returns how deep the queue got."""
    deepest = 0
    while pending := dispatcher.pending_of("gw0"):
        deepest = max(deepest, len(pending))
        dispatcher.complete("gw0", pending[0], duration)
        dispatcher.dispatch()
    return deepest


def test_tests_without_history_queue_as_deep_as_what_has_run_allows() -> None:
    # No history: each test is guessed at 0.01 s, so the first batch is a few tests. Once
    # tests are seen to take 0.1 ms, a queue holds many, and the run needs few messages.
    dispatcher = _one_worker(2000, 0.01, guessed=True)
    first = len(dispatcher.dispatch()[0].tests)
    assert first <= BUFFER_SECONDS / 0.01 + 1
    assert _drain(dispatcher, 0.0001) > 100


def test_recorded_estimates_are_not_overridden_by_what_has_run() -> None:
    # History says 0.01 s each: the queue stays within the time buffer whatever runs fast.
    dispatcher = _one_worker(2000, 0.01, guessed=False)
    dispatcher.dispatch()
    assert _drain(dispatcher, 0.0001) <= BUFFER_SECONDS / 0.01 + 1


def test_deep_queues_of_tiny_tests_still_end_together() -> None:
    # Recorded durations leave out pytest's own per-test cost: the tests really take ten
    # times their estimate. Deep queues save messages, but near the end a worker holds only
    # its share of what is left, so neither worker idles while the other drains a long queue.
    pick = random.Random(0)
    durations = [pick.choice([0.0005, 0.001, 0.0015]) for _ in range(2100)]
    run = simulate(
        [PLAIN] * 2100, durations, workers=2, estimates=[0.0001] * 2100, max_depth=MAX_DEPTH
    )
    assert run.makespan <= sum(durations) / 2 * 1.003


# Each worker runs its tests in collection order (since #19): a worker that has run a long
# test cannot take the short ones before it any more. Measured in this simulation, in order:
# 13.0 s at -n 4, 11.2 s at -n 6, 9.0 s at -n 8 (out of order before: 13.8, 9.6 and 9.0 s).
@pytest.mark.parametrize(("workers", "most", "slack"), [(4, 2, 1.35), (6, 2, 1.4), (8, 1, 1.2)])
def test_a_first_run_spreads_a_module_of_long_tests_over_the_workers(
    workers: int, most: int, slack: float
) -> None:
    # The skewed suite's first run: 80 tests of 0.1 s, then 6 of 3-8 s in the last module,
    # all guessed at 0.01 s. A test of a module none of whose tests has completed is not
    # queued behind another: its worker gets the next test only when it must start it, so
    # the long module's tests go one per worker as workers free up, as xdist's pull does.
    # Before: -n 8 took 16 s (two long tests in a row on three workers, five workers shut
    # down idle), -n 6 12 s; now 9.0 s and 9.6 s. The first worker still gets two of them
    # at the start, before anything has run (xdist needs a test queued behind the first).
    # At -n 4 two workers must run two long tests each; which pair up is luck (13.8 s
    # here; xdist's load, simulated alike: 14.0 s).
    short, long = [0.1] * 80, [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    nodeids = [f"test_short.py::t{i}" for i in range(80)] + [
        f"test_long.py::t{i}" for i in range(6)
    ]
    durations = short + long
    run = simulate(
        [PLAIN] * 86,
        durations,
        workers,
        estimates=[0.01] * 86,
        max_depth=MAX_DEPTH,
        nodeids=nodeids,
        guessed=True,
    )
    bound = max(sum(durations) / workers, max(long))
    long_on = Counter(worker for _, worker, test in run.started if test >= 80)
    assert max(long_on.values()) <= most, long_on
    assert run.makespan <= slack * bound, (run.makespan, bound)


def test_a_test_of_an_unseen_module_is_not_queued_behind_a_running_test() -> None:
    # Nothing of test_b.py has completed: releasing its first test (by sending the next
    # one) would commit two tests that may each run for seconds to this worker.
    claims = [PLAIN] * 6
    nodeids = ["test_a.py::t0", "test_a.py::t1", "test_b.py::t0", "test_b.py::t1"]
    nodeids += ["test_b.py::t2", "test_b.py::t3"]
    units = make_units(build_domains(claims), claims, [0.01] * 6)
    dispatcher = Dispatcher(
        make_plan(units, 1),
        claims,
        [0.01] * 6,
        {},
        guessed=range(6),
        modules=[module_of(nodeid) for nodeid in nodeids],
        clock=lambda: 0.0,
    )
    dispatcher.add_worker("gw0")
    dispatcher.dispatch()
    # Nothing has completed at all: one test runs, one is parked behind it.
    assert dispatcher.pending_of("gw0") == (0, 1)
    dispatcher.complete("gw0", 0, 0.001)
    dispatcher.dispatch()
    # test_a.py is seen to be short: its test runs, test_b.py's first is parked behind it
    # and stays parked while test_a.py's runs.
    assert dispatcher.pending_of("gw0") == (1, 2)
    assert dispatcher.dispatch() == []
    dispatcher.complete("gw0", 1, 0.001)
    # The worker is free: now test_b.py::t0 must start, and gets one test behind it.
    assert dispatcher.dispatch() == [Send("gw0", (3,))]
    dispatcher.complete("gw0", 2, 0.001)
    # test_b.py is seen to be short too: the queue deepens again.
    assert len(dispatcher.dispatch()[0].tests) == 2


def test_recorded_long_tests_queue_ahead_as_planned() -> None:
    # History says 1 s each: the plan placed them knowing it, so the worker is kept busy as
    # usual (two released, one parked), not held to one test at a time as unknown ones are.
    dispatcher = _one_worker(10, 1.0, guessed=False)
    assert dispatcher.dispatch() == [Send("gw0", (0, 1, 2))]


def test_a_domain_queues_ahead_whatever_is_known() -> None:
    # A domain's tests cannot run anywhere else: queuing one behind another takes nothing
    # from the other workers, so its worker is kept busy as usual (two released, one parked)
    # even though nothing of its module has completed.
    claims = [exclusive("redis")] * 4
    dispatcher = Dispatcher(
        make_plan(make_units(build_domains(claims), claims, [0.01] * 4), 1),
        claims,
        [0.01] * 4,
        {},
        guessed=range(4),
        modules=["test_redis.py"] * 4,
        clock=lambda: 0.0,
    )
    dispatcher.add_worker("gw0")
    assert dispatcher.dispatch() == [Send("gw0", (0, 1, 2))]


def test_a_chunk_cut_from_recorded_durations_is_never_split() -> None:
    # History: each module's first test carries its 3 s module fixture. Splitting the
    # rest of a module would set that fixture up again for a few tenths of a second of
    # tests (and the test that paid would record it as its own duration), so a worker
    # that runs dry leaves the module to the worker that has it.
    # Nine modules on two workers: one worker runs dry while the other has a module left.
    durations = ([3.0] + [0.1] * 10) * 9
    nodeids = [f"test_{i // 11}.py::t{i % 11}" for i in range(99)]
    run = simulate([PLAIN] * 99, durations, 2, max_depth=MAX_DEPTH, nodeids=nodeids)
    for module in range(9):
        workers = {w for _, w, test in run.started if test // 11 == module}
        assert len(workers) == 1, (module, workers)


@pytest.mark.parametrize("workers", [3, 4, 6])
def test_with_history_a_module_without_setup_cost_is_split_at_the_end(workers: int) -> None:
    # The skewed suite with history: four modules of twenty 0.1 s tests, kept whole by the
    # plan for their fixtures, and six tests of 3-8 s. Whole modules are coarse pieces: at
    # -n 4 the plan can do no better than 11 s against a bound of 10.25 s. Their tests all
    # take the same time (no fixture paid by the first), so workers that run dry take
    # tests off them at the end.
    short, long = [0.1] * 80, [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    nodeids = [f"test_short_{i // 20}.py::t{i}" for i in range(80)]
    nodeids += [f"test_long.py::t{i}" for i in range(6)]
    durations = short + long
    run = simulate([PLAIN] * 86, durations, workers, max_depth=MAX_DEPTH, nodeids=nodeids)
    bound = max(sum(durations) / workers, max(long))
    # Whole modules gave 15.1 s at -n 3, 11.1 s at -n 4, 10.1 s at -n 6; splitting them at
    # the end, out of order, met 1.03 of the bound. In collection order (#19) the end of the
    # run cannot take tests off a module before what a worker has run, so the plan cuts
    # modules without setup cost finer instead: within 1.04 of the bound.
    assert run.makespan <= 1.04 * bound, (run.makespan, bound)
    split = {
        module
        for module in range(4)
        if len({w for _, w, test in run.started if test < 80 and test // 20 == module}) > 1
    }
    assert split, "no module was split"


def test_a_module_shows_a_setup_cost_when_one_test_stands_out() -> None:
    modules = ["a.py"] * 4 + ["b.py"] * 4 + ["c.py"] * 3 + ["d.py"] * 2
    estimates = [0.1, 0.1, 0.12, 0.1]  # a.py: even
    estimates += [3.0, 0.1, 0.1, 0.1]  # b.py: its first test paid a fixture
    estimates += [0.001, 0.002, 0.011]  # c.py: tiny tests, within 10 ms
    estimates += [0.5, 0.001]  # d.py: the new test is guessed; the other stands alone
    assert setup_free_modules(modules, estimates, guessed={12}) == frozenset(
        {"a.py", "c.py", "d.py"}
    )
    # Two tests, one of which paid a 3 s fixture; a module split last run, where the first
    # test on each worker paid it: both still show the cost.
    assert setup_free_modules(["e.py"] * 2, [3.0, 0.1], ()) == frozenset()
    assert setup_free_modules(["f.py"] * 4, [3.1, 0.1, 3.1, 0.1], ()) == frozenset()


def test_the_run_starts_with_the_first_worker_to_join() -> None:
    # A domain of four 1 s tests and sixteen free ones of 0.25 s on two workers; gw1 has
    # collected first, gw0 joins a second later. gw1 takes the plan's first queue (the
    # domain) at once, and the free tests' queue waits for gw0.
    claims = [exclusive("db")] * 4 + [PLAIN] * 16
    run = simulate(claims, [1.0] * 4 + [0.25] * 16, workers=2, joins=[1.0, 0.0])
    assert run.started[0] == (0.0, "gw1", 0)
    assert [t for _, w, t in run.started if w == "gw1"][:4] == [0, 1, 2, 3]
    assert min(when for when, w, _ in run.started if w == "gw0") == 1.0
    # Starting once both had joined would end at 1 + 4 s; 8 s of work from 0 s and 1 s.
    assert run.makespan < 5.0


def test_the_first_worker_to_join_runs_the_serial_tests() -> None:
    claims = [PLAIN] * 4 + [TestClaims(serial=True)] + [PLAIN] * 4
    run = simulate(claims, [1.0] * 9, workers=3, joins=[2.0, 1.0, 0.0])
    # The plan's first queue holds the serial test; gw2 joins first and takes that queue,
    # in collection order. A serial test waits for the others to drain, and later tests of
    # its worker that are ready may pass it meanwhile (docs/scheduling.rst).
    on_gw2 = [t for _, w, t in run.started if w == "gw2"]
    assert 4 in on_gw2
    others = [t for t in on_gw2 if t != 4]
    assert others == sorted(others)
    assert run.started[0][1] == "gw2"


def test_a_dry_worker_leaves_a_late_worker_its_planned_work() -> None:
    # Two long tests, two workers, gw1 late: gw0 must not take gw1's test as the one parked
    # behind its own (then gw1 would join to an empty run and gw0 run both, one after the
    # other). Its test starts once gw1 joins and the shutdowns release both.
    run = simulate([PLAIN, PLAIN], [3.0, 3.0], workers=2, joins=[0.0, 0.5])
    assert sorted((w, when) for when, w, _ in run.started) == [("gw0", 0.5), ("gw1", 0.5)]
    assert run.makespan == pytest.approx(3.5)


def test_a_worker_that_never_comes_leaves_its_work_to_the_others() -> None:
    claims = [PLAIN, PLAIN]
    dispatcher = Dispatcher(
        make_plan(make_units(build_domains(claims), claims, [3.0] * 2), 2), claims, [3.0] * 2, {}
    )
    dispatcher.add_worker("gw0", 0)
    assert dispatcher.dispatch() == [Send("gw0", (0,))]  # parked: nothing behind it yet
    dispatcher.abandon(1)  # gw1 failed to start
    assert dispatcher.dispatch() == [Send("gw0", (1,)), Shutdown("gw0")]


def _four_on_two() -> Dispatcher:
    # Four 1 s tests planned on two workers: 0 and 2 in queue 0, 1 and 3 in queue 1.
    claims = [PLAIN] * 4
    plan = make_plan(make_units(build_domains(claims), claims, [1.0] * 4), 2)
    assert plan.queues == ((0, 2), (1, 3))
    return Dispatcher(plan, claims, [1.0] * 4, {})


def test_a_retried_test_does_not_wait_for_a_worker_still_to_come() -> None:
    dispatcher = _four_on_two()
    dispatcher.add_worker("gw0", 0)
    assert dispatcher.dispatch() == [Send("gw0", (0, 2))]
    dispatcher.complete("gw0", 0)
    assert dispatcher.dispatch() == []  # queue 1 waits for gw1
    dispatcher.retry(0)  # a rerun plugin asks for test 0 again
    assert dispatcher.dispatch() == [Send("gw0", (0,))]


def test_a_retried_crash_follows_its_domain_to_the_worker_that_took_it_over() -> None:
    # Domain g (tests 0, 1) planned for gw0, tests 2 and 4 for gw1, 3 and 5 for a worker
    # still to come.
    claims = [exclusive("g")] * 2 + [PLAIN] * 4
    estimates = [1.0, 1.0, 0.5, 0.5, 0.4, 0.4]
    plan = make_plan(make_units(build_domains(claims), claims, estimates), 3)
    dispatcher = Dispatcher(plan, claims, estimates, {})
    dispatcher.add_worker("gw0", 0)
    dispatcher.add_worker("gw1", 1)
    dispatcher.dispatch()
    assert (dispatcher.pending_of("gw0"), dispatcher.pending_of("gw1")) == ((0, 1), (2, 4))
    dispatcher.complete("gw1", 2)
    assert dispatcher.dispatch() == []  # gw1 is dry; slot 2's queue waits for its worker
    assert dispatcher.remove_worker("gw0") == 0  # gw0 crashed running test 0
    # xdist asks at once, before the rerun plugin's retry comes: gw1 takes g's test 1.
    assert dispatcher.dispatch() == [Send("gw1", (1,))]
    dispatcher.retry(0)
    dispatcher.add_worker("gw3", 0)  # gw0's replacement, in its slot
    dispatcher.add_worker("gw2", 2)
    sent: list[Send] = []
    while not dispatcher.finished:  # each worker completes its head test, in turn
        sent += [action for action in dispatcher.dispatch() if isinstance(action, Send)]
        for name in ("gw1", "gw2", "gw3"):
            if pending := dispatcher.pending_of(name):
                dispatcher.complete(name, pending[0])
    # Test 0 runs again on gw1, after g's test 1, never beside it on the replacement.
    assert [test for action in sent if action.worker == "gw1" for test in action.tests] == [0]


def test_a_retried_crash_waits_for_a_shut_down_worker_holding_its_domain() -> None:
    # Domain g: test 0 (also holding the one gpu) and test 1, on gw0. gw1's test 3 needs the
    # gpu too, so it waits parked, and gw1 is not shut down. gw0 crashes running test 0:
    # the gpu is free, gw1 takes g's test 1, and with nothing else left it is shut down.
    gpu = TestClaims(exclusive("g").claims, counted=("gpu",))
    claims = [gpu, exclusive("g"), PLAIN, TestClaims(counted=("gpu",))]
    estimates = [1.0, 1.0, 0.5, 0.5]
    plan = make_plan(make_units(build_domains(claims), claims, estimates), 2)
    dispatcher = Dispatcher(plan, claims, estimates, {"gpu": 1})
    dispatcher.add_worker("gw0", 0)
    dispatcher.add_worker("gw1", 1)
    dispatcher.dispatch()
    assert (dispatcher.pending_of("gw0"), dispatcher.pending_of("gw1")) == ((0, 1), (2, 3))
    dispatcher.complete("gw1", 2)
    assert dispatcher.dispatch() == []
    assert dispatcher.remove_worker("gw0") == 0
    assert dispatcher.dispatch() == [Send("gw1", (1,)), Shutdown("gw1")]
    dispatcher.retry(0)
    dispatcher.add_worker("gw2", 0)  # gw0's replacement: test 0 must not run beside test 1
    assert dispatcher.dispatch() == []  # nor may it be shut down: test 0 comes back
    for test in (3, 1):
        dispatcher.complete("gw1", test)
        assert dispatcher.dispatch() == []
    assert dispatcher.remove_worker("gw1") is None  # gw1 leaves, done
    assert dispatcher.dispatch() == [Send("gw2", (0,)), Shutdown("gw2")]
    dispatcher.complete("gw2", 0)
    assert dispatcher.finished


def test_a_replacement_in_an_abandoned_slot_takes_what_is_left_of_its_queue() -> None:
    dispatcher = _four_on_two()
    dispatcher.add_worker("gw0", 0)
    assert dispatcher.dispatch() == [Send("gw0", (0, 2))]
    dispatcher.abandon(1)  # gw1 died before it collected
    dispatcher.complete("gw0", 0)
    assert dispatcher.dispatch() == [Send("gw0", (3,))]  # dry: steals from the back
    dispatcher.add_worker("gw2", 1)  # xdist's replacement for gw1
    # It takes the rest of the queue. gw0 is shut down: test 1 comes before what it ran,
    # so it could never take it in collection order.
    assert dispatcher.dispatch() == [Shutdown("gw0"), Send("gw2", (1,)), Shutdown("gw2")]


def test_a_worker_xdist_shut_down_gets_nothing_more() -> None:
    # Restarts used up, or -x: xdist shuts the workers down itself. A test sent after that
    # would never run, and would come back as the worker's "crash" when it finishes.
    dispatcher = _one_worker(50, 0.05, guessed=False)
    dispatcher.add_worker("gw1")
    dispatcher.dispatch()
    dispatcher.shut_down("gw0")
    queued = dispatcher.pending_of("gw0")
    for test in queued:  # it runs what it has, the parked test included
        dispatcher.complete("gw0", test)
        actions = dispatcher.dispatch()
        assert not any(action.worker == "gw0" for action in actions)
    assert dispatcher.pending_of("gw0") == ()
    assert dispatcher.remove_worker("gw0") is None


def test_a_test_retried_twice_runs_once_more_and_the_run_finishes() -> None:
    dispatcher = _one_worker(3, 0.01, guessed=False)
    dispatcher.dispatch()
    ran = []
    while pending := dispatcher.pending_of("gw0"):
        ran.append(pending[0])
        dispatcher.complete("gw0", pending[0])
        dispatcher.dispatch()
    assert dispatcher.finished
    dispatcher.retry(ran[0])
    dispatcher.retry(ran[0])  # e.g. a rerun plugin asking again before it ran
    assert not dispatcher.finished
    dispatcher.add_worker("gw1")
    again = []
    for action in dispatcher.dispatch():
        assert isinstance(action, Send | Shutdown)
        again += list(getattr(action, "tests", ()))
    assert again == [ran[0]]
    dispatcher.complete("gw1", ran[0])
    assert dispatcher.finished


def test_crash_fails_only_the_running_test_and_the_domain_goes_on() -> None:
    claims = [exclusive("db")] * 5 + [PLAIN] * 3
    run = simulate(claims, [1.0] * 8, workers=2, crash_at=1)
    assert len(run.crashed) == 1
    ran = [t for _, _, t in run.started]
    assert sorted(set(ran)) == list(range(8))


def test_replacement_worker_takes_the_crashed_slot() -> None:
    dispatcher = Dispatcher(make_plan((), 2), [], [], {})
    assert dispatcher.add_worker("gw0") == 0
    assert dispatcher.add_worker("gw1") == 1
    dispatcher.remove_worker("gw0")
    assert dispatcher.add_worker("gw2") == 0


names = st.sampled_from(["a", "b", "c"])
dirs = st.sampled_from(["/r/x", "/r/x/y", "/r/z", "/r"])
claim = st.one_of(
    st.builds(Claim, st.just("name"), names, st.sampled_from([EXCLUSIVE, SHARED])),
    st.builds(Claim, st.just("dir"), dirs, st.sampled_from([EXCLUSIVE, SHARED])),
    st.builds(Claim, st.just("group"), st.sampled_from(["g1", "g2"]), st.just(EXCLUSIVE)),
)
test_claims = st.builds(
    TestClaims,
    st.lists(claim, max_size=2).map(lambda cs: tuple(sorted(set(cs)))),
    st.lists(st.sampled_from(["gpu"]), max_size=1).map(tuple),
    st.sampled_from([False, False, False, False, True]),  # serial now and then
)
#: (claims, duration, estimate) per test; the estimates are deliberately wrong.
suites_with_estimates = st.lists(
    st.tuples(test_claims, st.floats(0.1, 3.0), st.floats(0.1, 3.0)), min_size=1, max_size=30
)


@settings(max_examples=300, deadline=None)
@given(
    suite=suites_with_estimates,
    workers=st.integers(1, 4),
    gpus=st.integers(1, 2),
    depth=st.sampled_from([2, 16]),
    modules=st.sampled_from([0, 1, 3]),  # 0: no chunks of neighbours
    guessed=st.booleans(),  # no history: dry workers split chunks
    stagger=st.sampled_from([0.0, 0.3, 2.0]),  # workers join this far apart,
    backwards=st.booleans(),  # the last slot first, or the first
)
def test_no_conflict_ever_overlaps_and_every_test_runs_once(
    suite: list[tuple[TestClaims, float, float]],
    workers: int,
    gpus: int,
    depth: int,
    modules: int,
    guessed: bool,
    stagger: float,
    backwards: bool,
) -> None:
    claims = [c for c, _, _ in suite]
    durations = [d for _, d, _ in suite]
    # Without history every test is guessed alike, as plan_collection does: long chunks.
    estimates = [0.01] * len(suite) if guessed else [e for _, _, e in suite]
    nodeids = (
        [f"test_{i * modules // len(suite)}.py::t{i}" for i in range(len(suite))]
        if modules
        else None
    )
    simulate(
        claims,
        durations,
        workers,
        {"gpu": gpus},
        estimates,
        max_depth=depth,
        nodeids=nodeids,
        guessed=guessed,
        joins=_joins(workers, stagger, backwards),
    )


def _joins(workers: int, stagger: float, backwards: bool) -> list[float]:
    order = range(workers - 1, -1, -1) if backwards else range(workers)
    return [stagger * position for position in order]


@settings(max_examples=100, deadline=None)
@given(
    suite=st.lists(
        st.tuples(st.one_of(st.just(PLAIN), test_claims), st.floats(0.1, 3.0)),
        min_size=40,
        max_size=80,
    ),
    workers=st.integers(2, 4),
    modules=st.integers(1, 3),
)
def test_first_runs_that_split_chunks_keep_every_invariant(
    suite: list[tuple[TestClaims, float]], workers: int, modules: int
) -> None:
    # No history: every test guessed at 0.01 s, so chunks of free tests are long and dry
    # workers split them; still no overlap, every test once, domains whole and in order.
    claims = [c for c, _ in suite]
    durations = [d for _, d in suite]
    nodeids = [f"test_{i * modules // len(suite)}.py::t{i}" for i in range(len(suite))]
    estimates = [0.01] * len(suite)
    simulate(claims, durations, workers, {"gpu": 1}, estimates, 16, nodeids=nodeids, guessed=True)


class LookAtEveryWorker(Dispatcher):
    """Tops up every worker on every event, as if none were ever satisfied."""

    def dispatch(self) -> list[Send | Shutdown]:
        for worker in self._by_slot:
            worker.satisfied = False
        return super().dispatch()


@settings(max_examples=200, deadline=None)
@given(
    suite=suites_with_estimates,
    workers=st.integers(1, 4),
    depth=st.sampled_from([2, 16]),
    crash=st.one_of(st.none(), st.integers(0, 5)),
    buffer=st.sampled_from([BUFFER_SECONDS, 5.0]),  # 5 s: queues follow the share left
    first_run=st.booleans(),  # no history: guesses from the run so far, chunks split
)
def test_skipping_satisfied_workers_changes_no_decision(
    suite: list[tuple[TestClaims, float, float]],
    workers: int,
    depth: int,
    crash: int | None,
    buffer: float,
    first_run: bool,
) -> None:
    # Only the worker whose test completed is topped up on a completion (the others keep
    # what they had): the same starts, on the same workers, in the same order as looking
    # at every worker every time.
    claims = [c for c, _, _ in suite]
    durations = [d for _, d, _ in suite]
    estimates = [e for _, _, e in suite]
    crash_at = None if crash is None else min(crash, len(suite) - 1)
    args = (claims, durations, workers, {"gpu": 1}, estimates, depth, crash_at)
    nodeids = [f"test_{i // 4}.py::t{i}" for i in range(len(suite))] if first_run else None
    more = {"buffer_seconds": buffer, "nodeids": nodeids, "guessed": first_run}
    fast = simulate(*args, **more)
    eager = simulate(*args, dispatcher_class=LookAtEveryWorker, **more)
    assert fast.started == eager.started
    assert fast.crashed == eager.crashed


@settings(max_examples=100, deadline=None)
@given(
    suite=st.lists(st.tuples(test_claims, st.floats(0.1, 3.0)), min_size=2, max_size=20),
    workers=st.integers(2, 4),
    crash=st.integers(0, 5),
    stagger=st.sampled_from([0.0, 0.3, 2.0]),
    backwards=st.booleans(),
)
def test_a_crash_loses_only_the_running_test(
    suite: list[tuple[TestClaims, float]],
    workers: int,
    crash: int,
    stagger: float,
    backwards: bool,
) -> None:
    claims = [c for c, _ in suite]
    durations = [d for _, d in suite]
    run = simulate(
        claims,
        durations,
        workers,
        {"gpu": 1},
        crash_at=min(crash, len(suite) - 1),
        joins=_joins(workers, stagger, backwards),
    )
    assert len(run.crashed) == 1


def test_no_worker_ends_before_every_planned_worker_has_joined() -> None:
    # One guessed test per planned worker, all pooled. gw0 joins first and takes its share;
    # it is not shut down (which would end its session) while gw1 and gw2 are still to
    # come: a plugin's set-up on a late worker may act on what an ended worker left
    # (pytest-cov's workers erase the coverage data files they find as they start).
    claims = [PLAIN] * 3
    plan = plan_tests(claims, [0.01] * 3, 3, [f"test_{i}.py::t" for i in range(3)], range(3))
    dispatcher = Dispatcher(plan, claims, [0.01] * 3, {}, guessed=range(3))
    dispatcher.add_worker("gw0", 0)
    assert dispatcher.dispatch() == [Send("gw0", (0,))]
    dispatcher.add_worker("gw1", 1)
    assert dispatcher.dispatch() == [Send("gw1", (1,))]
    dispatcher.add_worker("gw2", 2)
    # Every worker has joined: the last test goes out, and shutdowns start what is parked.
    actions = dispatcher.dispatch()
    assert Send("gw2", (2,)) in actions
    assert {a.worker for a in actions if isinstance(a, Shutdown)} == {"gw0", "gw1", "gw2"}


@settings(max_examples=150, deadline=None)
@given(
    suite=st.lists(st.tuples(test_claims, st.floats(0.1, 3.0)), min_size=1, max_size=25),
    workers=st.integers(1, 4),
    gpus=st.integers(1, 2),
    stop_at=st.sampled_from([0.0, 0.2, 1.0, 3.0]),
    crash=st.one_of(st.none(), st.integers(0, 5)),
    guessed=st.booleans(),
)
def test_xdist_ending_the_run_keeps_every_invariant(
    suite: list[tuple[TestClaims, float]],
    workers: int,
    gpus: int,
    stop_at: float,
    crash: int | None,
    guessed: bool,
) -> None:
    # -x, a worker's KeyboardInterrupt: every worker is asked to shut down at once. No
    # overlap as held-back tests start, nothing new is sent, every worker ends, and
    # never_finished names exactly the tests that did not run.
    claims = [c for c, _ in suite]
    durations = [d for _, d in suite]
    simulate(
        claims,
        durations,
        workers,
        {"gpu": gpus},
        crash_at=None if crash is None else min(crash, len(suite) - 1),
        guessed=guessed,
        stop_at=stop_at,
    )


@settings(max_examples=150, deadline=None)
@given(
    suite=st.lists(st.tuples(test_claims, st.floats(0.1, 3.0)), min_size=2, max_size=25),
    workers=st.integers(2, 4),
    crash=st.integers(0, 5),
    missing=st.integers(0, 3),
    guessed=st.booleans(),
)
def test_retries_and_workers_that_never_come_keep_every_invariant(
    suite: list[tuple[TestClaims, float]],
    workers: int,
    crash: int,
    missing: int,
    guessed: bool,
) -> None:
    # A rerun plugin asks for the crashed test again at once; one planned worker never
    # starts (abandoned). Every test completes, the retried one too, domains in order, and
    # no conflict overlaps.
    claims = [c for c, _ in suite]
    durations = [d for _, d in suite]
    joins: list[float | None] = [0.0] * workers
    joins[min(missing, workers - 1)] = None
    if all(j is None for j in joins):
        joins[0] = 0.0
    run = simulate(
        claims,
        durations,
        workers,
        {"gpu": 1},
        crash_at=min(crash, len(suite) - 1),
        guessed=guessed,
        joins=joins,
        retry_crash=True,
    )
    assert len(run.crashed) == 1
