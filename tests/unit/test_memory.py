"""What diagnoses keep for later runs (pytest_isolate.diagnose.memory): the project's hash, the
digest of a test's predecessors, and the cache records read back whatever the cache holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_isolate.diagnose import memory
from pytest_isolate.schedule.learned import Learned


def test_the_project_hash_follows_python_files_and_config_only(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    first = memory.project_hash(tmp_path)
    assert memory.project_hash(tmp_path) == first
    # Not hashed: data files, hidden directories, virtual environments, build output.
    (tmp_path / "data.json").write_text("{}")
    for ignored in (".pytest_cache", "build", "__pycache__", "node_modules"):
        (tmp_path / ignored).mkdir()
        (tmp_path / ignored / "x.py").write_text("Y = 2\n")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    (venv / "site.py").write_text("Z = 3\n")
    assert memory.project_hash(tmp_path) == first
    # Hashed: any Python file, and the test configuration.
    (tmp_path / "pkg" / "mod.py").write_text("X = 2\n")
    second = memory.project_hash(tmp_path)
    assert second != first
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -x\n")
    assert memory.project_hash(tmp_path) != second


def test_the_predecessors_digest_is_the_set_of_tests_before_it() -> None:
    digest = memory.predecessors_digest
    assert digest("c", ["a", "b", "c", "d"]) == digest("c", ["b", "a", "c"])
    assert digest("c", ["a", "b", "c"]) != digest("c", ["a", "c"])
    assert digest("c", ["c", "a"]) == digest("missing", [])


def test_records_survive_a_cache_that_holds_anything(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure("-p", "cacheprovider")
    cache = config.cache
    assert cache is not None
    for junk in ([1, "x"], {"project": 3}, "text", None):
        cache.set(memory.FINDINGS_KEY, junk)
        cache.set(memory.FAILS_ALONE_KEY, junk)
        assert memory.load(config) == []
        assert memory.known_to_fail_alone(config, "p") == {}
    cache.set(memory.FAILS_ALONE_KEY, {"project": "p", "tests": {"t": "d", "u": 3}})
    assert memory.known_to_fail_alone(config, "p") == {"t": "d"}
    assert memory.known_to_fail_alone(config, "other project") == {}

    pair = Learned("needs_earlier", "b.py::t", "a.py::s", "the run of X")
    assert memory.remember(config, [pair]) == [pair]
    assert memory.remember(config, [pair._replace(learned="the run of Y")]) == []  # known
    assert memory.load(config) == [pair._replace(learned="the run of Y")]
    assert memory.forget(config) == [
        "isolate: forgot 1 learned finding and the tests known to fail alone"
    ]
    assert memory.load(config) == [] and memory.known_to_fail_alone(config, "p") == {}


def test_without_the_cache_nothing_is_kept_or_read(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure("-p", "no:cacheprovider")
    pair = Learned("overlap", "b.py::t", "a.py::s", "the run of X")
    assert memory.remember(config, [pair]) == []
    assert memory.load(config) == []
    assert memory.forget(config) == []
    assert not memory.has_cache(config)
