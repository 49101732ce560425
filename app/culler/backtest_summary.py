"""The backtest's summary: each closed session's record gaps (culler/backtest_gaps.py) in
`backtest_gap`, so a year's backtest is one aggregate in SQL, not a million sessions and
their bitmaps read into Python. Blocking: call in a worker thread.

Built by `build` (the leader's backtest-summary loop, `keep_summary_current`), in batches
by session id: every session up to `done_id` is summarised, or waits in `waiting` while open
or closed less than `SETTLE` ago (its last bucket's activity may still be on its way).
A session recorded late — inserted after the summaries around its start were built, with a
start less than `SETTLE` + 15 min ago at most (after an outage) — sends its user's
summaries that it could be a regret of back to `waiting`.

`replay_fast` answers like `backtest_db.replay_window`: the summarised sessions of the
window from the summary (one aggregate over every timeout at once), the rest (open, recent,
not yet summarised) replayed in Python as before; with more than `INLINE_SESSIONS` of those
(the first build) it says so in the log and replays the whole window the old way.

Activity written for a bucket more than `LATE_MARK` (30 min) after it (the recorder down with
its marks kept, or history written after the fact) is noted in `backtest_stale` by
db/activity.py; the summaries of the closed sessions holding such a bucket are sent back to
be built before the next backtest or build (`forget_stale`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, text

from hubkeeper.culler.backtest import (
    REGRET_WINDOW,
    GroupsOf,
    Result,
    Tally,
    keys_of,
    replay_many,
)
from hubkeeper.culler.backtest_db import (
    _ONE_READ,
    EPOCH_SQLITE,
    _rows,
    make_runs,
    paused_gc,
    replay_window,
)
from hubkeeper.culler.backtest_gaps import record_gaps, returns
from hubkeeper.db.activity import BUCKET, LATE_MARK, PER_DAY, SOURCES
from hubkeeper.kit.prices import price_of

log = logging.getLogger(__name__)

SETTLE = 3600  # s after a stop before a session is summarised
assert LATE_MARK <= SETTLE  # a mark not noted late falls after every summarised session
BATCH = 20_000  # sessions per build transaction (a few seconds of the write lock at most)
INLINE_SESSIONS = 20_000  # unsummarised sessions in a window replayed beside the summary
REFRESH_INTERVAL = 300.0  # s between the loop's builds
SUMMARY_LOCK = 0x4855424B42544753  # "HUBKBTGS": one builder at a time on PostgreSQL
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_building = threading.Lock()

_SESSION_COLUMNS_SQLITE = (
    'id, "user", server, '
    + EPOCH_SQLITE.format(c="started_at")
    + ", "
    + EPOCH_SQLITE.format(c="stopped_at")
    + ", groups, profile, started_at"
)
_SESSION_COLUMNS_POSTGRES = (
    'id, "user", server, round(extract(epoch FROM started_at)::numeric, 3)::float8, '
    "round(extract(epoch FROM stopped_at)::numeric, 3)::float8, groups, profile, started_at"
)


def micros(when: Any) -> int:
    """A stored or given time as whole microseconds since the epoch (exact: SQLite's text or
    a datetime; naive = UTC)."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(microseconds=1)


def _columns(conn: Connection) -> str:
    return _SESSION_COLUMNS_SQLITE if conn.dialect.name == "sqlite" else _SESSION_COLUMNS_POSTGRES


def _param(conn: Connection) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


class State(NamedTuple):
    done_id: int = 0  # every session up to it summarised, or waiting
    max_seen: int = 0  # the highest session id at the last build
    waiting: tuple[int, ...] = ()  # open, or closed less than SETTLE ago
    version: int = 0  # one more at every build step: two reads agree on it or read again


def _state(conn: Connection) -> State:
    row = conn.execute(
        text("SELECT done_id, max_seen, waiting, version FROM backtest_summary_state WHERE id = 1")
    ).first()
    if row is None:
        return State()
    waiting = tuple(int(i) for i in json.loads(row[2]))
    return State(int(row[0]), int(row[1]), waiting, int(row[3]))


