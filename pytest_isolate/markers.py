"""Markers: the declarations users write, read off pytest items.

Input: a collected :class:`pytest.Item` (its own, class and module marks, via
``iter_markers``). Output: :class:`~pytest_isolate.claims.TestClaims`, stored on the item.
A malformed declaration becomes a failed collect report naming the test and the fault
(:func:`malformed`), so nothing runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from .claims import PLAIN, Declaration, DeclarationError, TestClaims, parse_declaration
from .timeouts import TimeoutError_, parse_timeout

MARKERS = (
    "resource(*names, mode='exclusive'): the test uses these shared resources; no two tests "
    "holding the same name run at once (mode='shared': readers may overlap each other). "
    "'dir:PATH' names a directory (conflicts with its parents and children), 'port:N' a port. "
    "Provided by pytest-isolate.",
    "serial: run this test with no other test running. Provided by pytest-isolate.",
    "isolate_timeout(seconds): under -n, stop this test's worker after that many seconds and "
    "fail the test with its stack. Provided by pytest-isolate.",
)

CLAIMS_KEY = pytest.StashKey[TestClaims]()


def register(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


OURS = ("resource", "xdist_group", "serial", "isolate_timeout")
MARKS_KEY = pytest.StashKey[dict[str, list[pytest.Mark]]]()


def marks_of(item: pytest.Item) -> dict[str, list[pytest.Mark]]:
    """The item's marks this plugin reads, closest first, in one walk over its nodes."""
    marks = item.stash.get(MARKS_KEY, None)
    if marks is None:
        marks = {name: [] for name in OURS}
        for mark in item.iter_markers():
            if mark.name in marks:
                marks[mark.name].append(mark)
        item.stash[MARKS_KEY] = marks
    return marks


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
    return parse_timeout(raw, "isolate_timeout()")


def malformed(items: list[pytest.Item], capacity: Mapping[str, int]) -> list[pytest.CollectReport]:
    """A failed collect report for every item whose declarations are malformed.

    The caller removes those items and hands the reports to pytest, which counts them as
    collection errors: the run stops before any test starts, naming each test and fault.
    """
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
