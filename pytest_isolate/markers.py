"""Markers: the declarations users write, read off pytest items.

Input: a collected :class:`pytest.Item` (its own, class and module marks, via
``iter_markers``). Output: :class:`~pytest_isolate.claims.TestClaims`, stored on the item.
A malformed declaration turns the collector's report into a collection error that names the
test and the fault, so nothing runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from .claims import Declaration, DeclarationError, TestClaims, parse_declaration

MARKERS = (
    "resource(*names, mode='exclusive'): the test uses these shared resources; no two tests "
    "holding the same name run at once (mode='shared': readers may overlap each other). "
    "'dir:PATH' names a directory (conflicts with its parents and children), 'port:N' a port. "
    "Provided by pytest-isolate.",
    "serial: run this test with no other test running. Provided by pytest-isolate.",
)

CLAIMS_KEY = pytest.StashKey[TestClaims]()


def register(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def declaration_of(item: pytest.Item) -> Declaration:
    return Declaration(
        resources=tuple((m.args, m.kwargs) for m in item.iter_markers("resource")),
        groups=tuple((m.args, m.kwargs) for m in item.iter_markers("xdist_group")),
        serial=item.get_closest_marker("serial") is not None,
    )


def claims_of(item: pytest.Item, capacity: Mapping[str, int]) -> TestClaims:
    """The item's claims, parsed once and kept on the item."""
    claims = item.stash.get(CLAIMS_KEY, None)
    if claims is None:
        claims = parse_declaration(declaration_of(item), str(item.config.rootpath), capacity)
        item.stash[CLAIMS_KEY] = claims
    return claims


def validate(report: pytest.CollectReport, capacity: Mapping[str, int]) -> None:
    """Fail a collector's report when one of its items declares something malformed."""
    faults = []
    for node in report.result:
        if isinstance(node, pytest.Item):
            try:
                claims_of(node, capacity)
            except DeclarationError as exc:
                faults.append(f"{node.nodeid}: {exc}")
    if faults:
        report.outcome = "failed"
        report.longrepr = "pytest-isolate: malformed declaration\n" + "\n".join(faults)
        report.result = []
