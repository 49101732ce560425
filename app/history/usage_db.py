"""Usage aggregates computed inside the database (SQLite and PostgreSQL).

Same rows as the pure `hubkeeper.history.usage.aggregate` (which defines the semantics and
stays the reference in the tests), without turning every session of the window into a Python
object: the database clips each session to the window, splits it at UTC midnights and sums.

- Days are UTC days on both databases whatever the connection's TimeZone: PostgreSQL works
  on `ts AT TIME ZONE 'UTC'` (a plain timestamp, so `date_trunc`/`generate_series` never see
  the session zone); SQLite compares the stored text, which SQLAlchemy writes as UTC
  `YYYY-MM-DD HH:MM:SS.ffffff`.
- The window scan is one range on `started_at` (index `ix_server_session_window`, which also
  covers `stopped_at` and `user`) from a day before `since`; sessions over a day long that
  started earlier come from their own partial index (`ix_server_session_long`), open ones
  from the `stopped_at IS NULL` index.
- by=group reads the groups at the session's start (a JSON list in `server_session.groups`);
  for older sessions without them the user's current groups (`groups_of`) apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from hubkeeper.history.usage import BY, DEFAULT_PROFILE, NO_GROUP, UsageRow, apply_prices

SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite


# A closed session longer than this is "long": found through its own partial index
# (`ix_server_session_long`) rather than by widening the scan of starts before a window.
LONG_SECONDS = 86400
# Written into the SQL as it stands in the partial index's predicate (which the query must
# repeat for the index to be used). A closed session without a duration (not written by the
# recorder, which always sets it; imported data) is taken as long rather than missed.
LONG = f"(duration_s > {LONG_SECONDS} OR duration_s IS NULL)"


def _lower_bound(since: datetime) -> datetime:
    """The earliest start a short closed session reaching past `since` can have."""
    try:
        return since - timedelta(seconds=LONG_SECONDS)
    except OverflowError:  # a window from the first days of year 1
        return datetime.min.replace(tzinfo=UTC)


def bind_time(conn: Connection, value: datetime) -> object:
    """A datetime as raw SQL compares it with a stored one: SQLAlchemy's UTC text on SQLite,
    the datetime itself on PostgreSQL."""
    if conn.dialect.name == "sqlite":
        return value.astimezone(UTC).strftime(SQLITE_TS)
    return value


# Three index ranges: sessions started since `lower` (a day before `since`: no shorter
# closed session that started earlier reaches `since`); the long ones (over a day) that
# started earlier and stopped after `since` (partial index `ix_server_session_long`, so a
# server left running for months never widens the scan of every report); the few still open
# that started before `lower`. A session that starts in the window counts even when it has
# no length; one that ended exactly at `since` does not.
WHERE = """
    FROM server_session
    WHERE started_at < :until AND started_at >= :lower
      AND (stopped_at IS NULL OR stopped_at > :since OR started_at >= :since)
"""
WHERE_LONG = f"""
    FROM server_session
    WHERE {LONG} AND stopped_at > :since AND started_at < :lower
"""  # noqa: S608 - a constant
WHERE_OLD_OPEN = """
    FROM server_session
    WHERE stopped_at IS NULL AND started_at < :lower AND started_at < :until
"""

# `st`: the session starts in the window (else it was running at `since`): the rollups keep
# starts so that a session over several days or months is counted once in a wider window.
SQLITE_CLIPPED = f"""
    clipped AS (
        SELECT "user" AS u, {{g}} AS g, {{pr}} AS pr, started_at >= :since AS st,
               max(started_at, :since) AS a,
               min(coalesce(stopped_at, :now), :until) AS b
        {WHERE}
        UNION ALL
        SELECT "user", {{g}}, {{pr}}, 0, max(started_at, :since), min(stopped_at, :until)
        {WHERE_LONG}
        UNION ALL
        SELECT "user", {{g}}, {{pr}}, 0, max(started_at, :since), min(:now, :until)
        {WHERE_OLD_OPEN}
    ),
    s AS (SELECT u, g, pr, st, a, b FROM clipped WHERE b >= a)
