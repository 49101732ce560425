"""Usage reports (what the API, the History page and `hubkeeper report` call): the rows of a
window from the rollups (`hubkeeper.history.rollup`) for its whole closed days and months,
computed from the sessions (`hubkeeper.history.usage_db`) only for its edges.

by=day reads `usage_day` for the closed days; a partial first day and today are computed.
by=user and by=group split the window into

    [since, first day) · whole days · whole months · whole days · [last day, until)

and add, per user and groups at start: the sessions running at `since` or starting before the
first whole day (computed), the starts and seconds of the rolled days and months, and the
starts and seconds of the part from the last closed midnight (computed). Each session in the
window is counted once, however many days or months it spans: the same rows as
`hubkeeper.history.usage.aggregate`, which `tests/history/test_rollup.py` checks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from hubkeeper.history.rollup import INLINE_SESSIONS, midnight, month_start, refresh
from hubkeeper.history.usage import BY, UsageRow, apply_prices
from hubkeeper.history.usage_db import (
    day_rows,
    people_rows,
    query_day_profiles,
    query_days,
    query_people,
    usage_in_db,
)
from hubkeeper.kit.clock import utcnow

log = logging.getLogger(__name__)

MIN_DAYS = 3  # shorter runs of whole days are computed directly
REFRESH_INTERVAL = 30.0  # seconds between the usage-rollup loop's checks (a few index reads)


def usage(
    engine: Engine,
    *,
    since: datetime,
    until: datetime,
    by: str,
    now: datetime,
    groups_of: Callable[[str], Sequence[str]] = lambda _user: (),
    prices: Mapping[str, float] | None = None,
) -> list[UsageRow]:
    """Rows per UTC day (every day of the window, oldest first), per user, group or profile
    (most server-hours first); times are aware UTC; with `prices` (HUBKEEPER_PRICES: profile
    → price per server-hour) each row's `cost`, else None. Blocking (call it in a thread);
    ValueError for an unknown `by`.

    Uses the rollups when they are current or nearly so (a rollup behind by at most
    INLINE_SESSIONS sessions is brought up to date first); otherwise, and when they cannot be
    built, computes the window from the sessions (slower, same rows).
    """
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    first = midnight(since) if since == midnight(since) else midnight(since) + timedelta(days=1)
    last = min(midnight(until), midnight(now))
    if (last - first).days < MIN_DAYS or not _rollups_current(engine, now):
        return usage_in_db(
            engine, since=since, until=until, by=by, now=now, groups_of=groups_of, prices=prices
        )
    with engine.connect() as conn:
        if by == "day":
            found_days, profiles = _days(conn, since, until, now, first, last, bool(prices))
            return apply_prices(day_rows(found_days, since, until, profiles), prices)
        found = _people(conn, since, until, now, first, last)
    return apply_prices(people_rows(found, by, groups_of), prices)


def _rollups_current(engine: Engine, now: datetime) -> bool:
    try:
        return refresh(engine, now, max_sessions=INLINE_SESSIONS)
    except Exception as exc:  # a failed build must not fail the report: compute it
        log.warning("usage rollups not refreshed (%s): computing the window directly", exc)
        return False


def _days(
    conn: Connection,
    since: datetime,
    until: datetime,
    now: datetime,
    first: datetime,
    last: datetime,
    priced: bool,
) -> tuple[list[Any], list[Any]]:
    """(day, sessions, seconds, users) and, when `priced`, (day, profile, seconds) of the
    window's days (without prices nothing reads the seconds per profile)."""
    found: list[Any] = []
    profiles: list[Any] = []
    if since < first:
        found += query_days(conn, since=since, until=first, now=now)
        if priced:
            profiles += query_day_profiles(conn, since=since, until=first, now=now)
    days = {"a": first.date().isoformat(), "b": last.date().isoformat()}
    found += conn.execute(
        text("SELECT day, sessions, seconds, users FROM usage_day WHERE day >= :a AND day < :b"),
        days,
    ).all()
    if priced:
        profiles += conn.execute(
            text(
                "SELECT day, profile, seconds FROM usage_day_profile WHERE day >= :a AND day < :b"
            ),
            days,
        ).all()
    if last < until and last < now:  # (at midnight exactly nothing has run today yet)
        found += query_days(conn, since=last, until=until, now=now)
        if priced:
            profiles += query_day_profiles(conn, since=last, until=until, now=now)
    return found, profiles


