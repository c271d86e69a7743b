"""What earlier runs learned: dependencies between tests that a diagnosis proved.

A diagnosis (``--isolate-rerun-alone``) proves a pair: a victim and the test it depends on (a
polluter that ran before it on its worker, a test it needs to run first, a test that fails it
when the two overlap). Later runs schedule such a pair as if both tests had declared one
common resource: one domain, so one worker, in collection order, never at the same time.
That changes where and in which order tests run, never whether they run or what counts as a
failure. A pair that names a test the collection no longer has is dropped.

Pure: plain records in and out; the cache is read and written in :mod:`..diagnose.memory`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

from ..declare.claims import EXCLUSIVE, Claim, TestClaims

#: The causes a pair can be learned from, and how each reads.
RELATIONS = {
    "polluted": "fails after",
    "needs_earlier": "needs",
    "overlap": "fails beside",
}


class Learned(NamedTuple):
    cause: str  # a key of RELATIONS
    victim: str
    other: str
    learned: str  # when, in words: "the run of 2026-12-07 04:12 UTC"

    @property
    def resource(self) -> str:
        """The name of the common resource: the victim's function name, params left out."""
        name = self.victim.rpartition("::")[2].partition("[")[0].removeprefix("test_")
        return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "learned"

    def words(self) -> str:
        return f"{self.victim} {RELATIONS[self.cause]} {self.other}"

    def marker(self) -> str:
        return f'@pytest.mark.resource("{self.resource}") on both'


FIELDS = ("cause", "victim", "other", "learned")


def decode(raw: object) -> list[Learned]:
    """The records of the cache's JSON; anything malformed is left out (an old or edited cache
    must never stop a run)."""
    found = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict):
            continue
        fields = [entry.get(name) for name in FIELDS]
        strings = [f for f in fields if isinstance(f, str)]
        if len(strings) == len(fields) and entry.get("cause") in RELATIONS:
            found.append(Learned(*strings))
    return found


def encode(learned: Iterable[Learned]) -> list[dict[str, Any]]:
    return [dict(zip(FIELDS, item, strict=True)) for item in learned]


def merge(old: Sequence[Learned], new: Iterable[Learned]) -> list[Learned]:
    """The old records and the new, one per pair (the newest wins), in the order learned."""
    by_pair = {(item.victim, item.other): item for item in old}
    for item in new:
        by_pair.pop((item.victim, item.other), None)
        by_pair[(item.victim, item.other)] = item
    return list(by_pair.values())


def split_existing(
    learned: Sequence[Learned], collected: Collection[str]
) -> tuple[list[Learned], list[Learned]]:
    """The records whose tests both still exist, and those naming one that does not."""
    kept = [item for item in learned if item.victim in collected and item.other in collected]
    return kept, [item for item in learned if item not in kept]


def apply(
    nodeids: Sequence[str], claims: Sequence[TestClaims], learned: Iterable[Learned]
) -> tuple[list[TestClaims], list[Learned]]:
    """The claims with each learned pair's common resource added, and the records applied
    (those whose two tests are both in ``nodeids``)."""
    index = {nodeid: i for i, nodeid in enumerate(nodeids)}
    out = list(claims)
    applied = []
    for item in learned:
        if item.victim not in index or item.other not in index:
            continue
        applied.append(item)
        claim = Claim("name", f"isolate-learned:{item.victim}", EXCLUSIVE)
        for i in (index[item.victim], index[item.other]):
            if claim not in out[i].claims:
                out[i] = out[i]._replace(claims=(*out[i].claims, claim))
    return out, applied
