"""The backtest's reads: sessions started in a window and their servers' activity buckets
(blocking: call in a worker thread).

A year of a 10,000-user hub is about a million sessions and a million activity rows, so the
reads skip the ORM and SQLAlchemy's row processing: the database hands back times as seconds
since the epoch (no datetime per row), through the driver's own cursor, and the activity is
read once by day range."""

from __future__ import annotations

import gc
import math
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from hubkeeper.culler.backtest import Result, Run, keys_of, replay_many
from hubkeeper.db.activity import BUCKET, PER_DAY, SOURCES
from hubkeeper.kit.prices import price_of

FETCH = 20_000  # rows per fetch from the driver

# SQLite: whole seconds by unixepoch() where the library has it (3.38+), else julianday
# (exact to about 50 µs, rounded to the millisecond). A long window reads the whole table:
# `+column` keeps SQLite from the index, whose row-by-row lookups cost more than a scan.
SCAN_DAYS = 60
EPOCH_SQLITE = (
    "unixepoch({c})"
    if sqlite3.sqlite_version_info >= (3, 38)
    else "round((julianday({c}) - 2440587.5) * 86400.0, 3)"
)
SESSIONS_SQLITE = (
    'SELECT "user", server, '  # noqa: S608 - constants only; values are bound
    + EPOCH_SQLITE.format(c="started_at")
    + ", "
    + EPOCH_SQLITE.format(c="stopped_at")
    + ", groups, profile FROM server_session"
    + " WHERE {plus}started_at >= ? AND {plus}started_at < ?"
)
SESSIONS_POSTGRES = """
SELECT "user", server, round(extract(epoch FROM started_at)::numeric, 3)::float8,
       round(extract(epoch FROM stopped_at)::numeric, 3)::float8, groups, profile
FROM server_session WHERE started_at >= %s AND started_at < %s
"""
ACTIVITY_SQLITE = """
SELECT "user", server, day, {source} FROM server_activity
WHERE {plus}day >= ? AND {plus}day <= ? AND length({source}) > 0
"""
ACTIVITY_POSTGRES = """
SELECT "user", server, day, {source} FROM server_activity
WHERE day >= %s AND day <= %s AND length({source}) > 0
"""


def _rows(conn: Connection, sql: str, params: tuple[Any, ...]) -> Iterable[tuple[Any, ...]]:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(FETCH):
            yield from batch
    finally:
        cursor.close()


def _bound(conn: Connection, when: datetime) -> Any:
    """A time as the column stores it: on SQLite, SQLAlchemy's text form in UTC (as
    history/usage_db.py binds it)."""
    if conn.dialect.name == "sqlite":
        return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return when


