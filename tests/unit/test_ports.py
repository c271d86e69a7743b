"""Port pool, blocks and machine-wide leases, with real sockets and real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from pytest_isolate.provision.leases import Holder, Leases, is_alive, locked, me, process_start
from pytest_isolate.provision.ports import (
    PortBlock,
    PortsError,
    blocks_in,
    lease_block,
    port_pool,
    read_ephemeral_range,
)


@pytest.mark.parametrize(
    ("ephemeral", "expected"),
    [
        pytest.param((32768, 60999), range(10000, 32768), id="linux-default"),
        pytest.param((1024, 20000), range(20001, 65536), id="low-ephemeral-uses-above"),
        pytest.param((49152, 65535), range(10000, 49152), id="iana"),
        pytest.param(None, range(10000, 32768), id="unknown"),
    ],
)
def test_pool_avoids_the_ephemeral_range(
    ephemeral: tuple[int, int] | None, expected: range
) -> None:
    assert port_pool(ephemeral) == expected


def test_ephemeral_range_is_read_from_proc(tmp_path: Path) -> None:
    path = tmp_path / "range"
    path.write_text("40000\t50000\n")
    assert read_ephemeral_range(path) == (40000, 50000)
    assert read_ephemeral_range(tmp_path / "missing") is None


def test_blocks_tile_the_pool_without_overlap() -> None:
    blocks = blocks_in(range(10000, 10250), 100)
    assert blocks == [range(10000, 10100), range(10100, 10200)]


def test_take_gives_distinct_bindable_ports_and_walks_the_block() -> None:
    block = PortBlock(*_free_span(20), worker="gw7")
    first = block.take(3)
    second = block.take(3)
    assert len(set(first + second)) == 6
    assert all(port in block for port in first + second)
    for port in first:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_take_skips_a_port_in_use_and_says_when_the_block_runs_out() -> None:
    start, stop = _free_span(3)
    block = PortBlock(start, stop, worker="gw1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", start + 1))
        busy.listen()
        assert block.take(2) == [start, start + 2]
        with pytest.raises(PortsError, match=rf"worker gw1: only 2 of the 3 .* {start}-{stop}"):
            block.take(3)


def test_leases_never_overlap_and_are_released(tmp_path: Path) -> None:
    leases = Leases("ports", tmp_path)
    spans = blocks_in(range(10000, 10300), 100)
    a = leases.acquire(spans, me("run-a", 0))
    b = leases.acquire(spans, me("run-b", 0))
    assert a is not None and b is not None
    assert a[0] != b[0]
    # A run asking for a different block size still avoids both.
    c = leases.acquire(blocks_in(range(10000, 10300), 150), me("run-c", 0))
    assert c is None  # both 150-blocks overlap a live 100-block
    leases.release(a[0], me("run-a", 0))
    assert a[0].start not in leases.held()


def test_lease_of_a_killed_process_is_reclaimed(tmp_path: Path) -> None:
    """A process leases a block and is killed with SIGKILL: the next one gets the block."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from pytest_isolate.provision.leases import Leases, me
        from pytest_isolate.provision.ports import blocks_in
        got = Leases("ports", Path({str(tmp_path)!r})).acquire(
            blocks_in(range(10000, 10100), 100), me("dead-run", 3))
        print(got[0].start, flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "10000"
    leases = Leases("ports", tmp_path)
    assert leases.acquire(blocks_in(range(10000, 10100), 100), me("live", 0)) is None
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()  # reaps it and closes its pipe
    got = leases.acquire(blocks_in(range(10000, 10100), 100), me("live", 0))
    assert got is not None
    span, reclaimed = got
    assert span == range(10000, 10100)
    assert [(h.pid, h.run_id, h.slot) for h in reclaimed] == [(child.pid, "dead-run", 3)]


def test_replacement_worker_gets_its_predecessors_block(tmp_path: Path) -> None:
    leases = Leases("ports", tmp_path)
    spans = blocks_in(range(10000, 10400), 100)
    dead = Holder(pid=_dead_pid(), started="1", run_id="r", slot=2)
    leases._write(range(10200, 10300), dead)
    got = leases.acquire(spans, me("r", 2))
    assert got is not None and got[0] == range(10200, 10300)


def test_a_reused_pid_is_not_mistaken_for_the_holder() -> None:
    started = process_start(os.getpid())
    assert started
    assert is_alive(Holder(os.getpid(), started, "r", 0))
    assert not is_alive(Holder(os.getpid(), started + "0", "r", 0))
    assert not is_alive(Holder(_dead_pid(), "1", "r", 0))


# Each process enters the locked block five times and exclusive-creates a marker there: a
# second process inside at the same moment finds the marker and fails.
ONE_AT_A_TIME = """
import os, sys, time
from pathlib import Path
from pytest_isolate.provision.leases import locked
directory = Path(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
for _ in range(5):
    with locked(directory / "ports.lock"):
        fd = os.open(directory / "inside", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        time.sleep(0.01)
        os.close(fd)
        os.unlink(directory / "inside")
"""


def test_the_lease_lock_admits_one_process_at_a_time(tmp_path: Path) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", ONE_AT_A_TIME, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        for child in children:  # all started and importing done: they contend from here
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        errors = [child.communicate(timeout=60)[1] for child in children]
    finally:
        for child in children:  # a failed start must not leave the others waiting on stdin
            child.kill()
            child.wait()
    assert [child.returncode for child in children] == [0] * 6, errors


def test_the_lease_lock_refuses_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim.chmod(0o600)
    (tmp_path / "ports.lock").symlink_to(victim)
    with pytest.raises(OSError, match=r"ports\.lock"):
        Leases("ports", tmp_path).acquire(blocks_in(range(10000, 10100), 100), me("r", 0))
    assert victim.read_text() == "precious"
    assert victim.stat().st_mode & 0o777 == 0o600  # not chmod-ed through the link either


def test_the_lease_lock_is_usable_by_other_users_despite_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with locked(tmp_path / "ports.lock"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "ports.lock").stat().st_mode & 0o777 == 0o666


def test_lease_block_uses_the_real_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_ISOLATE_LEASE_DIR", str(tmp_path))
    holder = me("run", 0)
    block = lease_block(25, holder, "gw0")
    assert len(block) == 25
    ephemeral = read_ephemeral_range()
    if ephemeral:
        assert block.stop <= ephemeral[0] or block.start > ephemeral[1]
    with pytest.raises(PortsError, match="larger than the port pool"):
        lease_block(60000, holder, "gw0")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _free_span(size: int) -> tuple[int, int]:
    """A run of ``size`` ports that are all bindable now, from the pool."""
    for start in range(23000, 32000, size):
        if all(_bindable(port) for port in range(start, start + size)):
            return start, start + size
    raise RuntimeError("no free span")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


ANOTHER_USER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from pytest_isolate.provision.leases import Leases, me
    leases = Leases("ports", Path(sys.argv[1]))
    freed = leases.reclaim()
    got = leases.acquire([range(10000, 10050), range(10050, 10100), range(10100, 10150)],
                         me("theirs", 0))
    print(json.dumps({"freed": [h.run_id for _, h in freed], "got": got and got[0].start}))
    """
)


def _reachable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in path.parents if p != Path("/"))


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as two users"
)
def test_another_users_dead_leases_never_stop_a_run() -> None:
    """One user's run was killed (SIGKILL) and left its leases in the shared, sticky lease
    directory; another user cannot remove them. Their pytest must still get a block: the
    dead lease it can write over is reused, the one it cannot is skipped."""
    # Where the other user can reach it (pytest's own temp dirs are private to root).
    with tempfile.TemporaryDirectory(dir="/tmp") as outside:
        _another_user_takes_a_block(Path(outside) / "leases")


def _another_user_takes_a_block(shared: Path) -> None:
    shared.mkdir()
    shared.parent.chmod(0o755)
    shared.chmod(0o1777)  # as lease_dir() makes it: shared by every user, sticky
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    ghost = Holder(int(dead.stdout), "1", "killed-run", 0)
    for slot, start in enumerate((10000, 10050)):
        lease = shared / f"ports-{start}.lease"
        holder = ghost._replace(slot=slot)._asdict()
        lease.write_text(json.dumps({"start": start, "stop": start + 50, "holder": holder}))
        lease.chmod(0o644 if start == 10000 else 0o666)  # 10000: not writable by others
    (shared / "ports.lock").touch()
    (shared / "ports.lock").chmod(0o666)  # as locked() leaves it
    import pytest_isolate

    source = Path(pytest_isolate.__file__).resolve().parents[1]
    if not Path("/usr/bin/python3").exists() or not _reachable_by_others(source / "x"):
        pytest.skip("no system python3, or the package is not readable by another user here")
    done = subprocess.run(
        ["/usr/bin/python3", "-c", ANOTHER_USER, str(shared)],
        env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"},
        user="nobody",
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # Neither file could be removed: nothing counts as freed, and nothing raised.
    assert result["freed"] == []
    # 10000 is skipped (not writable); 10050 is written over and reused.
    assert result["got"] == 10050
    assert sorted(p.name for p in shared.glob("*.lease")) == [
        "ports-10000.lease",
        "ports-10050.lease",
    ]
