"""What users of real projects see: installed but not asked for, the plugin is invisible;
asked for, it keeps their warnings filter, their environment and their test order.

Each suite runs in a real pytest process (``runpytest_subprocess``), against the plugin as
this environment installed it: tox installs the built wheel, as users do, so pytest marks the
package for assertion rewriting there and a module of ours imported too early is a
PytestAssertRewriteWarning, which ``filterwarnings = error`` turns into a crash.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

WARNINGS_ARE_ERRORS = "[pytest]\nfilterwarnings =\n    error\n"

PLAIN_SUITE = """
import os, tempfile

def test_one():
    assert 1 + 1 == 2

def test_two():
    assert tempfile.gettempdir()
"""


@pytest.mark.parametrize(
    "args",
    [[], ["-n", "2"], ["-p", "isolate"], ["-p", "isolate", "-n", "2"]],
    ids=["plain", "n2", "isolate", "isolate-n2"],
)
def test_a_suite_with_filterwarnings_error_passes_every_way(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    pytester.makeini(WARNINGS_ARE_ERRORS)
    pytester.makepyfile(test_plain=PLAIN_SUITE)
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)
    output = result.stdout.str() + result.stderr.str()
    assert "Warning" not in output and "warnings summary" not in output, output
    assert not re.search(r"\d+ warnings?\b", output), output


def test_the_worker_bootstrap_imports_nothing_of_ours() -> None:
    """Before pytest starts in a worker, the controller's bootstrap code runs there: it must
    not import pytest_isolate, or pytest cannot rewrite it (the warning above)."""
    from pytest_isolate.xdist import transport

    imported = re.findall(r"^\s*(?:import|from)\s+([\w.]+)", transport._REMOTE_SOURCE, re.M)
    assert imported, transport._REMOTE_SOURCE  # it does import something: sys
    assert not [name for name in imported if name.startswith("pytest_isolate")]


def test_the_wheel_env_tests_the_installed_package() -> None:
    """Under tox the package comes from the built wheel, so the tests above exercise what
    users install (an editable install is not marked for rewriting by pytest)."""
    if not os.environ.get("PYTEST_ISOLATE_FROM_WHEEL"):
        pytest.skip("not the tox env that installs the wheel")
    import pytest_isolate

    source = Path(__file__).resolve().parents[2] / "pytest_isolate"
    installed = Path(pytest_isolate.__file__).resolve().parent
    assert installed != source and installed.parent.name == "site-packages", installed


ENV_SUITE = """
import json, os

def test_database_url_is_the_users():
    assert os.environ["DATABASE_URL"] == "postgresql://app@db:5432/app_test"

def test_dump_environment(tmp_path_factory):
    path = os.path.join(os.environ["ENV_DUMP_DIR"], "env-%s.json" % os.getpid())
    with open(path, "w") as f:
        json.dump(dict(os.environ), f)
"""


@pytest.mark.parametrize("args", [[], ["-p", "isolate"], ["-n", "2"]])
def test_the_users_database_url_is_left_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db:5432/app_test")
    monkeypatch.setenv("ENV_DUMP_DIR", str(pytester.path))
    pytester.makepyfile(test_env=ENV_SUITE)
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)


OURS = (
    "TMPDIR",
    "TEMP",
    "TMP",
    "PYTEST_ISOLATE_TMP",
    "PYTEST_ISOLATE_SLOT",
    "PYTEST_ISOLATE_PORTS",
)


def _clean_environment(monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester) -> None:
    """This test runs on a worker of our own suite: drop what that worker set."""
    for name in OURS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db:5432/app_test")
    monkeypatch.setenv("ENV_DUMP_DIR", str(pytester.path))


def _environment_seen(pytester: pytest.Pytester, *args: str) -> dict[str, str]:
    for old in pytester.path.glob("env-*.json"):
        old.unlink()
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)
    (dump,) = pytester.path.glob("env-*.json")
    return dict(json.loads(dump.read_text()))


def test_not_asked_for_the_environment_is_as_without_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_environment(monkeypatch, pytester)
    pytester.makepyfile(test_env=ENV_SUITE)
    without = _environment_seen(pytester, "-p", "no:isolate")
    installed = _environment_seen(pytester)
    ignore = {"PYTEST_CURRENT_TEST"}
    assert {k: v for k, v in installed.items() if k not in ignore} == {
        k: v for k, v in without.items() if k not in ignore
    }
    # Asked for in-process: only the plugin's own variables are added; TMPDIR, unset by
    # the user here, is the run's private temp dir, as on a worker.
    asked = _environment_seen(pytester, "-p", "isolate")
    added = set(asked) - set(without)
    assert added == set(OURS)
    assert asked["DATABASE_URL"] == without["DATABASE_URL"]


def test_asked_for_in_process_a_tmpdir_the_user_set_stays(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_environment(monkeypatch, pytester)
    mine = pytester.mkdir("my-tmp")
    monkeypatch.setenv("TMPDIR", str(mine))
    pytester.makepyfile(test_env=ENV_SUITE)
    asked = _environment_seen(pytester, "-p", "isolate")
    assert asked["TMPDIR"] == str(mine)
    # Under -n, each worker's TMPDIR is its private temp dir, made inside the user's.
    workers = _environment_seen(pytester, "-n", "1")
    assert workers["TMPDIR"] != str(mine)
    assert workers["PYTEST_ISOLATE_TMP"] == workers["TMPDIR"]


def _normalized(output: str) -> list[str]:
    lines = []
    for line in output.splitlines():
        if line.startswith(("plugins:", "rootdir:", "cachedir:")):
            continue  # -p no:isolate leaves isolate out of the plugin list
        lines.append(re.sub(r"\d+\.\d+s", "Xs", line))
    return lines


def test_not_asked_for_the_output_is_as_without_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_out="""
import pytest

