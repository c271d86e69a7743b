"""Hooks that plugins and conftest files implement to add per-worker resources.

Register an implementation like any pytest hook (a function of that name in a conftest.py or
a plugin). Each runs in the worker process, once per worker: in-process runs count as one
worker, slot 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .provision.worker import IsolateWorker


@pytest.hookspec
def pytest_isolate_setup_worker(worker: IsolateWorker) -> None:
    """Set up a per-worker resource, once, before the worker's first test.

    The worker's temp dir, ports and database exist already. Store what tests need in
    ``worker.extra`` (a dict; keep values plain data: str, int, float, bool, lists, dicts),
    and export environment variables with ``os.environ`` if subprocesses need them.
    ``worker.slot`` is the compact number to derive names from: a Redis database
    ``worker.slot + 1``, an S3 prefix ``f"run-{worker.run_id}/slot-{worker.slot}/"``.

    .. versionadded:: 0.1
    """


@pytest.hookspec
def pytest_isolate_teardown_worker(worker: IsolateWorker, crashed: bool) -> None:
    """Tear down what :func:`pytest_isolate_setup_worker` set up, once per worker.

    Called in the worker at the end of its session with ``crashed=False``. When a worker
    crashes, it is called in the controller with ``crashed=True`` and a copy of the worker
    (same slot, ids, paths, ports, database and ``extra``), so a resource is released even
    though its worker died.

    .. versionadded:: 0.1
    """
