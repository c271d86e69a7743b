"""Per-worker databases: a SQLite file, or a database of its own on a PostgreSQL server.

Input: the worker's directory (SQLite), or the ``--isolate-db-url`` of a PostgreSQL server plus
the run id, the worker's slot and an optional template database name.
Output: a frozen :class:`WorkerDatabase` (``url``, ``name``, ``backend``) for the worker, created
on the server; :func:`drop_postgres` removes it again. Every fault is a :class:`DatabaseError`
with a one-line, user-facing message (passwords masked).

No pytest here. psycopg 3 is an optional dependency, imported only when PostgreSQL is used.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

MAINTENANCE_DB = "postgres"
DEFAULT_BASE = "test"
_MAX_NAME = 63  # PostgreSQL's NAMEDATALEN - 1, in bytes
_SLOT_DIGITS = 6  # room kept for the slot, so a run's prefix is the same for every slot
_MAX_PREFIX = _MAX_NAME - _SLOT_DIGITS
_HASH_LEN = 10
_ODD = re.compile(r"[^a-z0-9_]")
_INSTALL_HINT = "pip install 'pytest-isolate[postgres]'"


class DatabaseError(Exception):
    """A clear, user-facing message."""


class WorkerDatabase(NamedTuple):
    url: str  # what the tests connect to
    name: str  # the database name (sqlite: the file name)
    backend: str  # "sqlite" or "postgresql"
    path: Path | None = None  # sqlite file, else None


def _clean(text: str) -> str:
    return _ODD.sub("_", text.lower())


def _run_prefix(base: str, run_id: str) -> str:
    """``<base>_<run_id>_``, at most ``_MAX_PREFIX`` bytes whatever the slot.

    When too long, base (and if need be run_id) is cut and a hash of both full inputs is put in
    between, so distinct inputs keep distinct prefixes.
    """
    b = _clean(base) or DEFAULT_BASE
    if not b[0].isalpha():
        b = "db_" + b
    r = _clean(run_id)
    prefix = f"{b}_{r}_"
    if len(prefix) <= _MAX_PREFIX:
        return prefix
    import hashlib  # only for long names: loading OpenSSL costs every process ~0.5 ms

    digest = hashlib.sha256(f"{base}\0{run_id}".encode()).hexdigest()[:_HASH_LEN]
    room = _MAX_PREFIX - _HASH_LEN - 3  # three underscores: b_h_r_
    r_cut = r[: max(room - len(b), room // 2)]
    b_cut = b[: room - len(r_cut)]
    return f"{b_cut}_{digest}_{r_cut}_"


def database_name(base: str, run_id: str, slot: int) -> str:
    """Pure. ``<base>_<run_id>_<slot>``: lowercase ``[a-z0-9_]``, starts with a letter, at most
    63 bytes (PostgreSQL's limit). When too long, the base is cut and a short stable hash of the
    full inputs is added so distinct inputs stay distinct. Odd characters become ``_``."""
    if not 0 <= slot < 10**_SLOT_DIGITS:
        raise ValueError(f"worker slot out of range: {slot}")
    return f"{_run_prefix(base, run_id)}{slot}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))
    except ValueError:
        return "<unparsable URL>"


def parse_url(url: str, where: str = "--isolate-db-url") -> SplitResult:
    """Validate a PostgreSQL URL (``postgresql://`` or ``postgres://`` with a host, in the
    netloc or as ``?host=``); return its parts. User, password, host, port and query are kept.
    ``where`` names the URL's source in messages."""
    if not url or not url.strip():
        raise DatabaseError(f"{where} is empty; expected postgresql://user@host:port/dbname")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise DatabaseError(f"{where} {mask_url(url)!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseError(
            f"{where} {mask_url(url)!r}: unsupported scheme {parts.scheme or '(none)'!r}; "
            "only postgresql:// (or postgres://) URLs are supported"
        )
    if not parts.hostname and "host" not in parse_qs(parts.query):
        raise DatabaseError(f"{where} {mask_url(url)!r} names no host")
    return parts


def _dbname(parts: SplitResult) -> str | None:
    name = unquote(parts.path.lstrip("/"))
    return name or None


def url_base(url: str) -> str:
    """The base of worker database names for ``url``: its dbname, or ``test`` when it names
    none or the maintenance database ``postgres``."""
    name = _dbname(parse_url(url))
    return DEFAULT_BASE if name in (None, MAINTENANCE_DB) else name


def _with_dbname(url: str, name: str) -> str:
    return urlunsplit(parse_url(url)._replace(path="/" + name))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise DatabaseError(
            f"a PostgreSQL --isolate-db-url needs psycopg: {_INSTALL_HINT}"
        ) from None


def _connect(url: str, timeout: float = 10.0) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection to the maintenance database of the server of ``url``."""
    _require_psycopg()
    import psycopg

    parse_url(url)
    try:
        return psycopg.connect(
            url,
            dbname=MAINTENANCE_DB,
            connect_timeout=max(2, math.ceil(timeout)),
            autocommit=True,
        )
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {mask_url(url)}: {_one_line(exc)}"
        ) from None


def check_server(url: str, timeout: float = 5.0) -> None:
    """Connect once to the server's maintenance db; raise :class:`DatabaseError` naming the URL
    (password masked) and the cause when it is unreachable or authentication fails."""
    _connect(url, timeout).close()


def sqlite_database(worker_dir: Path) -> WorkerDatabase:
    """The SQLite file ``db.sqlite3`` in ``worker_dir`` (not created here)."""
    path = Path(worker_dir).absolute() / "db.sqlite3"
    return WorkerDatabase(url=f"sqlite:///{path}", name=path.name, backend="sqlite", path=path)


def _template_lock_key(template: str) -> int:
    """A stable signed 64-bit advisory lock key for cloning ``template``."""
    import hashlib

    digest = hashlib.sha256(f"pytest-isolate:template:{template}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _exists(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def create_postgres(
    url: str, run_id: str, slot: int, template: str | None = None
) -> WorkerDatabase:
    """Create the worker's database on the server of ``url`` (cloned from ``template`` when
    given) and return it; its URL is ``url`` with the database name replaced. A database of the
    same name (left by a crashed worker of this slot) is dropped first, so it starts clean."""
    _require_psycopg()
    import psycopg
    from psycopg import sql

    name = database_name(url_base(url), run_id, slot)
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    doing = f"create database {name!r} on {mask_url(url)}"
    with _connect(url) as conn:
        try:
            if template is not None and not _exists(conn, template):
                raise DatabaseError(
                    f"cannot {doing}: template database {template!r} does not exist "
                    "(--isolate-db-template)"
                )
            conn.execute(drop)
            if template is None:
                conn.execute(create)
            else:
                create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                # Clones of one template are serialized across processes and runs: PostgreSQL
                # refuses to copy a template that another session (a clone in flight) uses.
                key = _template_lock_key(template)
                with _connect(url) as lock:
                    lock.execute("SELECT pg_advisory_lock(%s)", (key,))
                    try:
                        conn.execute(create)
                    finally:
                        lock.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except psycopg.errors.ObjectInUse as exc:
            raise DatabaseError(
                f"cannot {doing}: template {template!r} is in use; close the other sessions "
                f"connected to it ({_one_line(exc)})"
            ) from None
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot {doing}: {_one_line(exc)}") from None
    return WorkerDatabase(url=_with_dbname(url, name), name=name, backend="postgresql")


def drop_postgres(db: WorkerDatabase, admin_url: str) -> None:
    """``DROP DATABASE IF EXISTS <name> WITH (FORCE)``; an already-gone database is fine."""
    _require_psycopg()
    import psycopg
    from psycopg import sql

    if db.backend != "postgresql":
        raise ValueError(f"not a PostgreSQL database: {db}")
    with _connect(admin_url) as conn:
        try:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name))
            )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot drop database {db.name!r} on {mask_url(admin_url)}: {_one_line(exc)}"
            ) from None


def list_run_databases(admin_url: str, base: str, run_id: str) -> list[str]:
    """The names (sorted) of this run's worker databases on the server: the run's prefix
    followed by a slot number."""
    prefix = _run_prefix(base, run_id)
    with _connect(admin_url) as conn:
        rows = conn.execute("SELECT datname FROM pg_database").fetchall()
    names = (str(row[0]) for row in rows)
    return sorted(n for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit())
