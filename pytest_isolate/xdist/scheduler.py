"""The xdist adapter: a ``Scheduling`` that lets
:class:`~pytest_isolate.schedule.dispatch.Dispatcher` decide and carries out its decisions.

It holds no policy: it maps xdist's nodes to worker names, gathers each worker's claims from
its channel, builds the plan as soon as the first worker has collected (that worker starts
while the others are still starting; each joins the run once its own collection matches the
first), and turns its ``Send``/``Shutdown`` actions into ``send_runtest_some``/``shutdown``
calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest
from xdist.dsession import WorkerStatus, get_workers_status_line
from xdist.remote import Producer
from xdist.workermanage import WorkerController

from ..words import count

try:
    from xdist.workermanage import parse_tx_spec_config
except ImportError:  # pytest-xdist < 3.7
    from xdist.workermanage import parse_spec_config as parse_tx_spec_config

from .. import compat
from ..declare.claims import TestClaims, declared_names
from ..schedule.dispatch import MAX_DEPTH, Action, Dispatcher, Send
from ..schedule.plan import module_of, plan_collection
from . import transport, wire


class IsolateScheduling:
    """Domain-aware scheduling for pytest-xdist (see :mod:`pytest_isolate.schedule.dispatch`)."""

    def __init__(
        self,
        config: pytest.Config,
        log: Producer,
        inbox: transport.Inbox,
        capacity: Mapping[str, int],
        recorded: Mapping[str, float],
        learned: Callable[[Sequence[str], Sequence[TestClaims]], list[TestClaims]] = (
            lambda _, claims: list(claims)
        ),
    ) -> None:
        self.log = log.isolatesched
        self._config = config
        self.config = config  # as xdist's own schedulers: pytest-rerunfailures reads it
        self._numnodes = worker_count(config)
        self._inbox = inbox
        self._capacity = capacity
        self._recorded = recorded
        # Adds what earlier runs' diagnoses learned to the claims: pairs of tests to keep on
        # one worker in collection order.
        self._learned = learned
        # Short queues keep -x/--maxfail prompt (xdist #420); else the dispatcher's default.
        self._max_depth = 2 if config.getoption("maxfail", 0) else MAX_DEPTH
        self._nodes: list[WorkerController] = []
        # The first worker to collect, its collection and its claims: what the plan follows.
        self._first: WorkerController | None = None
        self._collection: list[str] | None = None
        self._declared: list[TestClaims] = []
        self._joined: set[str] = set()  # workers the dispatcher knows
        self._dispatcher: Dispatcher | None = None
        self._aborted = False
        # Workers a send to failed (going down), and the tests that never reached them.
        self._unreachable: dict[str, set[int]] = {}
        # Joined nodes' own shutdown: xdist's calls of node.shutdown() come to _stop_requested.
        self._real_shutdown: dict[str, Callable[[], None]] = {}

    # -- the Scheduling protocol ---------------------------------------------------------

    @property
    def nodes(self) -> list[WorkerController]:
        return list(self._nodes)

    @property
    def collection_is_completed(self) -> bool:
        # True from the first collection on: xdist then calls schedule() after each worker's
        # collection, and the run starts on one worker instead of waiting for the last to
        # start (xdist starts workers one after another; on a busy machine they finish
        # collecting tenths of a second apart, on a 16-core one later still).
        return self._collection is not None or self._aborted

    @property
    def tests_finished(self) -> bool:
        if self._aborted:
            return True
        if self._dispatcher is None:
            return False
        return self._dispatcher.finished

    @property
    def has_pending(self) -> bool:
        # Pending from the first collection on (the plan is made in the schedule() that
        # follows): xdist prints its status line when a collection completes with nothing
        # pending, and would print "collecting: 1/N workers"; schedule() prints xdist's
        # "N workers [M items]" instead.
        if self._dispatcher is None:
            return self._collection is not None
        return not self._dispatcher.finished

    def add_node(self, node: WorkerController) -> None:
        self._nodes.append(node)

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        message = self._inbox.wait(node.gateway.id, "claims")
        claims = wire.decode(message)
        if self._aborted:
            return
        if wire.malformed(message) and self._first is None:
            # The worker reported them as collection errors; as in-process, nothing runs
            # (nothing has started yet: this is the first collection).
            self._stop_run(f"{count(wire.malformed(message), 'error')} during collection")
            return
        if wire.malformed(message):
            assert self._first is not None
            self._reject(
                node,
                f"pytest-isolate: {node.gateway.id} found "
                f"{count(wire.malformed(message), 'malformed declaration')} where "
                f"{self._first.gateway.id} found none",
            )
            return
        if self._first is None:
            self._first, self._collection, self._declared = node, list(collection), claims
            return  # schedule() plans from it
        assert self._collection is not None
        difference = _difference(
            self._first.gateway.id,
            node.gateway.id,
            self._collection,
            collection,
            self._declared,
            claims,
        )
        if difference:
            self._reject(node, difference)
        elif self._dispatcher is not None:
            # A worker that started later, or a replacement for a crashed one: it gets work
            # once its collection matches the plan's.
            self._join(node)

    def mark_test_complete(
        self, node: WorkerController, item_index: int, duration: float = 0
    ) -> None:
        assert self._dispatcher is not None
        self._dispatcher.complete(node.gateway.id, item_index, duration)
        self._dispatch()

    def mark_test_pending(self, item: str) -> None:
        assert self._dispatcher is not None and self._collection is not None
        self._dispatcher.retry(self._collection.index(item))
        self._dispatch()

    def remove_pending_tests_from_node(
        self, node: WorkerController, indices: Sequence[int]
    ) -> None:
        # Only a "steal" command makes a worker give tests back, and this scheduler sends none.
        raise NotImplementedError("pytest-isolate never asks a worker to give tests back")

    def remove_node(self, node: WorkerController) -> str | None:
        if node not in self._nodes:
            # Died before it was ready: xdist expects a KeyError (as from its own schedulers).
            self._abandon(node)
            raise KeyError(node)
        self._nodes.remove(node)
        if node.gateway.id not in self._joined:
            # Gone before it joined the run (before its collection came, or with a
            # collection that did not match): the dispatcher never knew it, but kept its
            # planned work for it.
            self._abandon(node)
            return None
        assert self._dispatcher is not None and self._collection is not None
        self._joined.discard(node.gateway.id)
        undelivered = self._unreachable.pop(node.gateway.id, set())
        self._real_shutdown.pop(node.gateway.id, None)
        crashed = self._dispatcher.remove_worker(node.gateway.id, undelivered)
        self._dispatch()
        return None if crashed is None else self._collection[crashed]

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self._aborted:
            return
        if self._dispatcher is None:
            self._start()
            # xdist's own "N workers [M items]", before the first test reports: xdist
            # prints it once every worker has collected, which the run no longer waits for.
            assert self._collection is not None
            _show_status(self._config, self._numnodes, len(self._collection))
        self._dispatch()

    # -- helpers -------------------------------------------------------------------------

    def _start(self) -> None:
        assert self._first is not None and self._collection is not None
        collection = self._collection
        claims = self._learned(collection, self._declared)
        # Planned for every worker of the run: those still starting have their queues ready,
        # and until they come the started ones take from them only once they run dry.
        workers = max(self._numnodes, len(self._nodes))
        planned = plan_collection(collection, claims, self._recorded, workers)
        self._dispatcher = Dispatcher(
            planned.plan,
            claims,
            planned.estimates,
            self._capacity,
            max_depth=self._max_depth,
            guessed=[i for i, nodeid in enumerate(collection) if nodeid not in self._recorded],
            modules=[module_of(nodeid) for nodeid in collection],
        )
        self.log(f"planned {len(planned.plan.units)} units for {workers} workers")
        self._join(self._first)
        _quiet_status_rewrites(self._config)

    def _abandon(self, node: WorkerController) -> None:
        slot = _slot_of(node)
        if self._dispatcher is not None and slot is not None:
            self._dispatcher.abandon(slot)
            self._dispatch()

    def _join(self, node: WorkerController) -> None:
        assert self._dispatcher is not None
        self._dispatcher.add_worker(node.gateway.id, _slot_of(node))
        self._joined.add(node.gateway.id)
        self._real_shutdown[node.gateway.id] = compat.defer_shutdown(
            node, lambda: self._stop_requested(node)
        )

    def _stop_requested(self, node: WorkerController) -> None:
        """xdist shuts the nodes down to end the run: each goes once it may (Dispatcher.stop)."""
        name = node.gateway.id
        if self._dispatcher is None or name not in self._joined or self._aborted:
            self._real_shutdown.pop(name, node.shutdown)()
            return
        self._dispatcher.stop(name)
        self._apply(self._dispatcher.dispatch())

    def never_ran(self) -> list[str]:
        """Node ids of the tests this run never finished (workers gone, restarts used up)."""
        if self._dispatcher is None or self._collection is None or self._aborted:
            return []
        return [self._collection[i] for i in self._dispatcher.never_finished()]

    def _stop_run(self, reason: str) -> None:
        self._aborted = True
        dsession = self._config.pluginmanager.get_plugin("dsession")
        if dsession is not None and not dsession.shouldstop:
            dsession.shouldstop = reason

    def _reject(self, node: WorkerController, difference: str) -> None:
        # Workers must collect identically (randomized or time-dependent parametrization
        # breaks that); a plan made from one worker's view is wrong for another. That worker
        # is sent away as if it had never started: its planned work goes to the others, the
        # run goes on to the end, and fails with this error, as xdist's schedulers report it.
        # (Stopping every worker instead would release their parked tests unchecked.)
        self.log(difference)
        report = pytest.CollectReport(
            nodeid=node.gateway.id, outcome="failed", longrepr=difference, result=[]
        )
        self._config.hook.pytest_collectreport(report=report)
        slot = _slot_of(node)
        if self._dispatcher is not None and slot is not None:
            self._dispatcher.abandon(slot)
        node.shutdown()

    def _dispatch(self) -> None:
        assert self._dispatcher is not None
        if self._aborted:
            return  # what is queued runs; nothing more is sent
        for node in self._nodes:
            # xdist shuts every node down itself when restarts run out or the run stops
            # (-x): a test sent after that would never run, and come back as a "crash".
            if node.shutting_down:
                self._dispatcher.shut_down(node.gateway.id)
        self._apply(self._dispatcher.dispatch())

    def _apply(self, actions: list[Action]) -> None:
        if not actions:
            return  # most completions: the worker still has enough queued
        by_name = {node.gateway.id: node for node in self._nodes}
        for action in actions:
            node = by_name[action.worker]
            if node.gateway.id in self._unreachable:
                if isinstance(action, Send):
                    self._unreachable[node.gateway.id].update(action.tests)
                continue
            try:
                if isinstance(action, Send):
                    node.send_runtest_some(list(action.tests))
                else:
                    self._real_shutdown.get(node.gateway.id, node.shutdown)()
            except (OSError, EOFError) as exc:
                # The worker died, and xdist has not reported it down yet (two crashes close
                # together): its channel is closed. It is going down; xdist's report of that
                # comes next, and remove_node then requeues what it held, as for any crash.
                self.log(f"{node.gateway.id} is unreachable ({exc}); waiting for it to go down")
                lost = set(action.tests) if isinstance(action, Send) else set()
                self._unreachable[node.gateway.id] = lost
                # Nothing more for it meanwhile: what it would be sent, others can run now.
                assert self._dispatcher is not None
                self._dispatcher.shut_down(node.gateway.id)


def worker_count(config: pytest.Config) -> int:
    """The workers of the run, as xdist starts them (``--tx 3*popen`` counts 3)."""
    return len(parse_tx_spec_config(config))


def _listed(test: TestClaims) -> str:
    return ", ".join(declared_names(test)) or "nothing"


def _quiet_status_rewrites(config: pytest.Config) -> None:
    """Stop xdist rewriting its worker status line in place on a terminal.

    It rewrites that line each time a worker collects; tests already report their progress
    on it once the run has started, so a later worker's collection would overwrite it.
    Written as to a pipe, the status appears once, on a line of its own.
    """
    compat.quiet_status_rewrites(config.pluginmanager.get_plugin("dsession"))


def _show_status(config: pytest.Config, workers: int, items: int) -> None:
    """The line xdist's status shows once every worker has collected, written as xdist
    writes it where the output is not a terminal (and, after _quiet_status_rewrites, where
    it is)."""
    dsession = config.pluginmanager.get_plugin("dsession")
    if dsession is None or not getattr(dsession, "terminal", None):
        return
    line = "bringing up nodes..."
    if config.option.verbose >= 0:
        line = get_workers_status_line([(WorkerStatus.CollectionDone, items)] * workers)
    terminal = dsession.terminal
    terminal.write_line(line)
    terminal.write_line("")
    if config.option.verbose > 0:
        terminal.write_line("scheduling tests via IsolateScheduling")


def _slot_of(node: WorkerController) -> int | None:
    slot = node.workerinput.get("isolate_slot")
    return slot if isinstance(slot, int) else None


def _difference(
    first: str,
    other: str,
    collection: Sequence[str],
    other_collection: Sequence[str],
    claims: Sequence[TestClaims],
    other_claims: Sequence[TestClaims],
) -> str:
    """What ``other`` collected differently from ``first``, for the user; empty if nothing."""
    if list(collection) != list(other_collection):
        import difflib  # only on this error

        lines = difflib.unified_diff(collection, other_collection, first, other, lineterm="")
        return (
            f"pytest-isolate: {other} collected different tests than {first}, so the plan "
            "made from one does not fit the other (randomized or time-dependent "
            "parametrization?). The difference:\n" + "\n".join(lines)
        )
    for nodeid, mine, theirs in zip(collection, claims, other_claims, strict=True):
        if mine != theirs:
            return (
                f"pytest-isolate: {other} read different declarations than {first} for "
                f"{nodeid}: {_listed(theirs)} on {other}, {_listed(mine)} on {first}"
            )
    return ""
