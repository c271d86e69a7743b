"""Merge: the shards' ``--junitxml`` and ``--report-log`` files as one run's, in collection order.

Every shard (``--isolate-shard K/N``) collects the whole suite, so each shard run can say what
the whole run is: its shard number, N, and every collected test in collection order. It writes that
*shard record* into its own files (a suite property in JUnit XML, one line of its own in the
report-log), so merging needs nothing but the files. The merge puts the shards' test entries in
the recorded order, drops the records, keeps once what every shard wrote alike (collection
reports, collection errors, collection-time warnings), and names the tests that ran in no shard
or in two (:class:`Faults`).

The record's format is shardfiles.py's (written here, read there). Pure: strings in,
strings out; a :class:`MergeError` names the file and the fault of unusable input.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..words import count
from .outputs import reorder_junit, reorder_report_log, suites_of, xml_text
from .shardfiles import (
    JUNIT_PROPERTY,
    REPORT_TYPE,
    VERSION,
    MergeError,
    ShardRecord,
    by_shard,
    read_junit,
    read_report_log,
)

__all__ = [
    "JUNIT_PROPERTY",
    "REPORT_TYPE",
    "VERSION",
    "Faults",
    "MergeError",
    "Merged",
    "ShardRecord",
]


_COUNTS = ("tests", "errors", "failures", "skipped")
# Every shard collects the whole suite: these repeat alike in each, and appear once in a run.
_COLLECTION_WARNINGS = ("config", "collect")


@dataclass(frozen=True)
class Faults:
    missing: tuple[str, ...] = ()  # collected, in no shard's file
    duplicated: tuple[tuple[str, tuple[str, ...]], ...] = ()  # node id, the files it is in
    absent_shards: tuple[int, ...] = ()  # shard numbers no file was given for
    repeated_shards: tuple[tuple[int, tuple[str, ...]], ...] = ()  # shard number, its files
    differing: tuple[tuple[str, str], ...] = ()  # (file, first file): other collections

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.duplicated
            or self.absent_shards
            or self.repeated_shards
            or self.differing
        )


@dataclass(frozen=True)
class Merged:
    text: str
    faults: Faults
    shards: int
    tests: int  # collected tests


# -- merging ------------------------------------------------------------------------------------


def merge_report_logs(files: Sequence[tuple[str, str]]) -> Merged:
    """``files``: ``(name, text)`` of each shard's report-log. One report-log, collection order."""
    shards = sorted((read_report_log(name, text) for name, text in files), key=by_shard)
    collection, faults = _check_shards([(s.name, s.record) for s in shards])
    positions = {nodeid: i for i, nodeid in enumerate(collection)}
    found: dict[str, list[str]] = {}
    start: str | None = None
    finishes: list[dict[str, Any]] = []
    body: list[str] = []
    repeated: set[str] = set()
    for shard in shards:
        for line, data in shard.lines:
            kind = data.get("$report_type")
            if kind == "SessionStart":
                start = start or line
            elif kind == "SessionFinish":
                finishes.append(data)
            elif kind == "TestReport":
                _found_in(found, str(data.get("nodeid", "")), shard.name)
                body.append(line)
            elif _same_in_every_shard(data):
                if line not in repeated:
                    repeated.add(line)
                    body.append(line)
            else:
                body.append(line)
    lines = ([start] if start else []) + body
    if finishes:
        finish = dict(finishes[0])
        finish["exitstatus"] = combined_exitstatus([int(f.get("exitstatus", 0)) for f in finishes])
        lines.append(json.dumps(finish))
    ordered = reorder_report_log(lines, positions)
    return Merged(
        "".join(line + "\n" for line in ordered),
        _with_coverage(faults, collection, found),
        shards[0].record.shards,
        len(collection),
    )


def merge_junit(files: Sequence[tuple[str, str]]) -> Merged:
    """``files``: ``(name, text)`` of each shard's JUnit XML. One document, in collection order."""
    shards = sorted((read_junit(name, text) for name, text in files), key=by_shard)
    collection, faults = _check_shards([(s.name, s.record) for s in shards])
    order = {nodeid: i for i, nodeid in enumerate(collection)}
    nodeid_of: dict[tuple[str, str], str] = {}
    for shard in shards:
        for nodeid, case in zip(shard.record.tests, shard.record.cases, strict=True):
            nodeid_of.setdefault(case, nodeid)
    positions = {case: order[nodeid] for case, nodeid in nodeid_of.items()}
    first = shards[0].root
    merged: dict[str, ET.Element] = {}  # suite name -> merged suite
    found: dict[str, list[str]] = {}
    repeated: set[bytes] = set()
    for shard in shards:
        for suite in suites_of(shard.root):
            target = merged.get(suite.get("name", ""))
            if target is None:
                target = merged[suite.get("name", "")] = ET.Element(suite.tag, dict(suite.attrib))
            else:
                _add_suite_attributes(shard.name, target, suite)
            for child in suite:
                if child.tag == "properties":
                    _merge_properties(target, child)
                    continue
                key = (child.get("classname", ""), child.get("name", ""))
                if child.tag == "testcase" and key in nodeid_of:
                    _found_in(found, nodeid_of[key], shard.name)
                else:
                    # Collection errors and the like: every shard collects the whole suite.
                    signature = ET.tostring(child)
                    if signature in repeated:
                        if child.tag == "testcase":
                            _uncount(target, child)
                        continue
                    repeated.add(signature)
                target.append(child)
    if first.tag == "testsuite" and len(merged) == 1:
        root = next(iter(merged.values()))
    else:
        root = ET.Element("testsuites", dict(first.attrib) if first.tag == "testsuites" else {})
        root.extend(merged.values())
    return Merged(
        reorder_junit(xml_text(root), positions),
        _with_coverage(faults, collection, found),
        shards[0].record.shards,
        len(collection),
    )


