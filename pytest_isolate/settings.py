"""Settings: the run's options, ini keys and environment, read once and validated.

A fault in any of them is a usage error before any test runs (exit 4), naming the option or
key and the fix; never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .provision import database
from .provision.worker import Settings

#: Modes in which pytest runs no test: no leases, no database server, no run record.
_NO_TESTS = (
    "isolate_plan",
    "collectonly",
    "help",
    "showfixtures",
    "show_fixtures_per_test",
    "markers",
    "setupplan",
)


def check_timeline_path(config: pytest.Config) -> None:
    """--isolate-timeline PATH: a directory it can be written in, checked before any test
    runs rather than found out after all of them."""
    raw = config.getoption("isolate_timeline")
    if not raw or hasattr(config, "workerinput"):
        return
    path = Path(config.invocation_params.dir, raw)
    parent = path.parent
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        why = "is a directory" if path.is_dir() else f"cannot be written in {parent}"
        raise pytest.UsageError(
            f"--isolate-timeline {raw}: {why}; give a file path in a writable directory"
        )


def runs_tests(config: pytest.Config) -> bool:
    return not any(getattr(config.option, name, False) for name in _NO_TESTS)


def local_workers(option: Any) -> int:
    """Workers started on this host: ``-n N`` or ``--tx [N*]popen`` (not ``via`` another)."""
    specs = getattr(option, "tx", None) or []
    if getattr(option, "dist", "no") == "no" or not specs:
        return 1
    count = 0
    for spec in specs:
        times, _, rest = str(spec).rpartition("*")
        if rest.startswith("popen") and "via=" not in rest:
            count += int(times) if times.isdigit() else 1
    return max(1, count)


def read_settings(config: pytest.Config) -> Settings:
    """Options, ini keys and environment, validated: a fault is a usage error naming it."""
    raw_size = config.getoption("isolate_ports_per_worker") or config.getini(
        "isolate_ports_per_worker"
    )
    try:
        size = int(raw_size)
    except ValueError:
        size = 0
    if not 1 <= size <= 10000:
        raise pytest.UsageError(
            f"--isolate-ports-per-worker / isolate_ports_per_worker: {raw_size!r} is not a "
            "whole number from 1 to 10000"
        )
    db_url = (
        config.getoption("isolate_db_url")
        or config.getini("isolate_db_url")
        or os.environ.get("PYTEST_ISOLATE_DB_URL")
        or None
    )
    where = "--isolate-db-url"
    # Set only when the user names it: an app's DATABASE_URL is the user's, not ours.
    db_env = config.getini("isolate_db_env").strip()
    if db_env and not db_url and os.environ.get(db_env):
        # It names the server the app uses: the workers' databases are made there.
        db_url, where = os.environ[db_env], f"{db_env} (isolate_db_env)"
    if db_url:
        try:
            database.parse_url(db_url, where)
        except database.DatabaseError as exc:
            if where != "--isolate-db-url":
                raise pytest.UsageError(
                    f"{exc}. isolate_db_env = {db_env} gives each worker its own database "
                    f"through {db_env}, made on the PostgreSQL server it names; unset {db_env}, "
                    "point it at a PostgreSQL server, or remove isolate_db_env"
                ) from exc
            raise pytest.UsageError(str(exc)) from exc
    return Settings(
        ports_per_worker=size,
        db_url=db_url,
        db_template=config.getoption("isolate_db_template"),
        keep_db=config.getoption("isolate_keep_db"),
        db_env=db_env,
        sandbox=bool(config.getoption("isolate_sandbox") or config.getini("isolate_sandbox")),
    )
