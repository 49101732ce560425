"""Reading server sessions back: listing with filters, and the sessions a window overlaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.db.paging import fetch_page
from hubkeeper.errors import HubkeeperError
from sqlalchemy import Engine, or_
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

STOP_REASONS = ("user", "admin", "culled", "lockdown", "unknown")
DEFAULT_DAYS = 30


class BadInput(HubkeeperError):
    status_code = 422
    code = "invalid_parameter"


def parse_when(raw: str | None, what: str) -> datetime | None:
    """ISO 8601 date or date-time → aware UTC (a bare date is its midnight); 422 otherwise."""
    if raw is None or not raw.strip():
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"{what} must be an ISO 8601 date or date-time, like 2026-11-01 or "
            f"2026-11-01T08:00:00Z, not {raw[:40]!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window(
    since: str | None, until: str | None, *, now: datetime, default_days: int = DEFAULT_DAYS
) -> tuple[datetime, datetime]:
    """The [since, until) window asked for; until defaults to now, since to `default_days`
    before it. 422 on a bad value or when since is after until."""
    end = parse_when(until, "until") or now
    start = parse_when(since, "since") or end - timedelta(days=default_days)
    if start > end:
        raise BadInput("since must not be after until", code="invalid_window")
    return start, end


def _overlapping(
    query: SelectOfScalar[ServerSession], since: datetime | None, until: datetime | None
) -> SelectOfScalar[ServerSession]:
    if until is not None:
        query = query.where(col(ServerSession.started_at) < until)
    if since is not None:
        query = query.where(
            or_(col(ServerSession.stopped_at).is_(None), col(ServerSession.stopped_at) > since)
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
