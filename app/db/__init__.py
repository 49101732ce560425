"""Database: one engine per app, Alembic migrations applied at start."""

from hubkeeper.db.engine import create_db_engine, migrate, session_scope

__all__ = ["create_db_engine", "migrate", "session_scope"]
