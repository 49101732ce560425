"""Alembic environment: runs migrations against the URL Hubkeeper was given."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

import hubkeeper.db.models  # noqa: F401 - registers every table on SQLModel.metadata
from hubkeeper.db.engine import normalise_url

config = context.config
target_metadata = SQLModel.metadata

url = config.get_main_option("sqlalchemy.url") or ""
if os.environ.get("HUBKEEPER_DATABASE_URL") and url == "sqlite:///./hubkeeper.sqlite":
    url = normalise_url(os.environ["HUBKEEPER_DATABASE_URL"])


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    section = config.get_section(config.config_ini_section) or {}
    section["sqlalchemy.url"] = url
    connectable = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
