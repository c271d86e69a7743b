"""Two users on one host: one user's run killed with SIGKILL never stops another user's.

Needs root (to act as root and as ``nobody``) and a system Python of the same minor version
as the one running the tests; skipped elsewhere.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_isolate.provision.leases import Leases

SYSTEM_PYTHON = Path("/usr/bin/python3")

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as two users"
)

SUITE = """
import os, time

def test_ports(isolate_ports, isolate_worker):
    assert isolate_ports.take(1)
    assert isolate_worker.tmp_path.is_dir()
    time.sleep(float(os.environ.get("HOLD", "0")))

def test_more(isolate_ports):
    assert isolate_ports.take(1)
    time.sleep(float(os.environ.get("HOLD", "0")))
"""

PACKAGES = ("pytest", "_pytest", "py", "pluggy", "xdist", "execnet", "iniconfig", "packaging")
DISTRIBUTIONS = (
    ("pytest", "pytest"),
    ("pytest-xdist", "xdist"),
    ("pytest-isolate", "pytest_isolate"),
    ("pluggy", "pluggy"),
    ("execnet", "execnet"),
)


def _same_minor(python: Path) -> bool:
    found = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() == str(sys.version_info[:2])


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user can reach (pytest's own temp dirs are private to root)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as outside:
        path = Path(outside)
        path.chmod(0o755)
        yield path


def _installed_for_others(into: Path) -> Path:
    """The packages the tests need, readable by another user (the venv may not be)."""
    site = into / "site"
    site.mkdir()
    for name in (*PACKAGES, "filelock", "pytest_isolate"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        source = Path(module.__file__ or "")
        if source.name == "__init__.py":
            shutil.copytree(source.parent, site / source.parent.name)
        else:
            shutil.copy(source, site / source.name)
    for name, module_name in DISTRIBUTIONS:  # the entry points that autoload the plugins
        installed_in = Path(importlib.import_module(module_name).__file__ or "").parents[1]
        for dist_info in installed_in.glob(f"{name.replace('-', '_')}-*.dist-info"):
            shutil.copytree(dist_info, site / dist_info.name)
    for path in [site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return site


def test_a_run_killed_by_one_user_never_stops_another_users_pytest(shared: Path) -> None:
    if not SYSTEM_PYTHON.exists() or not _same_minor(SYSTEM_PYTHON):
        pytest.skip(f"no {SYSTEM_PYTHON} of Python {sys.version_info[:2]} for another user")
    leases = shared / "leases"  # as the default lease dir, shared by every user
    temp = shared / "tmp"  # the users' common temp dir, as /tmp is
    temp.mkdir()
    temp.chmod(0o1777)
    project = shared / "project"
    project.mkdir()
    (project / "test_shared.py").write_text(SUITE)
    project.chmod(0o777)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTEST_ISOLATE_LEASE_DIR": str(leases),
        "TMPDIR": str(temp),
    }

    # Root's run: both workers hold their port blocks, and the whole run is killed.
    killed = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "isolate", "-n", "2", "-p", "no:cacheprovider"],
        cwd=project,
        env={**os.environ, **env, "HOLD": "60"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(leases.glob("ports-*.lease"))) < 2:
            assert time.monotonic() < deadline, "root's workers never leased their blocks"
            assert killed.poll() is None, "root's run ended before it was killed"
            time.sleep(0.1)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    left = sorted(p.name for p in leases.glob("ports-*.lease"))
    assert len(left) == 2  # stale, root's, and not removable by nobody (sticky directory)

    site = _installed_for_others(shared)
    for workers in ([], ["-n", "2"]):
        done = subprocess.run(
            [str(SYSTEM_PYTHON), "-m", "pytest", "-p", "isolate", *workers, "-rA"],
            cwd=project,
            env={**env, "PYTHONPATH": str(site), "HOME": str(project)},
            user="nobody",
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        assert "2 passed" in out
        assert "INTERNALERROR" not in out and "Traceback" not in out
    # nobody wrote over root's dead leases (the files are 0o666) and released them, though
    # it could not remove them: nothing is held now.
    assert Leases("ports", leases).live() == []
    assert len(list(leases.glob("ports-*.lease"))) >= 2
