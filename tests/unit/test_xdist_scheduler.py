"""IsolateScheduling driven by fake nodes, as xdist's own scheduler tests drive theirs: no
processes, a real pytest config, the real inbox and dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_isolate.declare.claims import Claim, TestClaims
from pytest_isolate.xdist import transport, wire
from pytest_isolate.xdist.scheduler import IsolateScheduling

COLLECTION = [f"test_m.py::test_{i}" for i in range(6)]
DB = TestClaims((Claim("name", "db"),))
CLAIMS = [DB, DB, TestClaims(), TestClaims(), TestClaims(), TestClaims()]


@dataclass
class Gateway:
    id: str


@dataclass
class FakeNode:
    """What the scheduler uses of xdist's WorkerController."""

    gateway: Gateway
    workerinput: dict[str, Any]
    sent: list[int] = field(default_factory=list)
    shut: bool = False
    completed: int = 0  # how many of ``sent`` it has reported complete
    dead: bool = False  # its channel is closed: every send raises, as execnet's does
    failed_sends: list[list[int]] = field(default_factory=list)

    @property
    def shutting_down(self) -> bool:
        return self.shut  # xdist's: shutdown sent, or the node reported down

    def send_runtest_some(self, indices: list[int]) -> None:
        if self.dead:
            self.failed_sends.append(indices)
            raise OSError("cannot send (already closed?)")
        self.sent.extend(indices)

    def shutdown(self) -> None:
        if self.dead:
            raise OSError("cannot send (already closed?)")
        self.shut = True


def deliver(inbox: transport.Inbox, worker: str, claims: list[TestClaims] = CLAIMS) -> None:
    """The claims message, as the worker's channel would bring it."""
    inbox._messages.setdefault(worker, {})
    inbox._store(worker, ("claims", wire.encode(claims)))


class Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def scheduler(
    pytester: pytest.Pytester,
    workers: int,
    claims: list[TestClaims] = CLAIMS,
    recorded: dict[str, float] | None = None,
) -> tuple[IsolateScheduling, list[FakeNode]]:
    config = pytester.parseconfig("--tx", f"{workers}*popen", "--dist", "load")
    inbox = transport.Inbox()
    nodes = []
    for slot in range(workers):
        name = f"gw{slot}"
        deliver(inbox, name, claims)
        nodes.append(FakeNode(Gateway(name), {"isolate_slot": slot}))
    return IsolateScheduling(config, Log(), inbox, {}, recorded or {}), nodes  # type: ignore[arg-type]


def start(
    sched: IsolateScheduling, nodes: list[FakeNode], collection: list[str] = COLLECTION
) -> None:
    for node in nodes:
        sched.add_node(node)  # type: ignore[arg-type]
    for node in nodes:
        sched.add_node_collection(node, collection)  # type: ignore[arg-type]
        sched.schedule()


def finish(sched: IsolateScheduling, node: FakeNode) -> None:
    """The node completes what it may run (all it was sent but the parked last test, until
    it is shut down: xdist's rule), one report at a time, as xdist reports them."""
    while node.completed < len(node.sent) - (0 if node.shut else 1):
        node.completed += 1
        sched.mark_test_complete(node, node.sent[node.completed - 1])  # type: ignore[arg-type]


def test_every_test_is_sent_once_and_the_domain_to_one_worker(pytester: pytest.Pytester) -> None:
    sched, nodes = scheduler(pytester, 2)
    start(sched, nodes)
    for _ in range(10):
        for node in nodes:
            finish(sched, node)
    sent = sorted(i for node in nodes for i in node.sent)
    assert sent == list(range(6))
    assert [0 in node.sent and 1 in node.sent for node in nodes].count(True) == 1
    assert all(node.shut for node in nodes)
    assert all(node.sent == sorted(node.sent) for node in nodes)
    assert sched.tests_finished


def test_a_send_to_a_worker_that_died_is_that_worker_going_down(
    pytester: pytest.Pytester,
) -> None:
    """Two crashes close together: xdist has not reported the second worker down when the
    scheduler sends to it. The send fails; nothing raises, and when xdist does report the
    worker down, its tests go elsewhere and only the test it ran counts as crashed."""
    sched, nodes = scheduler(pytester, 2)
    start(sched, nodes)
    gw0, gw1 = nodes
    running = gw1.sent[0]
    gw1.dead = True
    finish(sched, gw0)  # completions make the scheduler send to gw1 too: it must not raise
    crashed = sched.remove_node(gw1)  # type: ignore[arg-type]
    assert crashed == COLLECTION[running]
    replacement = FakeNode(Gateway("gw2"), {"isolate_slot": 1})
    sched.add_node(replacement)  # type: ignore[arg-type]
    deliver(sched._inbox, "gw2")
    sched.add_node_collection(replacement, COLLECTION)  # type: ignore[arg-type]
    sched.schedule()
    for _ in range(10):
        for node in (gw0, replacement):
            finish(sched, node)
    ran = sorted(i for node in (gw0, replacement) for i in node.sent)
    assert ran == sorted(i for i in range(6) if i != running)
    assert sched.tests_finished


