"""Merging shard reports over plain data: the record both ways, order, faults, bad input."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from pytest_isolate.report.merge import (
    Faults,
    MergeError,
    combined_exitstatus,
    format_faults,
    merge_junit,
    merge_report_logs,
)
from pytest_isolate.report.shardfiles import annotate_junit, annotate_report_log

# The whole collection in output order: domain {a, c} comes out before the free test b.
ORDER = ["m.py::a", "m.py::c", "m.py::b", "m.py::d"]
CASES = {nodeid: ("m", nodeid.split("::")[1]) for nodeid in ORDER}


# -- report-logs ---------------------------------------------------------------------------------


def start() -> str:
    return json.dumps({"pytest_version": "9.0", "$report_type": "SessionStart"})


def finish(status: int) -> str:
    return json.dumps({"exitstatus": status, "$report_type": "SessionFinish"})


def collected() -> str:
    return json.dumps({"nodeid": "m.py", "outcome": "passed", "$report_type": "CollectReport"})


def phases(nodeid: str, outcome: str = "passed") -> list[str]:
    return [
        json.dumps(
            {"nodeid": nodeid, "when": when, "outcome": outcome, "$report_type": "TestReport"}
        )
        for when in ("setup", "call", "teardown")
    ]


def shard_log(k: int, n: int, tests: list[str], status: int = 0, order: list[str] = ORDER) -> str:
    """A shard's report-log as the plugin leaves it: output order, the record after the start."""
    lines = [start(), *(line for t in tests for line in phases(t)), collected(), finish(status)]
    return "\n".join(annotate_report_log(lines, k, n, order)) + "\n"


def test_report_logs_merge_into_the_single_runs_order() -> None:
    merged = merge_report_logs(
        [
            ("s2.jsonl", shard_log(2, 3, ["m.py::b"], status=1)),
            ("s1.jsonl", shard_log(1, 3, ["m.py::a", "m.py::c"])),
            ("s3.jsonl", shard_log(3, 3, ["m.py::d"])),
        ]
    )
    single = [start(), *(line for t in ORDER for line in phases(t)), collected(), finish(1)]
    assert merged.text.splitlines() == single
    assert merged.faults == Faults()
    assert merged.faults.ok
    assert (merged.shards, merged.tests) == (3, 4)


def test_the_record_follows_the_session_start_and_is_read_back() -> None:
    lines = annotate_report_log([start(), finish(0)], 2, 5, ORDER)
    record = json.loads(lines[1])
    assert record["$report_type"] == "pytest_isolate.Shard"
    assert (record["shard"], record["shards"], record["tests"]) == (2, 5, ORDER)
    assert lines[0] == start() and lines[2] == finish(0)


def test_report_log_names_missing_and_duplicated_tests() -> None:
    merged = merge_report_logs(
        [
            ("one.jsonl", shard_log(1, 2, ["m.py::a", "m.py::c", "m.py::b"])),
            ("two.jsonl", shard_log(2, 2, ["m.py::b"])),
        ]
    )
    assert merged.faults.missing == ("m.py::d",)
    assert merged.faults.duplicated == (("m.py::b", ("one.jsonl", "two.jsonl")),)
    assert not merged.faults.ok
    # Both copies stay: neither outcome is dropped silently.
    nodeids = [json.loads(x).get("nodeid") for x in merged.text.splitlines()]
    assert nodeids.count("m.py::b") == 6


def test_absent_and_repeated_shards_are_faults() -> None:
    merged = merge_report_logs(
        [
            ("a.jsonl", shard_log(1, 3, ["m.py::a", "m.py::c"])),
            ("b.jsonl", shard_log(1, 3, ["m.py::a", "m.py::c"])),
        ]
    )
    assert merged.faults.absent_shards == (2, 3)
    assert merged.faults.repeated_shards == ((1, ("a.jsonl", "b.jsonl")),)
    assert merged.faults.missing == ("m.py::b", "m.py::d")
    assert [name for name, _ in merged.faults.duplicated] == ["m.py::a", "m.py::c"]


def test_shards_of_different_runs_are_refused_naming_both_files() -> None:
    with pytest.raises(MergeError, match=r"b\.jsonl is shard 2/4 but a\.jsonl is shard 1/3"):
        merge_report_logs([("a.jsonl", shard_log(1, 3, ORDER)), ("b.jsonl", shard_log(2, 4, []))])