def combined_exitstatus(statuses: Iterable[int]) -> int:
    """The run's exit status from its shards': the worst failure; 5 (no tests) only if all 5.

    A shard with nothing to do is no fault of the run (shard runs exit 0 for it, but
    pytest-reportlog has already written pytest's 5 by then).
    """
    codes = list(statuses)
    failures = [code for code in codes if code not in (0, 5)]
    if failures:
        return max(failures)
    return 5 if codes and all(code == 5 for code in codes) else 0


def format_faults(faults: Faults) -> list[str]:
    """The lines naming each fault, for the terminal."""
    lines: list[str] = []
    for shard in faults.absent_shards:
        lines.append(f"no file for shard {shard}: its tests are missing")
    for shard, names in faults.repeated_shards:
        lines.append(f"shard {shard} given more than once: {', '.join(names)}")
    for name, first in faults.differing:
        lines.append(
            f"{name} recorded a different collection than {first}: "
            "were the shards run from the same checkout with the same options?"
        )
    if faults.missing:
        lines.append(f"{count(len(faults.missing), 'test')} missing from every shard:")
        lines += [f"  {nodeid}" for nodeid in faults.missing]
    if faults.duplicated:
        lines.append(f"{count(len(faults.duplicated), 'test')} in more than one shard:")
        lines += [f"  {nodeid}  ({', '.join(names)})" for nodeid, names in faults.duplicated]
    return lines


# -- checks -------------------------------------------------------------------------------------


def _check_shards(records: Sequence[tuple[str, ShardRecord]]) -> tuple[list[str], Faults]:
    """The whole collection in collection order, and the faults of the set of shards."""
    if not records:
        raise MergeError("no files to merge")
    first_name, first = records[0]
    for name, record in records[1:]:
        if record.shards != first.shards:
            raise MergeError(
                f"{name} is shard {record.shard}/{record.shards} but {first_name} is shard "
                f"{first.shard}/{first.shards}: these are not shards of one run"
            )
    by_shard: dict[int, list[str]] = {}
    for name, record in records:
        by_shard.setdefault(record.shard, []).append(name)
    collection = list(first.tests)
    known = set(collection)
    differing = []
    for name, record in records[1:]:
        if record.tests != first.tests:
            differing.append((name, first_name))
            for nodeid in record.tests:  # the union, so each test is still accounted for
                if nodeid not in known:
                    known.add(nodeid)
                    collection.append(nodeid)
    faults = Faults(
        absent_shards=tuple(k for k in range(1, first.shards + 1) if k not in by_shard),
        repeated_shards=tuple((k, tuple(n)) for k, n in sorted(by_shard.items()) if len(n) > 1),
        differing=tuple(differing),
    )
    return collection, faults


def _found_in(found: dict[str, list[str]], nodeid: str, name: str) -> None:
    names = found.setdefault(nodeid, [])
    if name not in names:  # several entries per test in one file are normal
        names.append(name)


def _with_coverage(
    faults: Faults, collection: Sequence[str], found: dict[str, list[str]]
) -> Faults:
    return Faults(
        missing=tuple(nodeid for nodeid in collection if nodeid not in found),
        duplicated=tuple(
            (nodeid, tuple(found[nodeid]))
            for nodeid in collection
            if len(found.get(nodeid, ())) > 1
        ),
        absent_shards=faults.absent_shards,
        repeated_shards=faults.repeated_shards,
        differing=faults.differing,
    )


# -- helpers ------------------------------------------------------------------------------------


def _same_in_every_shard(data: dict[str, Any]) -> bool:
    kind = data.get("$report_type")
    return kind == "CollectReport" or (
        kind == "WarningMessage" and data.get("when") in _COLLECTION_WARNINGS
    )


def _add_suite_attributes(name: str, target: ET.Element, suite: ET.Element) -> None:
    """Counts and times add up; the earliest timestamp stays; the rest is the first shard's."""
    for key in (*_COUNTS, "time"):
        if key not in suite.attrib:
            continue
        try:
            if key == "time":
                total = float(target.get(key, "0")) + float(suite.get(key, "0"))
                target.set(key, f"{total:.3f}")
            else:
                target.set(key, str(int(target.get(key, "0")) + int(suite.get(key, "0"))))
        except ValueError:
            raise MergeError(
                f"{name}: suite {suite.get('name', '')!r} has a non-numeric {key}="
                f"{suite.get(key)!r}"
            ) from None
    stamp = suite.get("timestamp")
    if stamp and (not target.get("timestamp") or stamp < target.get("timestamp", "")):
        target.set("timestamp", stamp)


def _uncount(suite: ET.Element, case: ET.Element) -> None:
    """A repeated test case left out: take it out of the suite's counts too."""
    tags = {child.tag for child in case}
    for key, counted in (("tests", True), ("errors", "error" in tags)):
        if counted and suite.get(key, "").isdigit():
            suite.set(key, str(int(suite.get(key, "0")) - 1))
    for key, tag in (("failures", "failure"), ("skipped", "skipped")):
        if tag in tags and suite.get(key, "").isdigit():
            suite.set(key, str(int(suite.get(key, "0")) - 1))


def _merge_properties(target: ET.Element, properties: ET.Element) -> None:
    mine = target.find("properties")
    if mine is None:
        mine = ET.Element("properties")
        target.insert(0, mine)
    have = {ET.tostring(prop) for prop in mine}
    for prop in properties:
        if ET.tostring(prop) not in have:
            mine.append(prop)
