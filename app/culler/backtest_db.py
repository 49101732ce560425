"""The backtest's reads: sessions started in a window and their servers' activity buckets
(blocking: call in a worker thread). Columns only, never ORM objects, and the activity rows
read once by day range: a year of a 10,000-user hub is about a million of each."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Engine, select

from hubkeeper.culler.backtest import Run, keys_of, make_run
from hubkeeper.db.activity import BUCKET, PER_DAY, from_bytes, read_days
from hubkeeper.db.models import ServerSession
from hubkeeper.kit.clock import as_utc


def load_runs(
    engine: Engine,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    source: str,
    by: str,
    groups_of: Callable[[str], Sequence[str]] = lambda _user: (),
) -> list[Run]:
    """Sessions started in `[since, until)` (UTC), each with the `source` activity of its
    server; a session still open runs until `now`."""
    table = ServerSession.__table__  # type: ignore[attr-defined]
    query = select(
        table.c.user, table.c.server, table.c.started_at, table.c.stopped_at, table.c.groups
    ).where(table.c.started_at >= since, table.c.started_at < until)
    end = now.timestamp()
    sessions: list[tuple[str, str, float, float, tuple[str, ...]]] = []
    first = last = None
    keys_cache: dict[tuple[str, str | None], tuple[str, ...]] = {}
    with engine.connect() as conn:
        for user, server, started, stopped, groups in conn.execute(query).yield_per(20_000):
            start = as_utc(started).timestamp()
            stop = as_utc(stopped).timestamp() if stopped is not None else max(end, start)
            cache_key = (user, None if by == "user" else groups)
            keys = keys_cache.get(cache_key)
            if keys is None:
                keys = keys_cache[cache_key] = keys_of(by, user, groups, groups_of)
            sessions.append((user, server, start, stop, keys))
            first = start if first is None or start < first else first
            last = stop if last is None or stop > last else last
    if first is None or last is None:
        return []
    wanted = {(u, s) for u, s, *_ in sessions}
    days: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    first_day = int(first) // BUCKET // PER_DAY
    last_day = int(last) // BUCKET // PER_DAY
    for user, server, day, data in read_days(engine, first_day, last_day, source):
        if (user, server) in wanted:
            days[(user, server)][day] = from_bytes(data)
    runs: list[Run] = []
    for user, server, start, stop, keys in sessions:
        run = make_run(user, keys, start, stop, days.get((user, server)))
        if run is not None:
            runs.append(run)
    return runs
