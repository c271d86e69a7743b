"""Real runs under real xdist workers: conflicting tests never overlap, free tests do.

Every suite here runs with the independent overlap checker of ``checker_conftest.py``; a
violation it records fails the test. ``test_the_checker_catches_plain_xdist`` shows that the
checker does catch overlaps when the resources are ignored.
"""

from __future__ import annotations

import json

import pytest

from .conftest import Checked, CheckedRun

SLEEP = "import time\n\ndef nap(s=0.2):\n    time.sleep(s)\n"


def assert_clean(run: CheckedRun, passed: int) -> None:
    assert run.violations == [], "\n".join(run.violations)
    run.result.assert_outcomes(passed=passed)
    assert len(run.intervals) == passed


@pytest.mark.parametrize("workers", ["2", "4"])
def test_exclusive_resource_never_overlaps(checked: Checked, workers: str) -> None:
    checked.pytester.makepyfile(
        test_redis=SLEEP
        + """
import pytest

@pytest.mark.resource("redis")
@pytest.mark.parametrize("i", range(5))
def test_redis(i):
    nap()

@pytest.mark.parametrize("i", range(10))
def test_free(i):
    nap()
"""
    )
    # Ten free tests, 2 s against the domain's 1 s: with two workers the domain's worker
    # must take free tests too for the run to end at 1.5 s (with six, all of them beside the
    # domain on the other worker was as good a schedule as any, and which one it was came
    # down to timing).
    run = checked.run("-n", workers, "-v")
    assert_clean(run, 15)
    assert "scheduling tests via IsolateScheduling" in run.result.stdout.str()
    assert len(run.workers_of("test_redis[")) == 1
    assert run.ordered("test_redis[") == [f"test_redis.py::test_redis[{i}]" for i in range(5)]
    assert len(run.workers_of("test_free[")) > 1


def test_the_checker_catches_plain_xdist(checked: Checked) -> None:
    """An explicit --dist is respected, and then the resources are not: the checker sees it."""
    checked.pytester.makepyfile(
        test_redis=SLEEP
        + """
import pytest

@pytest.mark.resource("redis")
@pytest.mark.parametrize("i", range(8))
def test_redis(i):
    nap(0.3)
"""
    )
    run = checked.run("-n", "4", "--dist", "load", "-v")
    assert "scheduling tests via LoadScheduling" in run.result.stdout.str()
    assert any("overlaps" in v for v in run.violations), run.violations
    # The run says so, in one line, and claims no domains it did not keep.
    run.result.stdout.fnmatch_lines(
        [
            "isolate: --dist load was given, so xdist's own scheduler ran the tests: the "
            "declarations of 8 of them (*) were not enforced; leave --dist out *"
        ]
    )
    assert "domain" not in run.result.stdout.str()


def test_shared_readers_overlap_but_never_with_a_writer(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_cfg=SLEEP
        + """
import pytest

@pytest.mark.resource("ro", mode="shared")
@pytest.mark.parametrize("i", range(4))
def test_reader_only(i):
    nap(0.4)

@pytest.mark.resource("cfg", mode="shared")
@pytest.mark.parametrize("i", range(3))
def test_cfg_reader(i):
    nap()

@pytest.mark.resource("cfg")
def test_cfg_writer():
    nap()
"""
    )
    run = checked.run("-n", "4")
    assert_clean(run, 8)
    assert run.max_concurrency("test_reader_only") >= 2
    assert len(run.workers_of("test_cfg_")) == 1


