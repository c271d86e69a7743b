"""Headless Chromium for tests that look at rendered pages (the ``--isolate-timeline`` HTML).

``chromium()`` finds Debian's ``/usr/bin/chromium`` and, when it is missing and we run as root,
installs it with apt; the install is serialized across processes (xdist workers, parallel
sessions) with a file lock. ``render()`` screenshots a page and dumps its DOM after scripts ran.
Nothing here skips: a missing browser that cannot be installed is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pytest_isolate.provision.leases import locked

CHROMIUM = "/usr/bin/chromium"
LOCK = "/tmp/pytest-isolate-chromium.lock"
WINDOW = (1200, 600)
TIMEOUT = 60.0
INSTALL_TIMEOUT = 900.0

_found: str | None = None


def _existing() -> str | None:
    for candidate in (CHROMIUM, shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _apt(*args: str) -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        proc = subprocess.run(
            ["apt-get", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"apt-get {' '.join(args)} timed out:\n{exc.stdout!r}") from exc
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"apt-get {' '.join(args)} failed ({proc.returncode}):\n{output}")
    return output


def chromium() -> str:
    """The path of a headless-capable Chromium, installing Debian's package if needed."""
    global _found
    if _found is not None:
        return _found
    path = _existing()
    if path is None:
        if os.geteuid() != 0:
            raise RuntimeError(f"no Chromium at {CHROMIUM} and not root, so cannot install it")
        # No timeout of its own: the holder's apt-get runs under INSTALL_TIMEOUT.
        with locked(Path(LOCK)):
            path = _existing()  # another process may have installed it while we waited
            if path is None:
                _apt("update", "-qq")
                output = _apt("install", "-y", "-qq", "chromium")
                path = _existing()
                if path is None:
                    raise RuntimeError(f"apt-get installed no Chromium:\n{output}")
    _found = path
    return path


def _run_chromium(
    html: Path, *extra: str, size: tuple[int, int] = WINDOW
) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="pytest-isolate-chromium-") as profile:
        cmd = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            *extra,
            html.resolve().as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"chromium timed out after {TIMEOUT} s: {cmd}") from exc
    if proc.returncode != 0:
        raise RuntimeError(
            f"chromium failed ({proc.returncode}): {cmd}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def render(
    html_path: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    dom: bool = True,
    size: tuple[int, int] = WINDOW,
) -> str:
    """Screenshot ``html_path`` into ``out_png`` at window ``size``; return the DOM after its
    scripts ran, or "" if not ``dom``. With ``dom``, an uncaught JavaScript error on the page
    raises RuntimeError. Each Chromium run gets a fresh profile, so parallel calls do not
    collide."""
    html, png = Path(html_path), Path(out_png)
    png.unlink(missing_ok=True)
    budget = "--virtual-time-budget=2000"  # let the page's script run before the capture
    proc = _run_chromium(html, f"--screenshot={png.resolve()}", budget, size=size)
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot {png}:\n{proc.stdout}\n{proc.stderr}")
    if not dom:
        return ""
    proc = _run_chromium(html, "--dump-dom", budget, "--enable-logging=stderr", "--v=0", size=size)
    errors = [
        line for line in proc.stderr.splitlines() if ":CONSOLE" in line and "Uncaught" in line
    ]
    if errors:
        raise RuntimeError("JavaScript errors in " + str(html) + ":\n" + "\n".join(errors))
    return proc.stdout
