"""Engine creation, sessions and migrations.

SQLite is the zero-setup default (a file in the working directory); PostgreSQL is the
production path. Both are migrated by the same Alembic scripts in `alembic/`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, text
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

from hubkeeper.paths import MIGRATIONS_DIR


def normalise_url(url: str) -> str:
    """Accept the plain `postgresql://` form and use the psycopg 3 driver for it."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


CONNECT_TIMEOUT = 5  # s, PostgreSQL connection attempts
POOL_TIMEOUT = 10.0  # s waiting for a pooled connection before the request gets a 503


def _ensure_wal(cursor: sqlite3.Cursor) -> None:
    """Put the SQLite file in WAL mode (web requests read while the sync loop writes).

    The mode is kept in the file, so it is set only when missing: setting it fails at once
    with "database is locked" (no busy wait) while another connection writes. Two
    connections may both find it missing (a file just made by `migrate`, which sets it too)
    and race to set it: the loser finds it set by the winner and goes on.
    """
    if _journal_mode(cursor) == "wal":
        return
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        if _journal_mode(cursor) != "wal":
            raise


def _journal_mode(cursor: sqlite3.Cursor) -> str:
    return str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def create_db_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cursor = dbapi_conn.cursor()
            _ensure_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # A database host that does not answer at all would hold each request for the OS's
    # TCP timeout (minutes): give up after CONNECT_TIMEOUT s and answer 503 instead (see
    # hubkeeper.db.outage). A `connect_timeout` in the URL wins.
    connect_args = {} if "connect_timeout=" in url else {"connect_timeout": CONNECT_TIMEOUT}
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=POOL_TIMEOUT,
        connect_args=connect_args,
    )


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


@contextmanager
def _sqlite_migration_lock(url: str) -> Iterator[None]:
    """Processes migrating one SQLite file take turns (an `fcntl` lock beside it); SQLite is
    meant for one Hubkeeper, but `hubkeeper db upgrade` may run beside a starting server."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    import fcntl
    from pathlib import Path

    path = Path(database)
    try:
        handle = open(path.with_name(path.name + ".migrate.lock"), "wb")  # noqa: SIM115
    except OSError:  # a directory we cannot write to: the upgrade will say so itself
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _set_wal(url: str) -> None:
    engine = create_db_engine(url)
    try:
        with engine.connect():  # the connect listener sets it
            pass
    finally:
        engine.dispose()


MIGRATION_LOCK = 0x4855424B4545504D  # "HUBKEEPM": pg_advisory_lock key around migrations


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision` (creating it from empty if need be).

    On PostgreSQL, replicas starting together take turns: a session-level
    `pg_advisory_lock` (held on a separate connection for the whole upgrade) makes the others
    wait, then find the database already at head and do nothing. On SQLite an `fcntl` lock
    on `<database>.migrate.lock` does the same for processes on one machine.
    """
    url = normalise_url(url)
    if not url.startswith("postgresql"):
        with _sqlite_migration_lock(url):
            # Alembic's own engine does not set WAL: set it on the file first, so the
            # processes that open it next do not all race to set it (see _ensure_wal).
            _set_wal(url)
            command.upgrade(alembic_config(url), revision)
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                command.upgrade(alembic_config(url), revision)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    finally:
        engine.dispose()


def database_ok(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error; services only flush."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise
