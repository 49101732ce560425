"""Daily usage rollups: by=day over long windows without reading every session again.

A closed UTC day (before today's midnight) does not change once every session touching it
is recorded: an open session's pieces on past days are final (it runs at least until now).
`usage_day` keeps (sessions, seconds, users) per such day. Before each use the rollup is
checked against `server_session` in two index reads, and rebuilt from the earliest day a
change could touch:

- a session inserted since (id above `max_id`) → from its start day;
- a session open at build time (`open_ids`) since closed before `sealed_until` (a stop
  recorded late, at its best time) → from its stop day;
- a new day sealed (midnight passed) → from the old `sealed_until`.

Closed sessions are never edited afterwards (the recorder only inserts and closes). The build
runs in one transaction; on PostgreSQL it first takes `LOCK TABLE server_session IN SHARE
MODE`, so no insert is in flight (sequence ids can commit out of order) and `max_id` is
exact, and an advisory transaction lock so replicas build one at a time. The first build
covers the whole history (seconds on a million sessions, once).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from hubkeeper.history.usage import UsageRow
from hubkeeper.history.usage_db import query_rows, rows_of, usage_in_db
from hubkeeper.kit.clock import as_utc

log = logging.getLogger(__name__)

ROLLUP_LOCK = 0x4855424B524F4C4C  # "HUBKROLL"
MIN_DAYS = 3  # shorter runs of whole days are computed directly


def midnight(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _dt(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return as_utc(value)


def _dirty_from(conn: Connection, sealed: datetime) -> datetime | None:
    """The earliest day the stored rollup may be wrong from; None when it is current."""
    state = conn.execute(
        text("SELECT max_id, sealed_until, open_ids FROM usage_rollup_state WHERE id = 1")
    ).first()
    if state is None:
        oldest = conn.execute(text("SELECT min(started_at) FROM server_session")).scalar()
        return midnight(_dt(oldest)) if oldest is not None else sealed
    max_id, sealed_until, open_ids = int(state[0]), _dt(state[1]), json.loads(state[2])
    candidates: list[datetime] = []
    if sealed_until < sealed:
        candidates.append(sealed_until)
    inserted = conn.execute(
        text("SELECT min(started_at) FROM server_session WHERE id > :id"), {"id": max_id}
    ).scalar()
    if inserted is not None and _dt(inserted) < sealed_until:
        candidates.append(midnight(_dt(inserted)))
    if open_ids:
        ids = ", ".join(str(int(i)) for i in open_ids)
        closed = conn.execute(
            text(
                "SELECT min(stopped_at) FROM server_session "  # noqa: S608 - integers only
                f"WHERE id IN ({ids}) AND stopped_at IS NOT NULL"
            )
        ).scalar()
        if closed is not None and _dt(closed) < sealed_until:
            candidates.append(midnight(_dt(closed)))
    return min(candidates) if candidates else None


def refresh(engine: Engine, now: datetime) -> datetime:
    """Bring `usage_day` up to today's midnight (UTC); returns that boundary. Blocking."""
    sealed = midnight(now)
    with engine.connect() as conn:
        if _dirty_from(conn, sealed) is None:
            return sealed
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ROLLUP_LOCK})
            conn.execute(text("LOCK TABLE server_session IN SHARE MODE"))
        start = _dirty_from(conn, sealed)  # again, under the locks
        if start is None:
            return sealed
        max_id = conn.execute(text("SELECT coalesce(max(id), 0) FROM server_session")).scalar()
        found = query_rows(conn, since=start, until=sealed, by="day", now=sealed)
        conn.execute(text("DELETE FROM usage_day WHERE day >= :d"), {"d": start.date().isoformat()})
        if found:
            conn.execute(
                text(
                    "INSERT INTO usage_day (day, sessions, seconds, users) "
                    "VALUES (:day, :sessions, :seconds, :users)"
                ),
                [
                    {"day": str(d), "sessions": int(n), "seconds": float(s or 0), "users": int(u)}
                    for d, n, s, u in found
                ],
            )
        open_ids = [
            int(i)
            for (i,) in conn.execute(
                text("SELECT id FROM server_session WHERE stopped_at IS NULL AND started_at < :b"),
                {"b": sealed.strftime("%Y-%m-%d %H:%M:%S.%f") if not postgres else sealed},
            )
        ]
        conn.execute(text("DELETE FROM usage_rollup_state"))
        conn.execute(
            text(
                "INSERT INTO usage_rollup_state (id, max_id, sealed_until, open_ids) "
                "VALUES (1, :m, :s, :o)"
            ),
            {
                "m": int(max_id or 0),
                "s": sealed.strftime("%Y-%m-%d %H:%M:%S.%f") if not postgres else sealed,
                "o": json.dumps(open_ids),
            },
        )
        log.info("usage rollup rebuilt from %s to %s", start.date(), sealed.date())
    return sealed


def by_day(engine: Engine, *, since: datetime, until: datetime, now: datetime) -> list[UsageRow]:
    """`usage_in_db(..., by="day")` with the whole closed days of the window read from the
    rollup and only the rest (a partial first day, today) computed. Blocking; same rows."""
    first = midnight(since) if since == midnight(since) else midnight(since) + timedelta(days=1)
    last = min(midnight(until), midnight(now))
    if (last - first).days < MIN_DAYS:
        with engine.connect() as conn:
            found = query_rows(conn, since=since, until=until, by="day", now=now)
        return rows_of(found, since=since, until=until, by="day")
    try:
        refresh(engine, now)
    except Exception as exc:  # a failed build must not fail the report: compute it
        log.warning("usage rollup not refreshed (%s): computing the window directly", exc)
        with engine.connect() as conn:
            found = query_rows(conn, since=since, until=until, by="day", now=now)
        return rows_of(found, since=since, until=until, by="day")
    with engine.connect() as conn:
        found = []
        if since < first:
            found += query_rows(conn, since=since, until=first, by="day", now=now)
        found += conn.execute(
            text(
                "SELECT day, sessions, seconds, users FROM usage_day WHERE day >= :a AND day < :b"
            ),
            {"a": first.date().isoformat(), "b": last.date().isoformat()},
        ).all()
        if last < until:
            found += query_rows(conn, since=last, until=until, by="day", now=now)
    return rows_of(found, since=since, until=until, by="day")


def usage(
    engine: Engine,
    *,
    since: datetime,
    until: datetime,
    by: str,
    now: datetime,
    groups_of: Callable[[str], Sequence[str]] = lambda _user: (),
) -> list[UsageRow]:
    """The usage rows of a window (what the API, the History page and `hubkeeper report`
    call): by=day through the daily rollup, by=user and by=group computed in SQL. Blocking;
    ValueError for an unknown `by`."""
    if by == "day":
        return by_day(engine, since=since, until=until, now=now)
    return usage_in_db(engine, since=since, until=until, by=by, now=now, groups_of=groups_of)
