"""--isolate-sandbox: a working directory and a HOME of each worker's own, for tests that
write fixed relative paths or per-user files (no marker fits them well)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Each test creates app.db next to the project and a settings file under HOME, exclusively,
#: and holds them until the other worker's first test has reached the same point: the first
#: test of each worker overlaps the other's, so without a sandbox one of them collides.
SUITE = """
import json, os, pathlib, time
import pytest

MEETING = os.environ["MEETING_DIR"]

@pytest.mark.parametrize("i", range(4))
def test_writes_app_db_and_user_settings(i):
    settings = pathlib.Path.home() / ".config" / "myapp" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    me = os.environ.get("PYTEST_XDIST_WORKER", "main")
    try:
        with open("app.db", "x") as db, open(settings, "x") as own:
            db.write(str(i))
            json.dump({"i": i}, own)
            arrive(me)
            time.sleep(0.2)
        os.remove("app.db")
        settings.unlink()
    finally:
        arrive(me)

def arrive(me):
    if me == "main":
        return  # in-process: nobody to meet
    open(os.path.join(MEETING, me), "a").close()
    deadline = time.monotonic() + 15
    while len(os.listdir(MEETING)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    meeting = pytester.path / "_meeting"
    meeting.mkdir()
    monkeypatch.setenv("MEETING_DIR", str(meeting))
    pytester.makepyfile(test_app=SUITE)
    return pytester


def test_tests_sharing_a_working_directory_and_home_collide_without_the_sandbox(
    suite: pytest.Pytester,
) -> None:
    result = suite.runpytest_subprocess("-p", "isolate", "-n", "2", "--no-isolate-rerun-alone")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.stdout.str()
    assert "FileExistsError" in result.stdout.str()


def test_the_sandbox_gives_each_worker_its_own(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("-p", "isolate", "-n", "2", "--isolate-sandbox")
    result.assert_outcomes(passed=4)
    assert not (suite.path / "app.db").exists()  # the project's directory is untouched
    assert not (suite.path / ".config").exists()  # nor pytester's HOME


def test_the_sandbox_ini_key_and_what_a_test_sees(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nisolate_sandbox = true\n")
    pytester.makepyfile(
        data_file="VALUE = 1\n",
        test_sees="""
import os, pathlib

def test_sees():
    home = pathlib.Path.home()
    assert home != pathlib.Path(os.environ["PYTEST_ISOLATE_TMP"]).parent
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        assert pathlib.Path(os.environ[name]).is_dir()
        assert pathlib.Path(os.environ[name]).is_relative_to(home)
    # The project's files are visible under their relative paths; the directory is not
    # the project's.
    assert pathlib.Path("data_file.py").read_text().strip() == "VALUE = 1"
    assert pathlib.Path("test_sees.py").exists()
    assert os.path.realpath(os.getcwd()) != os.environ["PROJECT"]
""",
    )
    for workers in ([], ["-n", "2"]):
        _run(pytester, workers).assert_outcomes(passed=1)


def _run(pytester: pytest.Pytester, workers: list[str]) -> pytest.RunResult:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROJECT", str(Path(pytester.path).resolve()))
        return pytester.runpytest_subprocess("-p", "isolate", *workers)


def test_the_audit_recommends_the_sandbox(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("-p", "isolate", "--isolate-audit", "-k", "0")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "wrote and removed app.db" in out
    assert "or --isolate-sandbox (each worker gets its own working directory and HOME)" in out
    assert "1 test wrote files in the working directory or under HOME: try --isolate-sandbox" in (
        out
    )


def test_the_audit_counts_the_sandboxs_own_directories_as_the_workers(
    suite: pytest.Pytester,
) -> None:
    # The meeting files are the suite's own machinery, shared on purpose.
    suite.makeini("[pytest]\nisolate_audit_ignore = file:_meeting/*\n")
    for workers in ([], ["-n", "2"]):
        result = suite.runpytest_subprocess(
            "-p", "isolate", "--isolate-audit", "--isolate-sandbox", *workers
        )
        result.assert_outcomes(passed=4)
        result.stdout.fnmatch_lines(["no hidden shared state found in 4 tests"])
