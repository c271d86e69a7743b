"""Unit tests for pytest_isolate.provision.database, against a real throwaway PostgreSQL server.

Every test that creates databases uses its own run id (a uuid) and checks at teardown that
nothing of its run is left on the server.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pytest_isolate.provision.database import (
    DatabaseError,
    WorkerDatabase,
    _template_lock_key,
    check_server,
    create_postgres,
    database_name,
    drop_postgres,
    list_run_databases,
    mask_url,
    parse_url,
    sqlite_database,
    url_base,
)
from tests.postgres import postgres_url

# --- database_name (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "run_id", "slot", "expected"),
    [
        ("test", "ab12", 0, "test_ab12_0"),
        ("myapp", "r1", 17, "myapp_r1_17"),
        ("MyApp", "R1", 3, "myapp_r1_3"),
        ("my-app.db", "x", 1, "my_app_db_x_1"),
        ("café", "x", 1, "caf__x_1"),
        ("日本", "x", 0, "db____x_0"),
        ("9lives", "x", 0, "db_9lives_x_0"),
        ("", "x", 0, "test_x_0"),
        ("a b;drop", "id-1", 2, "a_b_drop_id_1_2"),
    ],
)
def test_database_name_table(base: str, run_id: str, slot: int, expected: str) -> None:
    assert database_name(base, run_id, slot) == expected


@pytest.mark.parametrize(
    ("base", "run_id"),
    [("x" * 200, "0123abcd"), ("é" * 200, "r"), ("app", "r" * 200), ("b" * 100, "r" * 100)],
)
def test_database_name_is_short_valid_and_deterministic(base: str, run_id: str) -> None:
    for slot in (0, 7, 99, 999_999):
        name = database_name(base, run_id, slot)
        assert len(name.encode()) <= 63
        assert name[0].isalpha()
        assert all(c.isascii() and (c.isalnum() or c == "_") and not c.isupper() for c in name)
        assert name.endswith(f"_{slot}")
        assert database_name(base, run_id, slot) == name


def test_long_bases_differing_only_at_the_end_stay_distinct() -> None:
    one = database_name("a" * 199 + "1", "run", 0)
    two = database_name("a" * 199 + "2", "run", 0)
    assert one != two
    assert len(one) <= 63 and len(two) <= 63
    # and so do long run ids differing only at the end
    assert database_name("app", "r" * 99 + "1", 0) != database_name("app", "r" * 99 + "2", 0)


def test_database_name_keeps_one_prefix_for_every_slot() -> None:
    base = "b" * 60
    names = [database_name(base, "run", slot) for slot in (0, 10, 123456)]
    prefixes = {name.rsplit("_", 1)[0] for name in names}
    assert len(prefixes) == 1


@pytest.mark.parametrize("slot", [-1, 10**6])
def test_database_name_rejects_bad_slots(slot: int) -> None:
    with pytest.raises(ValueError, match="slot"):
        database_name("test", "r", slot)


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("mysql://u@h/db", "unsupported scheme 'mysql'"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("postgresql:///db", "names no host"),
        ("postgresql://", "names no host"),
        ("localhost:5432/db", "unsupported scheme"),
        ("postgresql://h:notaport/db", "not a valid URL"),
    ],
)
def test_parse_url_rejects(url: str, fault: str) -> None:
    with pytest.raises(DatabaseError, match="--isolate-db-url") as info:
        parse_url(url)
    assert fault in str(info.value)


def test_parse_url_masks_the_password_in_errors() -> None:
    with pytest.raises(DatabaseError) as info:
        parse_url("mysql://me:s3cret@h/db")
    assert "s3cret" not in str(info.value)
    assert "me:***@h" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db.example:5433/app?sslmode=require",
        "postgres://localhost/app",
        "postgresql:///app?host=/var/run/postgresql",
    ],
)
def test_parse_url_accepts(url: str) -> None:
    assert parse_url(url).scheme in ("postgresql", "postgres")


def test_parse_url_keeps_every_part() -> None:
    parts = parse_url("postgresql://u:p%40ss@db.example:5433/app?sslmode=require")
    assert (parts.username, parts.password, parts.hostname, parts.port) == (
        "u",
        "p%40ss",
        "db.example",
        5433,
    )
    assert parts.query == "sslmode=require"


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("postgresql://h/app", "app"),
        ("postgresql://h/postgres", "test"),
        ("postgresql://h", "test"),
        ("postgresql://h/", "test"),
    ],
)
def test_url_base(url: str, base: str) -> None:
    assert url_base(url) == base


def test_mask_url() -> None:
    assert mask_url("postgresql://u:pw@h:1/db?x=1") == "postgresql://u:***@h:1/db?x=1"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_sqlite_database(tmp_path: Path) -> None:
    db = sqlite_database(tmp_path)
    assert db == WorkerDatabase(
        url=f"sqlite:///{tmp_path}/db.sqlite3",
        name="db.sqlite3",
        backend="sqlite",
        path=tmp_path / "db.sqlite3",
    )
    assert db.path is not None and db.path.is_absolute()


# --- against the server -----------------------------------------------------------------------


def _all_databases(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


@dataclass
class Run:
    """One test's run on the server: its admin URL and unique run id."""

    url: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def leftovers(self) -> set[str]:
        return {name for name in _all_databases(self.url) if self.run_id in name}

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.url, autocommit=True)


