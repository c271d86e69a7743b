"""Output order, the reorder buffer and the closing line, over plain data."""

from __future__ import annotations

import json

import pytest

from pytest_isolate.report.outputs import reorder_junit, reorder_report_log
from pytest_isolate.report.reports import (
    ReorderBuffer,
    RunSummary,
    format_summary,
    output_sequence,
    summarize,
)

IDS = ["a", "b", "c", "d", "e"]


def test_domains_come_out_whole_in_order_of_their_first_test() -> None:
    # Domain {1, 3} interleaves with free tests in collection order.
    assert output_sequence(IDS, [(0,), (1, 3), (2,), (4,)]) == ["a", "b", "d", "c", "e"]
    assert output_sequence(IDS, [(3, 1)]) == ["b", "d", "a", "c", "e"]


def test_buffer_streams_the_head_and_holds_the_rest() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(["a", "b", "c"])
    assert buffer.add("b", "b-start") == []
    assert buffer.add("a", "a-start") == ["a-start"]
    assert buffer.add("c", "c-start") == []
    assert buffer.done("c") == []
    assert buffer.add("b", "b-end") == []
    assert buffer.done("b") == []
    assert buffer.add("a", "a-end") == ["a-end"]
    assert buffer.done("a") == ["b-start", "b-end", "c-start"]
    assert buffer.add("zzz", "unknown") == ["unknown"]


def test_buffer_flush_releases_tests_that_never_finished_in_order() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(["a", "b", "c"])
    buffer.add("c", "c1")
    buffer.add("b", "b1")
    assert buffer.flush() == ["b1", "c1"]
    assert buffer.add("a", "late") == ["late"]


def test_lines_held_behind_a_long_running_head_come_out_after_the_hold() -> None:
    now = [0.0]
    buffer: ReorderBuffer[str] = ReorderBuffer(["a", "b", "c", "d"], hold=5, clock=lambda: now[0])
    assert buffer.add("a", "a-start") == ["a-start"]  # a runs long
    assert buffer.add("b", "b-start") == []
    now[0] = 3
    assert buffer.done("b") == []
    now[0] = 6  # b's lines have waited 6 s behind a: out they come, in order, with c's
    assert buffer.add("c", "c-start") == ["b-start", "c-start"]
    assert buffer.add("c", "c-end") == ["c-end"]  # streams: c is passed, as a is
    assert buffer.done("c") == []
    assert buffer.add("a", "a-end") == ["a-end"]
    assert buffer.done("a") == []
    now[0] = 7
    assert buffer.add("d", "d-start") == ["d-start"]  # the head again: in order from here
    now[0] = 100
    assert buffer.flush() == []


def test_the_hold_counts_from_the_oldest_line_held() -> None:
    now = [0.0]
    buffer: ReorderBuffer[str] = ReorderBuffer(["a", "b", "c"], hold=5, clock=lambda: now[0])
    buffer.add("a", "a-start")
    now[0] = 10  # a ran 10 s, but nothing waited behind it until now
    assert buffer.add("b", "b-start") == []
    now[0] = 12
    assert buffer.add("a", "a-end") == ["a-end"]
    assert buffer.done("a") == ["b-start"]
    now[0] = 14
    assert buffer.add("c", "c-start") == []  # the hold starts again
    now[0] = 20
    assert buffer.add("c", "c-end") == ["c-start", "c-end"]


def test_summary_numbers() -> None:
    measured = {"a": 1.0, "b": 2.0, "c": 0.5, "d": 2.0, "e": 0.5}
    summary = summarize(IDS, [(0,), (1, 3), (2,), (4,)], measured, workers=2, wall=4.0)
    assert summary == RunSummary(2, 1, 3, 4.0, 6.0, 4.0, "b", 2)
    assert summary.speedup == pytest.approx(1.5)
    assert summary.efficiency == pytest.approx(0.75)
    assert summary.bounded_by_longest
    assert format_summary(summary) == (
        "isolate: 2 workers, 1 domain + 3 free tests, wall 4.00s, test time 6.00s, "
        "speedup 1.50x, efficiency 75%; longest domain 4.00s (b +1): it bounds the run, "
        "split it to go faster"
    )


def test_no_hint_when_the_longest_domain_is_short() -> None:
    summary = summarize(IDS, [(i,) for i in range(5)], dict.fromkeys(IDS, 1.0), 4, 2.0)
    assert not summary.bounded_by_longest
    # No domain: the longest is a test, and says so.
    assert format_summary(summary).endswith("longest test 1.00s (a)")


def test_summary_counts_in_the_singular() -> None:
    summary = summarize(IDS[:2], [(0,), (1,)], {"a": 1.0, "b": 0.5}, workers=1, wall=2.0)
    assert format_summary(summary).startswith("isolate: 1 worker, 0 domains + 2 free tests,")
    summary = summarize(IDS[:3], [(0, 1), (2,)], {"a": 1.0}, workers=2, wall=2.0)
    assert format_summary(summary).startswith("isolate: 2 workers, 1 domain + 1 free test,")


def test_report_log_lines_are_sorted_by_test_keeping_phases_in_order() -> None:
    def line(kind: str, nodeid: str = "", when: str = "") -> str:
        return json.dumps({"$report_type": kind, "nodeid": nodeid, "when": when})

    lines = [
        line("SessionStart"),
        line("TestReport", "b", "setup"),
        line("TestReport", "a", "setup"),
        line("TestReport", "b", "call"),
        line("TestReport", "a", "call"),
        line("SessionFinish"),
    ]
    ordered = [json.loads(x) for x in reorder_report_log(lines, {"a": 0, "b": 1})]
    assert [(d["$report_type"], d["nodeid"], d["when"]) for d in ordered] == [
        ("SessionStart", "", ""),
        ("TestReport", "a", "setup"),
        ("TestReport", "a", "call"),
        ("TestReport", "b", "setup"),
        ("TestReport", "b", "call"),
        ("SessionFinish", "", ""),
    ]


def test_junit_cases_are_sorted_within_each_suite() -> None:
    text = (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        '<properties /><testcase classname="m" name="b" /><testcase classname="m" name="a" />'
        '<testcase classname="x" name="unknown" /></testsuite></testsuites>'
    )
    out = reorder_junit(text, {("m", "a"): 0, ("m", "b"): 1})
    assert out == (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        '<properties /><testcase classname="m" name="a" /><testcase classname="m" name="b" />'
        '<testcase classname="x" name="unknown" /></testsuite></testsuites>'
    )
