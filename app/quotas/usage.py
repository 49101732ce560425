"""A user's server-hours in the current calendar month (UTC), from their sessions."""

from __future__ import annotations

import json
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


def _seconds(row: ServerSession, start: datetime, now: datetime) -> float:
    """The part of a session inside [start, now), in seconds (open sessions count to now)."""
    began = max(as_utc(row.started_at), start)
    ended = min(as_utc(row.stopped_at), now) if row.stopped_at else now
    return max(0.0, (ended - began).total_seconds())


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
            seconds += _seconds(row, start, now)
    return seconds / 3600.0


@dataclass(frozen=True)
class UserMonth:
    hours: float  # server-hours this month up to now
    groups: tuple[str, ...] | None  # the groups recorded with their latest session, if any


def month_hours(engine: Engine, now: datetime) -> dict[str, UserMonth]:
    """Every user's server-hours this month up to `now`, as `used_hours` counts them, in one
    read (users without a session this month are absent; blocking)."""
    start = month_start(now)
    seconds: dict[str, float] = {}
    groups: dict[str, tuple[datetime, str | None]] = {}
    with session_scope(engine) as session:
        rows = session.exec(
            select(ServerSession).where(
                col(ServerSession.started_at) < now,
                or_(col(ServerSession.stopped_at).is_(None), col(ServerSession.stopped_at) > start),
            )
        ).all()
        for row in rows:
            seconds[row.user] = seconds.get(row.user, 0.0) + _seconds(row, start, now)
            began = as_utc(row.started_at)
            if row.user not in groups or groups[row.user][0] < began:
                groups[row.user] = (began, row.groups)
    return {
        user: UserMonth(total / 3600.0, _groups(groups[user][1])) for user, total in seconds.items()
    }


def _groups(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return tuple(str(g) for g in value) if isinstance(value, list) else None
