"""Usage aggregates over a window: sessions, server-hours, distinct users and cost per row.

Cost: each row keeps its server-seconds per profile (`UsageRow.profiles`; a session's profile
is its `user_options["profile"]`, '' = the default), and `apply_prices` prices them with
HUBKEEPER_PRICES at read time: cost = Σ hours(profile) × price(profile), "*" for a profile
without a price of its own and for the default; no prices set: cost is None.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hubkeeper.db.models import ServerSession
from hubkeeper.history.recorder import aware
from hubkeeper.kit.prices import price_of

BY = ("day", "user", "group", "profile")
NO_GROUP = "(no group)"
DEFAULT_PROFILE = "(default)"  # by=profile's key for sessions started without a profile
MAX_DAYS = 3660  # by=day rows per answer
CSV_HEADER = ("key", "sessions", "server_hours", "users", "cost")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(slots=True)
class UsageRow:
    key: str
    sessions: int = 0
    seconds: float = 0.0
    people: set[str] | None = None  # distinct users seen (by=group, and `aggregate`)
    user_count: int | None = None  # distinct users when known without a set (by=day, by=user)
    profiles: dict[str, float] = field(default_factory=dict)  # seconds by profile ('' default)
    cost: float | None = None  # set by `apply_prices`; None: no prices

    def add_seconds(self, profile: str | None, seconds: float) -> None:
        """Count server-seconds of a profile (None or '' = the default) in this row."""
        self.seconds += seconds
        key = profile or ""
        self.profiles[key] = self.profiles.get(key, 0.0) + seconds

    def add_person(self, user: str) -> None:
        if self.people is None:
            self.people = set()
        self.people.add(user)

    @property
    def hours(self) -> float:
        """Server-hours unrounded: what pages and the CLI format to two decimals, so hours and
        cost (priced from the same seconds) round once and agree at a price of 1."""
        return self.seconds / 3600

    @property
    def server_hours(self) -> float:
        """Server-hours to three decimals (the API's and the CSV's value)."""
        return round(self.hours, 3)

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
            "cost": None if self.cost is None else round(self.cost, 4),
        }


def apply_prices(rows: list[UsageRow], prices: Mapping[str, float] | None) -> list[UsageRow]:
    """Set each row's cost from its seconds per profile (None for every row without prices);
    returns the rows."""
    for row in rows:
        row.cost = (
            sum(seconds / 3600 * price_of(p, prices) for p, seconds in row.profiles.items())
            if prices
            else None
        )
    return rows


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
    prices: Mapping[str, float] | None = None,
) -> list[UsageRow]:
    """Rows per UTC day (every day of the window, oldest first), per user, group or profile
    (most server-hours first).

    by=day splits a session at midnight: it counts in each day it touches, with that day's
    hours. by=group uses the groups the user was in when the session started
    (`ServerSession.groups`); for a session recorded before those were kept, `groups_of(user)`
    (the user's groups now). A user in no group counts under "(no group)", a user in two
    groups counts in both, so group rows may add up to more than the total. by=profile uses
    the session's profile ("(default)" without one). Rows carry seconds per profile; with
    `prices`, their cost (`apply_prices`).
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
                row.add_seconds(s.profile, (piece_end - max(start, day)).total_seconds())
                row.add_person(s.user)
                day += timedelta(days=1)
                if day >= end:
                    break
            continue
        if by == "user":
            keys = [s.user]
        elif by == "profile":
            keys = [s.profile or DEFAULT_PROFILE]
        else:
            keys = session_groups(s, groups_of) or [NO_GROUP]
        for key in keys:
            row = rows.setdefault(key, UsageRow(key))
            row.sessions += 1
            row.add_seconds(s.profile, (end - start).total_seconds())
            row.add_person(s.user)
    if by == "day":
        return apply_prices([rows[k] for k in sorted(rows)], prices)
    return apply_prices(sorted(rows.values(), key=lambda r: (-r.seconds, r.key)), prices)


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
    """A header row and one line per row; cells escaped by the csv module, formulas defused.
    `cost` has two decimals, empty without prices."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        cost = "" if row.cost is None else f"{row.cost:.2f}"
        writer.writerow(
            [safe_cell(row.key), row.sessions, f"{row.server_hours:.3f}", row.users, cost]
        )
    return out.getvalue()