@pytest.fixture
def run() -> Iterator[Run]:
    run = Run(postgres_url())
    yield run
    with run.admin() as conn:
        for name in run.leftovers():
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    assert run.leftovers() == set()


def _make_template(run: Run) -> str:
    """A template database of the run with a table and one row."""
    name = f"tpl_{run.run_id}"
    with run.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(run.url, dbname=name, autocommit=True) as conn:
        conn.execute("CREATE TABLE fruit (name text)")
        conn.execute("INSERT INTO fruit VALUES ('apple')")
    return name


def _fruit(db: WorkerDatabase) -> list[str]:
    with psycopg.connect(db.url) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM fruit ORDER BY name")]


def test_check_server_accepts_the_test_server() -> None:
    check_server(postgres_url())


def test_check_server_unreachable_is_fast_and_masks_the_password() -> None:
    start = time.monotonic()
    with pytest.raises(DatabaseError) as info:
        check_server("postgresql://me:s3cret@127.0.0.1:1/db", timeout=2)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "postgresql://me:***@127.0.0.1:1/db" in message
    assert "s3cret" not in message
    assert "\n" not in message


def test_check_server_bad_user() -> None:
    url = postgres_url().replace("postgres@", "nobody_here@", 1)
    with pytest.raises(DatabaseError, match="nobody_here"):
        check_server(url)


