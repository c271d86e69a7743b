"""The pure parts of --isolate-rerun-alone (pytest_isolate.diagnose.diagnosis), over plain data."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_isolate.declare.claims import EXCLUSIVE, Claim, TestClaims
from pytest_isolate.diagnose.diagnosis import (
    BISECT_MAX,
    Budget,
    Caps,
    Cause,
    Diagnosis,
    Search,
    SearchResult,
    Span,
    Trial,
    Verdict,
    allowed_beside,
    bisect_culprit,
    overlapping,
    parse_caps,
    run_passes,
    select_reruns,
    stopped_at,
    suspects_in_order,
    verdict_of,
)
from pytest_isolate.diagnose.explain import (
    format_section,
    junit_properties,
    report_log_record,
    timeline_notes,
)
from pytest_isolate.diagnose.rerun_args import Arity, OptionSpec, absolute_nodeid, kept_args
from pytest_isolate.report.outputs import add_junit_properties, insert_records

# -- caps ----------------------------------------------------------------------------------


def test_caps_parse_from_option_or_ini_text() -> None:
    assert parse_caps("10", "120") == Caps(10, 120.0)
    assert parse_caps(0, "0.5") == Caps(0, 0.5)


@pytest.mark.parametrize(
    ("tests", "seconds", "named"),
    [
        ("-1", "120", "isolate_rerun_max"),
        ("ten", "120", "isolate_rerun_max"),
        ("1.5", "120", "isolate_rerun_max"),
        ("10", "0", "isolate_rerun_budget"),
        ("10", "-3", "isolate_rerun_budget"),
        ("10", "soon", "isolate_rerun_budget"),
        ("10", "nan", "isolate_rerun_budget"),
        ("10", "inf", "isolate_rerun_budget"),
    ],
)
def test_bad_caps_name_the_setting_and_the_value(tests: str, seconds: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as caught:
        parse_caps(tests, seconds)
    assert repr(tests if named == "isolate_rerun_max" else seconds) in str(caught.value)


def test_reruns_are_capped_in_count_keeping_the_order_and_each_test_once() -> None:
    chosen, left_out = select_reruns(["c", "a", "c", "b", "d"], 2)
    assert chosen == ("c", "a")
    assert left_out == ("b", "d")
    assert select_reruns(["a"], 0) == ((), ("a",))


def test_budget_counts_down_to_zero_and_stays_there() -> None:
    budget = Budget(10.0, started=100.0)
    assert budget.left(100.0) == 10.0
    assert budget.left(107.5) == 2.5
    assert budget.left(200.0) == 0.0


# -- overlaps ------------------------------------------------------------------------------

VICTIM = Span("t.py::victim", "gw0", 10.0, 12.0)
SPANS = [
    VICTIM,
    Span("t.py::before_on_gw0", "gw0", 8.0, 10.0),  # its own worker: not counted
    Span("t.py::during_on_gw0", "gw0", 11.0, 11.5),  # impossible but still its own worker
    Span("t.py::ends_as_it_starts", "gw1", 9.0, 10.0),  # touching is not overlapping
    Span("t.py::late", "gw1", 11.5, 13.0),
    Span("t.py::inside", "gw2", 10.5, 11.0),
    Span("t.py::around", "gw1", 9.0, 14.0),
    Span("t.py::after", "gw2", 12.0, 13.0),
]


def test_overlapping_tests_are_on_other_workers_and_in_the_order_they_started() -> None:
    found = overlapping(VICTIM, SPANS)
    assert [s.nodeid for s in found] == ["t.py::around", "t.py::inside", "t.py::late"]


def test_only_tests_the_plan_let_run_beside_it_are_suspects() -> None:
    db = TestClaims(claims=(Claim("name", "db", EXCLUSIVE),))
    spans = (
        Span("free", "gw1", 0.0, 1.0),
        Span("same_db", "gw1", 0.0, 1.0),
        Span("serial", "gw2", 0.0, 1.0),
        Span("shared_cache", "gw2", 0.0, 1.0),
    )
    claims = {
        "same_db": db,
        "serial": TestClaims(serial=True),
        "shared_cache": TestClaims(claims=(Claim("name", "cache", "shared"),)),
    }
    kept = allowed_beside(db, spans, claims)
    assert [span.nodeid for span in kept] == ["free", "shared_cache"]
    # A serial victim ran beside nothing: its spans only seemed to overlap.
    assert allowed_beside(TestClaims(serial=True), spans, claims) == ()


def test_audited_suspects_come_first() -> None:
    found = overlapping(VICTIM, SPANS)
    touched = {"t.py::late": ("file: wrote shared.txt",), "t.py::inside": ()}
    assert suspects_in_order(found, touched) == ("t.py::late", "t.py::around", "t.py::inside")


# -- bisection -----------------------------------------------------------------------------


def drive(
    candidates: Sequence[str], fails_beside: Callable[[Collection[str]], bool]
) -> tuple[SearchResult, list[Trial]]:
    trials: list[Trial] = []
    search = bisect_culprit(candidates)
    try:
        trial = next(search)
        while True:
            trials.append(trial)
            trial = search.send(fails_beside(trial.beside))
    except StopIteration as done:
        result: SearchResult = done.value
        return result, trials


def test_bisection_confirms_then_halves_to_the_culprit() -> None:
    result, trials = drive(list("abcdefgh"), lambda beside: "f" in beside)
    assert result == SearchResult(Search.FOUND, ("f",), len(trials))
    assert result.culprit == "f"
    assert [t.beside for t in trials] == [
        tuple("abcdefgh"),
        tuple("abcd"),
        tuple("efgh"),
        ("e", "f"),
        ("e",),
        ("f",),
    ]
    assert [t.number for t in trials] == list(range(1, 7))
    assert trials[3].suspects == tuple("efgh")


def test_a_single_suspect_is_confirmed_by_one_trial() -> None:
    result, trials = drive(["a"], lambda beside: "a" in beside)
    assert result.culprit == "a"
    assert len(trials) == 1


def test_no_reproduction_no_culprit() -> None:
    result, trials = drive(["a", "b", "c"], lambda beside: False)
    assert result == SearchResult(Search.NOT_REPRODUCED, ("a", "b", "c"), 1)
    assert result.culprit is None
    assert len(trials) == 1


def test_nothing_to_search() -> None:
    result, trials = drive([], lambda beside: True)
    assert result.status is Search.NOTHING_OVERLAPPED
    assert trials == []


def test_culprits_that_need_each_other_stop_the_search_with_both_suspected() -> None:
    result, _ = drive(list("abcd"), lambda beside: {"a", "d"} <= set(beside))
    assert result.status is Search.NEEDS_SEVERAL
    assert result.suspects == tuple("abcd")
    assert result.culprit is None


def test_a_search_stopped_by_the_budget_keeps_what_it_narrowed() -> None:
    trial = Trial(("c",), ("c", "d"), 4)
    assert stopped_at(trial) == SearchResult(Search.OUT_OF_TIME, ("c", "d"), 3)


@settings(deadline=None)  # plain logic: a loaded machine must not fail it
@given(
    size=st.integers(min_value=1, max_value=BISECT_MAX),
    data=st.data(),
)
def test_bisection_finds_any_single_culprit_within_its_bound(
    size: int, data: st.DataObject
) -> None:
    candidates = [f"t{i}" for i in range(size)]
    culprit = data.draw(st.sampled_from(candidates))
    result, trials = drive(candidates, lambda beside: culprit in beside)
    assert result.culprit == culprit
    assert result.trials == len(trials) <= 1 + 2 * math.ceil(math.log2(size))
    # The last trial ran the victim beside the culprit alone: the proof.
    assert trials[-1].beside == (culprit,)


@settings(deadline=None)
@given(
    size=st.integers(min_value=2, max_value=BISECT_MAX),
    data=st.data(),
)
def test_the_suspects_always_hold_every_needed_test(size: int, data: st.DataObject) -> None:
    candidates = [f"t{i}" for i in range(size)]
    needed = set(data.draw(st.sets(st.sampled_from(candidates), min_size=1, max_size=3)))
    result, trials = drive(candidates, lambda beside: needed <= set(beside))
    assert needed <= set(result.suspects)
    assert (result.status is Search.FOUND) == (len(needed) == 1)
    for trial in trials:
        assert set(trial.beside) <= set(trial.suspects)


# -- verdicts and their text ----------------------------------------------------------------


def test_exit_codes_decide_the_verdict() -> None:
    assert verdict_of(0)[0] is Verdict.PASSES_ALONE
    assert verdict_of(1)[0] is Verdict.FAILS_ALONE
    assert verdict_of(None) == (
        Verdict.UNDECIDED,
        "the rerun did not finish within isolate_rerun_budget",
    )
    verdict, detail = verdict_of(5)
    assert verdict is Verdict.UNDECIDED
    assert "exit code 5" in detail and "not collected" in detail
    assert "exit code 99" in verdict_of(99)[1]
    # A crash alone is a failure alone: no other test was there to cause it.
    assert verdict_of(-11) == (
        Verdict.FAILS_ALONE,
        "crashed when rerun alone (killed by SIGSEGV)",
    )


A = Span("test_a.py::test_a", "gw1", 1.0, 3.0)
F = Span("test_f.py::test_f", "gw1", 3.0, 3.5)
VICTIM_B = Diagnosis(
    "test_b.py::test_b",
    Verdict.PASSES_ALONE,
    "passed when rerun alone",
    "gw0",
    (A, F),
    {A.nodeid: ('file: wrote shared.txt (declare: @pytest.mark.resource("dir:shared.txt"))',)},
    SearchResult(Search.FOUND, (A.nodeid,), 3),
    Cause.OVERLAP,
    before=2,
)
ALONE_C = Diagnosis(
    "test_c.py::test_c", Verdict.FAILS_ALONE, "failed when rerun alone", "gw1", cause=Cause.REAL
)
LEFT_D = Diagnosis("test_d.py::test_d", Verdict.NOT_RERUN, "over isolate_rerun_max (2)")
POLLUTED_E = Diagnosis(
    "test_e.py::test_e",
    Verdict.PASSES_ALONE,
    "passed when rerun alone",
    "gw0",
    search=SearchResult(Search.FOUND, ("test_p.py::test_p",), 4),
    cause=Cause.POLLUTED,
    before=5,
)
NEEDS_G = Diagnosis(
    "test_g.py::test_g",
    Verdict.FAILS_ALONE,
    "failed when rerun alone",
    "gw1",
    search=SearchResult(Search.FOUND, ("test_s.py::test_setup",), 2),
    cause=Cause.NEEDS_EARLIER,
    elsewhere=3,
)


def test_section_names_the_victim_who_overlapped_it_what_they_touched_and_the_culprit() -> None:
    lines = format_section([VICTIM_B, ALONE_C, LEFT_D], failed=3, accept=False, passes=False)
    assert lines == [
        "FAILS ONLY IN PARALLEL test_b.py::test_b on gw0: passed when rerun alone, passed after "
        "the 2 tests gw0 ran before it",
        "  overlapped on other workers:",
        "    test_a.py::test_a (gw1)",
        '      touched file: wrote shared.txt (declare: @pytest.mark.resource("dir:shared.txt"))',
        "    test_f.py::test_f (gw1)",
        "  culprit: test_a.py::test_a: the test fails when run beside it (3 trials)",
        '  declare: @pytest.mark.resource("NAME") on test_b.py::test_b and test_a.py::test_a, '
        "NAME for what they share",
        "fails alone too test_c.py::test_c: failed when rerun alone",
        "not rerun test_d.py::test_d: over isolate_rerun_max (2)",
        "isolate: causes: fails beside a test on another worker: 1; a real failure: 1",
        # Counted over what the reruns decided: test_d was not rerun (#20).
        "isolate: 1 of 2 failed tests passed when rerun alone (1 more not rerun or not "
        "decided); the run stays failed (--isolate-parallel-only-ok accepts failures shown to "
        "need other workers or timing)",
    ]


def test_section_names_the_polluter_and_the_test_needed_with_their_evidence() -> None:
    lines = format_section([POLLUTED_E, NEEDS_G], failed=2, accept=False, passes=False)
    assert lines[:3] == [
        "POLLUTED BY AN EARLIER TEST test_e.py::test_e on gw0: passed when rerun alone, failed "
        "after the 5 tests gw0 ran before it",
        "  polluter: test_p.py::test_p: the test fails when run after it (4 trials)",
        "  fix: test_p.py::test_p leaves state behind: undo it in a fixture's teardown "
        "(monkeypatch, tmp_path), or reset it in a fixture of the victim's",
    ]
    assert lines[3:6] == [
        "NEEDS AN EARLIER TEST test_g.py::test_g on gw1: failed when rerun alone, passed after "
        "the 3 tests before it in collection order that did not run before it on gw1",
        "  needs: test_s.py::test_setup: the test passes when run after it (2 trials)",
        "  fix: give test_g.py::test_g what test_s.py::test_setup sets up through a fixture, "
        "not through the order of tests",
    ]
    text = "\n".join(lines)
    # Nothing ran beside either: never "in parallel".
    assert "PARALLEL" not in text and "beside" not in text


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        (SearchResult(Search.NEEDS_SEVERAL, ("x", "y"), 3), "beside x, y together"),
        (SearchResult(Search.OUT_OF_TIME, ("x", "y"), 2), "within isolate_rerun_budget"),
        (SearchResult(Search.TOO_MANY, tuple("x" * 17), 1), "17 tests overlapped it"),
    ],
)
def test_section_says_why_no_culprit_was_named(search: SearchResult, expected: str) -> None:
    victim = Diagnosis("v", Verdict.PASSES_ALONE, "passed", "gw0", (A,), {}, search, Cause.OVERLAP)
    text = "\n".join(format_section([victim], 1, accept=False, passes=False))
    assert expected in text
    assert "culprit:" not in text


def test_timing_without_overlaps_points_at_timing_and_never_says_parallel() -> None:
    lonely = Diagnosis("v", Verdict.PASSES_ALONE, "passed", "gw0", cause=Cause.TIMING)
    lines = format_section([lonely], 1, accept=True, passes=True)
    # Never "in parallel" where nothing ran beside it (at -n 1, say).
    assert lines[0] == "TIMING OR LOAD v on gw0: passed"
    assert "no test ran before it on its worker or beside it on another" in lines[1]
    assert lines[-1].endswith("accepted by --isolate-parallel-only-ok, the run passes")
    after = lonely._replace(before=3, overlapped=(A,))
    assert format_section([after], 1, accept=False, passes=False)[0] == (
        "TIMING OR LOAD v on gw0: passed, passed after the 3 tests gw0 ran before it, and "
        "beside the 1 test that overlapped it"
    )


def test_a_cause_not_found_in_time_says_so() -> None:
    cut = Diagnosis("v", Verdict.PASSES_ALONE, "passed when rerun alone", "gw0")
    assert format_section([cut], 1, accept=False, passes=False)[0] == (
        "PASSED WHEN RERUN ALONE v on gw0: passed when rerun alone; the cause was not found "
        "within isolate_rerun_budget"
    )


def test_a_step_left_out_for_the_budget_is_named_and_decides_nothing() -> None:
    note = "not rerun after the tests gw0 ran before it: they ran 300.0s, more than the budget left"
    open_ = Diagnosis("v", Verdict.PASSES_ALONE, "passed when rerun alone", "gw0", note=note)
    assert format_section([open_], 1, accept=False, passes=False)[0] == (
        "PASSED WHEN RERUN ALONE v on gw0: passed when rerun alone; the cause was not found "
        f"within isolate_rerun_budget ({note})"
    )
    alone = Diagnosis("r", Verdict.FAILS_ALONE, "failed when rerun alone", note=note)
    lines = format_section([open_, alone], 2, accept=False, passes=False)
    assert f"fails alone too r: failed when rerun alone ({note})" in lines
    assert not any(line.startswith("isolate: causes:") for line in lines)
    assert not run_passes(["v"], [open_])


def test_a_victim_that_did_not_run_in_a_trial_says_so_not_the_budget() -> None:
    silent = Diagnosis(
        "v",
        Verdict.PASSES_ALONE,
        "passed when rerun alone",
        "gw0",
        search=SearchResult(Search.DID_NOT_RUN, ("a", "b"), 0),
        note="it did not run in a rerun after other tests",
    )
    assert format_section([silent], 1, accept=False, passes=False)[0] == (
        "PASSED WHEN RERUN ALONE v on gw0: passed when rerun alone; the cause was not found "
        "(it did not run in a rerun after other tests)"
    )


def test_the_run_passes_only_when_every_failed_test_passed_alone() -> None:
    assert run_passes(["test_b.py::test_b"], [VICTIM_B])
    assert not run_passes(["test_b.py::test_b", "test_c.py::test_c"], [VICTIM_B, ALONE_C])
    assert not run_passes(["test_b.py::test_b", "test_d.py::test_d"], [VICTIM_B, LEFT_D])
    assert not run_passes(["test_g.py::test_g"], [NEEDS_G])  # it fails alone
    # Polluted: it passes alone, but a serial run in its worker's order fails it too.
    assert not run_passes(["test_e.py::test_e"], [POLLUTED_E])
    # Undecided (the budget): it might be polluted.
    assert not run_passes(["v"], [Diagnosis("v", Verdict.PASSES_ALONE, "passed alone")])
    lonely = Diagnosis("v", Verdict.PASSES_ALONE, "passed alone", cause=Cause.TIMING)
    assert run_passes(["v"], [lonely])
    assert not run_passes([], [])


# -- records for CI -------------------------------------------------------------------------


def test_report_log_record_is_json_with_the_verdict_cause_overlaps_and_culprit() -> None:
    record = json.loads(json.dumps(report_log_record(VICTIM_B)))
    assert record["$report_type"] == "pytest_isolate"
    assert record["event"] == "rerun_alone"
    assert record["nodeid"] == "test_b.py::test_b"
    assert record["verdict"] == "passes_alone"
    assert record["cause"] == "overlap"
    assert record["culprit"] == "test_a.py::test_a"
    assert record["search"] == "found"
    assert record["overlapped"][0]["nodeid"] == "test_a.py::test_a"
    assert "wrote shared.txt" in record["overlapped"][0]["touched"][0]
    assert record["overlapped"][1]["touched"] == []
    assert report_log_record(LEFT_D)["culprit"] is None
    assert report_log_record(LEFT_D)["cause"] is None
    needs = report_log_record(NEEDS_G)
    assert (needs["cause"], needs["culprit"]) == ("needs_earlier", "test_s.py::test_setup")
    assert needs["before_elsewhere"] == 3
    assert "passed after the 3 tests before it" in needs["evidence"]


def test_records_go_before_the_session_finish_line() -> None:
    lines = [
        json.dumps({"$report_type": "SessionStart"}),
        json.dumps({"$report_type": "TestReport", "nodeid": "x"}),
        json.dumps({"$report_type": "SessionFinish", "exitstatus": 1}),
    ]
    out = insert_records(lines, ["R1", "R2"])
    assert out == [lines[0], lines[1], "R1", "R2", lines[2]]
    assert insert_records(lines[:2], ["R"]) == [*lines[:2], "R"]


JUNIT = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
    '<testcase classname="test_a" name="test_a" />'
    '<testcase classname="test_b" name="test_b"><properties>'
    '<property name="own" value="1" /></properties><failure message="x">boom</failure>'
    "</testcase></testsuite></testsuites>"
)


def test_junit_properties_land_on_the_victim_and_the_culprit() -> None:
    by_nodeid = junit_properties([VICTIM_B])
    assert by_nodeid["test_b.py::test_b"] == [
        ("isolate_rerun_alone", "passed alone"),
        ("isolate_cause", "fails beside a test on another worker"),
        ("isolate_overlapped", "test_a.py::test_a test_f.py::test_f"),
        ("isolate_culprit", "test_a.py::test_a"),
    ]
    assert by_nodeid["test_a.py::test_a"] == [("isolate_culprit_of", "test_b.py::test_b")]
    cases = {
        ("test_b", "test_b"): by_nodeid["test_b.py::test_b"],
        ("test_a", "test_a"): by_nodeid["test_a.py::test_a"],
    }
    root = ET.fromstring(add_junit_properties(JUNIT, cases))
    b = root.find(".//testcase[@name='test_b']")
    a = root.find(".//testcase[@name='test_a']")
    assert b is not None and a is not None
    assert [c.tag for c in b] == ["properties", "failure"]
    props = {p.get("name"): p.get("value") for p in b.iter("property")}
    assert props["own"] == "1"
    assert props["isolate_culprit"] == "test_a.py::test_a"
    assert a[0].tag == "properties"
    assert a[0][0].attrib == {"name": "isolate_culprit_of", "value": "test_b.py::test_b"}


def test_junit_properties_name_the_polluter_and_the_test_needed() -> None:
    by_nodeid = junit_properties([POLLUTED_E, NEEDS_G])
    assert ("isolate_cause", "polluted by an earlier test on its worker") in by_nodeid[
        POLLUTED_E.nodeid
    ]
    assert ("isolate_polluter", "test_p.py::test_p") in by_nodeid[POLLUTED_E.nodeid]
    assert by_nodeid["test_p.py::test_p"] == [("isolate_polluter_of", POLLUTED_E.nodeid)]
    assert ("isolate_needs", "test_s.py::test_setup") in by_nodeid[NEEDS_G.nodeid]
    assert by_nodeid["test_s.py::test_setup"] == [("isolate_needed_by", NEEDS_G.nodeid)]


def test_timeline_notes_mark_the_victims_with_their_cause_and_the_tests_named() -> None:
    notes = timeline_notes([VICTIM_B, ALONE_C, LEFT_D, POLLUTED_E, NEEDS_G])
    assert notes == {
        "test_b.py::test_b": "fails beside a test on another worker; culprit: test_a.py::test_a",
        "test_a.py::test_a": "culprit: test_b.py::test_b fails beside it",
        "test_e.py::test_e": "polluted by an earlier test on its worker; polluter: "
        "test_p.py::test_p",
        "test_p.py::test_p": "polluter: test_e.py::test_e fails after it",
        "test_g.py::test_g": "needs an earlier test; needs: test_s.py::test_setup",
        "test_s.py::test_setup": "needed by test_g.py::test_g",
    }


# -- the rerun's arguments ------------------------------------------------------------------

OPTIONS = {
    "-n": OptionSpec("numprocesses", Arity.ONE),
    "--numprocesses": OptionSpec("numprocesses", Arity.ONE),
    "--dist": OptionSpec("dist", Arity.ONE),
    "-p": OptionSpec("plugins", Arity.ONE),
    "-v": OptionSpec("verbose", Arity.NONE),
    "-x": OptionSpec("maxfail", Arity.NONE),
    "-k": OptionSpec("keyword", Arity.ONE),
    "-o": OptionSpec("override_ini", Arity.ONE),
    "-c": OptionSpec("inifilename", Arity.ONE),
    "--tb": OptionSpec("tbstyle", Arity.ONE),
    "--junitxml": OptionSpec("xmlpath", Arity.ONE),
    "--report-log": OptionSpec("report_log", Arity.ONE),
    "--isolate-timeline": OptionSpec("isolate_timeline", Arity.ONE),
    "--isolate-db-url": OptionSpec("isolate_db_url", Arity.ONE),
    "--debug": OptionSpec("debug", Arity.OPTIONAL),
    "--cache-show": OptionSpec("cacheshow", Arity.OPTIONAL),
    "--ds": OptionSpec("ds", Arity.ONE),  # a plugin's option: kept
}


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (["-p", "isolate", "-n", "2", "tests/"], ["-p", "isolate"]),
        (["-n4", "-pisolate", "-vx"], ["-pisolate", "-v"]),
        (["-vn", "2", "-k", "slow", "t.py::test"], ["-v"]),
        (["--numprocesses=auto", "--dist", "load", "--tb=short"], ["--tb=short"]),
        (["--junitxml", "out.xml", "--report-log=r.jsonl", "--isolate-timeline", "t.html"], []),
        (["-o", "xfail_strict=true", "-c", "ci.ini", "--ds=settings"], None),
        (
            ["--isolate-db-url", "postgresql://h/db", "a.py"],
            ["--isolate-db-url", "postgresql://h/db"],
        ),
        (["--debug", "tests", "-v"], ["-v"]),  # --debug takes "tests" as its file, as argparse does
        (["--debug", "-v"], ["-v"]),
        (["-v", "--", "-x", "a.py"], ["-v"]),
        (["--unknown-flag", "-"], ["--unknown-flag"]),
    ],
)
def test_a_rerun_keeps_the_runs_options_but_not_workers_outputs_or_selection(
    args: list[str], kept: list[str] | None
) -> None:
    assert kept_args(args, OPTIONS) == (args if kept is None else kept)


def test_absolute_nodeids_name_the_test_from_anywhere() -> None:
    assert absolute_nodeid("/r", "tests/t.py::C::test[a::b]") == "/r/tests/t.py::C::test[a::b]"
    assert absolute_nodeid("/r", "t.py") == "/r/t.py"
