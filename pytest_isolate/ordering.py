"""Order within domains: undo a shuffle inside each domain, keep it everywhere else.

Input: for each test, in the order after other plugins reordered the collection, its rank in
the order before (the collected order); and the domains over the reordered positions.
Output: a permutation of the reordered positions in which every domain's tests take the
positions the domain occupied, in their collected order. Free tests and the order of domains
keep the reordering.

Why: tests of one domain share something and may rely on running in the order they are
written; pytest-randomly shuffles to find *hidden* order dependencies, and a domain's is
declared.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def collected_order_within(rank: Sequence[int], domains: Iterable[Sequence[int]]) -> list[int]:
    """Positions into the reordered list, each domain's members back in ``rank`` order."""
    order = list(range(len(rank)))
    for domain in domains:
        in_order = sorted(domain, key=rank.__getitem__)
        for position, member in zip(sorted(domain), in_order, strict=True):
            order[position] = member
    return order