def test_a_different_collection_is_a_fault_and_its_tests_are_kept() -> None:
    other = [*ORDER, "m.py::e"]
    merged = merge_report_logs(
        [
            ("a.jsonl", shard_log(1, 2, ["m.py::a", "m.py::c", "m.py::b", "m.py::d"])),
            ("b.jsonl", shard_log(2, 2, ["m.py::e"], order=other)),
        ]
    )
    assert merged.faults.differing == (("b.jsonl", "a.jsonl"),)
    assert merged.faults.missing == ()
    assert merged.tests == 5
    assert "m.py::e" in merged.text


def test_warnings_of_collection_are_kept_once_those_of_tests_all() -> None:
    def warning(when: str) -> str:
        return json.dumps({"message": "w", "$report_type": "WarningMessage", "when": when})

    def log(k: int, tests: list[str]) -> str:
        lines = [start(), *(x for t in tests for x in phases(t))]
        lines += [warning("collect"), warning("runtest"), finish(0)]
        return "\n".join(annotate_report_log(lines, k, 2, ORDER))

    merged = merge_report_logs(
        [("1", log(1, ["m.py::a", "m.py::c"])), ("2", log(2, ["m.py::b", "m.py::d"]))]
    )
    kinds = [json.loads(x).get("when") for x in merged.text.splitlines() if "Warning" in x]
    assert sorted(kinds) == ["collect", "runtest", "runtest"]


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("{not json\n", r"x\.jsonl, line 1: not JSON"),
        (start() + "\n[1, 2]\n", r"x\.jsonl, line 2: not a report-log record"),
        (start() + "\n" + finish(0) + "\n", r"x\.jsonl: no shard record; .*--isolate-shard K/N"),
        (
            start() + '\n{"$report_type": "pytest_isolate.Shard", "version": 99}\n',
            r"x\.jsonl: shard record version 99",
        ),
        (
            '{"$report_type": "pytest_isolate.Shard", "version": 1, "shard": 3, "shards": 2}',
            r"x\.jsonl: the shard record has no valid shard K of N",
        ),
    ],
    ids=["not-json", "not-a-record", "no-shard-record", "other-version", "bad-shard"],
)
def test_unusable_report_logs_are_named(text: str, fault: str) -> None:
    with pytest.raises(MergeError, match=fault):
        merge_report_logs([("x.jsonl", text)])


def test_no_files_is_an_error() -> None:
    with pytest.raises(MergeError, match="no files to merge"):
        merge_report_logs([])


# -- JUnit XML -----------------------------------------------------------------------------------


def case(nodeid: str, outcome: str = "") -> str:
    classname, name = CASES[nodeid]
    inner = {"": "", "failure": '<failure message="boom">boom</failure>'}[outcome]
    return f'<testcase classname="{classname}" name="{name}" time="0.100">{inner}</testcase>'


def suite(
    cases: list[str], tests: int, failures: int = 0, errors: int = 0, stamp: str = "T1"
) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" errors="{errors}" failures="{failures}" skipped="0" '
        f'tests="{tests}" time="1.000" timestamp="{stamp}" hostname="h">'
        + "".join(cases)
        + "</testsuite></testsuites>"
    )


def shard_junit(k: int, n: int, text: str) -> str:
    return annotate_junit(text, k, n, [(nodeid, *CASES[nodeid]) for nodeid in ORDER])


def test_junit_merges_into_the_single_runs_order_with_counts_added() -> None:
    merged = merge_junit(
        [
            ("s1.xml", shard_junit(1, 2, suite([case("m.py::a"), case("m.py::c")], 2, stamp="T2"))),
            (
                "s2.xml",
                shard_junit(2, 2, suite([case("m.py::b", "failure"), case("m.py::d")], 2, 1)),
            ),
        ]
    )
    assert merged.faults == Faults()
    root = ET.fromstring(merged.text)
    (merged_suite,) = root.findall("testsuite")
    assert merged_suite.attrib == {
        "name": "pytest",
        "errors": "0",
        "failures": "1",
        "skipped": "0",
        "tests": "4",
        "time": "2.000",  # the shards' times added up
        "timestamp": "T1",  # the earliest
        "hostname": "h",
    }
    assert [c.get("name") for c in merged_suite] == ["a", "c", "b", "d"]
    assert merged_suite.find("properties") is None  # the record is gone
    assert root.get("name") == "pytest tests"


