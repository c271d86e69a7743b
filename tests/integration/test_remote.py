"""Remote workers: ``--tx socket=HOST:PORT`` through two real execnet socket servers.

Each "host" is execnet's socket server run by the test in namespaces of its own (``unshare``):
its own network (so its ports are its own, as on another machine), its own pids, and its own
``TMPDIR`` on a private tmpfs that the controller cannot see. Each has its own lease directory
and its own copy of the suite. The controller reaches a host only through its listening socket
on loopback, so whatever pytest-isolate needs from a worker (its resources, its claims, a
timed-out test's stack) has to come over execnet.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.postgres import databases, postgres_url

# One host: execnet's socket server, each connection served by a fresh process (as a forking
# server would), so a worker that ends itself (a crash, a timeout) leaves the host up for its
# replacement. The listening socket is made by the test before the namespaces exist: it stays
# on the test's loopback, while everything the worker opens is in the host's own network.
HOST_SERVER = r'''
import fcntl, os, signal, socket, struct, subprocess, sys

CONNECTION = """
import socket, sys
from execnet.gateway_base import get_execmodel
from execnet.script import socketserver

class Accepted:
    # The connection the host accepted, handed to execnet's server loop as if just accepted.
    def __init__(self, sock):
        self.sock = sock
    def getsockname(self):
        return self.sock.getsockname()
    def accept(self):
        return self.sock, self.sock.getpeername()

socketserver.execmodel = get_execmodel("thread")
socketserver.exec_from_one_connection(Accepted(socket.socket(fileno=int(sys.argv[1]))))
"""


def loopback_up():
    # A new network namespace starts with "lo" down; SIOCGIFFLAGS / SIOCSIFFLAGS, IFF_UP.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 0x1))


def reap(signum, frame):
    # As init of its pid namespace, the host also inherits orphans: reap them all.
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


listener = socket.socket(fileno=int(sys.argv[1]))
log = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
loopback_up()
signal.signal(signal.SIGCHLD, reap)
print("ready", os.readlink("/proc/self/ns/pid"), flush=True)
os.dup2(log, 1)
os.dup2(log, 2)
while True:
    conn, _ = listener.accept()
    fd = conn.fileno()
    subprocess.Popen([sys.executable, "-c", CONNECTION, str(fd)], pass_fds=[fd])
    conn.close()
'''


@dataclass
class Host:
    name: str
    root: Path
    port: int
    server: subprocess.Popen[str]
    pid_ns: str

    @property
    def suite(self) -> Path:
        return self.root / "suite"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    @property
    def tx(self) -> str:
        return f"socket=127.0.0.1:{self.port}//chdir={self.suite}"

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def processes(self) -> dict[int, str]:
        """Live processes in the host's pid namespace but its server: pid -> command line."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns" / "pid") != self.pid_ns:
                    continue
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue  # gone meanwhile
            if stat[0] != "Z" and int(stat[1]) != self.server.pid:  # not the server itself
                found[int(entry.name)] = cmdline.strip()
        return found

    def wait_idle(self, deadline_s: float = 30.0) -> dict[int, str]:
        """The host's processes once only its server is left, or what is left at the end."""
        end = time.monotonic() + deadline_s
        while (left := self.processes()) and time.monotonic() < end:
            time.sleep(0.1)
        return left


@contextmanager
def host(name: str, root: Path, suite: dict[str, str], env: dict[str, str]) -> Iterator[Host]:
    """Start one host serving ``suite``; on exit stop it and check nothing of it is left."""
    unshare = shutil.which("unshare")
    assert unshare is not None, "the remote tests need util-linux's unshare for their hosts"
    for sub in ("suite", "tmp", "leases"):
        (root / sub).mkdir(parents=True)
    for filename, text in suite.items():
        (root / "suite" / filename).write_text(text)
    script = root / "host_server.py"
    script.write_text(HOST_SERVER)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    # pytester's PYTEST_DEBUG_TEMPROOT would put the workers' basetemp on the test's side.
    inherited = {k: v for k, v in os.environ.items() if k != "PYTEST_DEBUG_TEMPROOT"}
    host_env = {
        **inherited,
        "TMPDIR": str(root / "tmp"),
        "PYTEST_ISOLATE_LEASE_DIR": str(root / "leases"),
        "HOST_NAME": name,
        **env,
    }
    command = [
        unshare,
        "--map-root-user",  # a user namespace: works without root where the kernel allows
        "--net",
        "--pid",
        "--mount-proc",
        "--kill-child",  # the server is init of its pid namespace: all of the host goes with it
        "sh",
        "-c",
        'mount -t tmpfs tmpfs "$0" && exec "$@"',
        str(root / "tmp"),
        sys.executable,
        str(script),
        str(listener.fileno()),
        str(root / "server.log"),
    ]
    server = subprocess.Popen(
        command,
        pass_fds=[listener.fileno()],
        env=host_env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    port = listener.getsockname()[1]
    listener.close()  # the host holds it now
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 60)
        line = server.stdout.readline() if ready else ""
        assert line.startswith("ready "), f"host {name} did not start: {line!r}"
        made = Host(name, root, port, server, line.split()[1])
        yield made
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    left = made.wait_idle()
    assert not left, f"host {name} left processes behind: {left}"


