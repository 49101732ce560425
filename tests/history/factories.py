"""Plain factory functions for server sessions, written straight to the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlmodel import select

from hubkeeper.db.engine import create_db_engine, migrate, session_scope
from hubkeeper.db.models import ServerSession


def at(text: str) -> datetime:
    """'2026-11-01T22:00' → aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def prepared(db_url: str):  # noqa: ANN201 - an Engine
    migrate(db_url)
    return create_db_engine(db_url)


def add_session(
    engine,  # noqa: ANN001
    user: str,
    started: str,
    stopped: str | None = None,
    *,
    server: str = "",
    reason: str | None = None,
    by: str | None = None,
    profile: str | None = None,
    groups: list[str] | None = None,
) -> int:
    start = at(started)
    stop = at(stopped) if stopped else None
    row = ServerSession(
        user=user,
        server=server,
        started_at=start,
        stopped_at=stop,
        duration_s=(stop - start).total_seconds() if stop else None,
        stop_reason=reason or ("unknown" if stop else None),
        stopped_by=by,
        profile=profile,
        groups=None if groups is None else json.dumps(sorted(groups)),
    )
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
        return int(row.id or 0)


def sessions_of(engine, user: str) -> list[ServerSession]:  # noqa: ANN001
    with session_scope(engine) as session:
        rows = session.exec(
            select(ServerSession).where(ServerSession.user == user).order_by(ServerSession.id)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)