def _save_state(conn: Connection, state: State) -> None:
    conn.execute(text("DELETE FROM backtest_summary_state"))
    conn.execute(
        text(
            "INSERT INTO backtest_summary_state (id, done_id, max_seen, waiting, version) "
            "VALUES (1, :d, :m, :w, :v)"
        ),
        {
            "d": state.done_id,
            "m": state.max_seen,
            "w": json.dumps(sorted(set(state.waiting))),
            "v": state.version,
        },
    )


def _forget(conn: Connection, ids: Sequence[int]) -> None:
    """Delete these sessions' summary rows (the record gaps by their primary key: source,
    key, session)."""
    p = _param(conn)
    found: list[tuple[int, int]] = []
    for at in range(0, len(ids), 500):
        chunk = tuple(ids[at : at + 500])
        marks = ", ".join([p] * len(chunk))
        found += _rows(
            conn,
            f"SELECT kid, session_id FROM backtest_session WHERE session_id IN ({marks})",  # noqa: S608
            chunk,
        )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(
            f"DELETE FROM backtest_gap WHERE source = {p} AND kid = {p} AND session_id = {p}",  # noqa: S608
            [(source, kid, sid) for kid, sid in found for source in SOURCES],
        )
        for table in ("backtest_return", "backtest_session"):
            cursor.executemany(
                f"DELETE FROM {table} WHERE session_id = {p}",  # noqa: S608 - constant names
                [(sid,) for _kid, sid in found],
            )
    finally:
        cursor.close()


def _late(conn: Connection, max_seen: int, max_id: int, horizon: float) -> list[int]:
    """Summaries a session inserted since `max_seen` could be a regret of: the same user's,
    whose span plus 15 min holds its start (only starts before `horizon` can be)."""
    p = _param(conn)
    rows = list(
        _rows(
            conn,
            f"SELECT {_columns(conn)} FROM server_session WHERE id > {p} AND id <= {p}",  # noqa: S608
            (max_seen, max_id),
        )
    )
    found: list[int] = []
    for _id, user, _server, start, _stop, _groups, _profile, _at in rows:
        if start is None or start >= horizon:
            continue
        query = (
            "SELECT b.session_id FROM backtest_session b JOIN backtest_key k ON k.id = b.kid "  # noqa: S608 - constants; values bound
            f'WHERE k."user" = {p} AND b.start_s < {p} AND b.stop_s + {REGRET_WINDOW} >= {p}'
        )
        found += [r[0] for r in _rows(conn, query, (user, start, start))]
    return found


def _stale(conn: Connection) -> list[int]:
    """The summarised sessions holding a bucket of activity recorded late (`backtest_stale`,
    written by db/activity.py); the notes are consumed."""
    notes = list(_rows(conn, 'SELECT "user", server, bucket FROM backtest_stale', ()))
    if not notes:
        return []
    p = _param(conn)
    query = (
        "SELECT b.session_id FROM backtest_session b JOIN server_session s "  # noqa: S608
        f'ON s.id = b.session_id WHERE s."user" = {p} AND s.server = {p} '
        f"AND b.start_s < {p} AND b.stop_s > {p}"
    )
    found: set[int] = set()
    for user, server, bucket in notes:
        params = (user, server, (bucket + 1) * BUCKET, bucket * BUCKET)
        found.update(r[0] for r in _rows(conn, query, params))
    conn.execute(text("DELETE FROM backtest_stale"))
    return sorted(found)