@contextmanager
def two_hosts(base: Path, suite: dict[str, str], env: dict[str, str]) -> Iterator[list[Host]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(host(name, base / name, suite, env))
            for name in ("host-a", "host-b")
        ]


def outcomes(report_log: Path) -> dict[str, str]:
    """Node id -> outcome from a ``--report-log`` file: the call's, or a setup fault's."""
    found: dict[str, str] = {}
    for line in report_log.read_text().splitlines():
        record = json.loads(line)
        if record.get("$report_type") != "TestReport":
            continue
        nodeid, when, outcome = record["nodeid"], record["when"], record["outcome"]
        if when == "call":
            found[nodeid] = "xfailed" if "wasxfail" in record and outcome == "skipped" else outcome
        elif when == "setup" and outcome != "passed":
            found[nodeid] = "error" if outcome == "failed" else outcome
    return found


def facts(directory: Path) -> list[dict[str, object]]:
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


SUITE = {
    "test_remote_suite.py": """
import json, os, socket, sqlite3, tempfile
import pytest

def record(worker, name):
    leases = os.environ["PYTEST_ISOLATE_LEASE_DIR"]
    lease = os.path.join(leases, f"ports-{worker.ports.start}.lease")
    facts = {
        "host": os.environ.get("HOST_NAME", "local"),
        "worker": worker.id,
        "tmp": tempfile.gettempdir(),
        "ports": [worker.ports.start, worker.ports.stop],
        "leased_here": os.path.exists(lease),
        "db": worker.db.url,
        "backend": worker.db.backend,
    }
    with open(os.path.join(os.environ["FACTS_DIR"], name + ".json"), "w") as f:
        json.dump(facts, f)

@pytest.mark.parametrize("i", range(6))
def test_resources(isolate_worker, isolate_ports, isolate_db, i):
    port, = isolate_ports.take()
    with socket.socket() as s:  # bindable in the worker's own network
        s.bind(("127.0.0.1", port))
        s.listen()
    if isolate_db.backend == "sqlite":
        with sqlite3.connect(isolate_db.path) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (i int)")
    else:
        import psycopg
        with psycopg.connect(isolate_db.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (i int)")
    record(isolate_worker, f"resources-{i}")

# The domain records what it was given too: the first tests each worker gets are its own,
# so every host records facts however fast the others run.
@pytest.mark.resource("queue")
def test_domain_first(isolate_worker):
    record(isolate_worker, "domain-first")

@pytest.mark.resource("queue")
def test_domain_fails(isolate_worker):
    record(isolate_worker, "domain-fails")
    assert 1 + 1 == 3

@pytest.mark.resource("queue")
def test_domain_last(isolate_worker):
    record(isolate_worker, "domain-last")

def test_skipped():
    pytest.skip("not here")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

@pytest.fixture
def broken():
    raise RuntimeError("setup fails")

def test_setup_error(broken):
    pass
""",
}


@pytest.fixture
def hosts_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Not under pytester's directory: the controller must not find the hosts' copies.
    return tmp_path_factory.mktemp("hosts")


def _local_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> Path:
    local_facts = pytester.path / "facts-local"
    local_facts.mkdir()
    local_leases = pytester.path / "leases-local"
    local_leases.mkdir()
    with monkeypatch.context() as env:
        env.setenv("FACTS_DIR", str(local_facts))
        env.setenv("PYTEST_ISOLATE_LEASE_DIR", str(local_leases))
        log = pytester.path / "local.jsonl"
        pytester.runpytest_subprocess(
            "-p", "isolate", "-n", "2", "--no-isolate-rerun-alone", f"--report-log={log}", *args
        )
    return log


def _remote_run(pytester: pytest.Pytester, hosts: list[Host], *args: str) -> pytest.RunResult:
    txs = [arg for h in hosts for arg in ("--tx", h.tx)]
    # -d, not --dist load: an explicit --dist would replace pytest-isolate's scheduler.
    return pytester.runpytest_subprocess("-p", "isolate", "-d", *txs, *args)


def _check_provisioned_per_host(
    hosts: list[Host], remote_facts: list[dict[str, object]], backend: str
) -> None:
    by_host = {h.name: [f for f in remote_facts if f["host"] == h.name] for h in hosts}
    assert all(by_host.values()), f"every host ran tests: {by_host}"
    for h in hosts:
        seen = by_host[h.name]
        # One worker per host, provisioned there: its temp dir under the host's TMPDIR, its
        # port block leased in the host's lease directory.
        assert len({f["worker"] for f in seen}) == 1
        assert all(str(f["tmp"]).startswith(str(h.tmp) + os.sep) for f in seen)
        assert all(f["leased_here"] for f in seen)
        assert {f["backend"] for f in seen} == {backend}
        # Nothing the worker wrote there is visible where the controller runs (a private
        # tmpfs), so its stack, claims and results can only have come over execnet.
        assert list(h.tmp.iterdir()) == []
        # Leases released at the end, on the host that took them.
        assert list(h.leases.glob("ports-*.lease")) == []
    workers = [next(iter(by_host[h.name])) for h in hosts]
    # Disjoint: distinct temp dirs and databases; port blocks on distinct hosts (each host
    # has its own network, so the same numbers there are different ports).
    assert len({(w["host"], str(w["tmp"])) for w in workers}) == len(hosts)
    assert len({w["db"] for w in workers}) == len(hosts)
    assert len({(w["host"], tuple(w["ports"])) for w in workers}) == len(hosts)  # type: ignore[arg-type]


