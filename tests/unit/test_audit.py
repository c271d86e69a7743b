"""Unit tests for the isolation audit: the pure rules (pytest_isolate.diagnose.findings) on
plain data, the recorder against real audit events, sockets and processes, and the
timeline's hatched bars as Chromium draws them."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_isolate.diagnose import audit
from pytest_isolate.diagnose.findings import (
    PROPERTY,
    AuditPatternError,
    Finding,
    Scope,
    Touch,
    check_pattern,
    cwd_touch,
    decode,
    encode,
    env_touches,
    file_touches,
    format_section,
    is_cache,
    is_write,
    normalize,
    port_touch,
    process_touches,
    silenced,
    thread_touches,
)
from pytest_isolate.report.timeline import TimelineRecord, render_timeline
from tests import browser

ROOT = "/repo"
SCOPE = Scope(
    rootdir=ROOT,
    private=("/tmp/pytest-of-me/pytest-7/popen-gw0",),
    dirs=("/repo/build",),
    block=range(20000, 20050),
    ports=frozenset({8080}),
)

# -- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "write"),
    [
        (os.O_RDONLY, False),
        (os.O_RDONLY | os.O_CLOEXEC, False),
        (os.O_WRONLY, True),
        (os.O_RDWR, True),
        (os.O_RDONLY | os.O_CREAT, True),
        (os.O_WRONLY | os.O_APPEND, True),
    ],
)
def test_is_write(flags: int, write: bool) -> None:
    assert is_write(flags) is write


@pytest.mark.parametrize(
    ("path", "cwd", "expected"),
    [
        ("a.txt", "/repo", "/repo/a.txt"),
        ("../x/./y", "/repo/sub", "/repo/x/y"),
        ("/abs//p/", "/ignored", "/abs/p"),
        ("//double", "/", "/double"),
    ],
)
def test_normalize(path: str, cwd: str, expected: str) -> None:
    assert normalize(path, cwd) == expected


@pytest.mark.parametrize(
    ("path", "cache"),
    [
        ("/repo/pkg/__pycache__/mod.cpython-311.pyc", True),
        ("/repo/pkg/__pycache__/mod.cpython-311.pyc.140234", True),
        ("/repo/.pytest_cache/v/cache/lastfailed", True),
        ("/repo/.coverage", True),
        ("/repo/.coverage.host.123.456", True),
        ("/dev/null", True),
        ("/proc/self/oom_score_adj", True),
        ("/dev/shm/segment", False),
        ("/repo/coverage.xml", False),
        ("/repo/pycache/x", False),
        ("/device/file", False),
    ],
)
def test_is_cache(path: str, cache: bool) -> None:
    assert is_cache(path) is cache


def test_file_touches_leave_out_private_declared_and_cache_paths() -> None:
    written = {
        "/tmp/pytest-of-me/pytest-7/popen-gw0/test_a0/out.txt": ["wrote"],
        "/repo/build/lib/x.so": ["wrote"],
        "/repo/pkg/__pycache__/m.cpython-311.pyc": ["wrote"],
        "/repo/data.json": ["wrote", "wrote", "removed"],
        "/var/lib/app/state": ["created"],
    }

    touches = file_touches(written, SCOPE)

    assert touches == [
        Touch(
            "file",
            "/repo/data.json",
            "wrote and removed data.json",
            '@pytest.mark.resource("dir:data.json")',
        ),
        Touch(
            "file",
            "/var/lib/app/state",
            "created /var/lib/app/state",
            '@pytest.mark.resource("dir:/var/lib/app/state")',
        ),
    ]


def test_file_touches_report_the_outermost_path_once() -> None:
    written = {
        "/repo/out": ["created"],
        "/repo/out/a": ["created"],
        "/repo/out/a/1.txt": ["wrote"],
        "/repo/out/b.txt": ["wrote"],
        "/repo/outside.txt": ["wrote"],  # a sibling with a common prefix, not a child
    }

    touches = file_touches(written, SCOPE)

    assert [(t.detail, t.marker) for t in touches] == [
        ("created out (and 3 paths inside)", '@pytest.mark.resource("dir:out")'),
        ("wrote outside.txt", '@pytest.mark.resource("dir:outside.txt")'),
    ]


def test_a_dir_declaration_covers_children_not_siblings() -> None:
    written = {"/repo/build/x": ["wrote"], "/repo/build-old/x": ["wrote"], "/repo": ["touched"]}

    assert [t.subject for t in file_touches(written, SCOPE)] == ["/repo"]
    assert [t.subject for t in file_touches({"/repo/build-old/x": ["wrote"]}, SCOPE)] == [
        "/repo/build-old/x"
    ]


# -- ports, environment, cwd, threads, processes -----------------------------------------------


@pytest.mark.parametrize("port", [0, 20000, 20049, 8080])
def test_ports_covered(port: int) -> None:
    assert port_touch("127.0.0.1", port, "TCP", SCOPE) is None


def test_port_outside_block_and_claims() -> None:
    touch = port_touch("0.0.0.0", 20050, "UDP", SCOPE)

    assert touch is not None
    assert touch.subject == "20050"
    assert touch.marker == '@pytest.mark.resource("port:20050")'
    assert touch.detail.startswith(
        "bound UDP 0.0.0.0:20050, outside this worker's block 20000-20049"
    )


def test_env_touches_name_variables_never_values() -> None:
    before = {"KEEP": "1", "CHANGED": "old-secret", "GONE": "x", "PYTEST_CURRENT_TEST": "t"}
    after = {"KEEP": "1", "CHANGED": "new-secret", "NEW": "y", "OWNED": "z"}
    scope = Scope(ROOT, owned_env=frozenset({"OWNED"}))

    touches = env_touches(before, after, scope)

    assert [(t.subject, t.detail, t.marker) for t in touches] == [
        ("CHANGED", "changed $CHANGED and left it so", 'monkeypatch.setenv("CHANGED", ...)'),
        ("GONE", "removed $GONE and left it so", 'monkeypatch.delenv("GONE")'),
        ("NEW", "set $NEW and left it so", 'monkeypatch.setenv("NEW", ...)'),
    ]
    assert not any("secret" in t.detail for t in touches)


def test_cwd_touch() -> None:
    assert cwd_touch("/repo", "/repo", SCOPE) is None
    assert (
        cwd_touch("/repo", "/elsewhere", Scope(ROOT, owned_cwd=frozenset({"/elsewhere"}))) is None
    )
    touch = cwd_touch("/repo", "/elsewhere", SCOPE)
    assert touch is not None
    assert touch.detail == "left the working directory at /elsewhere (was /repo)"
    assert touch.marker == "monkeypatch.chdir(...)"


def test_thread_and_process_touches() -> None:
    (thread,) = thread_touches([("poller", True)])
    assert (thread.subject, thread.detail) == (
        "poller",
        "thread 'poller' (daemon) still running after teardown",
    )
    (process,) = process_touches([(4242, "redis-server --port 7000 " + "x" * 200)])
    assert process.detail.startswith("child process 4242 still running after teardown: redis")
    assert process.detail.endswith("...") and len(process.detail) < 200


# -- silencing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["file", "file:build/*", "env:MY_*", "port:80*", "cwd"])
def test_check_pattern_accepts(pattern: str) -> None:
    assert check_pattern(pattern, "isolate_audit_ignore") == pattern


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("files:x", "isolate_audit_ignore: 'files:x': unknown kind 'files'; use one of file, "),
        ("env:", "isolate_audit_ignore: 'env:': empty pattern after 'env:'"),
        ("", "isolate_audit_ignore: '' is not a pattern (KIND or KIND:GLOB)"),
        (3, "isolate_audit_ignore: 3 is not a pattern"),
    ],
)
def test_check_pattern_names_the_fault(pattern: object, message: str) -> None:
    with pytest.raises(AuditPatternError) as info:
        check_pattern(pattern, "isolate_audit_ignore")
    assert str(info.value).startswith(message)


def test_silenced() -> None:
    notes = Touch("file", "/repo/notes", "created notes", "")
    inside = Touch("file", "/repo/notes/a.txt", "wrote notes/a.txt", "")
    env = Touch("env", "MY_TOOL_HOME", "set", "")

    assert silenced(notes, ["file:notes/*"], ROOT)  # the directory itself too
    assert silenced(inside, ["file:notes/*"], ROOT)
    assert silenced(inside, ["file:/repo/notes/*.txt"], ROOT)
    assert not silenced(inside, ["file:other/*", "env:*"], ROOT)
    assert silenced(env, ["env:MY_TOOL_*"], ROOT)
    assert silenced(env, ["env"], ROOT)
    assert not silenced(env, ["env:my_tool_*"], ROOT)  # case counts


def test_silenced_paths_do_not_hide_their_siblings() -> None:
    written = {"/repo/notes": ["created"], "/repo/notes/a": ["wrote"], "/repo/x": ["wrote"]}
    scope = Scope(ROOT, ignore=("file:notes/*",))

    assert [t.subject for t in file_touches(written, scope)] == ["/repo/x"]


# -- transport and the section -----------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    touch = Touch("file", "/repo/a; fix: b", "wrote a; fix: b", '@pytest.mark.resource("dir:a")')
    name, value = encode(touch)

    assert name == PROPERTY
    assert value == 'file: wrote a; fix: b; declare: @pytest.mark.resource("dir:a")'
    assert decode("t.py::x", name, value) == touch.finding("t.py::x")
    assert decode("t.py::x", "other", value) is None
    assert decode("t.py::x", PROPERTY, "not an audit finding") is None
    assert decode("t.py::x", PROPERTY, 42) is None


def test_format_section_in_collection_order() -> None:
    found = {
        "t.py::b": [Finding("t.py::b", "env", "set $X and left it so", 'monkeypatch.setenv("X")')],
        "t.py::a": [
            Finding("t.py::a", "port", "bound TCP :80", '@pytest.mark.resource("port:80")')
        ],
        "t.py::c": [],
    }

    lines = format_section(found, ["t.py::a", "t.py::b", "t.py::c"], 3)

    assert lines[:6] == [
        "t.py::a",
        "    port: bound TCP :80",
        '        declare: @pytest.mark.resource("port:80")',
        "t.py::b",
        "    env: set $X and left it so",
        '        fix: monkeypatch.setenv("X")',
    ]
    assert lines[6].startswith("2 findings in 2 of 3 tests; silence one on purpose with ")
    assert format_section({}, [], 1) == ["no hidden shared state found in 1 test"]


# -- the recorder, against real events ---------------------------------------------------------


@pytest.fixture
def recorder() -> Iterator[audit.Recorder]:
    audit._install()
    rec = audit.Recorder()
    audit._recording = rec
    try:
        yield rec
    finally:
        audit._recording = None


def test_recorder_sees_writes_and_binds_not_reads(recorder: audit.Recorder, tmp_path: Path) -> None:
    (tmp_path / "read.txt").write_text("x")
    recorder.written.clear()
    (tmp_path / "read.txt").read_text()
    os.mkdir(tmp_path / "d")
    (tmp_path / "d" / "w.txt").write_text("x")
    os.replace(tmp_path / "d" / "w.txt", tmp_path / "moved.txt")
    os.remove(tmp_path / "moved.txt")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
    audit._recording = None
    (tmp_path / "after.txt").write_text("not recorded")

    base = os.path.realpath(tmp_path)
    written = {os.path.realpath(p): verbs for p, verbs in recorder.written.items()}
    assert written == {
        f"{base}/d": ["created"],
        f"{base}/d/w.txt": ["wrote", "moved away"],
        f"{base}/moved.txt": ["wrote", "removed"],
    }
    assert recorder.binds == [("127.0.0.1", 0, "TCP")]


def test_recorder_lists_children_at_the_first_spawn(recorder: audit.Recorder) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert recorder.children_before is not None
        assert child.pid not in recorder.children_before
        assert child.pid in audit.child_processes(os.getpid())
    finally:
        child.communicate(b"")
    assert child.pid not in audit.child_processes(os.getpid())


# -- the timeline ------------------------------------------------------------------------------


def test_timeline_hatches_bars_with_findings(tmp_path: Path) -> None:
    t0 = 1_700_000_000.0
    records = [
        TimelineRecord("t.py::leaky", "gw0", t0, t0 + 1, "passed", 0, findings=("env: set $X",)),
        TimelineRecord("t.py::clean", "gw1", t0, t0 + 1, "passed", 1),
    ]
    page = tmp_path / "timeline.html"
    page.write_text(render_timeline(records, "audit"), encoding="utf-8")
    match = re.search(r'id="timeline-data">(.*?)</script>', page.read_text())
    assert match is not None
    data = json.loads(match.group(1))
    assert {t["n"]: t.get("a") for t in data["tests"]} == {
        "t.py::leaky": ["env: set $X"],
        "t.py::clean": None,
    }

    dom = browser.render(page, tmp_path / "timeline.png")

    assert 'data-rendered="ok"' in dom
    bars = re.findall(r'<div class="bar[^"]*"[^>]*>', dom)
    leaky = next(b for b in bars if "t.py::leaky" in b)
    clean = next(b for b in bars if "t.py::clean" in b)
    assert 'class="bar audited"' in leaky and 'data-audit="1"' in leaky
    assert "audit (hidden shared state):\n  env: set $X" in leaky
    assert "audited" not in clean
    assert "1 test with audit findings" in dom