def test_junit_record_is_a_suite_property_next_to_the_users() -> None:
    text = suite(["<properties><property name='x' value='1'/></properties>"], 0)
    annotated = ET.fromstring(annotate_junit(text, 1, 2, [("m.py::a", "m", "a")]))
    props = annotated.findall("testsuite/properties/property")
    assert [p.get("name") for p in props] == ["x", "pytest_isolate.shard"]
    record = json.loads(props[1].get("value", ""))
    assert record == {"version": 1, "shard": 1, "shards": 2, "tests": [["m.py::a", "m", "a"]]}


def test_junit_keeps_user_properties_and_one_copy_of_a_collection_error() -> None:
    # Every shard collects the whole suite, so a collection error is in each shard's file.
    error = (
        '<testcase classname="" name="bad"><error message="collection failure">x</error></testcase>'
    )
    prop = "<properties><property name='x' value='1'/></properties>"
    merged = merge_junit(
        [
            ("1.xml", shard_junit(1, 2, suite([prop, error, case("m.py::a")], 2, errors=1))),
            ("2.xml", shard_junit(2, 2, suite([prop, error, case("m.py::b")], 2, errors=1))),
        ]
    )
    merged_suite = ET.fromstring(merged.text).find("testsuite")
    assert merged_suite is not None
    assert (merged_suite.get("tests"), merged_suite.get("errors")) == ("3", "1")
    assert [c.tag for c in merged_suite] == ["properties", "testcase", "testcase", "testcase"]
    assert [p.get("name") for p in merged_suite.iter("property")] == ["x"]
    assert [c.get("name") for c in merged_suite.findall("testcase")] == ["a", "b", "bad"]
    assert merged.faults.missing == ("m.py::c", "m.py::d")


def test_junit_names_duplicates_by_node_id_with_their_files() -> None:
    two_rows = [case("m.py::a", "failure"), case("m.py::a")]  # fail in call + teardown error
    merged = merge_junit(
        [
            ("1.xml", shard_junit(1, 2, suite([*two_rows, case("m.py::c")], 2))),
            ("2.xml", shard_junit(2, 2, suite([case(t) for t in ORDER[1:]], 3))),
        ]
    )
    assert merged.faults.duplicated == (("m.py::c", ("1.xml", "2.xml")),)
    assert merged.faults.missing == ()


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("<testsuites><testsuite>", r"x\.xml: not well-formed XML"),
        ("<html/>", r"x\.xml: not a JUnit XML file \(root element <html>\)"),
        (suite([case("m.py::a")], 1), r"x\.xml: no shard record; .*--isolate-shard K/N"),
        (
            suite(
                ["<properties><property name='pytest_isolate.shard' value='{'/></properties>"], 0
            ),
            r"x\.xml: the shard record is not JSON",
        ),
    ],
    ids=["not-xml", "not-junit", "no-shard-record", "bad-record"],
)
def test_unusable_junit_is_named(text: str, fault: str) -> None:
    with pytest.raises(MergeError, match=fault):
        merge_junit([("x.xml", text)])


def test_non_numeric_counts_are_named() -> None:
    good = shard_junit(1, 2, suite([case("m.py::a")], 1))
    bad = shard_junit(2, 2, suite([case("m.py::b")], 1).replace('tests="1"', 'tests="many"'))
    with pytest.raises(MergeError, match=r"y\.xml: suite 'pytest' has a non-numeric tests='many'"):
        merge_junit([("x.xml", good), ("y.xml", bad)])


# -- the rest ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "combined"),
    [([0, 0, 0], 0), ([0, 1, 0], 1), ([5, 0], 0), ([5, 5], 5), ([1, 2, 5], 2), ([], 0)],
)
def test_exit_status_of_the_whole_run(statuses: list[int], combined: int) -> None:
    assert combined_exitstatus(statuses) == combined


def test_fault_lines_name_everything() -> None:
    faults = Faults(
        missing=("m.py::d",),
        duplicated=(("m.py::b", ("1.xml", "2.xml")),),
        absent_shards=(3,),
        repeated_shards=((1, ("1.xml", "1b.xml")),),
        differing=(("2.xml", "1.xml"),),
    )
    assert format_faults(faults) == [
        "no file for shard 3: its tests are missing",
        "shard 1 given more than once: 1.xml, 1b.xml",
        "2.xml recorded a different collection than 1.xml: were the shards run from the same "
        "checkout with the same options?",
        "1 test missing from every shard:",
        "  m.py::d",
        "1 test in more than one shard:",
        "  m.py::b  (1.xml, 2.xml)",
    ]
    assert format_faults(Faults()) == []
