"""The backtest's summary (record gaps aggregated in SQL) answers exactly what the replay
answers: the pure rule on random bitmaps, and the database path against `replay_window` on
made histories with known gaps and returns, on SQLite and PostgreSQL — built, half built
(the rest replayed beside it), before any build (the old way), and after sessions recorded
late."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from hubkeeper.culler import backtest_summary
from hubkeeper.culler.backtest import BUCKET, CANDIDATES, Run, items, replay
from hubkeeper.culler.backtest_db import replay_window
from hubkeeper.culler.backtest_gaps import outcome, record_gaps
from hubkeeper.culler.backtest_summary import build, build_all, keep_summary_current, replay_fast
from hubkeeper.db.activity import PER_DAY, Marks, bucket_of, to_bytes, write_marks
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerActivity, ServerSession
from tests.history.factories import prepared

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TIMEOUTS = (300, 301, 600, 900, 1000, 1800, 3600, 7200, 14400, 28800)


def random_run(rng: random.Random) -> tuple[Run, list[float]]:
    start = 1_700_000_000 + rng.randrange(86400) + rng.choice((0.0, rng.random()))
    stop = start + 1 + rng.choice((60, 900, 3600, 7200, 30000, 200000)) * rng.random()
    b0 = int(start) // BUCKET
    n = (int(-(-stop // 1)) - 1) // BUCKET - b0 + 1
    density = rng.random()
    bits = 1
    for i in range(n):
        if rng.random() < density * rng.random():
            bits |= 1 << i
    others = sorted(rng.uniform(start, stop + 2000) for _ in range(rng.choice((0, 0, 1, 3))))
    return Run("u", ("g",), start, stop, b0, n, bits), others


def test_the_record_gaps_cut_where_the_replay_cuts():
    rng = random.Random(18)
    for _ in range(1500):
        run, others = random_run(rng)
        runs = [run, *(Run("u", ("o",), s, s + 1, int(s) // BUCKET, 1, 1) for s in others)]
        gaps = record_gaps(run)
        starts = sorted([run.start, *others])
        assert [g.lo for g in gaps] == sorted(g.lo for g in gaps)
        for timeout in TIMEOUTS:
            tally = replay(runs, timeout).by_key["g"]
            found = [o for g in gaps if (o := outcome(g, run.stop, timeout, starts))]
            assert len(found) <= 1  # one gap at most cuts a session
            expected = (tally.saved_s, tally.regret_sessions == 1) if tally.cut_sessions else None
            assert (found[0] if found else None) == expected, (timeout, gaps, bin(run.bits))


def made_history(engine, rng: random.Random, users: int = 12, per_user: int = 14) -> None:  # noqa: ANN001
    """Sessions over the 20 days before NOW: work spells with small gaps, long gaps, returns
    (by the server and by a new session soon after a stop, some within 15 min), named servers
    overlapping, crossing midnight, a zero-length one, open ones and one just closed."""
    activity: dict[tuple[str, str, int], list[int]] = {}

    def mark(user: str, server: str, when: float, kernels: bool) -> None:
        day, bit = divmod(int(when) // BUCKET, PER_DAY)
        row = activity.setdefault((user, server, day), [0, 0])
        row[0] |= 1 << bit
        if kernels:
            row[1] |= 1 << bit

    sessions = []
    for u in range(users):
        user = f"u{u:02d}"
        groups = rng.choice((None, ["lab"], ["lab", "course"], []))
        at = NOW - timedelta(days=20) + timedelta(seconds=rng.randrange(86400))
        for k in range(per_user):
            server = rng.choice(("", "", "", "gpu"))
            length = timedelta(seconds=rng.choice((200, 1800, 5400, 14000, 90000)) * rng.random())
            start = at.replace(microsecond=rng.choice((0, 0, 250000)))
            stop = start + length
            if k == per_user - 1 and u % 3 == 0:
                stop = None  # still open
            elif k == per_user - 1 and u % 3 == 1:
                stop = NOW - timedelta(minutes=10)  # closed, not settled yet
                start = min(start, stop - timedelta(hours=1))
            elif k == 3 and u == 2:
                stop = start  # zero length: no replay
            sessions.append((user, server, start, stop, groups, rng.choice((None, "gpu"))))
            end = (stop or NOW).timestamp()
            t = start.timestamp()
            while t < end:  # spells of work and gaps of every length
                if rng.random() < 0.6:
                    mark(user, server, t, rng.random() < 0.4)
                t += BUCKET * rng.choice((1, 1, 1, 2, 3, 4, 7, 12, 30))
            # the next one: right after the stop (a regret within 15 min), or later
            at = (stop or NOW) + timedelta(seconds=rng.choice((0, 30, 400, 899, 1200, 20000)))
            if rng.random() < 0.2:
                at = start + timedelta(minutes=rng.randrange(5, 60))  # overlapping (named)
            if at >= NOW - timedelta(hours=2):
                break
    with session_scope(engine) as session:
        for user, server, start, stop, groups, profile in sorted(sessions, key=lambda s: s[2]):
            session.add(
                ServerSession(
                    user=user,
                    server=server,
                    started_at=start,
                    stopped_at=stop,
                    duration_s=None if stop is None else (stop - start).total_seconds(),
                    stop_reason=None if stop is None else "unknown",
                    groups=None if groups is None else json.dumps(groups),
                    profile=profile,
                )
            )
        for (user, server, day), (hub, kernels) in activity.items():
            session.add(
                ServerActivity(
                    user=user, server=server, day=day, hub=to_bytes(hub), kernels=to_bytes(kernels)
                )
            )


def answers(engine, fn, **kw) -> dict:  # noqa: ANN001
    found = fn(engine, CANDIDATES + (1000, 301), now=NOW, **kw)
    return {t: items(r) for t, r in sorted(found.items())}


def windows() -> list[tuple[datetime, datetime]]:
    return [
        (NOW - timedelta(days=30), NOW),
        (NOW - timedelta(days=12, hours=5), NOW - timedelta(days=3, minutes=7)),
    ]


def same_answers(engine) -> None:  # noqa: ANN001
    prices = {"gpu": 2.0, "*": 0.5}
    for since, until in windows():
        for source in ("hub", "kernels"):
            for by in ("group", "user"):
                kw = {
                    "since": since,
                    "until": until,
                    "source": source,
                    "by": by,
                    "groups_of": lambda user: ["now-" + user[-1]],
                    "prices": prices if by == "group" else None,
                }
                fast, slow = (
                    answers(engine, replay_fast, **kw),
                    answers(engine, replay_window, **kw),
                )
                assert flat(fast) == pytest.approx(flat(slow), abs=2e-4)


def flat(answer: object, path: str = "") -> dict[str, object]:
    """Every figure by its path; floats summed in another order may differ in the last
    rounded digit (hours to 0.001, cost to 0.0001), counts not at all."""
    out: dict[str, object] = {}
    if isinstance(answer, dict):
        for k, v in answer.items():
            out.update(flat(v, f"{path}/{k}"))
    elif isinstance(answer, list):
        for v in answer:
            out.update(flat(v, f"{path}/{v.get('key') if isinstance(v, dict) else v}"))
    elif isinstance(answer, float):
        out[path] = answer / 10 if "hours" in path else answer  # hours rounded to 0.001
    else:
        out[path] = answer
    return out


def test_the_summary_answers_what_the_replay_answers(db_url, monkeypatch):
    forgotten: list[int] = []
    forget = backtest_summary._forget
    monkeypatch.setattr(
        backtest_summary, "_forget", lambda conn, ids: (forgotten.extend(ids), forget(conn, ids))
    )
    engine = prepared(db_url)
    try:
        made_history(engine, random.Random(5))
        same_answers(engine)  # nothing built: the window is replayed the old way
        build(engine, NOW, batch=40)  # a part built: the rest replayed beside it
        same_answers(engine)
        assert build_all(engine, NOW, batch=50) > 0
        same_answers(engine)
        assert build(engine, NOW) == 0  # current
        # a session recorded late, starting 5 min after an old session's stop: that one's
        # summary goes back to waiting, and the answers stay the replay's
        with session_scope(engine) as session:
            old = session.get(ServerSession, 5)
            assert old is not None and old.stopped_at is not None
            session.add(
                ServerSession(
                    user=old.user,
                    server="late",
                    started_at=old.stopped_at + timedelta(minutes=5),
                    stopped_at=old.stopped_at + timedelta(minutes=50),
                    stop_reason="unknown",
                )
            )
        same_answers(engine)
        build_all(engine, NOW + timedelta(hours=3))
        assert 5 in forgotten  # summarised again
        same_answers(engine)
        # activity recorded late, in the middle of a summarised session's long gap: that
        # summary is not used but built again
        with session_scope(engine) as session:
            long = session.get(ServerSession, 9)
            assert long is not None and long.stopped_at is not None
            middle = long.started_at + (long.stopped_at - long.started_at) / 2
        day, bit = divmod(bucket_of(middle), PER_DAY)
        write_marks(engine, {(long.user, long.server, day): Marks(hub=1 << bit, kernels=1 << bit)})
        same_answers(engine)
        assert 9 in forgotten
        build_all(engine, NOW + timedelta(hours=3))
        same_answers(engine)
    finally:
        engine.dispose()


def test_the_loop_builds_the_summary_and_the_backtest_then_reads_it(db_url, monkeypatch):
    engine = prepared(db_url)
    try:
        made_history(engine, random.Random(7), users=4, per_user=6)

        async def briefly() -> None:
            task = asyncio.create_task(keep_summary_current(engine, 0.01, clock=lambda: NOW))
            await asyncio.sleep(0.5)
            task.cancel()

        asyncio.run(briefly())
        assert build(engine, NOW) == 0  # the loop left nothing to do
        # answered from the summary: the old way is not asked
        monkeypatch.setattr(backtest_summary, "replay_window", None)
        kw = {"since": NOW - timedelta(days=30), "until": NOW, "source": "hub", "by": "group"}
        assert replay_fast(engine, (1800,), now=NOW, **kw)[1800].total.sessions > 0
    finally:
        engine.dispose()