def test_create_and_drop_round_trip(run: Run) -> None:
    db = create_postgres(run.url, run.run_id, 3)
    assert db.backend == "postgresql"
    assert db.name == database_name("test", run.run_id, 3)
    assert db.path is None
    assert db.name in _all_databases(run.url)
    with psycopg.connect(db.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (db.name,)
    assert list_run_databases(run.url, "test", run.run_id) == [db.name]
    drop_postgres(db, run.url)
    assert db.name not in _all_databases(run.url)
    assert list_run_databases(run.url, "test", run.run_id) == []


def test_created_url_keeps_server_user_and_query(run: Run) -> None:
    url = postgres_url().rsplit("/", 1)[0] + "/myapp?application_name=isolate_test"
    db = create_postgres(url, run.run_id, 0)
    assert db.name.startswith("myapp_")
    head, _, tail = db.url.partition(f"/{db.name}")
    assert head == url.partition("/myapp")[0]
    assert tail == "?application_name=isolate_test"
    with psycopg.connect(db.url) as conn:
        assert conn.execute("SHOW application_name").fetchone() == ("isolate_test",)
    drop_postgres(db, url)


def test_drop_of_a_dropped_database_is_fine(run: Run) -> None:
    db = create_postgres(run.url, run.run_id, 0)
    drop_postgres(db, run.url)
    drop_postgres(db, run.url)
    never = WorkerDatabase(url="", name=database_name("test", run.run_id, 9), backend="postgresql")
    drop_postgres(never, run.url)


def test_drop_kicks_out_open_sessions(run: Run) -> None:
    db = create_postgres(run.url, run.run_id, 0)
    with psycopg.connect(db.url) as conn:
        drop_postgres(db, run.url)
        assert db.name not in _all_databases(run.url)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")


def test_recreating_a_slot_starts_clean(run: Run) -> None:
    db = create_postgres(run.url, run.run_id, 1)
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE leftover (x int)")
        # a crashed worker's session may still be open: the new one must get through anyway
        again = create_postgres(run.url, run.run_id, 1)
    assert again == db
    with psycopg.connect(again.url) as conn:
        assert conn.execute("SELECT to_regclass('leftover')").fetchone() == (None,)
    drop_postgres(again, run.url)


def test_template_clones_concurrently(run: Run) -> None:
    template = _make_template(run)
    barrier = threading.Barrier(4)

    def clone(slot: int) -> WorkerDatabase:
        barrier.wait()
        return create_postgres(run.url, run.run_id, slot, template=template)

    with ThreadPoolExecutor(4) as pool:
        dbs = list(pool.map(clone, range(4)))
    assert len({db.name for db in dbs}) == 4
    for db in dbs:
        assert _fruit(db) == ["apple"]
    assert list_run_databases(run.url, "test", run.run_id) == sorted(db.name for db in dbs)
    for db in dbs:
        drop_postgres(db, run.url)
    assert list_run_databases(run.url, "test", run.run_id) == []


def test_clone_waits_for_the_template_lock(run: Run) -> None:
    template = _make_template(run)
    key = _template_lock_key(template)
    assert key == _template_lock_key(template)
    assert -(2**63) <= key < 2**63
    with run.admin() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(create_postgres, run.url, run.run_id, 0, template)
            time.sleep(0.5)
            assert not future.done()  # held back by our lock
            holder.execute("SELECT pg_advisory_unlock(%s)", (key,))
            db = future.result(timeout=30)
    assert _fruit(db) == ["apple"]
    drop_postgres(db, run.url)


def test_missing_template_is_a_clear_error(run: Run) -> None:
    missing = f"no_such_template_{run.run_id}"
    with pytest.raises(DatabaseError, match=f"template database '{missing}' does not exist"):
        create_postgres(run.url, run.run_id, 0, template=missing)
    assert list_run_databases(run.url, "test", run.run_id) == []


def test_template_in_use_is_a_clear_error(run: Run) -> None:
    template = _make_template(run)
    with (
        psycopg.connect(run.url, dbname=template),
        pytest.raises(DatabaseError, match="is in use"),
    ):
        create_postgres(run.url, run.run_id, 0, template=template)


def test_list_run_databases_sees_only_this_run(run: Run) -> None:
    other = Run(run.url, run_id=run.run_id + "x")  # a run id that extends ours
    mine = [create_postgres(run.url, run.run_id, slot) for slot in (0, 2, 10)]
    theirs = create_postgres(run.url, other.run_id, 0)
    try:
        assert list_run_databases(run.url, "test", run.run_id) == sorted(d.name for d in mine)
        assert list_run_databases(run.url, "test", other.run_id) == [theirs.name]
        assert list_run_databases(run.url, "other", run.run_id) == []
    finally:
        for db in [*mine, theirs]:
            drop_postgres(db, run.url)
    assert list_run_databases(run.url, "test", run.run_id) == []


def test_long_base_round_trip(run: Run) -> None:
    url = postgres_url().rsplit("/", 1)[0] + "/" + "a" * 100
    db = create_postgres(url, run.run_id, 5)
    assert len(db.name) <= 63
    assert db.name in _all_databases(run.url)
    assert list_run_databases(run.url, "a" * 100, run.run_id) == [db.name]
    drop_postgres(db, run.url)
    assert list_run_databases(run.url, "a" * 100, run.run_id) == []


def test_errors_mask_the_password(run: Run) -> None:
    url = postgres_url().replace("postgres@", "postgres:hunter2@", 1)
    with pytest.raises(DatabaseError) as info:
        create_postgres(url, run.run_id, 0, template=f"missing_{run.run_id}")
    assert "hunter2" not in str(info.value)
    assert "postgres:***@" in str(info.value)