"""  # noqa: S608 - constant SQL, values are bound parameters

PG_CLIPPED = f"""
    clipped AS (
        SELECT "user" AS u, {{g}} AS g, {{pr}} AS pr, started_at >= :since AS st,
               greatest(started_at, :since) AT TIME ZONE 'UTC' AS a,
               least(coalesce(stopped_at, :now), :until) AT TIME ZONE 'UTC' AS b
        {WHERE}
        UNION ALL
        SELECT "user", {{g}}, {{pr}}, false,
               greatest(started_at, :since) AT TIME ZONE 'UTC',
               least(stopped_at, :until) AT TIME ZONE 'UTC'
        {WHERE_LONG}
        UNION ALL
        SELECT "user", {{g}}, {{pr}}, false,
               greatest(started_at, :since) AT TIME ZONE 'UTC',
               least(CAST(:now AS timestamptz), :until) AT TIME ZONE 'UTC'
        {WHERE_OLD_OPEN}
    ),
    s AS (SELECT u, g, pr, st, a, b FROM clipped WHERE b >= a)
"""  # noqa: S608 - constant SQL, values are bound parameters

# A piece per (session, UTC day it touches); a session ending exactly at midnight does not
# touch the next day, one of zero length still counts in its day (as `aggregate` does).
# Only the piece on the day a session starts carries its start.
SQLITE_PIECES = f"""
    WITH RECURSIVE {SQLITE_CLIPPED},
    p(u, g, pr, d, secs, st, nxt, b) AS (
        SELECT u, g, pr, substr(a, 1, 10),
               (julianday(min(b, nxt)) - julianday(a)) * 86400.0, st, nxt, b
        FROM (
            SELECT u, g, pr, st, a, b,
                   date(substr(a, 1, 10), '+1 day') || ' 00:00:00.000000' AS nxt
            FROM s
        )
        UNION ALL
        SELECT u, g, pr, substr(nxt, 1, 10),
               (julianday(min(b, date(substr(nxt, 1, 10), '+1 day') || ' 00:00:00.000000'))
                - julianday(nxt)) * 86400.0, 0,
               date(substr(nxt, 1, 10), '+1 day') || ' 00:00:00.000000', b
        FROM p WHERE nxt < b
    )
"""  # noqa: S608 - constant SQL, values are bound parameters

PG_PIECES = f"""
    WITH {PG_CLIPPED},
    p0 AS (
        SELECT u, g, pr, st, a, b, date_trunc('day', a) AS d FROM s
        WHERE b <= date_trunc('day', a) + interval '1 day'
        UNION ALL
        SELECT s.u, s.g, s.pr, s.st AND d = date_trunc('day', s.a), s.a, s.b, d
        FROM s CROSS JOIN LATERAL generate_series(
            date_trunc('day', s.a), s.b - interval '1 microsecond', interval '1 day'
        ) AS d
        WHERE s.b > date_trunc('day', s.a) + interval '1 day'
    ),
    p AS (
        SELECT u, g, pr, to_char(d, 'YYYY-MM-DD') AS d, CASE WHEN st THEN 1 ELSE 0 END AS st,
               extract(epoch FROM least(b, d + interval '1 day') - greatest(a, d)) AS secs
        FROM p0
    )
"""  # noqa: S608 - constant SQL, values are bound parameters

BY_DAY = "SELECT d, count(*), sum(secs), count(DISTINCT u) FROM p GROUP BY d"

# (day, profile, seconds): what by=day's cost is priced from (profile '' = default)
BY_DAY_PROFILE = "SELECT d, pr, sum(secs) FROM p GROUP BY d, pr"

# (day, user, groups, profile, pieces, starts, seconds): what the rollup keeps (groups '' =
# unknown, profile '' = default)
BY_DAY_USER_GROUPS = "SELECT d, u, g, pr, count(*), sum(st), sum(secs) FROM p GROUP BY d, u, g, pr"

# (user, groups or NULL when the session predates recorded groups, profile, sessions, starts,
# seconds)
SQLITE_BY_USER_GROUPS = f"""
    WITH {SQLITE_CLIPPED}
    SELECT u, g, pr, count(*), sum(st), sum((julianday(b) - julianday(a)) * 86400.0)
    FROM s GROUP BY u, g, pr
