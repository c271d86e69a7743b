"""Temp dirs: the worker's private temp directory, made the process-wide default.

Input: the worker's directory (under pytest's basetemp, so pytest's retention cleans it).
Output: the ``tmp`` directory inside it, with ``TMPDIR``/``TEMP``/``TMP`` pointing at it and
``tempfile.gettempdir()`` returning it, for the tests and every subprocess they start.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path

TEMP_VARIABLES = ("TMPDIR", "TEMP", "TMP")


def make_private_tmp(worker_dir: Path) -> Path:
    tmp = worker_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


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
