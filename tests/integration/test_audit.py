"""--isolate-audit on real runs: planted faults are named, clean tests never are.

Each suite runs in a real pytest process, in-process and under real xdist workers; the audit's
terminal section, the JUnit properties and the report log are read back and compared.
"""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest

PLANTED = """
import os, socket, subprocess, sys, threading


def test_writes_rootdir(request):
    (request.config.rootpath / "shared.txt").write_text("written by one test, read by another")


def test_env_left_behind():
    os.environ["AUDIT_PLANTED"] = "1"


def test_fixed_port():
    sock = socket.socket()
    # SO_REUSEADDR: two runs of this suite at once may both bind it (neither listens).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 9471))
    sock.close()


def test_thread_left_running():
    stop = threading.Event()
    threading.Thread(target=stop.wait, name="planted-thread", daemon=True).start()


def test_process_left_running():
    # Reads its stdin until this worker exits: alive after teardown, gone after the run.
    subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                     stdin=subprocess.PIPE)


def test_chdir_left_behind(tmp_path):  # last: later tests here would start in tmp_path
    os.chdir(tmp_path)
"""

CLEAN = """
import logging, os, socket, sqlite3, subprocess, sys, tempfile, threading
from pathlib import Path

import pytest


@pytest.mark.parametrize("i", range(10))
def test_tmp_path(tmp_path, tmpdir, i):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / f"{i}.txt").write_text("x")
    os.replace(tmp_path / "sub" / f"{i}.txt", tmp_path / "moved.txt")
    tmpdir.join("legacy.txt").write("y")


@pytest.mark.parametrize("i", range(8))
def test_monkeypatch(monkeypatch, tmp_path, i):
    monkeypatch.setenv(f"AUDIT_CLEAN_{i}", "1")
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    Path("relative.txt").write_text("inside tmp_path")


@pytest.mark.parametrize("i", range(8))
def test_isolate_ports(isolate_ports, i):
    port = isolate_ports.take()[0]
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"hi")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))


@pytest.mark.parametrize("i", range(8))
def test_isolate_db(isolate_db, i):
    assert isolate_db.backend == "sqlite"
    with sqlite3.connect(isolate_db.url.removeprefix("sqlite:///")) as db:
        db.execute("create table if not exists t (i integer)")
        db.execute("insert into t values (?)", (i,))


@pytest.mark.parametrize("i", range(8))
def test_subprocess_in_worker_tmpdir(i):
    tmp = tempfile.gettempdir()
    assert tmp == os.environ["TMPDIR"]
    subprocess.run([sys.executable, "-c", "open('child.txt', 'w').write('x')"],
                   cwd=tmp, check=True)
    with tempfile.NamedTemporaryFile("w") as f:
        f.write("x")
    Path(tempfile.mkdtemp(), "inside").write_text("x")


@pytest.mark.parametrize("i", range(4))
def test_capture_and_logs(capsys, caplog, i):
    print("out")
    logging.getLogger("clean").warning("logged")
    assert capsys.readouterr().out == "out\\n"
    assert "logged" in caplog.text


@pytest.mark.parametrize("i", range(4))
def test_threads_and_processes_finished(i):
    worker = threading.Thread(target=sum, args=([1, 2],))
    worker.start()
    worker.join()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
"""

# Covered on purpose: declared resources, a module fixture's own state, caches, silencing.
COVERED = """
import importlib, os, socket, sys, threading
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def module_service(tmp_path_factory):
    # Set up in the first test of the module, undone in the last: it belongs to neither.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIT_MODULE_SERVICE", "on")
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait, name="module-service")
        thread.start()
        yield
        stop.set()
        thread.join()


@pytest.mark.parametrize("i", range(3))
def test_uses_module_service(module_service, i):
    assert os.environ["AUDIT_MODULE_SERVICE"] == "on"


@pytest.mark.resource("dir:out")
def test_declared_dir(request):
    out = request.config.rootpath / "out" / "declared"
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.txt").write_text("x")


@pytest.mark.resource("port:9472")
def test_declared_port():
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 9472))


@pytest.mark.isolate_audit_ignore("file:notes/*", "env:AUDIT_ON_PURPOSE")
def test_silenced_by_marker(request):
    notes = request.config.rootpath / "notes"
    notes.mkdir(exist_ok=True)
    (notes / "a.txt").write_text("x")
    os.environ["AUDIT_ON_PURPOSE"] = "1"


def test_silenced_by_ini():
    os.environ["AUDIT_SILENCED_BY_INI"] = "1"


def test_bytecode_cache(request):
    # A fresh module imported mid-test: its .pyc goes to rootdir/__pycache__.
    sys.path.insert(0, str(request.config.rootpath))
    try:
        importlib.import_module("audit_helper_module")
    finally:
        sys.path.remove(str(request.config.rootpath))
"""

