"""Usage aggregates computed inside the database (SQLite and PostgreSQL).

Same rows as the pure `hubkeeper.history.usage.aggregate` (which defines the semantics and
stays the reference in the tests), without turning every session of the window into a Python
object: the database clips each session to the window, splits it at UTC midnights and sums.

- Days are UTC days on both databases whatever the connection's TimeZone: PostgreSQL works
  on `ts AT TIME ZONE 'UTC'` (a plain timestamp, so `date_trunc`/`generate_series` never see
  the session zone); SQLite compares the stored text, which SQLAlchemy writes as UTC
  `YYYY-MM-DD HH:MM:SS.ffffff`.
- The window scan is one range on `started_at` (index `ix_server_session_window`, which also
  covers `stopped_at` and `user`): its lower end is `since` minus the longest closed session
  (read from the duration_s index first); open sessions that started before it come from
  the `stopped_at IS NULL` index.
- by=group reads the groups at the session's start (a JSON list in `server_session.groups`);
  for older sessions without them the user's current groups (`groups_of`) apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from hubkeeper.history.usage import BY, NO_GROUP, UsageRow

SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite


def _lower_bound(conn: Any, since: datetime) -> datetime:
    """The earliest start a closed session reaching past `since` can have (an index lookup
    on duration_s, which the recorder sets on every session it closes)."""
    longest = conn.execute(text("SELECT max(duration_s) FROM server_session")).scalar()
    return since - timedelta(seconds=float(longest or 0) + 1)


def _params(since: datetime, until: datetime, now: datetime, lower: datetime, sqlite: bool) -> dict:
    values = {"since": since, "until": until, "now": now, "lower": lower}
    if sqlite:
        return {k: v.astimezone(UTC).strftime(SQLITE_TS) for k, v in values.items()}
    return values


# Two index ranges: sessions started since `lower` (no closed session that started earlier
# can reach `since`), and the few still open that started before it.
WHERE = """
    FROM server_session
    WHERE started_at < :until AND started_at >= :lower
      AND (stopped_at IS NULL OR stopped_at > :since)
"""
WHERE_OLD_OPEN = """
    FROM server_session
    WHERE stopped_at IS NULL AND started_at < :lower AND started_at < :until
"""

SQLITE_CLIPPED = f"""
    clipped AS (
        SELECT "user" AS u, {{g}} AS g,
               max(started_at, :since) AS a,
               min(coalesce(stopped_at, :now), :until) AS b
        {WHERE}
        UNION ALL
        SELECT "user", {{g}}, max(started_at, :since), min(:now, :until)
        {WHERE_OLD_OPEN}
    ),
    s AS (SELECT u, g, a, b FROM clipped WHERE b >= a)
"""  # noqa: S608 - constant SQL, values are bound parameters

PG_CLIPPED = f"""
    clipped AS (
        SELECT "user" AS u, {{g}} AS g,
               greatest(started_at, :since) AT TIME ZONE 'UTC' AS a,
               least(coalesce(stopped_at, :now), :until) AT TIME ZONE 'UTC' AS b
        {WHERE}
        UNION ALL
        SELECT "user", {{g}},
               greatest(started_at, :since) AT TIME ZONE 'UTC',
               least(CAST(:now AS timestamptz), :until) AT TIME ZONE 'UTC'
        {WHERE_OLD_OPEN}
    ),
    s AS (SELECT u, g, a, b FROM clipped WHERE b >= a)
"""  # noqa: S608 - constant SQL, values are bound parameters

# A piece per (session, UTC day it touches); a session ending exactly at midnight does not
# touch the next day, one of zero length still counts in its day (as `aggregate` does).
SQLITE_BY_DAY = f"""
    WITH RECURSIVE {SQLITE_CLIPPED},
    p(u, d, secs, nxt, b) AS (
        SELECT u, substr(a, 1, 10),
               (julianday(min(b, nxt)) - julianday(a)) * 86400.0, nxt, b
        FROM (SELECT u, a, b, date(a, '+1 day') || ' 00:00:00.000000' AS nxt FROM s)
        UNION ALL
        SELECT u, substr(nxt, 1, 10),
               (julianday(min(b, date(nxt, '+1 day') || ' 00:00:00.000000'))
                - julianday(nxt)) * 86400.0,
               date(nxt, '+1 day') || ' 00:00:00.000000', b
        FROM p WHERE nxt < b
    )
    SELECT d, count(*), sum(secs), count(DISTINCT u) FROM p GROUP BY d
"""  # noqa: S608 - constant SQL, values are bound parameters

PG_BY_DAY = f"""
    WITH {PG_CLIPPED},
    p AS (
        SELECT u, a, b, date_trunc('day', a) AS d FROM s
        WHERE b <= date_trunc('day', a) + interval '1 day'
        UNION ALL
        SELECT s.u, s.a, s.b, d FROM s CROSS JOIN LATERAL generate_series(
            date_trunc('day', s.a), s.b - interval '1 microsecond', interval '1 day'
        ) AS d
        WHERE s.b > date_trunc('day', s.a) + interval '1 day'
    )
    SELECT to_char(d, 'YYYY-MM-DD'), count(*),
           sum(extract(epoch FROM least(b, d + interval '1 day') - greatest(a, d))),
           count(DISTINCT u)
    FROM p GROUP BY d
