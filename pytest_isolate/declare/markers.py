"""Markers: the declarations users write, read off pytest items.

Input: a collected :class:`pytest.Item` (its own, class and module marks, closest first,
as ``iter_markers`` gives them). Output: :class:`~pytest_isolate.declare.claims.TestClaims`, stored
on the item. A malformed declaration becomes a failed collect report naming the test and
the fault (:func:`malformed`), so nothing runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

import pytest

from .claims import (
    PLAIN,
    Declaration,
    DeclarationError,
    TestClaims,
    TimeoutError_,
    parse_declaration,
    parse_timeout,
)

if TYPE_CHECKING:
    from ..compat import Node

CLAIMS_KEY = pytest.StashKey[TestClaims]()

OURS = ("resource", "xdist_group", "serial", "isolate_timeout")
MARKS_KEY = pytest.StashKey[Mapping[str, Sequence[pytest.Mark]]]()


def marks_of(item: pytest.Item) -> Mapping[str, Sequence[pytest.Mark]]:
    """The item's marks this plugin reads, closest first (as read by :func:`read_marks`)."""
    marks = item.stash.get(MARKS_KEY, None)
    if marks is None:
        read_marks([item])
        marks = item.stash[MARKS_KEY]
    return marks


def read_marks(items: Sequence[pytest.Item]) -> None:
    """Read (again) the marks this plugin reads off each item, and forget its claims.

    What ``item.iter_markers()`` would give, closest first, but each module's and class's
    marks are looked at once for all their tests: on a suite of 50,000 tests that is a tenth
    of the time. Called again after the other plugins' ``pytest_collection_modifyitems``, so
    marks they add there (``item.add_marker``) count.
    """
    chains: dict[int, tuple[pytest.Mark, ...]] = {}
    for item in items:
        inherited = _chain(item.parent, chains) if item.parent is not None else ()
        own = [mark for mark in item.own_markers if mark.name in OURS]
        if not own and not inherited:
            item.stash[MARKS_KEY] = _NONE
        else:
            marks: dict[str, list[pytest.Mark]] = {name: [] for name in OURS}
            for mark in (*own, *inherited):
                marks[mark.name].append(mark)
            item.stash[MARKS_KEY] = marks
        if CLAIMS_KEY in item.stash:
            del item.stash[CLAIMS_KEY]


#: The marks of an item that has none of ours: shared, never changed.
_NONE: Mapping[str, Sequence[pytest.Mark]] = MappingProxyType({name: () for name in OURS})


def _chain(node: Node, chains: dict[int, tuple[pytest.Mark, ...]]) -> tuple[pytest.Mark, ...]:
    """Our marks of ``node`` and its parents, closest first; once per node per read."""
    found = chains.get(id(node))
    if found is None:
        own = tuple(mark for mark in node.own_markers if mark.name in OURS)
        parent = _chain(node.parent, chains) if node.parent is not None else ()
        found = chains[id(node)] = own + parent
    return found


#: The user property a test carries when it declared something after collection.
LATE_PROPERTY = "isolate_declared_late"
_SCHEDULED = ("resource", "xdist_group", "serial")


def declared_late(item: pytest.Item) -> str:
    """What ``item`` declared after the schedule was made (``request.applymarker`` in a
    fixture, ``item.add_marker`` in a setup hook), as text; "" for nothing (most tests: a
    look at its own marks, usually none)."""
    if not item.own_markers:
        return ""
    known = item.stash.get(MARKS_KEY, _NONE)
    late = [
        mark
        for mark in item.own_markers
        if mark.name in _SCHEDULED and mark not in known[mark.name]
    ]
    return ", ".join(_spelled(mark) for mark in late)


def _spelled(mark: pytest.Mark) -> str:
    args = [*map(repr, mark.args), *(f"{k}={v!r}" for k, v in mark.kwargs.items())]
    return f"{mark.name}({', '.join(args)})" if args else mark.name


def declaration_of(item: pytest.Item) -> Declaration:
    marks = marks_of(item)
    return Declaration(
        resources=tuple((m.args, m.kwargs) for m in marks["resource"]),
        groups=tuple((m.args, m.kwargs) for m in marks["xdist_group"]),
        serial=bool(marks["serial"]),
    )


def claims_of(item: pytest.Item, capacity: Mapping[str, int]) -> TestClaims:
    """The item's claims, parsed once and kept on the item."""
    claims = item.stash.get(CLAIMS_KEY, None)
    if claims is None:
        marks = marks_of(item)
        for mark in marks["serial"]:
            if mark.args or mark.kwargs:
                given = ", ".join([*map(repr, mark.args), *(f"{k}=" for k in mark.kwargs)])
                raise DeclarationError(
                    f"serial takes no arguments, got serial({given}): it means no other test "
                    "runs meanwhile; to keep tests apart by a name, use resource(...)"
                )
        if marks["resource"] or marks["xdist_group"] or marks["serial"]:
            claims = parse_declaration(declaration_of(item), str(item.config.rootpath), capacity)
        else:
            claims = PLAIN  # nothing declared: nothing to parse
        item.stash[CLAIMS_KEY] = claims
    return claims


def timeout_of(item: pytest.Item, default: float | None) -> float | None:
    """The test's timeout: its ``isolate_timeout`` mark, else the option's value."""
    found = marks_of(item)["isolate_timeout"]
    if not found:
        return default
    mark = found[0]
    raw = mark.args[0] if mark.args else mark.kwargs.get("seconds")
    if raw is None:
        raise TimeoutError_("isolate_timeout() needs the seconds, e.g. isolate_timeout(30)")
    return parse_timeout(raw, "isolate_timeout()")


def malformed(items: list[pytest.Item], capacity: Mapping[str, int]) -> list[pytest.CollectReport]:
    """A failed collect report for every item whose declarations are malformed.

    The caller removes those items and hands the reports to pytest, which counts them as
    collection errors: the run stops before any test starts, naming each test and fault.
    """
    read_marks(items)
    reports = []
    for item in items:
        try:
            claims_of(item, capacity)
            timeout_of(item, None)
        except (DeclarationError, TimeoutError_) as exc:
            reports.append(
                pytest.CollectReport(
                    item.nodeid,
                    "failed",
                    f"pytest-isolate: malformed declaration\n{item.nodeid}: {exc}",
                    [],
                )
            )
    return reports