"""  # noqa: S608 - constant SQL, values are bound parameters

PG_BY_USER_GROUPS = f"""
    WITH {PG_CLIPPED}
    SELECT u, g, pr, count(*), count(*) FILTER (WHERE st), sum(extract(epoch FROM b - a))
    FROM s GROUP BY u, g, pr
"""  # noqa: S608 - constant SQL, values are bound parameters

PROFILE = "coalesce(profile, '')"  # the profile expression ('' = default)


def usage_in_db(
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
    (most server-hours first), computed in the database from the sessions alone (no rollup);
    blocking (call it in a thread).

    Times are aware UTC datetimes; seconds are summed as floats; with `prices`, rows carry
    their cost. Raises ValueError for an unknown `by`. The same rows as
    `hubkeeper.history.usage.aggregate`.
    """
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    with engine.connect() as conn:
        if by == "day":
            window = {"since": since, "until": until, "now": now}
            # seconds per profile only where a price reads them
            profiles = query_day_profiles(conn, **window) if prices else []
            rows = day_rows(query_days(conn, **window), since, until, profiles)
            return apply_prices(rows, prices)
        found = query_people(conn, since=since, until=until, now=now)
    rows = people_rows(
        [(u, g, pr, sessions, seconds) for u, g, pr, sessions, _starts, seconds in found],
        by,
        groups_of,
    )
    return apply_prices(rows, prices)


def _run(
    conn: Connection,
    queries: tuple[str, str],
    groups: str,
    *,
    profile: str = "''",
    since: datetime,
    until: datetime,
    now: datetime,
    rows: bool = True,
) -> list[Any]:
    """One of the queries above (SQLite's or PostgreSQL's) with `{g}` the groups expression
    and `{pr}` the profile's (a constant where unused: SQLite then reads the index alone)."""
    sqlite = conn.dialect.name == "sqlite"
    window = {"since": since, "until": until, "now": now, "lower": _lower_bound(since)}
    params = {name: bind_time(conn, value) for name, value in window.items()}
    if not sqlite:
        # For this transaction only (a report's reads, or one chunk of a rollup build). The
        # planner expects 1,000 rows from each generate_series, so it costs a window's edge
        # (a few hundred index-found rows) high enough to JIT-compile it (~240 ms against
        # ~1 ms of work, PostgreSQL 15 defaults) and to start parallel workers for it (~15 ms).
        conn.execute(text("SET LOCAL jit = off"))
        conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    query = (queries[0] if sqlite else queries[1]).format(g=groups, pr=profile)
    result = conn.execute(text(query), params)
    return list(result.all()) if rows else []


def query_days(conn: Connection, *, since: datetime, until: datetime, now: datetime) -> list[Any]:
    """(day, sessions, seconds, users) per UTC day the window touches, on an open connection.
    Without groups, so that SQLite answers the scan from the index alone."""
    return _run(
        conn,
        (SQLITE_PIECES + BY_DAY, PG_PIECES + BY_DAY),
        "NULL",
        since=since,
        until=until,
        now=now,
    )


def query_day_profiles(
    conn: Connection, *, since: datetime, until: datetime, now: datetime
) -> list[Any]:
    """(day, profile, seconds) per UTC day the window touches and profile ('' = default)."""
    return _run(
        conn,
        (SQLITE_PIECES + BY_DAY_PROFILE, PG_PIECES + BY_DAY_PROFILE),
        "NULL",
        profile=PROFILE,
        since=since,
        until=until,
        now=now,
    )