def test_marks_a_conftest_adds_at_collection_are_declarations(checked: Checked) -> None:
    # A common way to declare a resource for many tests at once: by fixture, in a conftest's
    # pytest_collection_modifyitems. The plugin reads marks before that hook (so -k/-m
    # cannot hide a malformed one) and again after it.
    conftest = checked.pytester.path / "conftest.py"
    conftest.write_text(
        conftest.read_text()
        + """

def pytest_collection_modifyitems(items):
    for item in items:
        if "database" in item.fixturenames:
            item.add_marker(pytest.mark.resource("db"))
"""
    )
    checked.pytester.makepyfile(
        test_by_fixture=SLEEP
        + """
import pytest

@pytest.fixture
def database():
    return "db"

@pytest.mark.parametrize("i", range(4))
def test_uses_db(database, i):
    nap()

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    nap()
"""
    )
    run = checked.run("-n", "2")
    assert_clean(run, 8)
    assert len(run.workers_of("test_uses_db[")) == 1
    assert run.max_concurrency("test_uses_db[") == 1


#: Holds gw1's collection until a test has run (and written ``ran``), for at most 30 s.
HOLD_GW1 = """

import pathlib as _pathlib
import time as _time

@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session):
    if os.environ.get("PYTEST_XDIST_WORKER") != "gw1":
        return
    ran = _pathlib.Path(str(session.config.rootpath)) / "ran"
    deadline = _time.monotonic() + 30
    while not ran.exists() and _time.monotonic() < deadline:
        _time.sleep(0.01)
    held = "until a test ran" if ran.exists() else "30 s, and no test ran meanwhile"
    (ran.parent / "gw1-held").write_text(held)
"""


def test_the_run_starts_before_the_last_worker_has_collected(checked: Checked) -> None:
    # Scheduling only once every worker has collected would leave gw0 idle for as long as
    # gw1 is held: here 30 s, after which gw1-held says so.
    conftest = checked.pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text() + HOLD_GW1)
    checked.pytester.makepyfile(
        test_early=SLEEP
        + """
import pathlib
import pytest

@pytest.mark.resource("db")
@pytest.mark.parametrize("i", range(3))
def test_db(request, i):
    (request.config.rootpath / "ran").touch()
    nap()

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    nap()
"""
    )
    run = checked.run("-n", "2")
    assert_clean(run, 7)
    assert (checked.pytester.path / "gw1-held").read_text() == "until a test ran"
    # gw1's planned share waited for it rather than queue up behind gw0's tests.
    assert run.workers_of("test_db[") == {"gw0"}
    assert "gw1" in run.workers_of("test_free[")


def test_nested_dirs_conflict_siblings_do_not(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_dirs=SLEEP
        + """
import os
import pytest

@pytest.mark.resource("dir:build")
def test_build():
    nap()

@pytest.mark.resource("dir:build/cache")
def test_cache():
    nap()

@pytest.mark.resource("dir:" + os.path.join(os.getcwd(), "build", "cache", "deep"), mode="shared")
def test_deep_absolute():
    nap()

@pytest.mark.resource("dir:docs")
def test_docs():
    nap(0.6)

@pytest.mark.resource("dir:build-other")
def test_build_other():
    nap(0.6)
"""
    )
    run = checked.run("-n", "3")
    assert_clean(run, 5)
    build = ("test_build", "test_cache", "test_deep_absolute")
    assert len({run.intervals[f"test_dirs.py::{name}"].worker for name in build}) == 1
    docs, other = (
        run.intervals["test_dirs.py::test_docs"],
        run.intervals["test_dirs.py::test_build_other"],
    )
    assert docs.overlaps(other)


def test_fixed_ports_conflict(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_ports=SLEEP
        + """
import pytest

@pytest.mark.resource("port:8080")
@pytest.mark.parametrize("i", range(3))
def test_http(i):
    nap()

@pytest.mark.resource("port:08080")
def test_same_port_spelled_differently():
    nap()

@pytest.mark.resource("port:8081")
@pytest.mark.parametrize("i", range(3))
def test_other(i):
    nap()
"""
    )
    run = checked.run("-n", "2")
    assert_clean(run, 7)
    assert len(run.workers_of("test_http", "test_same_port")) == 1