def _people(
    conn: Connection,
    since: datetime,
    until: datetime,
    now: datetime,
    first: datetime,
    last: datetime,
) -> Iterator[tuple[str, str | None, str, int, float]]:
    """(user, groups at start or None, profile ('' = default), sessions, seconds) over the
    window."""
    totals: dict[tuple[str, str | None, str], list[float]] = {}

    def add(
        user: str, groups: str | None, profile: str | None, sessions: int, seconds: float | None
    ) -> None:
        # '' in a rollup: groups unknown, the default profile
        cell = totals.setdefault((user, groups or None, profile or ""), [0, 0.0])
        cell[0] += int(sessions or 0)
        cell[1] += float(seconds or 0)

    # running at `since` or started before the first whole day: every session counts
    for user, groups, profile, sessions, _starts, seconds in query_people(
        conn, since=since, until=first, now=now
    ):
        add(user, groups, profile, sessions, seconds)
    # whole days and months: the sessions that started in them
    months = (_next_month(first), month_start(last))
    if months[0] >= months[1]:
        day_ranges = [(first, last)]
    else:
        day_ranges = [(first, months[0]), (months[1], last)]
    for user, groups, profile, starts, seconds in conn.execute(
        text(
            'SELECT "user", groups, profile, sum(starts), sum(seconds) FROM ('
            '  SELECT "user", groups, profile, starts, seconds FROM usage_user_month'
            "  WHERE month >= :m0 AND month < :m1"
            "  UNION ALL"
            '  SELECT "user", groups, profile, starts, seconds FROM usage_user_day'
            "  WHERE (day >= :a0 AND day < :b0) OR (day >= :a1 AND day < :b1)"
            ') AS rolled GROUP BY "user", groups, profile'
        ),
        {
            "m0": months[0].strftime("%Y-%m"),
            "m1": months[1].strftime("%Y-%m"),
            "a0": day_ranges[0][0].date().isoformat(),
            "b0": day_ranges[0][1].date().isoformat(),
            "a1": day_ranges[-1][0].date().isoformat(),
            "b1": day_ranges[-1][1].date().isoformat(),
        },
    ):
        add(user, groups, profile, starts, seconds)
    # from the last closed midnight: the sessions that started since
    if last < until and last < now:
        for user, groups, profile, _sessions, starts, seconds in query_people(
            conn, since=last, until=until, now=now
        ):
            add(user, groups, profile, starts, seconds)
    return ((u, g, p, int(n), s) for (u, g, p), (n, s) in totals.items())


def _next_month(day: datetime) -> datetime:
    """The first UTC midnight on or after `day` that begins a month."""
    if day == month_start(day):
        return day
    return (month_start(day) + timedelta(days=32)).replace(day=1)


async def keep_rollups_current(engine: Engine, interval: float = REFRESH_INTERVAL) -> None:
    """The usage-rollup loop (one replica, under the leader): build the rollups the first
    time (a few seconds per million sessions, in chunks) and keep them current, so that
    reports rarely wait for one. Never returns; cancel it to stop (after the chunk under way)."""
    stop = threading.Event()
    try:
        while True:
            try:
                await asyncio.to_thread(refresh, engine, utcnow(), stop=stop)
            except Exception as exc:  # the database away: try again next time
                log.warning("usage rollups not refreshed (%s)", exc)
            await asyncio.sleep(interval)
    finally:
        stop.set()
