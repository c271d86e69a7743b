"""The xdist adapter: a ``Scheduling`` that lets :class:`~pytest_isolate.dispatch.Dispatcher`
decide and carries out its decisions.

It holds no policy: it maps xdist's nodes to worker names, gathers each worker's claims from
its channel, builds the plan once every initial worker has collected, and turns
:class:`~pytest_isolate.dispatch.Send`/:class:`~pytest_isolate.dispatch.Shutdown` actions into
``send_runtest_some``/``shutdown`` calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from xdist.remote import Producer
from xdist.workermanage import WorkerController

try:
    from xdist.workermanage import parse_tx_spec_config
except ImportError:  # pytest-xdist < 3.7
    from xdist.workermanage import parse_spec_config as parse_tx_spec_config

from . import transport, wire
from .claims import TestClaims
from .dispatch import MAX_DEPTH, Action, Dispatcher, Send
from .plan import module_of, plan_collection


class IsolateScheduling:
    """Domain-aware scheduling for pytest-xdist (see :mod:`pytest_isolate.dispatch`)."""

    def __init__(
        self,
        config: pytest.Config,
        log: Producer,
        inbox: transport.Inbox,
        capacity: Mapping[str, int],
        recorded: Mapping[str, float],
    ) -> None:
        self.log = log.isolatesched
        self._config = config
        self.config = config  # as xdist's own schedulers: pytest-rerunfailures reads it
        self._numnodes = len(parse_tx_spec_config(config))
        self._inbox = inbox
        self._capacity = capacity
        self._recorded = recorded
        # Short queues keep -x/--maxfail prompt (xdist #420); else the dispatcher's default.
        self._max_depth = 2 if config.getoption("maxfail", 0) else MAX_DEPTH
        self._nodes: list[WorkerController] = []
        self._collections: dict[WorkerController, list[str]] = {}
        self._claims: dict[WorkerController, list[TestClaims]] = {}
        self._collection: list[str] | None = None
        self._dispatcher: Dispatcher | None = None
        self._aborted = False

    # -- the Scheduling protocol ---------------------------------------------------------

    @property
    def nodes(self) -> list[WorkerController]:
        return list(self._nodes)

    @property
    def collection_is_completed(self) -> bool:
        # Once planned, stays true: finished workers leave, replacements collect later.
        return self._dispatcher is not None or len(self._collections) >= self._numnodes

    @property
    def tests_finished(self) -> bool:
        if self._aborted:
            return True
        if self._dispatcher is None:
            return False
        return self._dispatcher.finished

    @property
    def has_pending(self) -> bool:
        # Like xdist's own schedulers: nothing is pending until the plan exists.
        return self._dispatcher is not None and not self._dispatcher.finished

    def add_node(self, node: WorkerController) -> None:
        self._nodes.append(node)

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        self._collections[node] = list(collection)
        message = self._inbox.wait(node.gateway.id, "claims")
        self._claims[node] = wire.decode(message)
        if wire.malformed(message):
            # The worker reported them as collection errors; as in-process, nothing runs.
            self._stop_run(f"{wire.malformed(message)} error(s) during collection")
        if self._collection is not None and (
            self._collections[node] != self._collection
            or self._claims[node] != self._claims[self._nodes[0]]
        ):
            self._abort(f"{node.gateway.id} collected different tests or declarations")
        if self._dispatcher is not None:
            # A replacement for a crashed worker: it gets work once its collection matches.
            self._dispatcher.add_worker(node.gateway.id, _slot_of(node))

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
        self._nodes.remove(node)
        collected = self._collections.pop(node, None) is not None
        if self._dispatcher is None or self._collection is None or not collected:
            # A replacement shut down before its collection came: the dispatcher never knew it.
            return None
        crashed = self._dispatcher.remove_worker(node.gateway.id)
        self._dispatch()
        return None if crashed is None else self._collection[crashed]

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self._aborted:
            return
        if self._dispatcher is None:
            self._start()
        assert self._dispatcher is not None
        self._dispatch()

    # -- helpers -------------------------------------------------------------------------

    def _start(self) -> None:
        first = self._nodes[0]
        collection, claims = self._collections[first], self._claims[first]
        for node in self._nodes[1:]:
            if self._collections[node] != collection or self._claims[node] != claims:
                self._abort(f"{node.gateway.id} collected different tests or declarations")
        self._collection = collection
        planned = plan_collection(collection, claims, self._recorded, len(self._nodes))
        self._dispatcher = Dispatcher(
            planned.plan,
            claims,
            planned.estimates,
            self._capacity,
            max_depth=self._max_depth,
            guessed=[i for i, nodeid in enumerate(collection) if nodeid not in self._recorded],
            modules=[module_of(nodeid) for nodeid in collection],
        )
        for node in self._nodes:
            self._dispatcher.add_worker(node.gateway.id, _slot_of(node))
        self.log(f"planned {len(planned.plan.units)} units on {len(self._nodes)} workers")

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

    def _abort(self, reason: str) -> None:
        # Workers must collect identically (randomized or time-dependent parametrization
        # breaks that); running a plan built on one worker's view would be wrong, so stop.
        self._aborted = True
        for node in self._nodes:
            node.shutdown()
        raise RuntimeError(f"pytest-isolate: {reason}; cannot schedule this run")

    def _dispatch(self) -> None:
        assert self._dispatcher is not None
        for node in self._nodes:
            # xdist shuts every node down itself when restarts run out or the run stops
            # (-x): a test sent after that would never run, and come back as a "crash".
            if getattr(node, "_shutdown_sent", False):
                self._dispatcher.shut_down(node.gateway.id)
        self._apply(self._dispatcher.dispatch())

    def _apply(self, actions: list[Action]) -> None:
        if not actions:
            return  # most completions: the worker still has enough queued
        by_name = {node.gateway.id: node for node in self._nodes}
        for action in actions:
            node = by_name[action.worker]
            if isinstance(action, Send):
                node.send_runtest_some(list(action.tests))
            else:
                node.shutdown()


def _slot_of(node: WorkerController) -> int | None:
    slot = node.workerinput.get("isolate_slot")
    return slot if isinstance(slot, int) else None