"""  # noqa: S608 - constant SQL, values are bound parameters

SQLITE_BY_USER = f"""
    WITH {SQLITE_CLIPPED}
    SELECT u, count(*), sum((julianday(b) - julianday(a)) * 86400.0) FROM s GROUP BY u
"""  # noqa: S608 - constant SQL, values are bound parameters

PG_BY_USER = f"""
    WITH {PG_CLIPPED}
    SELECT u, count(*), sum(extract(epoch FROM b - a)) FROM s GROUP BY u
"""  # noqa: S608 - constant SQL, values are bound parameters


# (group or NULL when the session predates recorded groups, user, sessions, seconds)
SQLITE_BY_GROUP = f"""
    WITH {SQLITE_CLIPPED}
    SELECT CASE WHEN s.g IS NULL THEN NULL ELSE coalesce(j.value, '{NO_GROUP}') END AS k,
           s.u, count(*), sum((julianday(s.b) - julianday(s.a)) * 86400.0)
    FROM s LEFT JOIN json_each(s.g) AS j
    GROUP BY k, s.u
"""  # noqa: S608 - constant SQL, values are bound parameters

PG_BY_GROUP = f"""
    WITH {PG_CLIPPED}
    SELECT CASE WHEN s.g IS NULL THEN NULL ELSE coalesce(j.value, '{NO_GROUP}') END AS k,
           s.u, count(*), sum(extract(epoch FROM s.b - s.a))
    FROM s LEFT JOIN LATERAL json_array_elements_text(s.g::json) AS j(value) ON true
    GROUP BY k, s.u
"""  # noqa: S608 - constant SQL, values are bound parameters


def usage_in_db(
    engine: Engine,
    *,
    since: datetime,
    until: datetime,
    by: str,
    now: datetime,
    groups_of: Callable[[str], Sequence[str]] = lambda _user: (),
) -> list[UsageRow]:
    """Rows per UTC day (every day of the window, oldest first), per user or per group (most
    server-hours first), computed in the database; blocking (call it in a thread).

    Times are aware UTC datetimes; seconds are summed as floats. Raises ValueError for an
    unknown `by`. The same rows as `hubkeeper.history.usage.aggregate`.
    """
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    with engine.connect() as conn:
        found = query_rows(conn, since=since, until=until, by=by, now=now)
    return rows_of(found, since=since, until=until, by=by, groups_of=groups_of)


def query_rows(
    conn: Connection, *, since: datetime, until: datetime, by: str, now: datetime
) -> list[Any]:
    """The raw result rows of one aggregate query on an open connection (or transaction):
    by=day (day, sessions, seconds, users), by=user (user, sessions, seconds), by=group
    (group or None, user, sessions, seconds)."""
    sqlite = conn.dialect.name == "sqlite"
    lower = _lower_bound(conn, since)
    params = _params(since, until, now, lower, sqlite)
    queries = {
        "day": (SQLITE_BY_DAY, PG_BY_DAY),
        "user": (SQLITE_BY_USER, PG_BY_USER),
        "group": (SQLITE_BY_GROUP, PG_BY_GROUP),
    }[by]
    # groups only where needed: without them the scan is answered from the index alone
    query = (queries[0] if sqlite else queries[1]).format(g="groups" if by == "group" else "NULL")
    return list(conn.execute(text(query), params).all())


def rows_of(
    found: Sequence[Any],
    *,
    since: datetime,
    until: datetime,
    by: str,
    groups_of: Callable[[str], Sequence[str]] = lambda _user: (),
) -> list[UsageRow]:
    """UsageRows from `query_rows` results (by=day: every day of the window, zero rows too)."""
    rows: dict[str, UsageRow] = {}
    if by == "day":
        day = since.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < until:
            key = day.date().isoformat()
            rows[key] = UsageRow(key, user_count=0)
            day += timedelta(days=1)
        for key, sessions, seconds, users in found:
            rows[key] = UsageRow(
                str(key), sessions=int(sessions), seconds=float(seconds or 0), user_count=users
            )
        return [rows[k] for k in sorted(rows)]
    if by == "user":
        for user, sessions, seconds in found:
            rows[user] = UsageRow(user, sessions=int(sessions), seconds=float(seconds or 0))
            rows[user].people.add(user)
    else:
        for group, user, sessions, seconds in found:
            keys = [group] if group is not None else (list(groups_of(user)) or [NO_GROUP])
            for key in keys:
                row = rows.setdefault(key, UsageRow(key))
                row.sessions += int(sessions)
                row.seconds += float(seconds or 0)
                row.people.add(user)
    return sorted(rows.values(), key=lambda r: (-r.seconds, r.key))