def forget_stale(engine: Engine, now: datetime | None = None) -> bool:
    """Send back to be built the summaries that activity recorded late touches, and those a
    session recorded late (below the last build's view, e.g. the recorder reconciling after
    an outage) could be a regret of: a backtest must not read them until then. A quick step
    when there is neither (one read). `now`: UTC, for which sessions could be summarised
    (default: the clock). Returns whether anything was looked at."""
    with engine.connect() as conn:
        notes = conn.execute(text("SELECT 1 FROM backtest_stale LIMIT 1")).first() is not None
        max_seen = _state(conn).max_seen
        newer = bool(max_seen) and _max_id(conn) > max_seen
    if not notes and not newer:
        return False
    horizon = (now or datetime.now(UTC)).timestamp() - SETTLE
    with _building, engine.begin() as conn:
        if conn.dialect.name != "sqlite":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SUMMARY_LOCK})
            # as `build`: no insert in flight, so no id below the new `max_seen` comes later
            conn.execute(text("LOCK TABLE server_session IN SHARE MODE"))
        state = _state(conn)
        max_id = _max_id(conn)
        late = _stale(conn)
        if state.max_seen and max_id > state.max_seen:
            late += _late(conn, state.max_seen, max_id, horizon + REGRET_WINDOW)
        seen = max(state.max_seen, max_id) if state.max_seen else state.max_seen
        if late:
            _forget(conn, late)
            waiting = tuple(sorted(set(state.waiting) | set(late)))
            _save_state(
                conn, state._replace(waiting=waiting, max_seen=seen, version=state.version + 1)
            )
        elif seen != state.max_seen:
            _save_state(conn, state._replace(max_seen=seen))
    return True


def _max_id(conn: Connection) -> int:
    return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM server_session")).one()[0])


def build(engine: Engine, now: datetime, batch: int = BATCH) -> int:
    """One step of the summary: up to `batch` sessions by id, and those waiting that have
    settled. Returns the sessions read (0: current). One transaction; one build at a time
    (a lock in this process, an advisory lock on PostgreSQL, where session inserts wait for
    the step). Database errors propagate."""
    horizon = now.timestamp() - SETTLE
    with _building, engine.begin() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if not sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SUMMARY_LOCK})
            # no insert in flight: sequence ids can commit out of order, and a session below
            # `done_id` committed later would never be summarised (as history/rollup.py)
            conn.execute(text("LOCK TABLE server_session IN SHARE MODE"))
        state = _state(conn)
        done_id, max_seen, waiting = state.done_id, state.max_seen, list(state.waiting)
        max_id = _max_id(conn)
        late = _stale(conn)
        if max_seen and max_id > max_seen:
            late += _late(conn, max_seen, max_id, horizon + REGRET_WINDOW)
        if late:
            _forget(conn, late)
            waiting = sorted(set(waiting) | set(late))
        p = _param(conn)
        rows = list(
            _rows(
                conn,
                f"SELECT {_columns(conn)} FROM server_session WHERE id > {p} "  # noqa: S608
                f"ORDER BY id LIMIT {int(batch)}",
                (done_id,),
            )
        )
        if waiting:
            for at in range(0, len(waiting), 500):
                chunk = waiting[at : at + 500]
                marks = ", ".join([p] * len(chunk))
                rows += _rows(
                    conn,
                    f"SELECT {_columns(conn)} FROM server_session WHERE id IN ({marks})",  # noqa: S608
                    tuple(chunk),
                )
        new_done = max((r[0] for r in rows if r[0] > done_id), default=done_id)
        ready = []
        still: list[int] = []
        for row in rows:
            sid, _user, _server, start, stop = row[:5]
            if stop is None or stop >= horizon:
                still.append(sid)
            elif stop > start:
                ready.append(row)
        _summarise(conn, ready)
        _save_state(conn, State(new_done, max(max_id, max_seen), tuple(still), state.version + 1))
        return len(rows) if (new_done > done_id or len(ready)) else 0


