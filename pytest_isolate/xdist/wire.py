"""Wire: the claims of a worker's collection, as plain data for an execnet channel.

xdist's controller never collects, so the markers exist only in the workers. Each worker sends
its claims to the controller over a channel of this plugin's own (see :mod:`.transport`),
never by rewriting node ids. Only tests that declare something are sent, so a suite without
markers costs a few bytes. execnet serializes only builtins: this module owns the format and
both directions of it.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..declare.claims import PLAIN, Claim, TestClaims

#: Bumped whenever the format changes, so a controller and a worker of different
#: versions fail loudly instead of misreading each other.
VERSION = 2  # 2: the malformed count


def encode(tests: Sequence[TestClaims], malformed: int = 0) -> dict[str, Any]:
    """``malformed``: how many tests the worker dropped for malformed declarations."""
    sparse = {
        index: (
            [[c.kind, c.key, c.mode] for c in test.claims],
            list(test.counted),
            test.serial,
        )
        for index, test in enumerate(tests)
        if not test.is_plain
    }
    return {"version": VERSION, "count": len(tests), "claims": sparse, "malformed": malformed}


def malformed(message: Any) -> int:
    return int(message.get("malformed", 0)) if isinstance(message, dict) else 0


def decode(message: Any) -> list[TestClaims]:
    if not isinstance(message, dict) or message.get("version") != VERSION:
        raise ValueError(
            f"pytest-isolate: a worker sent claims in an unknown format ({message!r:.80}); "
            "are the controller and the workers running the same pytest-isolate version?"
        )
    tests = [PLAIN] * int(message["count"])
    for index, (claims, counted, serial) in message["claims"].items():
        tests[index] = TestClaims(
            tuple(Claim(kind, key, mode) for kind, key, mode in claims),
            tuple(counted),
            bool(serial),
        )
    return tests