INI = """
[pytest]
isolate_audit_ignore =
    env:AUDIT_SILENCED_*
"""

EXPECTED = {
    "test_planted.py::test_writes_rootdir": (
        "file: wrote shared.txt",
        'declare: @pytest.mark.resource("dir:shared.txt"), or --isolate-sandbox (each worker '
        "gets its own working directory and HOME)",
    ),
    "test_planted.py::test_env_left_behind": (
        "env: set $AUDIT_PLANTED and left it so",
        'fix: monkeypatch.setenv("AUDIT_PLANTED", ...)',
    ),
    "test_planted.py::test_fixed_port": (
        "port: bound TCP 127.0.0.1:9471, outside this worker's block",
        'declare: @pytest.mark.resource("port:9471")',
    ),
    "test_planted.py::test_thread_left_running": (
        "thread: thread 'planted-thread' (daemon) still running after teardown",
        "fix: stop and join it in teardown",
    ),
    "test_planted.py::test_process_left_running": (
        "process: child process ",
        "fix: terminate and wait for it in teardown",
    ),
    "test_planted.py::test_chdir_left_behind": (
        "cwd: left the working directory at ",
        "fix: monkeypatch.chdir(...)",
    ),
}
CLEAN_COUNT = 50
COVERED_COUNT = 8


