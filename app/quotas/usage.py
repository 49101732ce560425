"""A user's server-hours in the current calendar month (UTC), from their sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, or_
from sqlmodel import col, select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.kit.clock import as_utc


@dataclass(frozen=True)
class MonthUse:
    used_hours: float
    quota_hours: float | None
    resets_at: datetime  # the next month's start, UTC

    @property
    def fraction(self) -> float | None:
        """Used / quota (None without a quota; inf for a quota of 0 with any use)."""
        if self.quota_hours is None:
            return None
        if self.quota_hours == 0:
            return float("inf") if self.used_hours > 0 else 1.0
        return self.used_hours / self.quota_hours


def month_start(now: datetime) -> datetime:
    """The first instant of `now`'s calendar month, UTC."""
    return as_utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def used_hours(engine: Engine, user: str, now: datetime) -> float:
    """Server-hours `user`'s sessions ran this month up to `now` (open sessions count to now;
    blocking)."""
    start = month_start(now)
    seconds = 0.0
    with session_scope(engine) as session:
        rows = session.exec(
            select(ServerSession).where(
                ServerSession.user == user,
                col(ServerSession.started_at) < now,
                or_(col(ServerSession.stopped_at).is_(None), col(ServerSession.stopped_at) > start),
            )
        ).all()
        for row in rows:
            began = max(as_utc(row.started_at), start)
            ended = min(as_utc(row.stopped_at), now) if row.stopped_at else now
            seconds += max(0.0, (ended - began).total_seconds())
    return seconds / 3600.0