def test_a_dead_worker_is_sent_nothing_more_while_xdist_has_not_reported_it(
    pytester: pytest.Pytester,
) -> None:
    """Between a failed send and xdist's report of the worker going down, its planned work
    goes to the others, out of order if need be: it does not wait for the report."""
    collection = [f"test_m.py::test_{i}" for i in range(20)]
    claims = [TestClaims((Claim("name", f"r{i}"),)) for i in range(20)]
    sched, nodes = scheduler(pytester, 2, claims, recorded=dict.fromkeys(collection, 1.0))
    start(sched, nodes, collection)
    gw0, gw1 = nodes
    delivered = list(gw1.sent)
    gw1.dead = True  # it reports its first test complete, and dies: the next send fails
    sched.mark_test_complete(gw1, delivered[0])  # type: ignore[arg-type]
    for _ in range(40):
        finish(sched, gw0)
    (lost,) = gw1.failed_sends  # the one send that found it dead
    assert sorted(gw0.sent + delivered + lost) == list(range(20))
    assert gw0.shut


def test_a_test_that_never_reached_a_dead_worker_is_not_its_crash(
    pytester: pytest.Pytester,
) -> None:
    sched, nodes = scheduler(pytester, 1)
    (gw0,) = nodes
    gw0.dead = True  # dead before the first send: nothing it was sent ever ran
    start(sched, nodes)
    assert gw0.sent == []
    assert sched.remove_node(gw0) is None  # type: ignore[arg-type]
    assert not sched.tests_finished


def test_tx_three_times_popen_counts_three_workers(pytester: pytest.Pytester) -> None:
    from pytest_isolate.xdist.scheduler import worker_count

    assert worker_count(pytester.parseconfig("--tx", "3*popen", "--dist", "load")) == 3
    assert worker_count(pytester.parseconfig("--tx", "popen", "--tx", "popen")) == 2


def started(node: FakeNode) -> int | None:
    """The test the node runs now: its next one, if another is queued behind it or it was
    shut down (xdist's worker protocol)."""
    if node.completed < len(node.sent) - (0 if node.shut else 1):
        return node.sent[node.completed]
    return None


@pytest.mark.parametrize("first", [0, 1])
def test_xdist_ending_the_run_never_starts_a_held_back_test_beside_its_conflicts(
    pytester: pytest.Pytester, first: int
) -> None:
    """-x, a worker's KeyboardInterrupt, restarts used up: xdist shuts every node down at
    once, and a shutdown starts the test a worker holds back. A serial test held back
    (waiting for the others to drain) must still start alone."""
    serial = TestClaims(serial=True)
    claims = [TestClaims()] * 3 + [serial] + [TestClaims()] * 3 + [serial]
    collection = [f"test_m.py::test_{i}" for i in range(len(claims))]
    sched, nodes = scheduler(pytester, 2, claims, recorded=dict.fromkeys(collection, 1.0))
    start(sched, nodes, collection)
    nodes[first].completed += 1  # one report, so the plan has moved on when xdist stops
    sched.mark_test_complete(nodes[first], nodes[first].sent[0])  # type: ignore[arg-type]
    for node in sched.nodes:  # xdist's DSession.triggershutdown
        node.shutdown()
    live = list(nodes)
    for _ in range(100):
        running = {node.gateway.id: started(node) for node in live}
        busy = [test for test in running.values() if test is not None]
        if any(claims[test].serial for test in busy):
            assert len(busy) == 1, f"a serial test ran beside another: {running}"
        node = next((n for n in live if started(n) is not None), None)
        if node is None:
            break
        node.completed += 1
        sched.mark_test_complete(node, node.sent[node.completed - 1])  # type: ignore[arg-type]
        if node.shut and node.completed == len(node.sent):
            sched.remove_node(node)  # type: ignore[arg-type]
            live.remove(node)
    assert all(node.shut for node in nodes)


def test_a_node_going_down_mid_domain_hands_the_rest_of_it_to_one_node_in_order(
    pytester: pytest.Pytester,
) -> None:
    claims = [DB, TestClaims(), DB, TestClaims(), DB, DB, TestClaims(), TestClaims()]
    collection = [f"test_m.py::test_{i}" for i in range(len(claims))]
    recorded = dict.fromkeys(collection, 1.0)
    sched, nodes = scheduler(pytester, 2, claims, recorded=recorded)
    start(sched, nodes, collection)
    holder = next(node for node in nodes if 0 in node.sent)
    other = next(node for node in nodes if node is not holder)
    holder.completed += 1
    sched.mark_test_complete(holder, 0)  # type: ignore[arg-type]
    running = holder.sent[1]  # it dies running its next test
    assert sched.remove_node(holder) == collection[running]  # type: ignore[arg-type]
    replacement = FakeNode(Gateway("gw2"), dict(holder.workerinput))
    sched.add_node(replacement)  # type: ignore[arg-type]
    deliver(sched._inbox, "gw2", claims)
    sched.add_node_collection(replacement, collection)  # type: ignore[arg-type]
    sched.schedule()
    for _ in range(20):
        for node in (other, replacement):
            finish(sched, node)
    domain = [i for i in (2, 4, 5) if i != running]
    after = [node for node in (other, replacement) if set(domain) & set(node.sent)]
    assert len(after) == 1, "the rest of the domain went to one node"
    assert [i for i in after[0].sent if i in domain] == domain  # in collection order
    ran = [*(i for node in (other, replacement) for i in node.sent), 0, running]
    assert sorted(ran) == list(range(len(claims)))
    assert sched.tests_finished