def audit_section(stdout: str) -> dict[str, list[str]]:
    """The 'isolation audit' section, parsed: nodeid -> its finding lines."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"=+ isolation audit =+$", line))
    section: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("    "):
            current.append(line.strip())
        elif "::" in line and " " not in line:
            current = section.setdefault(line, [])
        else:
            break
    return section


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTEST_ISOLATE_LEASE_DIR", str(pytester.path / "_leases"))
    pytester.makeini(INI)
    pytester.makepyfile(
        test_planted=PLANTED,
        test_clean=CLEAN,
        test_covered=COVERED,
        audit_helper_module="VALUE = 1\n",
    )
    return pytester


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "n2"])
def test_audit_names_each_planted_fault_and_nothing_else(
    suite: pytest.Pytester, workers: list[str]
) -> None:
    result = suite.runpytest_subprocess(
        "-p", "isolate", "--isolate-audit", "--junitxml=junit.xml",
        "--report-log=log.jsonl", "-p", "no:randomly", *workers,
    )  # fmt: skip

    result.assert_outcomes(passed=len(EXPECTED) + CLEAN_COUNT + COVERED_COUNT)
    section = audit_section(result.stdout.str())
    assert list(section) == list(EXPECTED), "in collection order, planted tests only"
    for nodeid, (what, declaration) in EXPECTED.items():
        assert len(section[nodeid]) == 2, (nodeid, section[nodeid])
        assert section[nodeid][0].startswith(what), (nodeid, section[nodeid])
        assert section[nodeid][1].startswith(declaration), (nodeid, section[nodeid])
    assert "sys.stdin.read()" in section["test_planted.py::test_process_left_running"][0]
    result.stdout.fnmatch_lines(
        [f"6 findings in 6 of {len(EXPECTED) + CLEAN_COUNT + COVERED_COUNT} tests; *"]
    )

    # The same findings reach CI: JUnit properties and the report log, planted tests only.
    junit = ElementTree.parse(suite.path / "junit.xml")
    with_properties = {
        f"{case.get('classname')}.py::{case.get('name')}"
        for case in junit.iter("testcase")
        if any(p.get("name") == "isolate_audit" for p in case.iter("property"))
    }
    assert with_properties == set(EXPECTED)
    logged = {}
    for line in (suite.path / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("when") == "teardown":
            props = [value for name, value in record["user_properties"] if name == "isolate_audit"]
            if props:
                logged[record["nodeid"]] = props
    assert set(logged) == set(EXPECTED)
    assert logged["test_planted.py::test_writes_rootdir"] == [
        'file: wrote shared.txt; declare: @pytest.mark.resource("dir:shared.txt"), or '
        "--isolate-sandbox (each worker gets its own working directory and HOME)"
    ]


def test_timeline_marks_the_bars_with_findings(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(
        "-p", "isolate", "--isolate-audit", "-n", "2", "--isolate-timeline=timeline.html",
        "test_planted.py",
    )  # fmt: skip

    result.assert_outcomes(passed=len(EXPECTED))
    page = (suite.path / "timeline.html").read_text()
    data = json.loads(
        re.search(r'id="timeline-data">(.*?)</script>', page).group(1)  # type: ignore[union-attr]
    )
    findings = {test["n"]: test.get("a") for test in data["tests"]}
    assert findings["test_planted.py::test_writes_rootdir"] == ["file: wrote shared.txt"]
    assert all(findings[nodeid] for nodeid in EXPECTED)
    assert "6 tests with audit findings" in page


def test_audit_off_reports_nothing(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("-p", "isolate", "-n", "2", "test_planted.py")

    result.assert_outcomes(passed=len(EXPECTED))
    assert "isolation audit" not in result.stdout.str()


def test_ini_turns_it_on_and_a_clean_run_says_so(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nisolate_audit = true\n")
    pytester.makepyfile("def test_a(tmp_path):\n    (tmp_path / 'x').write_text('x')\n")

    result = pytester.runpytest_subprocess("-p", "isolate")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= isolation audit =*", "no hidden shared state found in 1 test"])


def test_malformed_marker_pattern_is_that_tests_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isolate_audit_ignore("files:*")
        def test_bad():
            pass

        def test_good():
            pass
        """
    )

    result = pytester.runpytest_subprocess("-p", "isolate", "--isolate-audit")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_malformed_marker_pattern_is_that_tests_error.py::test_bad: "
            "isolate_audit_ignore(): 'files:*': unknown kind 'files'; use one of file, port, "
            "env, cwd, thread, process"
        ]
    )


def test_malformed_ini_pattern_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nisolate_audit_ignore = env\n    port:\n")
    pytester.makepyfile("def test_a():\n    pass\n")

    result = pytester.runpytest_subprocess("-p", "isolate", "--isolate-audit")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*isolate_audit_ignore: 'port:': empty pattern after 'port:'*"])


def test_findings_are_in_the_controller_stash(pytester: pytest.Pytester) -> None:
    """The contract for --isolate-rerun-alone: config.stash[audit.FINDINGS] on the controller."""
    pytester.makeconftest(
        """
        import json, os
        from pytest_isolate.diagnose import audit

        def pytest_sessionfinish(session):
            if hasattr(session.config, "workerinput"):
                return
            found = session.config.stash[audit.FINDINGS]
            out = {n: [[f.kind, f.detail, f.marker] for f in fs] for n, fs in found.items()}
            with open(os.path.join(str(session.config.rootpath), "stash.json"), "w") as f:
                json.dump(out, f)
        """
    )
    pytester.makepyfile(
        "import os\n\ndef test_leaks():\n    os.environ['AUDIT_STASH'] = '1'\n\n"
        "def test_clean():\n    pass\n"
    )

    result = pytester.runpytest_subprocess("-p", "isolate", "--isolate-audit", "-n", "2")

    result.assert_outcomes(passed=2)
    stash = json.loads((pytester.path / "stash.json").read_text())
    assert stash == {
        "test_findings_are_in_the_controller_stash.py::test_leaks": [
            ["env", "set $AUDIT_STASH and left it so", 'monkeypatch.setenv("AUDIT_STASH", ...)']
        ]
    }