_PAUSES = 0
_PAUSE_LOCK = threading.Lock()
# One read at a time per process: a year of a large hub is a few hundred MB while it is read.
_ONE_READ = threading.BoundedSemaphore(1)


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off while a million tuples are made (none of them in a
    cycle): it would walk them again and again, 40 % of the read's time. Reference counting
    still frees everything; the collector is back on when the last reader is done."""
    global _PAUSES
    with _PAUSE_LOCK:
        _PAUSES += 1
        gc.disable()
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSES -= 1
            if _PAUSES == 0:
                gc.enable()


def load_runs(
    engine: Engine,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    source: str,
    by: str,
    groups_of: Callable[[str], Sequence[str]] = lambda _user: (),
    prices: Mapping[str, float] | None = None,
) -> list[Run]:
    """Sessions started in `[since, until)` (UTC), each with the `source` activity ("hub" or
    "kernels") of its server and, with `prices` (HUBKEEPER_PRICES), the price per server-hour
    of its profile; a session still open runs until `now`. Times in seconds since the epoch
    (whole seconds on SQLite 3.38+, else to the millisecond). One read at a time per process;
    the garbage collector is paused meanwhile (`paused_gc`)."""
    if source not in SOURCES:
        raise ValueError(f"unknown activity source {source!r}")
    with _ONE_READ, paused_gc():
        return list(_iter_runs(engine, since, until, now, source, by, groups_of, prices))


def replay_window(
    engine: Engine,
    timeouts: Iterable[int],
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    source: str,
    by: str,
    groups_of: Callable[[str], Sequence[str]] = lambda _user: (),
    prices: Mapping[str, float] | None = None,
) -> dict[int, Result]:
    """`replay_many` over the sessions `load_runs` would give, streamed as they are read:
    no list of a million sessions is held (blocking; one at a time per process)."""
    if source not in SOURCES:
        raise ValueError(f"unknown activity source {source!r}")
    with _ONE_READ, paused_gc():
        runs = _iter_runs(engine, since, until, now, source, by, groups_of, prices)
        return replay_many(runs, timeouts)


def _iter_runs(
    engine: Engine,
    since: datetime,
    until: datetime,
    now: datetime,
    source: str,
    by: str,
    groups_of: Callable[[str], Sequence[str]],
    prices: Mapping[str, float] | None = None,
) -> Iterator[Run]:
    end = now.timestamp()
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        plus = "+" if (until - since).days >= SCAN_DAYS else ""
        # the activity first, of every day a session of the window can reach (to now), in
        # one dict by (user, server, day): one lookup per session-day
        first_day = int(since.timestamp()) // BUCKET // PER_DAY
        span = (first_day, int(max(end, until.timestamp())) // BUCKET // PER_DAY)
        activity = (ACTIVITY_SQLITE if sqlite else ACTIVITY_POSTGRES).format(
            source=source, plus=plus
        )
        from_bytes = int.from_bytes
        days = {
            (user, server, day): from_bytes(data, "little")
            for user, server, day, data in _rows(conn, activity, span)
        }
        params = (_bound(conn, since), _bound(conn, until))
        query = SESSIONS_SQLITE.format(plus=plus) if sqlite else SESSIONS_POSTGRES
        yield from make_runs(_rows(conn, query, params), days, end, by, groups_of, prices)


def make_runs(
    rows: Iterable[tuple[Any, ...]],
    days: Mapping[tuple[str, str, int], int],
    end: float,
    by: str,
    groups_of: Callable[[str], Sequence[str]],
    prices: Mapping[str, float] | None = None,
) -> Iterator[Run]:
    """`Run`s from session rows `(user, server, start s, stop s or None, groups, profile)`
    and their servers' bitmaps by `(user, server, day)`; an open session runs until `end`
    (s since the epoch); a session without a stop after its start is left out."""
    price_by_profile: dict[str | None, float | None] = {}  # a few profiles: priced once each
    keys_cache: dict[str, tuple[str, ...]] = {}
    users: dict[str, str] = {}
    make = Run._make
    ceil = math.ceil
    for user, server, start, stop, groups, profile in rows:
        if stop is None:
            stop = end
        if stop <= start:
            continue
        # one string object per user, one keys tuple per user or group list: a million
        # sessions keep shared objects, not a copy each
        user = users.setdefault(user, user)
        cache_key = groups if by == "group" and groups is not None else user
        keys = keys_cache.get(cache_key)
        if keys is None:
            keys = keys_cache[cache_key] = keys_of(by, user, groups, groups_of)
        b0 = int(start) // BUCKET  # backtest.bucket_span and day_bits, inlined
        n = (ceil(stop) - 1) // BUCKET - b0 + 1
        d0, offset = divmod(b0, PER_DAY)
        if offset + n <= PER_DAY:  # within one UTC day (most sessions)
            bits = (days.get((user, server, d0), 0) >> offset) & ((1 << n) - 1)
        else:
            combined = 0
            for day in range(d0, (b0 + n - 1) // PER_DAY + 1):
                found = days.get((user, server, day))
                if found:
                    combined |= found << ((day - d0) * PER_DAY)
            bits = (combined >> offset) & ((1 << n) - 1)
        if profile in price_by_profile:
            price = price_by_profile[profile]
        else:
            price = price_by_profile[profile] = price_of(profile, prices) if prices else None
        yield make((user, keys, start, stop, b0, n, bits | 1, price))