def _summarise(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Write the summary rows of these closed sessions (replacing any)."""
    if not rows:
        return
    sqlite = conn.dialect.name == "sqlite"
    p = _param(conn)
    # never summarised yet: new ids, or waiting (a summarised session leaves `waiting`, and
    # `_late` forgets the summaries it sends back)
    first = min(r[3] for r in rows)
    last = max(r[4] for r in rows)
    # the activity of the days they cover, and every start of their users around them
    first_day = int(first) // BUCKET // PER_DAY
    last_day = int(last) // BUCKET // PER_DAY
    wanted = {(r[1], r[2]) for r in rows}
    days: dict[str, dict[tuple[str, str, int], int]] = {s: {} for s in SOURCES}
    for user, server, day, hub, kernels in _rows(
        conn,
        f'SELECT "user", server, day, hub, kernels FROM server_activity '  # noqa: S608
        f"WHERE day >= {p} AND day <= {p}",
        (first_day, last_day),
    ):
        if (user, server) in wanted:
            days["hub"][(user, server, day)] = int.from_bytes(hub or b"", "little")
            days["kernels"][(user, server, day)] = int.from_bytes(kernels or b"", "little")
    users = {r[1] for r in rows}
    low = datetime.fromtimestamp(first, UTC) - timedelta(seconds=1)
    high = datetime.fromtimestamp(last + REGRET_WINDOW + 1, UTC)
    bound = (
        (low.strftime("%Y-%m-%d %H:%M:%S.%f"), high.strftime("%Y-%m-%d %H:%M:%S.%f"))
        if sqlite
        else (low, high)
    )
    starts: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for _sid, user, _server, start, stop, _g, _p, at in _rows(
        conn,
        f"SELECT {_columns(conn)} FROM server_session "  # noqa: S608
        f"WHERE started_at >= {p} AND started_at <= {p}",
        bound,
    ):
        if user in users and (stop is None or stop > start):
            starts[user].append((start, micros(at)))
    for values in starts.values():
        values.sort()
    by_user: dict[str, tuple[list[float], dict[float, int]]] = {}
    keys = {
        (user, groups, profile): kid
        for kid, user, groups, profile in conn.execute(
            text('SELECT id, "user", groups, profile FROM backtest_key')
        )
    }
    sessions: list[tuple[Any, ...]] = []
    gaps: list[tuple[Any, ...]] = []
    back: list[tuple[Any, ...]] = []
    # the sessions' runs, one source after the other (every row has a stop after its start)
    plain = [(r[1], r[2], r[3], r[4], None, None) for r in rows]
    hub_runs = make_runs(plain, days[SOURCES[0]], 0.0, "user", lambda _u: ())
    kernel_runs = make_runs(plain, days[SOURCES[1]], 0.0, "user", lambda _u: ())
    for row in rows:
        sid, user, _server, start, stop, groups, profile, at = row
        kid = keys.get((user, groups, profile))
        if kid is None:
            kid = conn.execute(
                text(
                    'INSERT INTO backtest_key ("user", groups, profile) VALUES (:u, :g, :p) '
                    "RETURNING id"
                ),
                {"u": user, "g": groups, "p": profile},
            ).one()[0]
            keys[(user, groups, profile)] = kid
        start_us = micros(at)
        sessions.append((sid, kid, start_us, start, stop))
        at_s, us_of = by_user.get(user) or by_user.setdefault(user, _split(starts.get(user)))
        kept: set[tuple[float, int]] = set()
        for source, run in ((SOURCES[0], next(hub_runs)), (SOURCES[1], next(kernel_runs))):
            for seq, gap in enumerate(record_gaps(run)):
                found = returns(gap, at_s)
                gaps.append(
                    (
                        source,
                        kid,
                        sid,
                        seq,
                        start_us,
                        gap.f,
                        gap.lo,
                        gap.hi,
                        stop - gap.f,
                        None if gap.back is None else gap.back - gap.f - REGRET_WINDOW,
                        found[0] if found else None,
                        us_of[found[0]] if found else None,
                        len(found) > 1,
                    )
                )
                if len(found) > 1:
                    kept.update((s, us_of[s]) for s in found)
        back += [(sid, us, s) for s, us in kept]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(
            "INSERT INTO backtest_session (session_id, kid, start_us, start_s, stop_s) "  # noqa: S608
            f"VALUES ({p}, {p}, {p}, {p}, {p})",
            sessions,
        )
        cursor.executemany(
            "INSERT INTO backtest_gap (source, kid, session_id, seq, start_us, f, lo, hi, a, rb,"  # noqa: S608
            f" ret, ret_us, many) VALUES ({', '.join([p] * 13)})",
            gaps,
        )
        if back:
            cursor.executemany(
                f"INSERT INTO backtest_return (session_id, at_us, at) VALUES ({p}, {p}, {p})",  # noqa: S608
                back,
            )
    finally:
        cursor.close()


def _split(starts: list[tuple[float, int]] | None) -> tuple[list[float], dict[float, int]]:
    """A user's starts (sorted) and their exact times by start."""
    return [s for s, _ in starts or ()], dict(starts or ())


def build_all(engine: Engine, now: datetime, batch: int = BATCH) -> int:
    """`build` until current (the backfill). Returns the sessions read."""
    total = 0
    while read := build(engine, now, batch):
        total += read
    return total


def rebuild(engine: Engine, now: datetime) -> int:
    """Forget the summary and build it again from every session (a tool: late activity and
    late sessions are caught without it). Returns the sessions read."""
    with _building, engine.begin() as conn:
        for table in (
            "backtest_gap",
            "backtest_return",
            "backtest_session",
            "backtest_key",
            "backtest_summary_state",
            "backtest_stale",
        ):
            conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - constant names
    return build_all(engine, now)


async def keep_summary_current(
    engine: Engine, interval: float = REFRESH_INTERVAL, clock: Callable[[], datetime] | None = None
) -> None:
    """The backtest-summary loop (one replica, under the leader): the backfill in steps,
    then every `interval` s the sessions that closed and settled since."""
    now = clock or (lambda: datetime.now(UTC))
    while True:
        try:
            read = await asyncio.to_thread(build, engine, now())
        except Exception as exc:  # noqa: BLE001 - a loop that keeps going; logged
            log.warning("backtest summary not built (%s)", exc)
            read = 0
        # a backfill goes on at once (each step its own transaction); then every `interval`
        await asyncio.sleep(0 if read else interval)


def _unsummarised(
    conn: Connection, since: datetime, until: datetime, done_id: int, waiting: Sequence[int]
) -> list[tuple[Any, ...]]:
    """The window's sessions the summary lacks: ids above `done_id`, and those waiting."""
    p = _param(conn)
    sqlite = conn.dialect.name == "sqlite"
    bounds: tuple[Any, ...] = (
        (
            since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
            until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        )
        if sqlite
        else (since, until)
    )
    window = f"started_at >= {p} AND started_at < {p}"
    rows = list(
        _rows(
            conn,
            f"SELECT {_columns(conn)} FROM server_session WHERE id > {p} AND {window}",  # noqa: S608
            (done_id, *bounds),
        )
    )
    for at in range(0, len(waiting), 500):
        chunk = tuple(waiting[at : at + 500])
        marks = ", ".join([p] * len(chunk))
        rows += _rows(
            conn,
            f"SELECT {_columns(conn)} FROM server_session "  # noqa: S608
            f"WHERE id IN ({marks}) AND {window}",
            (*chunk, *bounds),
        )
    return rows


def _aggregate_sql(count: int) -> str:
    """Per key, for timeouts :t0..: the cuts, the seconds saved and the regrets, in one pass
    over the record gaps that can cut under one of them."""
    parts = []
    for i in range(count):
        t = f":t{i}"
        cut = f"lo <= {t} AND {t} < hi"
        again = (
            f"({t} >= rb OR (ret IS NOT NULL AND ret_us < :until AND (CASE WHEN many THEN "  # noqa: S608
            "EXISTS (SELECT 1 FROM backtest_return r WHERE r.session_id = g.session_id "
            f"AND r.at > f + {t} AND r.at <= f + {t} + {REGRET_WINDOW} AND r.at_us < :until) "
            f"ELSE ret > f + {t} AND ret <= f + {t} + {REGRET_WINDOW} END)))"
        )
        parts += [
            f"SUM(CASE WHEN {cut} THEN 1 ELSE 0 END)",
            f"SUM(CASE WHEN {cut} THEN a - {t} ELSE 0 END)",
            f"SUM(CASE WHEN {cut} AND {again} THEN 1 ELSE 0 END)",
        ]
    return (
        f"SELECT kid, {', '.join(parts)} FROM backtest_gap g "  # noqa: S608 - built from constants
        "WHERE source = :source AND start_us >= :since AND start_us < :until "
        "AND lo <= :tmax AND hi > :tmin GROUP BY kid"
    )


def replay_fast(
    engine: Engine,
    timeouts: Iterable[int],
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    source: str,
    by: str,
    groups_of: GroupsOf = lambda _user: (),
    prices: Mapping[str, float] | None = None,
) -> dict[int, Result]:
    """What `backtest_db.replay_window` answers (the same tallies), from the summary for the
    sessions it has and by replay for the others (open, closed less than `SETTLE` ago, not
    yet built); the old way entirely while more than `INLINE_SESSIONS` of the window are not
    summarised (logged). Times in UTC; blocking; raises ValueError for an unknown source."""
    if source not in SOURCES:
        raise ValueError(f"unknown activity source {source!r}")
    ordered = sorted(set(timeouts))
    end = now.timestamp()
    forget_stale(engine, now)  # summaries that late activity or sessions touch are not used
    with _ONE_READ, paused_gc(), _snapshot(engine) as conn, _snapshot(engine) as other:
        state = _state(conn)
        rest = _unsummarised(conn, since, until, state.done_id, state.waiting)
        if len(rest) > INLINE_SESSIONS:
            log.info(
                "backtest summary still being built (%d sessions of the window not yet "
                "summarised): replaying the window from the sessions",
                len(rest),
            )
            fast = None
        else:
            # the aggregate of the later timeouts on a second connection, in a thread of its
            # own (the driver lets go of the GIL while the database works): two CPUs, half
            # the time; only when both connections see the same build
            helper = other if _state(other).version == state.version else None
            fast = _from_summary(conn, helper, ordered, since, until, source, by, groups_of, prices)
            runs = _rest_runs(conn, rest, end, source, by, groups_of, prices)
            users = {r.user for r in runs}
            more = _starts_of(conn, users, since, until) if users else {}
            slow = replay_many(runs, ordered, more)
    if fast is None:
        return replay_window(
            engine,
            ordered,
            since=since,
            until=until,
            now=now,
            source=source,
            by=by,
            groups_of=groups_of,
            prices=prices,
        )
    for timeout in ordered:
        _merge(fast[timeout], slow[timeout])
    return fast


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one state of the database: the summary's state row,
    its rows and the sessions it lacks must agree while the loop builds (PostgreSQL:
    REPEATABLE READ, without the JIT compiler; SQLite: a read transaction, a WAL snapshot)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.connection.dbapi_connection.execute("BEGIN")  # type: ignore[union-attr]
            yield conn
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            # the aggregate's estimated cost (a subquery per row, never run but for a few)
            # sets off the JIT compiler: 0.6 s of compiling for 0.3 s of work
            conn.execute(text("SET LOCAL jit = off"))
            yield conn


def _merge(into: Result, more: Result) -> None:
    for key, tally in more.by_key.items():
        into.by_key.setdefault(key, Tally()).add(tally)
    into.total.add(more.total)


def _cuts(
    conn: Connection, timeouts: list[int], window: dict[str, int], source: str
) -> dict[int, tuple[Any, ...]]:
    """Per key: the cuts, seconds saved and regrets under each of `timeouts` (flat)."""
    if not timeouts:
        return {}
    params: dict[str, Any] = {
        **window,
        "source": source,
        "tmin": min(timeouts),
        "tmax": max(timeouts),
        **{f"t{i}": t for i, t in enumerate(timeouts)},
    }
    missing = (0, 0.0, 0)
    postgres = conn.dialect.name != "sqlite"
    if postgres:
        # a scan of the table (in parallel), not of its primary key: in key order the heap
        # is read at random, seconds when it is not cached
        conn.execute(text("SET LOCAL enable_indexscan = off"))
    try:
        return {
            row[0]: tuple(missing[i % 3] if v is None else v for i, v in enumerate(row[1:]))
            for row in conn.execute(text(_aggregate_sql(len(timeouts))), params)
        }
    finally:
        if postgres:
            conn.execute(text("SET LOCAL enable_indexscan = on"))


def _from_summary(
    conn: Connection,
    helper: Connection | None,
    ordered: list[int],
    since: datetime,
    until: datetime,
    source: str,
    by: str,
    groups_of: GroupsOf,
    prices: Mapping[str, float] | None,
) -> dict[int, Result]:
    window = {"since": micros(since), "until": micros(until)}
    # the totals and the first timeouts here, the others on `helper` meanwhile: the totals
    # take about as long as two timeouts (suggest's six: two here, four there)
    split = max(len(ordered) - 2, 0) // 2 if helper is not None else len(ordered)
    later = ordered[split:]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_cuts, helper, later, window, source) if helper and later else None
        totals = {
            kid: (int(n), float(s or 0.0))
            for kid, n, s in conn.execute(
                text(
                    "SELECT kid, COUNT(*), SUM(stop_s - start_s) FROM backtest_session "
                    "WHERE start_us >= :since AND start_us < :until GROUP BY kid"
                ),
                window,
            )
        }
        first = _cuts(conn, ordered[:split], window, source)
        second = pending.result() if pending is not None else {}
    zeros, more = (0, 0.0, 0) * split, (0, 0.0, 0) * (len(ordered) - split)
    cuts = {kid: first.get(kid, zeros) + second.get(kid, more) for kid in first.keys() | second}
    none = (0, 0.0, 0) * len(ordered)
    described = {
        kid: (user, groups, profile)
        for kid, user, groups, profile in conn.execute(
            text('SELECT id, "user", groups, profile FROM backtest_key')
        )
        if kid in totals
    }
    results = {t: Result() for t in ordered}
    keys_cache: dict[tuple[str, str | None], tuple[str, ...]] = {}
    price_cache: dict[str | None, float | None] = {}
    for kid, (sessions, server_s) in totals.items():
        user, groups, profile = described[kid]
        cache_key = (user if by == "user" or groups is None else "", groups)
        keys = keys_cache.get(cache_key)
        if keys is None:
            keys = keys_cache[cache_key] = keys_of(by, user, groups, groups_of)
        if profile not in price_cache:
            price_cache[profile] = price_of(profile, prices) if prices else None
        price = price_cache[profile]
        found = cuts.get(kid, none)
        for i, timeout in enumerate(ordered):
            cut_n, saved, regret = found[3 * i : 3 * i + 3]
            one = Tally(sessions, server_s, float(saved or 0.0), int(cut_n or 0), int(regret or 0))
            one.saved_cost = None if price is None else one.saved_s / 3600 * price
            result = results[timeout]
            for key in keys:
                result.by_key.setdefault(key, Tally()).add(one)
            result.total.add(one)
    return results


