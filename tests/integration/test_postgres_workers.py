"""Per-worker PostgreSQL databases on a real server: created, cloned, used, dropped."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from pytest_isolate.provision.database import list_run_databases, url_base
from tests.postgres import databases, postgres_url

SUITE = """
import json, os, time
import psycopg
import pytest

@pytest.mark.parametrize("i", range(6))
def test_own_database(i, isolate_db, isolate_worker):
    assert isolate_db.backend == "postgresql"
    assert os.environ["DATABASE_URL"] == isolate_db.url
    with psycopg.connect(isolate_db.url, autocommit=True) as conn:
        # Every worker creates the same table: only a private database makes that safe.
        conn.execute("CREATE TABLE IF NOT EXISTS t (worker text, i int)")
        conn.execute("INSERT INTO t VALUES (%s, %s)", (isolate_worker.id, i))
        workers = {w for (w,) in conn.execute("SELECT worker FROM t")}
        seeded = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'seed'").fetchone()[0]
        name = conn.execute("SELECT current_database()").fetchone()[0]
    assert workers == {isolate_worker.id}
    assert name == isolate_db.name
    with open(os.path.join(os.environ["RECORD_DIR"], f"{isolate_worker.id}-{i}"), "w") as f:
        json.dump({"name": name, "slot": isolate_worker.slot, "seeded": seeded,
                   "run_id": isolate_worker.run_id}, f)
    time.sleep(0.1)
"""


@pytest.fixture
def server() -> str:
    return postgres_url()


@pytest.fixture
def run_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = pytester.path / "_records"
    out.mkdir()
    monkeypatch.setenv("RECORD_DIR", str(out))
    pytester.makepyfile(test_pg=SUITE)
    # The suite reads its database from DATABASE_URL: it says so (nothing else sets it).
    pytester.makeini("[pytest]\nisolate_db_env = DATABASE_URL\n")
    return out


def rows(out: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in out.iterdir()]


def test_every_worker_gets_its_own_database_dropped_at_the_end(
    pytester: pytest.Pytester, run_dir: Path, server: str
) -> None:
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "3", "--isolate-db-url", server)
    result.assert_outcomes(passed=6)
    seen = rows(run_dir)
    names = {str(r["name"]) for r in seen}
    assert len(names) == len({r["slot"] for r in seen}) >= 2
    assert all(len(name.encode()) <= 63 for name in names)
    (run_id,) = {str(r["run_id"]) for r in seen}
    assert all(run_id in name for name in names)
    # Other tests may create databases on the same server meanwhile: look at this run's only.
    assert list_run_databases(server, url_base(server), run_id) == []
    assert not names & databases(server), "a worker database was left on the server"


@pytest.mark.parametrize("workers", [["-n", "2"], []], ids=["n2", "in-process"])
def test_a_database_url_naming_a_server_gets_the_workers_databases_there(
    pytester: pytest.Pytester,
    run_dir: Path,
    server: str,
    monkeypatch: pytest.MonkeyPatch,
    workers: list[str],
) -> None:
    # A CI job's DATABASE_URL names its PostgreSQL service; the suite asked for
    # isolate_db_env = DATABASE_URL (run_dir's ini): each worker's database is made on that
    # server, and DATABASE_URL holds it in the worker.
    monkeypatch.setenv("DATABASE_URL", server)
    result = pytester.runpytest_subprocess("-p", "isolate", *workers)
    result.assert_outcomes(passed=6)
    seen = rows(run_dir)
    names = {str(r["name"]) for r in seen}
    assert len(names) == len({r["slot"] for r in seen})
    assert server.rsplit("/", 1)[1] not in names  # never the app's own database
    assert not names & databases(server), "a worker database was left on the server"


def test_a_database_url_that_is_no_postgresql_server_is_a_usage_error(
    pytester: pytest.Pytester, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///dev.db")
    result = pytester.runpytest_subprocess("-p", "isolate", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*DATABASE_URL (isolate_db_env)*unsupported scheme 'sqlite'*unset DATABASE_URL*"]
    )
    assert not (pytester.path / "dev.db").exists()


def test_databases_clone_the_template_and_can_be_kept(
    pytester: pytest.Pytester, run_dir: Path, server: str
) -> None:
    template = f"tmpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{template}"')
    try:
        with psycopg.connect(server.rsplit("/", 1)[0] + f"/{template}", autocommit=True) as conn:
            conn.execute("CREATE TABLE seed (x int)")
        result = pytester.runpytest_subprocess(
            "-p",
            "isolate",
            "-n",
            "2",
            "--isolate-db-url",
            server,
            "--isolate-db-template",
            template,
            "--isolate-keep-db",
        )
        result.assert_outcomes(passed=6)
        seen = rows(run_dir)
        assert {r["seeded"] for r in seen} == {1}
        kept = {str(r["name"]) for r in seen}
        assert kept <= databases(server), "--isolate-keep-db dropped a database"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            for name in {str(r["name"]) for r in rows(run_dir)} | {template}:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_unreachable_server_is_one_clear_error(pytester: pytest.Pytester, run_dir: Path) -> None:
    result = pytester.runpytest_subprocess(
        "-p", "isolate", "-n", "2", "--isolate-db-url", "postgresql://nobody@127.0.0.1:1/app"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "127.0.0.1:1" in result.stderr.str()
    assert rows(run_dir) == []


def test_bad_url_is_a_usage_error(pytester: pytest.Pytester, run_dir: Path) -> None:
    result = pytester.runpytest_subprocess("-p", "isolate", "--isolate-db-url", "mysql://x/y")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--isolate-db-url" in result.stderr.str()
