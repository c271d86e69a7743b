"""Domains: tests joined, transitively, by conflicting claims.

Input: one :class:`~pytest_isolate.declare.claims.TestClaims` per collected test, in
collection order. Output: a partition of the test indices into domains. Each domain is a
tuple of indices in collection order; the list is ordered by each domain's first test. A
domain of one test is a *free* test: it conflicts with nothing and may run anywhere.

Counted resources and ``serial`` do not join domains: they limit what runs *at the same time*
and are enforced by the dispatcher, not by placement.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from .claims import EXCLUSIVE, TestClaims, dir_overlaps

Domain = tuple[int, ...]


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller index stays the root, so roots are deterministic.
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb

    def union_all(self, members: Sequence[int]) -> None:
        for other in members[1:]:
            self.union(members[0], other)


def _join_holders(uf: _UnionFind, holders: list[tuple[int, str]], always: bool) -> None:
    """Join the holders of one key: all of them when any holds it exclusively."""
    if always or any(mode == EXCLUSIVE for _, mode in holders):
        uf.union_all([index for index, _ in holders])


def _join_dirs(uf: _UnionFind, by_path: dict[str, list[tuple[int, str]]]) -> None:
    """Join holders of nested paths: a path conflicts with its parents and children."""
    # Sorting by components puts a parent right before its children ("/a", "/a/b", "/a-c"),
    # so a stack of the open ancestors finds every claimed ancestor of each path.
    paths = sorted(by_path, key=lambda path: path.split("/"))
    for path in paths:
        _join_holders(uf, by_path[path], always=False)
    stack: list[str] = []
    for path in paths:
        while stack and not dir_overlaps(stack[-1], path):
            stack.pop()
        for ancestor in stack:
            _join_pair(uf, by_path[ancestor], by_path[path])
        stack.append(path)


def _join_pair(uf: _UnionFind, a: list[tuple[int, str]], b: list[tuple[int, str]]) -> None:
    writers_a = [index for index, mode in a if mode == EXCLUSIVE]
    writers_b = [index for index, mode in b if mode == EXCLUSIVE]
    if writers_a:
        uf.union_all(writers_a + [index for index, _ in b])
    if writers_b:
        uf.union_all(writers_b + [index for index, _ in a])


def build_domains(tests: Sequence[TestClaims]) -> list[Domain]:
    """Partition test indices into domains of transitively conflicting tests."""
    uf = _UnionFind(len(tests))
    by_key: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    by_path: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for index, test in enumerate(tests):
        for claim in test.claims:
            if claim.kind == "dir":
                by_path[claim.key].append((index, claim.mode))
            else:
                by_key[(claim.kind, claim.key)].append((index, claim.mode))
    for (kind, _key), holders in by_key.items():
        _join_holders(uf, holders, always=kind == "group")
    _join_dirs(uf, by_path)

    members: dict[int, list[int]] = defaultdict(list)
    for index in range(len(tests)):
        members[uf.find(index)].append(index)
    return sorted((tuple(group) for group in members.values()), key=lambda d: d[0])
