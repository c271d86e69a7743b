"""Temp dirs: the worker's private temp directory, made the process-wide default.

Input: the worker's directory (under pytest's basetemp, so pytest's retention cleans it).
Output: the ``tmp`` directory inside it, reached through a short link in the user's temp
dir, with ``TMPDIR``/``TEMP``/``TMP`` pointing at the link and ``tempfile.gettempdir()``
returning it, for the tests and every subprocess they start.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path

TEMP_VARIABLES = ("TMPDIR", "TEMP", "TMP")


def make_private_tmp(worker_dir: Path) -> Path:
    tmp = worker_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


#: ``pi-<run id>-<worker id>``: the short links' names, in the user's temp dir.
LINK = re.compile(r"pi-[0-9a-f]{8}-[\w.-]+")


def short_link(tmp: Path, run_id: str, worker_id: str) -> Path:
    """A short path for ``tmp``: a symlink in the user's temp dir, or ``tmp`` itself where
    one cannot be made.

    The directory lives under basetemp (``/tmp/pytest-of-USER/pytest-N/popen-gwK/...``,
    some 50 characters longer than ``/tmp``); AF_UNIX socket paths are limited to 107 bytes,
    and tests nest sockets in ``tempfile.mkdtemp()``. The link keeps TMPDIR about 17
    characters longer than the user's temp dir, shorter than xdist's own worker basetemp.
    Links whose directory is gone (a run killed before it could remove them, and since
    cleaned by pytest's retention) are removed here.
    """
    base = Path(tempfile.gettempdir())
    remove_dangling_links(base)
    link = base / f"pi-{run_id}-{worker_id}"
    try:
        os.symlink(tmp, link, target_is_directory=True)
    except OSError:
        return tmp  # a read-only or foreign temp dir: the long path still works
    return link


def remove_link(path: Path) -> None:
    """Remove ``path`` if it is one of our links (a fallback long path stays: retention's)."""
    if LINK.fullmatch(path.name) and path.is_symlink():
        with contextlib.suppress(OSError):
            path.unlink()


def remove_run_links(run_id: str) -> None:
    """Remove the links of this run's local workers (the controller, at the end)."""
    base = Path(tempfile.gettempdir())
    try:
        names = [name for name in os.listdir(base) if name.startswith(f"pi-{run_id}-")]
    except OSError:
        return
    for name in names:
        path = base / name
        if name.endswith("-cwd") and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)  # a sandbox's working directory
        else:
            remove_link(path)


def remove_dangling_links(base: Path) -> None:
    try:
        names = [name for name in os.listdir(base) if name.startswith("pi-")]
    except OSError:
        return
    for name in names:
        path = base / name
        # os.path.exists: False where another user's directory cannot be reached, too (an
        # unlink of their link then fails, in a sticky /tmp: theirs to remove).
        if path.is_symlink() and not os.path.exists(path):
            remove_link(path)


class Environment:
    """Sets environment variables and puts the old values back at the end."""

    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._saved.setdefault(key, self._environ.get(key))
            self._environ[key] = value
        if any(key in TEMP_VARIABLES for key in values):
            tempfile.tempdir = None  # gettempdir() caches; make it read TMPDIR again

    def set_default(self, values: Mapping[str, str]) -> None:
        """Set only the variables that are not set: the user's values stay."""
        self.set({key: value for key, value in values.items() if key not in self._environ})

    def restore(self) -> None:
        for key, old in self._saved.items():
            if old is None:
                self._environ.pop(key, None)
            else:
                self._environ[key] = old
        self._saved.clear()
        tempfile.tempdir = None