def test_counted_capacity_is_used_and_never_exceeded(checked: Checked) -> None:
    checked.pytester.makeini("[pytest]\nisolate_capacity = gpu:2\n")
    checked.pytester.makepyfile(
        test_gpu=SLEEP
        + """
import pytest

@pytest.mark.resource("gpu")
@pytest.mark.parametrize("i", range(6))
def test_gpu(i):
    nap(0.3)
"""
    )
    run = checked.run("-n", "4")
    assert_clean(run, 6)
    assert run.max_concurrency("test_gpu") == 2


def test_serial_test_runs_alone(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_serial=SLEEP
        + """
import pytest

@pytest.mark.parametrize("i", range(6))
def test_before(i):
    nap()

@pytest.mark.serial
def test_alone():
    nap(0.3)

@pytest.mark.parametrize("i", range(6))
def test_after(i):
    nap()
"""
    )
    run = checked.run("-n", "4")
    assert_clean(run, 13)
    alone = run.intervals["test_serial.py::test_alone"]
    assert not any(
        alone.overlaps(iv) for nodeid, iv in run.intervals.items() if nodeid != alone.nodeid
    )
    assert run.max_concurrency("test_before") >= 2


def test_xdist_group_stays_on_one_worker_and_keeps_node_ids(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_a=SLEEP
        + """
import pytest

@pytest.mark.xdist_group("db")
class TestA:
    def test_one(self):
        nap()

    def test_two(self):
        nap()

def test_free_a():
    nap()
""",
        test_b=SLEEP
        + """
import pytest

@pytest.mark.xdist_group(name="db")
def test_three():
    nap()

def test_free_b():
    nap()
""",
    )
    run = checked.run("-n", "3", "-v")
    assert_clean(run, 5)
    assert len(run.workers_of("TestA", "test_three")) == 1
    assert run.ordered("TestA") + run.ordered("test_three") == [
        "test_a.py::TestA::test_one",
        "test_a.py::TestA::test_two",
        "test_b.py::test_three",
    ]
    assert "@db" not in run.result.stdout.str()


def test_class_and_module_marks_apply_to_every_test(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_marks=SLEEP
        + """
import pytest

pytestmark = pytest.mark.resource("db")

class TestCache:
    pytestmark = pytest.mark.resource("cache", mode="shared")

    def test_one(self):
        nap()

    def test_two(self):
        nap()

def test_module_level():
    nap()
""",
        test_other=SLEEP
        + """
import pytest

@pytest.mark.resource("cache")
def test_cache_writer():
    nap()

@pytest.mark.parametrize("i", range(3))
def test_free(i):
    nap()
""",
    )
    run = checked.run("-n", "3")
    assert_clean(run, 7)
    assert len(run.workers_of("test_marks.py", "test_cache_writer")) == 1


def test_resource_chain_joins_domains_transitively(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_chain=SLEEP
        + """
import pytest

@pytest.mark.resource("x")
def test_a():
    nap()

@pytest.mark.resource("x", "y")
def test_b():
    nap()

@pytest.mark.resource("y", "z")
def test_c():
    nap()

@pytest.mark.resource("z")
def test_d():
    nap()

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    nap()
"""
    )
    run = checked.run("-n", "4")
    assert_clean(run, 8)
    chain = ["test_a", "test_b", "test_c", "test_d"]
    assert len(run.workers_of(*(f"::{name}" for name in chain))) == 1
    starts = [run.intervals[f"test_chain.py::{name}"].start for name in chain]
    assert starts == sorted(starts)


def test_free_tests_really_run_in_parallel(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_free=SLEEP
        + """
import pytest

@pytest.mark.parametrize("i", range(8))
def test_free(i):
    nap(0.3)
"""
    )
    run = checked.run("-n", "4")
    assert_clean(run, 8)
    assert len(run.workers_of("test_free")) >= 3
    assert run.max_concurrency("test_free") >= 3


