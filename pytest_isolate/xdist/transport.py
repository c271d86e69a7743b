"""Transport: an execnet channel of the plugin's own between each worker and the controller.

The controller opens one channel per worker when xdist configures the node, before xdist's own
remote code starts, so it works for ``popen`` workers and for ``--tx`` workers on other hosts
alike (no shared filesystem). Workers send tagged messages, ``(kind, payload)``:

- ``"worker"``: the worker's provisioned resources, after set-up (for crash clean-up);
- ``"shard"``: under ``--isolate-shard``, ``(K, N, the whole collection's node ids in output
  order)``, from ``pytest_collection_modifyitems``, ahead of the claims: the shard record the
  controller writes into the run's JUnit and report-log files for ``python -m pytest_isolate
  merge``;
- ``"unused_capacity"``: the ``isolate_capacity`` names no collected test declares (the
  deselected included), just ahead of the claims;
- ``"claims"``: the claims of its collection, from ``pytest_collection_finish``, ahead of
  xdist's ``collectionfinish`` event on the same connection;
- ``"timeout"``: a timed-out test's stack, from the worker's watchdog thread just before the
  worker ends itself, ahead of the connection's end that xdist reports as a crash.

The controller stores them from execnet's receiver thread (kept light: a dict and a notify)
and the scheduler waits for what it needs.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the channel objects come from xdist
    import execnet

# Runs in the worker's main thread, before xdist's remote module; it only stores the channel,
# on the ``sys`` module. It must not import pytest_isolate: pytest has not started there yet,
# and a module of a pytest plugin imported before pytest marks it for assertion rewriting is a
# PytestAssertRewriteWarning in every worker (an error under ``filterwarnings = error``).
_CHANNEL_ATTRIBUTE = "_pytest_isolate_channel"
_REMOTE_SOURCE = f"import sys\nsys.{_CHANNEL_ATTRIBUTE} = channel.receive()\n"

#: How long the controller waits for a message that should already be there.
RECEIVE_TIMEOUT = 60.0


class Inbox:
    """Controller side: the messages each worker has sent, by worker id and kind."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._messages: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, execnet.Channel] = {}  # execnet only keeps weak references

    def open(self, gateway: execnet.Gateway) -> None:
        worker = gateway.id
        bootstrap = gateway.remote_exec(_REMOTE_SOURCE)
        channel = gateway.newchannel()
        self._channels[worker] = channel
        with self._changed:
            self._messages[worker] = {}
        channel.setcallback(lambda message: self._store(worker, message))
        bootstrap.send(channel)

    def _store(self, worker: str, message: Any) -> None:
        kind, payload = message
        with self._changed:
            self._messages[worker][kind] = payload
            self._changed.notify_all()

    def get(self, worker: str, kind: str) -> Any | None:
        with self._changed:
            return self._messages.get(worker, {}).get(kind)

    def wait(self, worker: str, kind: str, timeout: float = RECEIVE_TIMEOUT) -> Any:
        with self._changed:
            arrived = self._changed.wait_for(
                lambda: kind in self._messages.get(worker, {}), timeout=timeout
            )
            if not arrived:
                raise RuntimeError(
                    f"pytest-isolate: worker {worker} sent no {kind} in {timeout:.0f}s; is "
                    "pytest-isolate installed and enabled where the worker runs?"
                )
            return self._messages[worker][kind]


def is_local(gateway: execnet.Gateway) -> bool:
    """Whether the gateway's process runs on this host: a ``popen`` not started ``via``
    another gateway. Anything else (``socket=``, ``ssh=``, ``popen//via=``) is on another
    host, where this host's pids and files mean nothing."""
    spec = gateway.spec
    return bool(spec.popen) and not spec.via


def send(kind: str, payload: Any) -> None:
    """Worker side: send a message to the controller (on the channel the bootstrap stored)."""
    channel: execnet.Channel | None = getattr(sys, _CHANNEL_ATTRIBUTE, None)
    if channel is None:
        raise RuntimeError(
            "pytest-isolate: this worker has no channel to the controller; was it started "
            "by a controller without pytest-isolate?"
        )
    channel.send((kind, payload))
