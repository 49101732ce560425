"""Alembic migrations build the whole schema, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlmodel import SQLModel

import hubkeeper.main  # noqa: F401 - imports every module that defines a table
from hubkeeper.db.engine import create_db_engine, migrate
from tests.cli import run_cli


def table_names(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_creates_every_model_table(db_url):
    migrate(db_url)
    tables = table_names(db_url)
    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_migrate_twice_is_a_no_op(db_url):
    migrate(db_url)
    before = table_names(db_url)
    migrate(db_url)
    assert table_names(db_url) == before


@pytest.mark.subprocess
def test_db_upgrade_command(db_url):
    result = run_cli("db", "upgrade", env={"HUBKEEPER_DATABASE_URL": db_url}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(SQLModel.metadata.tables) <= table_names(db_url)


def test_migrations_match_the_models(db_url):
    """A model change without its migration fails here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    migrate(db_url)
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_migrate_leaves_a_sqlite_file_in_wal_mode(tmp_path):
    """The mode is in the file's header (bytes 18-19 are 2 in WAL mode): `migrate` sets it,
    so the processes opening the new file next do not race to set it, where the loser got
    "database is locked" at once (CI: the lockdown race test's first round)."""
    path = tmp_path / "hubkeeper.sqlite"
    migrate(f"sqlite:///{path}")
    assert path.read_bytes()[18:20] == b"\x02\x02"