def test_second_run_gives_the_longest_recorded_domain_a_worker_of_its_own(
    checked: Checked,
) -> None:
    checked.pytester.makepyfile(
        test_order=SLEEP
        + """
import pytest

@pytest.mark.resource("q")
@pytest.mark.parametrize("i", range(6))
def test_quick(i):
    nap(0.02)

@pytest.mark.resource("slow")
@pytest.mark.parametrize("i", range(2))
def test_slow(i):
    nap(1.0)  # long enough for the second worker to join on a loaded machine
"""
    )
    # One worker makes the start order strict: collection order, with history or without.
    first = checked.run("-n", "1")
    assert_clean(first, 8)
    in_order = [f"test_order.py::test_quick[{i}]" for i in range(6)]
    in_order += [f"test_order.py::test_slow[{i}]" for i in range(2)]
    assert first.ordered("test_") == in_order

    plan = checked.run("-n", "2", "--isolate-plan")
    lines = plan.result.stdout.lines
    first_domain = lines.index("domains (priority order):") + 1
    assert "2 tests  slow" in lines[first_domain]
    assert plan.intervals == {}

    second = checked.run("-n", "1")
    assert_clean(second, 8)
    assert second.ordered("test_") == in_order
    # With two workers the recorded durations place the slow domain on one worker and the
    # quick one on the other: slow starts at once, not after the quick ones.
    third = checked.run("-n", "2")
    assert_clean(third, 8)
    assert third.workers_of("test_slow") != third.workers_of("test_quick")
    slow_start = min(iv.start for iv in third.intervals.values() if "test_slow" in iv.nodeid)
    quick_end = max(iv.end for iv in third.intervals.values() if "test_quick" in iv.nodeid)
    assert slow_start < quick_end


def test_with_history_a_module_without_setup_cost_is_shared_at_the_end(checked: Checked) -> None:
    # History (a durations file): two tests of 1.5 s, and test_short.py, ten tests of 0.1 s
    # with no fixture cost. The plan keeps test_short.py whole (1 s, within twice the chunk
    # cap) behind one long test; the other worker, free after its own, takes tests off it,
    # so the run ends near 2 s instead of 2.5 s with one worker idle for the last second.
    checked.pytester.makepyfile(
        test_long=SLEEP
        + """
import pytest

@pytest.mark.parametrize("i", range(2))
def test_long(i):
    nap(1.5)
""",
        test_short=SLEEP
        + """
import pytest

@pytest.mark.parametrize("i", range(10))
def test_short(i):
    nap(0.1)
""",
    )
    durations = {f"test_long.py::test_long[{i}]": 1.5 for i in range(2)}
    durations |= {f"test_short.py::test_short[{i}]": 0.1 for i in range(10)}
    (checked.pytester.path / "durations.json").write_text(json.dumps(durations))
    run = checked.run("-n", "2", "--isolate-durations=durations.json")
    assert_clean(run, 12)
    assert len(run.workers_of("test_long.py")) == 2
    assert len(run.workers_of("test_short.py")) == 2


def test_durations_file_orders_the_run(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_file=SLEEP
        + """
import pytest

@pytest.mark.parametrize("i", range(4))
def test_t(i):
    nap(0.05)
"""
    )
    durations = {f"test_file.py::test_t[{i}]": float(i) for i in range(4)}
    (checked.pytester.path / "durations.json").write_text(json.dumps(durations))
    run = checked.run("-n", "2", "--isolate-durations", "durations.json", "-p", "no:cacheprovider")
    assert_clean(run, 4)
    # The durations decide which worker runs which test: the two longest go to different
    # workers. Each worker runs its tests in collection order.
    by_worker: dict[str, list[int]] = {}
    for interval in sorted(run.intervals.values(), key=lambda iv: iv.start):
        by_worker.setdefault(interval.worker, []).append(int(interval.nodeid[-2]))
    assert len(by_worker) == 2
    assert [3 in tests for tests in by_worker.values()].count(True) == 1
    assert not any(2 in tests and 3 in tests for tests in by_worker.values()), by_worker
    assert all(tests == sorted(tests) for tests in by_worker.values()), by_worker


def test_in_process_run_records_durations(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_serial_run=SLEEP
        + """
import pytest

@pytest.mark.resource("db")
def test_db():
    nap(0.1)

@pytest.mark.serial
def test_alone():
    nap(0.01)
"""
    )
    run = checked.run()
    assert_clean(run, 2)
    assert run.workers_of("test_") == {"main"}
    cache = checked.pytester.path / ".pytest_cache" / "v" / "isolate" / "durations"
    recorded = json.loads(cache.read_text())
    assert recorded["test_serial_run.py::test_db"] >= 0.1
    assert set(recorded) == {"test_serial_run.py::test_db", "test_serial_run.py::test_alone"}


def test_maxfail_stops_promptly(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_stop=SLEEP
        + """
import pytest

@pytest.mark.parametrize("i", range(60))
def test_t(i):
    nap(0.2)
    assert i != 3
"""
    )
    run = checked.run("-n", "2", "-x")
    outcomes = run.result.parseoutcomes()
    assert outcomes["failed"] == 1
    # Queues hold two released tests per worker under -x: only a handful start after the
    # failure (plus what the controller's reaction time allows on a loaded machine).
    failed = run.intervals["test_stop.py::test_t[3]"]
    after = [iv for iv in run.intervals.values() if iv.start > failed.end]
    assert len(after) <= 5, [iv.nodeid for iv in after]
    assert outcomes.get("passed", 0) <= 12, outcomes


def test_a_crashed_worker_costs_only_its_test(checked: Checked) -> None:
    checked.pytester.makepyfile(
        test_crash=SLEEP
        + """
import os
import pytest

@pytest.mark.resource("db")
@pytest.mark.parametrize("i", range(4))
def test_db(i):
    nap(0.05)
    if i == 1:
        os._exit(3)

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    nap(0.05)
"""
    )
    run = checked.run("-n", "2")
    run.result.assert_outcomes(passed=7, failed=1)
    assert "crashed while running 'test_crash.py::test_db[1]'" in run.result.stdout.str()
    assert run.violations == []


def test_n_auto_runs_in_process_when_history_says_workers_cannot_pay_off(
    checked: Checked,
) -> None:
    checked.pytester.makepyfile(
        test_tiny="""
import pytest

@pytest.mark.parametrize("i", range(20))
def test_t(i):
    pass
"""
    )
    first = checked.run("-n", "auto")
    assert_clean(first, 20)
    assert "running in-process" not in first.result.stdout.str()
    assert len(first.workers_of("test_t")) >= 1 and "main" not in first.workers_of("test_t")

    second = checked.run("-n", "auto")
    assert_clean(second, 20)
    second.result.stdout.fnmatch_lines(
        [
            "isolate: -n auto: the selected tests took *s of test time when they last ran; "
            "starting * worker* would cost about *s: running in-process"
        ]
    )
    assert second.workers_of("test_t") == {"main"}

    explicit = checked.run("-n", "2")
    assert_clean(explicit, 20)
    assert "main" not in explicit.workers_of("test_t")  # a number is always obeyed


def test_n_auto_estimates_from_the_selected_tests_not_from_the_last_run(
    checked: Checked,
) -> None:
    """A 2-test -k run in between used to make the next full run go in-process: -n auto
    decided from the last run's total. It sums the selected tests' durations now."""
    checked.pytester.makepyfile(
        test_suite="""
import time
import pytest

@pytest.mark.parametrize("i", range(16))
def test_t(i):
    time.sleep(0.3)
"""
    )
    first = checked.run("-n", "auto")
    assert_clean(first, 16)
    small = checked.run("-n", "auto", "-k", "test_t[0] or test_t[1]")
    assert_clean(small, 2)
    full = checked.run("-n", "auto")
    assert_clean(full, 16)
    assert "main" not in full.workers_of("test_t")
    full.result.stdout.fnmatch_lines(["isolate: -n auto: * workers (* cores, *s of recorded*"])
