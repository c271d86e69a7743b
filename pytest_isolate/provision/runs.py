"""Runs: a machine-wide record of live runs, so a killed run's databases are found later.

Input: this run's id and database settings. Output: a record file in the lease directory
while the run lives; at the start of a later run, the databases of runs whose controller is
gone (a ``SIGKILL`` leaves no chance to clean up) are dropped, and the caller says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import database
from .leases import Holder, is_alive, lease_dir, locked, me


@dataclass(frozen=True)
class RunRecord:
    holder: Holder
    db_url: str | None


class RunRegistry:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or lease_dir()) / "runs"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.directory / "runs.lock"

    def register(self, run_id: str, db_url: str | None) -> None:
        record = {"holder": me(run_id, -1)._asdict(), "db_url": db_url}
        with locked(self._lock_path):
            (self.directory / f"{run_id}.json").write_text(json.dumps(record))

    def unregister(self, run_id: str) -> None:
        with locked(self._lock_path):
            (self.directory / f"{run_id}.json").unlink(missing_ok=True)

    def reclaim(self) -> list[str]:
        """Drop the databases of dead runs; returns what was dropped, as ``name`` strings."""
        dropped: list[str] = []
        with locked(self._lock_path):
            for path in sorted(self.directory.glob("*.json")):
                try:
                    data = json.loads(path.read_text())
                    record = RunRecord(Holder(**data["holder"]), data.get("db_url"))
                except (OSError, ValueError, TypeError, KeyError):
                    continue
                if is_alive(record.holder):
                    continue
                if record.db_url:
                    try:
                        dropped += drop_run_databases(record.db_url, record.holder.run_id)
                    except database.DatabaseError:
                        continue  # the server is gone or unreachable: try again next time
                path.unlink(missing_ok=True)
        return dropped


def drop_run_databases(db_url: str, run_id: str) -> list[str]:
    base = database.url_base(db_url)
    names = database.list_run_databases(db_url, base, run_id)
    for name in names:
        database.drop_postgres(database.WorkerDatabase("", name, "postgresql"), db_url)
    return names
