"""The cookie secret: what signs session cookies and seals the hub tokens kept with sessions.

Every replica sharing a database must use the same one, or a cookie one replica issued is
refused by the next. In order:
1. `HUBKEEPER_COOKIE_SECRET`, when set (the recommended form for several replicas);
2. `HUBKEEPER_COOKIE_SECRET_FILE`, when that file exists (the older generated form, kept
   working; on PostgreSQL it also seeds the shared row, so replicas without the file agree);
3. on SQLite (one process): generated once into that file, as before;
4. on PostgreSQL: generated once into the `stored_secret` row "cookie_secret" by whichever
   replica comes first (INSERT ... ON CONFLICT DO NOTHING, then read), so all agree.
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from hubkeeper.config import Settings
from hubkeeper.db.models import StoredSecret
from hubkeeper.kit.clock import utcnow

log = logging.getLogger(__name__)

COOKIE_SECRET = "cookie_secret"  # noqa: S105 - the stored_secret row's name, not a secret


def kept_in_database(settings: Settings) -> bool:
    """Is the secret the database's shared row (nothing set, PostgreSQL)?"""
    return not settings.cookie_secret and not settings.database_url.startswith("sqlite")


def cookie_secret_before_database(settings: Settings) -> str:
    """The secret when it does not need the database; "" when `database_cookie_secret` must
    give it (after migrations, which create its table)."""
    if settings.cookie_secret:
        return settings.cookie_secret
    if not kept_in_database(settings):
        return settings.resolved_cookie_secret()  # SQLite: the file, generated when missing
    path = settings.cookie_secret_file
    return path.read_text().strip() if path.exists() else ""


def database_cookie_secret(engine: Engine, settings: Settings) -> str:
    """The shared secret: created once (race-safe across replicas), then everyone reads it.

    With an existing secret file, its secret seeds the row and is used; a row that already
    differs from it is reported (replicas using another secret will not share sessions)."""
    from_file = cookie_secret_before_database(settings)
    stored = shared_secret(engine, COOKIE_SECRET, from_file or secrets.token_hex(32))
    if from_file and stored != from_file:
        log.warning(
            "%s holds another cookie secret than the database shares; using the file's. "
            "Replicas without it use the database's and will not accept this one's cookies: "
            "remove the file or set HUBKEEPER_COOKIE_SECRET",
            settings.cookie_secret_file,
        )
        return from_file
    return stored


def shared_secret(engine: Engine, name: str, candidate: str) -> str:
    """The value stored under `name`, storing `candidate` first if there is none: the first
    writer wins and every replica reads the winner."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    table = StoredSecret.__table__  # type: ignore[attr-defined]
    insert = (
        dialect.insert(table)
        .values(name=name, value=candidate, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    with engine.begin() as conn:
        conn.execute(insert)
        return str(conn.execute(select(table.c.value).where(table.c.name == name)).scalar_one())
