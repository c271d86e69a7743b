"""A shard's report files as the merge reads them: the shard record each carries (its format,
owned here, both for writing and reading) and the test entries around it. Pure: text in,
records out; a :class:`MergeError` names the file and the fault of unusable input.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .outputs import after, suites_of, xml_text

#: Bumped whenever the record's format changes.
VERSION = 1


#: The name of the JUnit suite property holding the record.
JUNIT_PROPERTY = "pytest_isolate.shard"


#: The ``$report_type`` of the report-log line holding the record.
REPORT_TYPE = "pytest_isolate.Shard"


class MergeError(Exception):
    """Input the merge cannot use; the message names the file and the fault."""


@dataclass(frozen=True)
class ShardRecord:
    shard: int  # 1-based
    shards: int
    tests: tuple[str, ...]  # node ids of the whole collection, in collection order
    # JUnit only: each test's (classname, name), as pytest's junitxml names its test case.
    cases: tuple[tuple[str, str], ...] = ()


@dataclass
class ReportLogFile:
    name: str
    record: ShardRecord
    lines: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class JunitFile:
    name: str
    record: ShardRecord
    root: ET.Element


def by_shard(shard: ReportLogFile | JunitFile) -> int:
    return shard.record.shard


def read_report_log(name: str, text: str) -> ReportLogFile:
    records: list[ShardRecord] = []
    lines: list[tuple[str, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise MergeError(f"{name}, line {number}: not JSON ({exc})") from None
        if not isinstance(data, dict) or "$report_type" not in data:
            raise MergeError(f"{name}, line {number}: not a report-log record (no $report_type)")
        if data["$report_type"] == REPORT_TYPE:
            records.append(parse_record(name, data))
        else:
            lines.append((line, data))
    if not records:
        raise MergeError(f"{name}: no shard record; {_HOW}")
    if len(records) > 1:
        raise MergeError(f"{name}: {len(records)} shard records, expected one")
    return ReportLogFile(name, records[0], lines)


def read_junit(name: str, text: str) -> JunitFile:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise MergeError(f"{name}: not well-formed XML ({exc})") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise MergeError(f"{name}: not a JUnit XML file (root element <{root.tag}>)")
    suites = suites_of(root)
    found: list[ShardRecord] = []
    for suite in suites:
        properties = suite.find("properties")
        if properties is None:
            continue
        for prop in list(properties):
            if prop.tag == "property" and prop.get("name") == JUNIT_PROPERTY:
                found.append(junit_record(name, prop.get("value", "")))
                properties.remove(prop)  # not part of the merged file
        if len(properties) == 0:
            suite.remove(properties)
    if not found:
        raise MergeError(f"{name}: no shard record; {_HOW}")
    if len(found) > 1:
        raise MergeError(f"{name}: {len(found)} shard records, expected one")
    return JunitFile(name, found[0], root)


_HOW = "was it written by a run with pytest -p isolate --isolate-shard K/N (and not compressed)?"


def junit_record(name: str, value: str) -> ShardRecord:
    try:
        data = json.loads(value)
    except ValueError:
        raise MergeError(f"{name}: the shard record is not JSON") from None
    if not isinstance(data, dict):
        raise MergeError(f"{name}: the shard record is not a JSON object")
    return parse_record(name, data, junit=True)


def parse_record(name: str, data: dict[str, Any], junit: bool = False) -> ShardRecord:
    if data.get("version") != VERSION:
        raise MergeError(
            f"{name}: shard record version {data.get('version')!r}, this merge reads "
            f"version {VERSION}; merge with the pytest-isolate version that ran the shards"
        )
    shard, shards, tests = data.get("shard"), data.get("shards"), data.get("tests")
    if not (isinstance(shard, int) and isinstance(shards, int) and 1 <= shard <= shards):
        raise MergeError(f"{name}: the shard record has no valid shard K of N")
    if not isinstance(tests, list):
        raise MergeError(f"{name}: the shard record has no list of tests")
    if not junit:
        if not all(isinstance(t, str) for t in tests):
            raise MergeError(f"{name}: the shard record's tests are not node ids")
        return ShardRecord(shard, shards, tuple(tests))
    if not all(
        isinstance(t, list) and len(t) == 3 and all(isinstance(s, str) for s in t) for t in tests
    ):
        raise MergeError(f"{name}: the shard record's tests are not [nodeid, classname, name]")
    return ShardRecord(
        shard, shards, tuple(t[0] for t in tests), tuple((t[1], t[2]) for t in tests)
    )


# -- writing the record (by the reporter of a shard run) ------------------------------------


def annotate_report_log(
    lines: Sequence[str], shard: int, shards: int, tests: Sequence[str]
) -> list[str]:
    """The report-log with the shard record right after the session start."""
    record = json.dumps(
        {
            "$report_type": REPORT_TYPE,
            "version": VERSION,
            "shard": shard,
            "shards": shards,
            "tests": list(tests),
        }
    )
    at = after(lines, "SessionStart")
    return [*lines[:at], record, *lines[at:]]


def annotate_junit(
    text: str, shard: int, shards: int, tests: Sequence[tuple[str, str, str]]
) -> str:
    """The JUnit document with the shard record as a property of its first suite.

    ``tests``: ``(nodeid, classname, name)`` of every collected test, in collection order.
    """
    root = ET.fromstring(text)
    suites = suites_of(root)
    if not suites:
        return text
    value = json.dumps(
        {
            "version": VERSION,
            "shard": shard,
            "shards": shards,
            "tests": [list(test) for test in tests],
        }
    )
    properties = suites[0].find("properties")
    if properties is None:
        properties = ET.Element("properties")
        suites[0].insert(0, properties)
    ET.SubElement(properties, "property", name=JUNIT_PROPERTY, value=value)
    return xml_text(root)
