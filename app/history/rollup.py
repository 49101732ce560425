"""Usage rollups: long windows without reading every session again.

A closed UTC day (before today's midnight) does not change once every session touching it
is recorded: an open session's pieces on past days are final (it runs at least until now).
Four tables keep closed days, built together:

- `usage_user_day`: per day, user, groups at start and profile: pieces (sessions touching
  the day), starts (sessions that started that day) and server-seconds;
- `usage_day`: per day, summed from it, with distinct users (what by=day reads);
- `usage_day_profile`: per day and profile, the server-seconds (by=day's cost: prices apply
  when a report is read, so a change of HUBKEEPER_PRICES needs no rebuild);
- `usage_user_month`: `usage_user_day` summed over each closed month (what by=user and
  by=group read for the whole months of a window, the days for its edges). Starts, not
  pieces, are summed: a session over several days or months counts once in a wider window
  (`hubkeeper.history.report` adds the sessions already running at the window's start).

Before each use the state row is checked against `server_session` in a few index reads, and
the rollups are rebuilt from the earliest day a change could touch:

- a session inserted since (id above `max_id`) → from its start day;
- a session open at build time (`open_ids`) since closed before `sealed_until` (a stop
  recorded late, at its best time) → from its stop day;
- a new day sealed (midnight passed) → from the old `sealed_until`.

Closed sessions are never edited afterwards (the recorder only inserts and closes). A build
runs in transactions of at most `CHUNK_DAYS` days, each advancing the state, so the first
build over years of history never holds the database for long and an interrupted one goes on
where it stopped. On PostgreSQL each chunk first takes `LOCK TABLE server_session IN SHARE
MODE`, so no insert is in flight (sequence ids can commit out of order) and `max_id` is exact,
and an advisory transaction lock so replicas build one at a time.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from hubkeeper.history.usage_db import bind_time, fill_days_by_people
from hubkeeper.kit.clock import as_utc

log = logging.getLogger(__name__)

ROLLUP_LOCK = 0x4855424B524F4C4C  # "HUBKROLL"
CHUNK_DAYS = 62  # days rebuilt per transaction
# A report rebuilds a rollup that is behind by at most this many sessions itself (a new day,
# a late stop: well under a second); more (the first build) is the usage-rollup loop's work
# and the report is computed from the sessions meanwhile.
INLINE_SESSIONS = 20_000
_building = threading.Lock()  # one build at a time in this process (SQLite has no table lock)


def midnight(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(value: datetime) -> datetime:
    return midnight(value).replace(day=1)


def _dt(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return as_utc(value)


def _dirty_from(conn: Connection, sealed: datetime) -> datetime | None:
    """The earliest day the stored rollups may be wrong from; None when they are current."""
    state = conn.execute(
        text("SELECT max_id, sealed_until, open_ids FROM usage_rollup_state WHERE id = 1")
    ).first()
    if state is None:
        oldest = conn.execute(text("SELECT min(started_at) FROM server_session")).scalar()
        return midnight(_dt(oldest)) if oldest is not None and _dt(oldest) < sealed else None
    max_id, sealed_until, open_ids = int(state[0]), _dt(state[1]), json.loads(state[2])
    candidates: list[datetime] = []
    if sealed_until < sealed:
        candidates.append(sealed_until)
    # Both lookups go by id first (MATERIALIZED): asked for min(started_at) or min(stopped_at)
    # directly, SQLite and PostgreSQL walk that column's whole index looking for the few ids.
    inserted = conn.execute(
        text(
            "WITH later AS MATERIALIZED (SELECT started_at FROM server_session WHERE id > :id) "
            "SELECT min(started_at) FROM later"
        ),
        {"id": max_id},
    ).scalar()
    if inserted is not None and _dt(inserted) < sealed_until:
        candidates.append(midnight(_dt(inserted)))
    if open_ids:
        ids = ", ".join(str(int(i)) for i in open_ids)
        closed = conn.execute(
            text(
                "WITH opened AS MATERIALIZED ("  # noqa: S608 - integers only
                f"SELECT stopped_at FROM server_session WHERE id IN ({ids})) "
                "SELECT min(stopped_at) FROM opened"
            )
        ).scalar()
        if closed is not None and _dt(closed) < sealed_until:
            candidates.append(midnight(_dt(closed)))
    return min(candidates) if candidates else None


def behind(engine: Engine, now: datetime) -> tuple[datetime, int] | None:
    """How far the rollups are behind: (the day they are wrong from, sessions started since
    then, counted up to INLINE_SESSIONS + 1), or None when they are current. Blocking."""
    with engine.connect() as conn:
        start = _dirty_from(conn, midnight(now))
        if start is None:
            return None
        pending = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM server_session "
                "WHERE started_at >= :s LIMIT :n) AS later"
            ),
            {"s": bind_time(conn, start), "n": INLINE_SESSIONS + 1},
        ).scalar()
    return start, int(pending or 0)


def refresh(
    engine: Engine,
    now: datetime,
    *,
    max_sessions: int | None = None,
    stop: threading.Event | None = None,
) -> bool:
    """Bring the rollups up to today's midnight (UTC `now`), a chunk at a time. With
    `max_sessions`, only when at most that many sessions started since the first day to
    rebuild (else nothing is done); `stop` set ends the build after the chunk under way.
    Returns whether they are current. Blocking; database errors propagate (the state stays
    at the last finished chunk)."""
    sealed = midnight(now)
    lag = behind(engine, now)
    if lag is None:
        return True
    if max_sessions is not None and lag[1] > max_sessions:
        return False
    with _building:
        while (start := _build_chunk(engine, sealed)) is not None:
            log.info("usage rollups rebuilt from %s", start.date())
            if stop is not None and stop.is_set():
                return False
    return True


def _build_chunk(engine: Engine, sealed: datetime) -> datetime | None:
    """Rebuild the first stale chunk (at most CHUNK_DAYS days) in one transaction; returns
    the day it started from, None when the rollups were already current."""
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ROLLUP_LOCK})
            conn.execute(text("LOCK TABLE server_session IN SHARE MODE"))
        start = _dirty_from(conn, sealed)  # again, under the locks
        if start is None:
            return None
        end = min(sealed, start + timedelta(days=CHUNK_DAYS))
        # the order matters on SQLite (no table lock): what is read after max_id and
        # open_ids and changes later is noticed by the next check
        max_id = conn.execute(text("SELECT coalesce(max(id), 0) FROM server_session")).scalar()
        open_ids = [
            int(i)
            for (i,) in conn.execute(
                text("SELECT id FROM server_session WHERE stopped_at IS NULL AND started_at < :b"),
                {"b": bind_time(conn, end)},
            )
        ]
        _rebuild(conn, start, end)
        conn.execute(text("DELETE FROM usage_rollup_state"))
        conn.execute(
            text(
                "INSERT INTO usage_rollup_state (id, max_id, sealed_until, open_ids) "
                "VALUES (1, :m, :s, :o)"
            ),
            {"m": int(max_id or 0), "s": bind_time(conn, end), "o": json.dumps(open_ids)},
        )
    return start


def _rebuild(conn: Connection, start: datetime, end: datetime) -> None:
    """The rollups from day `start` on, filled up to `end` (both UTC midnights). An
    open session counts up to `end`: its pieces before then are final."""
    # Only [start, end) is replaced: the days after it stay (stale, not missing) until their
    # own chunk, so a report that found the rollups current a moment ago still reads every day.
    days = {"a": start.date().isoformat(), "b": end.date().isoformat()}
    # the months this chunk completes (a month is kept once its last day is closed)
    months = {"a": month_start(start).date().isoformat(), "b": month_start(end).date().isoformat()}
    conn.execute(text("DELETE FROM usage_user_day WHERE day >= :a AND day < :b"), days)
    conn.execute(text("DELETE FROM usage_day WHERE day >= :a AND day < :b"), days)
    conn.execute(text("DELETE FROM usage_day_profile WHERE day >= :a AND day < :b"), days)
    conn.execute(
        text("DELETE FROM usage_user_month WHERE month >= :a AND month < :b"),
        {"a": months["a"][:7], "b": months["b"][:7]},
    )
    fill_days_by_people(conn, since=start, until=end, now=end)
    conn.execute(
        text(
            "INSERT INTO usage_day (day, sessions, seconds, users) "
            'SELECT day, sum(pieces), sum(seconds), count(DISTINCT "user") '
            "FROM usage_user_day WHERE day >= :a AND day < :b GROUP BY day"
        ),
        days,
    )
    conn.execute(
        text(
            "INSERT INTO usage_day_profile (day, profile, seconds) "
            "SELECT day, profile, sum(seconds) "
            "FROM usage_user_day WHERE day >= :a AND day < :b GROUP BY day, profile"
        ),
        days,
    )
    conn.execute(
        text(
            'INSERT INTO usage_user_month (month, "user", groups, profile, starts, seconds) '
            'SELECT substr(day, 1, 7), "user", groups, profile, sum(starts), sum(seconds) '
            "FROM usage_user_day WHERE day >= :a AND day < :b "
            'GROUP BY substr(day, 1, 7), "user", groups, profile'
        ),
        months,
    )