def test_remote_workers_get_their_own_host_resources_and_match_a_local_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, hosts_base: Path
) -> None:
    pytester.makepyfile(**{name.removesuffix(".py"): text for name, text in SUITE.items()})
    local = outcomes(_local_run(pytester, monkeypatch))
    assert len(local) == 12
    remote_facts = pytester.path / "facts-remote"
    remote_facts.mkdir()
    report_log = pytester.path / "remote.jsonl"
    with two_hosts(hosts_base, SUITE, {"FACTS_DIR": str(remote_facts)}) as hosts:
        # One argument: xdist rewrites an existing path given alone for remote workers.
        result = _remote_run(pytester, hosts, f"--report-log={report_log}", "-rfE")
        logs = "\n".join(h.log() for h in hosts)
        assert outcomes(report_log) == local, result.stdout.str() + logs
        # Every worker ended: no worker process is left on either host.
        for h in hosts:
            assert h.wait_idle() == {}
        _check_provisioned_per_host(hosts, facts(remote_facts), "sqlite")
    result.assert_outcomes(passed=8, failed=1, skipped=1, xfailed=1, errors=1)
    # The suite lives on the hosts: failures are not rerun alone here, and it says so.
    result.stdout.fnmatch_lines(["isolate: no reruns alone: workers ran on other hosts (*"])
    assert "rerunning" not in result.stdout.str()


def test_remote_workers_get_databases_on_the_configured_server(
    pytester: pytest.Pytester, hosts_base: Path
) -> None:
    # The server as the hosts reach it: its Unix socket (each host has a network of its own,
    # where 127.0.0.1 is the host itself), the same server for the controller's checks.
    tcp = postgres_url()
    port = tcp.rsplit(":", 1)[1].split("/")[0]
    socket_dir = os.environ.get("PYTEST_ISOLATE_PG_DIR", "/tmp/pytest-isolate-pg")
    url = f"postgresql://postgres@/postgres?host={socket_dir}&port={port}"
    before = databases(tcp)
    remote_facts = pytester.path / "facts-remote"
    remote_facts.mkdir()
    with two_hosts(hosts_base, SUITE, {"FACTS_DIR": str(remote_facts)}) as hosts:
        result = _remote_run(pytester, hosts, "--isolate-db-url", url, "-k", "test_resources")
        result.assert_outcomes(passed=6)
        _check_provisioned_per_host(hosts, facts(remote_facts), "postgresql")
    names = {str(f["db"]).split("?")[0].rsplit("/", 1)[1] for f in facts(remote_facts)}
    assert len(names) == 2  # one database per worker, on the one server
    assert not names & databases(tcp), "the workers' databases were not dropped"
    # Nothing else of this run's is left either. Other tests running beside this one create
    # and drop databases on the same server: only this run's names (its run id) count.
    ours = tuple({name.rsplit("_", 1)[0] + "_" for name in names})
    assert not [name for name in databases(tcp) - before if name.startswith(ours)]


HANG = """
import ctypes, subprocess
import pytest

def test_before():
    pass

@pytest.mark.isolate_timeout(1)
def test_stuck_in_c_with_a_child():
    subprocess.Popen(["sleep", "61"])
    ctypes.CDLL(None).sleep(30)  # C code: no Python frame to interrupt

@pytest.mark.parametrize("i", range(3))
def test_after(i):
    pass
"""


def test_a_remote_timeout_fails_the_test_with_its_stack_sent_over_execnet(
    pytester: pytest.Pytester, hosts_base: Path
) -> None:
    with two_hosts(hosts_base, {"test_hang.py": HANG}, {}) as hosts:
        result = _remote_run(pytester, hosts, "-rf")
        out = result.stdout.str()
        # The run goes on: every test has exactly one outcome.
        result.assert_outcomes(passed=4, failed=1)
        ports = {str(h.port) for h in hosts}
        assert any(
            f"Timeout: test_hang.py::test_stuck_in_c_with_a_child ran longer than 1s "
            f"(--isolate-timeout or isolate_timeout); its worker gw{n} on 127.0.0.1:{port}" in out
            for n in range(4)
            for port in ports
        ), out
        # The stack, which the worker could only send over execnet (its files are private).
        assert 'test_hang.py", line 11 in test_stuck_in_c_with_a_child' in out
        # The test's child was stopped on its host, while the host lives on.
        for h in hosts:
            left = h.wait_idle()
            assert not any("sleep 61" in cmd for cmd in left.values()), left
            assert left == {}
            assert list(h.tmp.iterdir()) == []
