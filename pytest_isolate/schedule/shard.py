"""Shards: which domains one CI job of N runs, the same on every machine.

Input: the domains (tuples of test indices), the node ids and duration estimates, and N.
Output: the shard (0-based) of every domain. Domains are never split. The split is
longest-processing-time-first over domains, ties broken by a stable hash of the domain's
first node id (``zlib.crc32``, never the salted ``hash()``), so every machine that sees the
same collection and durations computes the same split. With at least N domains, LPT gives
each shard one of the N longest first, so no shard is empty. Pure.
"""

from __future__ import annotations

import heapq
import re
import zlib
from collections.abc import Sequence

from ..declare.domains import Domain

_SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(raw: str) -> tuple[int, int]:
    """``"K/N"`` (1-based) -> ``(K, N)``; a ValueError names the fault."""
    match = _SHARD.match(raw.strip())
    if match is None:
        raise ValueError(f"--isolate-shard {raw!r}: expected K/N, for example 2/4")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"--isolate-shard {raw!r}: K must be from 1 to N, and N at least 1")
    return k, n


def assign_shards(
    domains: Sequence[Domain], nodeids: Sequence[str], estimates: Sequence[float], shards: int
) -> list[int]:
    """The shard of each domain, in the order of ``domains``."""
    order = sorted(
        range(len(domains)),
        key=lambda d: (
            -round(sum(estimates[i] for i in domains[d]), 6),
            zlib.crc32(nodeids[domains[d][0]].encode()),
            nodeids[domains[d][0]],
        ),
    )
    heap = [(0.0, shard) for shard in range(shards)]
    assignment = [0] * len(domains)
    for d in order:
        load, shard = heapq.heappop(heap)
        assignment[d] = shard
        heapq.heappush(heap, (round(load + sum(estimates[i] for i in domains[d]), 6), shard))
    return assignment


def select(
    domains: Sequence[Domain],
    nodeids: Sequence[str],
    estimates: Sequence[float],
    shard: int,
    shards: int,
) -> set[int]:
    """The test indices of shard ``shard`` (1-based) of ``shards``."""
    assignment = assign_shards(domains, nodeids, estimates, shards)
    return {i for d, domain in enumerate(domains) if assignment[d] == shard - 1 for i in domain}
