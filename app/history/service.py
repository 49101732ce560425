"""Reading server sessions back: listing with filters, and the sessions a window overlaps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, or_
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.db.paging import fetch_page
from hubkeeper.kit.clock import as_utc, utcnow

STOP_REASONS = ("user", "admin", "culled", "lockdown", "unknown")


def _overlapping(
    query: SelectOfScalar[ServerSession], since: datetime | None, until: datetime | None
) -> SelectOfScalar[ServerSession]:
    if until is not None:
        query = query.where(col(ServerSession.started_at) < until)
    if since is not None:
        # a session that starts in the window is in it even with no length (usage_db.WHERE);
        # one still open runs until now, so it is in no window that begins after now
        still_open = [col(ServerSession.stopped_at).is_(None)] if as_utc(since) <= utcnow() else []
        query = query.where(
            or_(
                *still_open,
                col(ServerSession.stopped_at) > since,
                col(ServerSession.started_at) >= since,
            )
        )
    return query


def list_sessions(
    engine: Engine,
    *,
    user: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    stop_reason: str = "",
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[ServerSession], int]:
    """Sessions overlapping the window, newest start first (blocking: call it in a thread)."""
    query = _overlapping(select(ServerSession), since, until)
    if user:
        query = query.where(ServerSession.user == user)
    if stop_reason:
        query = query.where(ServerSession.stop_reason == stop_reason)
    with session_scope(engine) as session:
        rows, total = fetch_page(
            session,
            query,
            col(ServerSession.started_at).desc(),
            col(ServerSession.id).desc(),
            offset=offset,
            limit=limit,
        )
        for row in rows:
            session.expunge(row)
        return rows, total


def sessions_between(engine: Engine, since: datetime, until: datetime) -> list[ServerSession]:
    """Every session overlapping [since, until) (blocking: call it in a thread)."""
    with session_scope(engine) as session:
        rows = session.exec(_overlapping(select(ServerSession), since, until)).all()
        for row in rows:
            session.expunge(row)
        return list(rows)