@pytest.mark.resource("redis")
def test_marked():
    pass

def test_fails():
    assert 0, "boom"

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
"""
    )
    for verbosity in ([], ["-v"], ["-rA"]):
        without = pytester.runpytest_subprocess("-p", "no:isolate", "-W", "ignore", *verbosity)
        installed = pytester.runpytest_subprocess("-W", "ignore", *verbosity)
        assert _normalized(installed.stdout.str()) == _normalized(without.stdout.str())
        assert "isolate:" not in installed.stdout.str()
    # Markers stay registered (--strict-markers passes), the plugin's only trace.
    pytester.runpytest_subprocess("--strict-markers").assert_outcomes(passed=1, failed=1, skipped=1)


def test_not_asked_for_a_test_that_requests_a_fixture_still_gets_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_environment(monkeypatch, pytester)
    pytester.makepyfile(
        test_fixture="""
import os, socket, tempfile

def test_worker(isolate_worker, isolate_ports, isolate_db):
    assert isolate_worker.slot == 0 and isolate_worker.id == "main"
    assert isolate_worker.tmp_path.is_dir()
    port = isolate_ports.take()[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert isolate_db.backend == "sqlite"
    assert os.environ["PYTEST_ISOLATE_SLOT"] == "0"
    # The run's temp dir is left as it was: the fixture came in the middle of the run.
    assert "TMPDIR" not in os.environ
"""
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_under_n_xdist_says_how_many_workers_and_items(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=PLAIN_SUITE)
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["2 workers [2 items]"])
    assert "collecting: " not in result.stdout.str()
    result.stdout.fnmatch_lines(["isolate: 2 workers, 0 domains + 2 free tests, *longest test*"])


def test_autoload_off_with_xdist_named_as_its_docs_do(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini(WARNINGS_ARE_ERRORS)
    pytester.makepyfile(
        test_marked="""
import pytest

@pytest.mark.resource("db")
@pytest.mark.parametrize("i", range(3))
def test_db(i):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "isolate", "-p", "xdist.plugin", "-n", "2")
    result.assert_outcomes(passed=3)
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(["isolate: 2 workers, 1 domain + 0 free tests, *"])


# -- each worker keeps collection order ---------------------------------------------------

# A conftest moves two tests to the front because they need the working directory as the
# session starts; a test in an early file does something a later file's test must not see
# before it (a module-level registry, as plugin registries are). Serially all pass.
ORDER_CONFTEST = """
import os

START = os.getcwd()

def pytest_collection_modifyitems(items):
    first = [item for item in items if "needs_start_dir" in item.name]
    items[:] = first + [item for item in items if item not in first]
"""

ORDER_FILES = {
    "registry.py": "registered = []\n",
    "test_a_clean.py": """
import registry

def test_nothing_registered_yet():
    assert registry.registered == []
""",
    "test_b_polluter.py": """
import os, registry

def test_registers_a_plugin():
    registry.registered.append("plugin")

def test_moves_away(tmp_path):
    os.chdir(tmp_path)  # and never back, as some suites do
""",
    "test_c_late.py": """
import os
import conftest

def test_needs_start_dir_one():
    assert os.getcwd() == conftest.START

def test_needs_start_dir_two():
    assert os.getcwd() == conftest.START

def test_other():
    pass
""",
}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_each_worker_runs_its_tests_in_collection_order(
    pytester: pytest.Pytester, workers: str
) -> None:
    pytester.makeconftest(ORDER_CONFTEST)
    pytester.makepyfile(**ORDER_FILES)
    pytester.makeini("[pytest]\npythonpath = .\n")
    pytester.runpytest_subprocess("-p", "no:isolate").assert_outcomes(passed=6)
    # Without durations, then with the durations the first run recorded, then with
    # durations that make the polluters the longest tests (a longest-first order would put
    # them before their victims).
    durations = pytester.path / "durations.json"
    durations.write_text(
        json.dumps(
            {
                "test_b_polluter.py::test_registers_a_plugin": 5.0,
                "test_b_polluter.py::test_moves_away": 4.0,
                "test_a_clean.py::test_nothing_registered_yet": 0.001,
                "test_c_late.py::test_needs_start_dir_one": 0.001,
                "test_c_late.py::test_needs_start_dir_two": 0.001,
            }
        )
    )
    for extra in ([], [], ["--isolate-durations", str(durations)]):
        result = pytester.runpytest_subprocess("-p", "isolate", "-n", workers, *extra)
        result.assert_outcomes(passed=6)