def _rest_runs(
    conn: Connection,
    rows: list[tuple[Any, ...]],
    end: float,
    source: str,
    by: str,
    groups_of: GroupsOf,
    prices: Mapping[str, float] | None,
) -> list[Any]:
    if not rows:
        return []
    p = _param(conn)
    first_day = int(min(r[3] for r in rows)) // BUCKET // PER_DAY
    last_day = int(max(end, *(r[4] or end for r in rows))) // BUCKET // PER_DAY
    wanted = {(r[1], r[2]) for r in rows}
    days = {
        (user, server, day): int.from_bytes(data or b"", "little")
        for user, server, day, data in _rows(
            conn,
            f'SELECT "user", server, day, {source} FROM server_activity '  # noqa: S608
            f"WHERE day >= {p} AND day <= {p}",
            (first_day, last_day),
        )
        if (user, server) in wanted
    }
    session_rows = [(r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]
    return list(make_runs(session_rows, days, end, by, groups_of, prices))


def _starts_of(
    conn: Connection, users: set[str], since: datetime, until: datetime
) -> dict[str, list[float]]:
    """The starts of these users' summarised sessions in the window (s since the epoch)."""
    out: dict[str, list[float]] = defaultdict(list)
    names = sorted(users)
    for at in range(0, len(names), 500):
        chunk = names[at : at + 500]
        query = text(
            'SELECT k."user", b.start_s FROM backtest_session b JOIN backtest_key k '
            'ON k.id = b.kid WHERE k."user" IN :users AND b.start_us >= :since '
            "AND b.start_us < :until"
        ).bindparams(bindparam("users", expanding=True))
        for user, start in conn.execute(
            query, {"users": chunk, "since": micros(since), "until": micros(until)}
        ):
            out[user].append(start)
    return out
