"""The run's output files, as pytest's junitxml and pytest-reportlog wrote them, and every
change pytest-isolate makes to them: the tests put in output order, the diagnoses of the
reruns added (the shard record is shardfiles.py's). Pure: text in, text out.

A JUnit document is one ``<testsuite>`` or ``<testsuites>`` of them; a report-log is one JSON
object per line, ``$report_type`` naming its kind, the session start first and its finish last.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: junitxml's declaration, which ElementTree does not write.
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'


def xml_text(root: ET.Element) -> str:
    return XML_DECLARATION + ET.tostring(root, encoding="unicode")


def suites_of(root: ET.Element) -> list[ET.Element]:
    return [root] if root.tag == "testsuite" else root.findall("testsuite")


def report_type(line: str) -> str | None:
    """A report-log line's ``$report_type``; None for a line that is no such record."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data.get("$report_type") if isinstance(data, dict) else None


def after(lines: Sequence[str], kind: str) -> int:
    """The index just after the first line of ``kind`` (0 if there is none)."""
    return next((i + 1 for i, line in enumerate(lines) if report_type(line) == kind), 0)


def before(lines: Sequence[str], kind: str) -> int:
    """The index of the first line of ``kind`` (the end if there is none)."""
    return next((i for i, line in enumerate(lines) if report_type(line) == kind), len(lines))


# -- output order ---------------------------------------------------------------------------


def reorder_report_log(
    lines: Sequence[str], positions: Mapping[str, int], key: Callable[[str], int] | None = None
) -> list[str]:
    """pytest-reportlog's JSON lines with the test reports in output order.

    The session start stays first and the session finish last; everything else keeps its
    place relative to the test reports it came with, sorted stably by test.
    """
    unknown = len(positions)
    key = key or (lambda nodeid: positions.get(nodeid, unknown))
    head, body, tail = [], [], []
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            body.append((unknown + 1, line))
            continue
        kind = data.get("$report_type")
        if kind == "SessionStart":
            head.append(line)
        elif kind == "SessionFinish":
            tail.append(line)
        elif kind == "TestReport":
            body.append((key(data.get("nodeid", "")), line))
        else:
            body.append((unknown + 1, line))
    body.sort(key=lambda pair: pair[0])
    return head + [line for _, line in body] + tail


def reorder_junit(text: str, positions: Mapping[tuple[str, str], int]) -> str:
    """A JUnit XML document with each suite's test cases in output order.

    ``positions`` maps a test case's ``(classname, name)`` to its place; other children keep
    their place ahead of the test cases, unknown test cases go last in their order.
    """
    root = ET.fromstring(text)
    last = len(positions)
    for suite in suites_of(root):
        children = list(suite)
        cases = [c for c in children if c.tag == "testcase"]
        others = [c for c in children if c.tag != "testcase"]
        cases.sort(key=lambda c: positions.get((c.get("classname", ""), c.get("name", "")), last))
        for child in children:
            suite.remove(child)
        suite.extend(others + cases)
    return xml_text(root)


# -- the reruns' diagnoses ------------------------------------------------------------------


def insert_records(lines: Sequence[str], records: Sequence[str]) -> list[str]:
    """A report-log's lines with ``records`` added just before its session finish line."""
    at = before(lines, "SessionFinish")
    return [*lines[:at], *records, *lines[at:]]


def add_junit_properties(text: str, properties: Mapping[tuple[str, str], Sequence[Any]]) -> str:
    """A JUnit XML document with ``properties`` (by ``(classname, name)``) on its test cases.

    They go into the case's ``<properties>`` element, made first child when missing, where
    junitxml puts ``record_property`` values.
    """
    root = ET.fromstring(text)
    for case in root.iter("testcase"):
        extra = properties.get((case.get("classname", ""), case.get("name", "")))
        if not extra:
            continue
        holder = case.find("properties")
        if holder is None:
            holder = ET.Element("properties")
            case.insert(0, holder)
        for name, value in extra:
            ET.SubElement(holder, "property", {"name": name, "value": value})
    return xml_text(root)
