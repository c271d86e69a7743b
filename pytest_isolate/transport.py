"""Transport: the execnet channel that carries each worker's claims to the controller.

The controller opens one channel per worker when xdist configures the node, before xdist's own
remote code starts, so it works for ``popen`` workers and for ``--tx`` workers on other hosts
alike (no shared filesystem). The worker sends its claims from ``pytest_collection_finish``,
ahead of xdist's ``collectionfinish`` event on the same connection, so they are already queued
when the scheduler asks for them.
"""

from __future__ import annotations

from typing import Any

import execnet

# Runs in the worker's main thread, before xdist's remote module; it only stores the channel.
_REMOTE_SOURCE = "import pytest_isolate.transport as t\nt.attach(channel.receive())\n"

#: How long the controller waits for claims that should already be there.
RECEIVE_TIMEOUT = 60.0

_worker_channel: execnet.Channel | None = None


def open_channel(gateway: execnet.Gateway) -> execnet.Channel:
    """Controller side: give the worker behind ``gateway`` a channel for its claims."""
    bootstrap = gateway.remote_exec(_REMOTE_SOURCE)
    channel = gateway.newchannel()
    bootstrap.send(channel)
    return channel


def attach(channel: execnet.Channel) -> None:
    """Worker side: remember the channel (called by the bootstrap code above)."""
    global _worker_channel
    _worker_channel = channel


def send(message: Any) -> None:
    """Worker side: send ``message`` to the controller."""
    if _worker_channel is None:
        raise RuntimeError(
            "pytest-isolate: this worker has no channel to the controller; was it started "
            "by a controller without pytest-isolate?"
        )
    _worker_channel.send(message)


def receive(channel: execnet.Channel, worker: str) -> Any:
    """Controller side: the message the worker sent, or a clear error."""
    try:
        return channel.receive(timeout=RECEIVE_TIMEOUT)
    except (execnet.TimeoutError, EOFError, OSError) as exc:
        raise RuntimeError(
            f"pytest-isolate: worker {worker} sent no claims ({exc!r}); is pytest-isolate "
            "installed and enabled where the worker runs?"
        ) from exc
