"""Usage aggregates over a window: sessions, server-hours and distinct users per row.

`aggregate` is the definition, in pure Python over session rows; `usage_in_db` computes the
same rows inside the database (SQLite or PostgreSQL) so that a window of a million sessions
never becomes a million Python objects: the API, the page and the CLI use it. Sessions are
clipped to the window; an open session counts up to `now`. Days are UTC days on both
databases, whatever the connection's TimeZone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hubkeeper.db.models import ServerSession
from hubkeeper.history.recorder import aware

BY = ("day", "user", "group")
NO_GROUP = "(no group)"
MAX_DAYS = 3660  # by=day rows per answer
CSV_HEADER = ("key", "sessions", "server_hours", "users")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(slots=True)
class UsageRow:
    key: str
    sessions: int = 0
    seconds: float = 0.0
    people: set[str] | None = None  # distinct users seen (by=group, and `aggregate`)
    user_count: int | None = None  # distinct users when known without a set (by=day, by=user)

    def add_person(self, user: str) -> None:
        if self.people is None:
            self.people = set()
        self.people.add(user)

    @property
    def server_hours(self) -> float:
        return round(self.seconds / 3600, 3)

    @property
    def users(self) -> int:
        if self.user_count is not None:
            return self.user_count
        return len(self.people) if self.people is not None else 0

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "sessions": self.sessions,
            "server_hours": self.server_hours,
            "users": self.users,
        }


def _midnight(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def aggregate(
    sessions: Iterable[ServerSession],
    *,
    since: datetime,
    until: datetime,
    by: str,
    now: datetime,
    groups_of: Callable[[str], Sequence[str]] = lambda _user: (),
) -> list[UsageRow]:
    """Rows per UTC day (every day of the window, oldest first), per user or per group
    (most server-hours first).

    by=day splits a session at midnight: it counts in each day it touches, with that day's
    hours. by=group uses the groups the user was in when the session started
    (`ServerSession.groups`); for a session recorded before those were kept, `groups_of(user)`
    (the user's groups now). A user in no group counts under "(no group)", a user in two
    groups counts in both, so group rows may add up to more than the total.
    """
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    rows: dict[str, UsageRow] = {}
    if by == "day":
        day = _midnight(since)
        while day < until:
            key = day.date().isoformat()
            rows[key] = UsageRow(key)
            day += timedelta(days=1)
    for s in sessions:
        start = max(aware(s.started_at), since)
        end = min(aware(s.stopped_at) if s.stopped_at else now, until)
        if end < start:
            continue
        if by == "day":
            day = _midnight(start)
            while True:
                piece_end = min(end, day + timedelta(days=1))
                row = rows.setdefault(day.date().isoformat(), UsageRow(day.date().isoformat()))
                row.sessions += 1
                row.seconds += (piece_end - max(start, day)).total_seconds()
                row.add_person(s.user)
                day += timedelta(days=1)
                if day >= end:
                    break
            continue
        keys = [s.user] if by == "user" else (session_groups(s, groups_of) or [NO_GROUP])
        for key in keys:
            row = rows.setdefault(key, UsageRow(key))
            row.sessions += 1
            row.seconds += (end - start).total_seconds()
            row.add_person(s.user)
    if by == "day":
        return [rows[k] for k in sorted(rows)]
    return sorted(rows.values(), key=lambda r: (-r.seconds, r.key))


def session_groups(s: ServerSession, groups_of: Callable[[str], Sequence[str]]) -> list[str]:
    """The groups a session counts under: those at its start, else the user's groups now."""
    if s.groups is None:
        return list(groups_of(s.user))
    return [str(g) for g in json.loads(s.groups)]


def safe_cell(value: object) -> object:
    """Neutralise spreadsheet formulas: a text cell starting with = + - @ gets a leading '."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: Iterable[UsageRow]) -> str:
    """A header row and one line per row; cells escaped by the csv module, formulas defused."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow([safe_cell(row.key), row.sessions, f"{row.server_hours:.3f}", row.users])
    return out.getvalue()
