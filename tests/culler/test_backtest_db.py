"""The activity store and the backtest's reads on SQLite and PostgreSQL: marks OR-ed into a
row per server per day, batched off the loop, only while recording; kernel marks; sessions
read back as runs with their server's buckets, over midnight and for a short window."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from hubkeeper.culler.activity import note_kernels
from hubkeeper.culler.backtest import replay
from hubkeeper.culler.backtest_db import load_runs
from hubkeeper.db.activity import PER_DAY, ActivityRecorder, bucket_of, from_bytes
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerActivity, ServerSession
from tests.history.factories import prepared

T0 = datetime(2026, 11, 2, 22, 0, tzinfo=UTC)  # two hours before midnight
DAY0 = bucket_of(T0) // PER_DAY


def rows(engine) -> dict:  # noqa: ANN001
    with session_scope(engine) as session:
        return {
            (r.user, r.server, r.day): (from_bytes(r.hub), from_bytes(r.kernels))
            for r in session.scalars(select(ServerActivity))
        }


def test_marks_are_batched_ored_and_only_kept_while_recording(db_url):
    engine = prepared(db_url)
    try:
        activity = ActivityRecorder(engine)
        activity.note("ann", "", T0)  # not recording yet: dropped
        assert activity.queued == 0
        activity.recording = True
        activity.note("ann", "", T0)
        activity.note("ann", "", T0 + timedelta(minutes=2))  # the same bucket: nothing new
        activity.note("ann", "", T0 + timedelta(minutes=5))
        asyncio.run(activity.flush())
        first = bucket_of(T0) % PER_DAY
        assert rows(engine) == {("ann", "", DAY0): (0b11 << first, 0)}
        # later marks are OR-ed into the same row; kernels in their own map; a busy kernel
        # marks now; the next day is a row of its own
        note_kernels(
            activity,
            "ann",
            "",
            [
                {"id": "k1", "last_activity": T0.isoformat(), "execution_state": "idle"},
                {"id": "k2", "last_activity": None, "execution_state": "busy"},
            ],
            T0 + timedelta(minutes=10),
        )
        activity.note("ann", "", T0 + timedelta(hours=2, minutes=1))
        asyncio.run(activity.flush())
        assert rows(engine) == {
            ("ann", "", DAY0): (0b11 << first, (1 | 1 << 2) << first),
            ("ann", "", DAY0 + 1): (1, 0),
        }
        activity.stop_recording()
        activity.note("ann", "", T0)
        assert activity.queued == 0
    finally:
        engine.dispose()


def test_sessions_are_read_with_their_servers_buckets(db_url):
    engine = prepared(db_url)
    try:
        activity = ActivityRecorder(engine)
        activity.recording = True
        # active 22:00-23:30 and again 00:20 (next day); stops 01:00: a 30 min timeout
        # cuts at 23:30 + 30 = 00:00, and the return at 00:20 (bucket end 00:25) is no regret
        for minutes in [*range(0, 90, 5), 140]:
            activity.note("ann", "", T0 + timedelta(minutes=minutes))
        activity.note("ben", "", T0)  # another user, no session in the window
        asyncio.run(activity.flush())
        with session_scope(engine) as session:
            session.add(
                ServerSession(
                    user="ann",
                    server="",
                    started_at=T0,
                    stopped_at=T0 + timedelta(hours=3),
                    duration_s=3 * 3600,
                    stop_reason="unknown",
                    groups=json.dumps(["lab"]),
                )
            )
        since, until = T0 - timedelta(days=1), T0 + timedelta(days=1)
        runs = load_runs(
            engine, since=since, until=until, now=T0 + timedelta(days=2), source="hub", by="group"
        )
        assert len(runs) == 1
        run = runs[0]
        assert (run.user, run.keys, run.stop - run.start) == ("ann", ("lab",), 3 * 3600)
        assert run.bits == (1 << 18) - 1 | 1 << 28
        result = replay(runs, 1800)
        assert result.by_key["lab"].saved_s == 3600  # cut at midnight, stopped at 01:00
        assert (result.total.cut_sessions, result.total.regret_sessions) == (1, 0)
        # the kernels' map is empty: the start alone counts
        kernels = load_runs(
            engine, since=since, until=until, now=until, source="kernels", by="user"
        )
        assert kernels[0].bits == 1 and kernels[0].keys == ("ann",)
        # a window of more than 60 days reads the tables in order: the same answer
        long = load_runs(
            engine, since=T0 - timedelta(days=90), until=until, now=until, source="hub", by="group"
        )
        assert long == runs
        # with HUBKEEPER_PRICES: the session's profile (none: "*") prices the saved hour
        priced = load_runs(
            engine,
            since=since,
            until=until,
            now=until,
            source="hub",
            by="group",
            prices={"gpu": 9.0, "*": 1.5},
        )
        assert priced[0].price == 1.5
        assert replay(priced, 1800).total.saved_cost == 1.5
    finally:
        engine.dispose()