def fill_days_by_people(
    conn: Connection, *, since: datetime, until: datetime, now: datetime
) -> None:
    """Insert into `usage_user_day` one row per UTC day, user, groups at start (`''`
    where not recorded) and profile (`''` = default) with pieces, starts and seconds: the
    rollup, filled in the database."""
    pieces = (SQLITE_PIECES + BY_DAY_USER_GROUPS, PG_PIECES + BY_DAY_USER_GROUPS)
    into = 'INSERT INTO usage_user_day (day, "user", groups, profile, pieces, starts, seconds) '
    _run(
        conn,
        (into + pieces[0], into + pieces[1]),
        "coalesce(groups, '')",
        profile=PROFILE,
        since=since,
        until=until,
        now=now,
        rows=False,
    )


def query_people(conn: Connection, *, since: datetime, until: datetime, now: datetime) -> list[Any]:
    """(user, groups or None, profile ('' = default), sessions, starts, seconds) over the
    window: `sessions` counts every session in it, `starts` those that started in it."""
    queries = (SQLITE_BY_USER_GROUPS, PG_BY_USER_GROUPS)
    return _run(conn, queries, "groups", profile=PROFILE, since=since, until=until, now=now)


def day_rows(
    found: Sequence[Any],
    since: datetime,
    until: datetime,
    profiles: Iterable[Any] = (),
) -> list[UsageRow]:
    """UsageRows from (day, sessions, seconds, users): every day of the window, zero rows too;
    `profiles` (day, profile, seconds) gives each day's seconds per profile."""
    rows: dict[str, UsageRow] = {}
    day = since.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < until:
        key = day.date().isoformat()
        rows[key] = UsageRow(key, user_count=0)
        day += timedelta(days=1)
    for key, sessions, seconds, users in found:
        rows[key] = UsageRow(
            str(key), sessions=int(sessions), seconds=float(seconds or 0), user_count=users
        )
    for key, profile, seconds in profiles:
        row = rows.get(str(key))
        if row is not None:
            row.profiles[profile or ""] = row.profiles.get(profile or "", 0.0) + float(seconds or 0)
    return [rows[k] for k in sorted(rows)]


def people_rows(
    found: Iterable[tuple[str, str | None, str | None, int, float]],
    by: str,
    groups_of: Callable[[str], Sequence[str]] = lambda _user: (),
) -> list[UsageRow]:
    """UsageRows by user, group or profile (most server-hours first) from (user, groups at
    start as a JSON list or None where not recorded, profile ('' or None = default),
    sessions, seconds). A session without recorded groups counts under the user's groups now
    (`groups_of`); no group is "(no group)", no profile "(default)"."""
    rows: dict[str, UsageRow] = {}
    if by == "user":  # one row per user: no set of users needed
        for user, _groups, profile, sessions, seconds in found:
            row = rows.get(user)
            if row is None:
                row = rows[user] = UsageRow(user, user_count=1)
            row.sessions += int(sessions)
            row.add_seconds(profile, float(seconds or 0))
        return sorted(rows.values(), key=lambda r: (-r.seconds, r.key))
    if by == "profile":
        for user, _groups, profile, sessions, seconds in found:
            key = profile or DEFAULT_PROFILE
            row = rows.get(key)
            if row is None:
                row = rows[key] = UsageRow(key, people=set())
            row.sessions += int(sessions)
            row.add_seconds(profile, float(seconds or 0))
            row.add_person(user)
        return sorted(rows.values(), key=lambda r: (-r.seconds, r.key))
    parsed: dict[str, list[str]] = {}  # the same few group lists, parsed once
    for user, groups, profile, sessions, seconds in found:
        if groups is None:
            keys = list(groups_of(user)) or [NO_GROUP]
        else:
            keys = parsed.get(groups) or parsed.setdefault(
                groups, [str(g) for g in json.loads(groups)] or [NO_GROUP]
            )
        for key in keys:
            row = rows.get(key)
            if row is None:
                row = rows[key] = UsageRow(key, people=set())
            row.sessions += int(sessions)
            row.add_seconds(profile, float(seconds or 0))
            row.add_person(user)
    return sorted(rows.values(), key=lambda r: (-r.seconds, r.key))
