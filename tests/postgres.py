"""A real PostgreSQL server for the tests: ``scripts/postgres start``, once per process.

Never skips: tests that need the server fail loudly when it cannot be started.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres"


@functools.cache
def postgres_url() -> str:
    """Start (or find) the throwaway server and return its URL; raise RuntimeError with the
    script's stderr when that fails."""
    try:
        proc = subprocess.run(
            [str(SCRIPT), "start"],
            capture_output=True,
            text=True,
            timeout=600,  # a fresh machine may first apt-get install postgresql
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{SCRIPT} start failed: {exc}") from exc
    url = proc.stdout.strip()
    if proc.returncode != 0 or not url:
        raise RuntimeError(
            f"{SCRIPT} start failed (exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    return url


def databases(url: str) -> set[str]:
    """The names of every database on the server behind ``url``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}
