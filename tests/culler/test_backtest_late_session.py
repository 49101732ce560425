"""A session recorded late (after the summaries around it were built) is a new-server regret
of a summarised session before the next build too: docs/culler.md, "Backtest" (the summary
answers what the replay answers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hubkeeper.culler.backtest import items
from hubkeeper.culler.backtest_db import replay_window
from hubkeeper.culler.backtest_summary import build_all, replay_fast
from hubkeeper.db.activity import PER_DAY, Marks, bucket_of, write_marks
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from tests.history.factories import prepared

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)  # bucket-aligned, long settled at NOW


def add(engine, server: str, start: datetime, stop: datetime) -> None:  # noqa: ANN001
    with session_scope(engine) as session:
        session.add(
            ServerSession(
                user="ann",
                server=server,
                started_at=start,
                stopped_at=stop,
                duration_s=(stop - start).total_seconds(),
                stop_reason="unknown",
                groups=json.dumps(["physics"]),
            )
        )


def regrets(engine, fn) -> int:  # noqa: ANN001
    found = fn(
        engine,
        (1800,),
        now=NOW,
        since=NOW - timedelta(days=30),
        until=NOW,
        source="hub",
        by="user",
    )
    return items(found[1800])["total"]["regret_sessions"]


def test_a_late_session_is_a_regret_before_the_next_build(db_url):
    engine = prepared(db_url)
    try:
        # ann: 4 h, active the first 30 min: a 30 min timeout cuts at 09:00
        add(engine, "", T0, T0 + timedelta(hours=4))
        marks: dict = {}
        for k in range(6):
            day, bit = divmod(bucket_of(T0) + k, PER_DAY)
            marks.setdefault(("ann", "", day), Marks()).hub |= 1 << bit
        write_marks(engine, marks)
        assert build_all(engine, NOW) > 0
        assert regrets(engine, replay_fast) == regrets(engine, replay_window) == 0
        # recorded late (after an outage): a server of hers started at 09:10, 10 min after
        # the cut: a regret, as the replay says at once
        add(engine, "late", T0 + timedelta(minutes=70), T0 + timedelta(minutes=90))
        assert regrets(engine, replay_window) == 1
        assert regrets(engine, replay_fast) == 1  # fails: 0 until the loop builds again
        build_all(engine, NOW)
        assert regrets(engine, replay_fast) == 1
    finally:
        engine.dispose()
