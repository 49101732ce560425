"""The usage rollups give the rows `aggregate` defines, by day, user and group, over windows
with whole months and ragged edges, and notice every change that can touch a closed day:
sessions inserted into the past, open sessions closed at a past time, a new day sealed. Built
in chunks, an interrupted build goes on where it stopped; a rollup far behind is left to the
usage-rollup loop while reports are computed from the sessions."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.history import report, rollup
from hubkeeper.history.report import keep_rollups_current, usage
from hubkeeper.history.service import sessions_between
from hubkeeper.history.usage import aggregate
from tests.history.factories import add_session, at, prepared
from tests.waiting import wait_for_async

NOW = at("2026-11-10T15:00")
GROUPS_NOW = {"hist-rl-old": ["then-unknown"]}
# "small" has no price of its own: it costs the "*" price, as sessions without a profile do
PRICES = {"gpu": 3.0, "*": 0.5}
WINDOWS = [
    (at("2026-10-25T00:00"), at("2026-11-12T00:00")),  # days only, across a month's end
    (at("2026-10-27T13:30"), at("2026-11-05T06:00")),  # ragged at both ends
    (at("2026-08-01T00:00"), at("2026-11-12T00:00")),  # whole months from a month's start
    (at("2026-07-19T08:00"), at("2026-11-10T15:00")),  # ragged, months inside, ends at now
    (at("2026-09-30T00:00"), at("2026-11-01T00:00")),  # one whole month, a day before it
]


def expected(engine, since, until, now, by) -> dict:  # noqa: ANN001
    found = sessions_between(engine, since, until)
    rows = aggregate(
        found,
        since=since,
        until=until,
        by=by,
        now=now,
        groups_of=lambda u: GROUPS_NOW.get(u, []),
        prices=PRICES,
    )
    return {r.key: rounded(r.as_dict()) for r in rows}


def got(engine, since, until, now, by) -> dict:  # noqa: ANN001
    rows = usage(
        engine,
        since=since,
        until=until,
        by=by,
        now=now,
        groups_of=lambda u: GROUPS_NOW.get(u, []),
        prices=PRICES,
    )
    return {r.key: rounded(r.as_dict()) for r in rows}


def rounded(row: dict) -> dict:
    cost = None if row["cost"] is None else round(row["cost"], 2)
    return {**row, "server_hours": round(row["server_hours"], 2), "cost": cost}


def assert_matches(engine, now) -> None:  # noqa: ANN001
    for since, until in WINDOWS:
        for by in ("day", "user", "group", "profile"):
            assert got(engine, since, until, now, by) == expected(engine, since, until, now, by), (
                since,
                until,
                by,
            )


def count(engine, table: str) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)  # noqa: S608


def seed(engine) -> None:  # noqa: ANN001
    add_session(engine, "hist-rl-ann", "2026-10-26T22:00", "2026-10-28T03:00")
    add_session(engine, "hist-rl-ben", "2026-11-01T10:00", "2026-11-01T12:00")
    add_session(engine, "hist-rl-ben", "2026-11-09T23:00")  # open, across midnight
    add_session(engine, "hist-rl-cy", "2026-10-20T08:00")  # open for weeks
    # across month ends: counted once in a window holding both months
    add_session(engine, "hist-rl-ann", "2026-08-31T20:00", "2026-09-02T01:00", server="gpu")
    add_session(engine, "hist-rl-dee", "2026-07-10T09:00", "2026-09-15T09:00")  # two months
    add_session(engine, "hist-rl-dee", "2026-09-30T23:00", "2026-10-01T00:00")  # to midnight
    add_session(engine, "hist-rl-ed", "2026-08-01T00:00", "2026-08-01T00:00")  # no length
    for day in range(1, 29, 3):  # steady use, several sessions a day in some months
        add_session(engine, "hist-rl-fay", f"2026-08-{day:02d}T09:00", f"2026-08-{day:02d}T17:00")
        add_session(
            engine, "hist-rl-fay", f"2026-09-{day:02d}T20:00", f"2026-09-{day + 1:02d}T02:00"
        )
    with session_scope(engine) as session:  # groups at start, and one recorded before groups
        session.exec(update(ServerSession).values(groups='["physics"]'))
        session.exec(
            update(ServerSession)
            .where(ServerSession.user == "hist-rl-fay")
            .values(groups='["physics", "maths"]')
        )
        session.exec(
            update(ServerSession).where(ServerSession.user == "hist-rl-ed").values(groups="[]")
        )
    old = add_session(engine, "hist-rl-old", "2026-08-20T10:00", "2026-08-20T12:00")
    with session_scope(engine) as session:
        session.exec(update(ServerSession).where(ServerSession.id == old).values(groups=None))
    # profiles: a user's sessions in two profiles, one across a month's end, one unpriced
    add_session(engine, "hist-rl-fay", "2026-08-30T22:00", "2026-09-01T02:00", profile="gpu")
    add_session(engine, "hist-rl-ann", "2026-10-03T10:00", "2026-10-03T16:00", profile="gpu")
    add_session(engine, "hist-rl-ann", "2026-11-09T22:00", "2026-11-10T01:00", profile="small")
    add_session(engine, "hist-rl-hal", "2026-11-02T10:00", profile="gpu")  # open


def test_the_rollups_match_the_definition_through_changes(db_url):
    engine = prepared(db_url)
    try:
        seed(engine)
        assert_matches(engine, NOW)
        assert count(engine, "usage_day") > 0, "the closed days came from the rollup"
        assert count(engine, "usage_user_month") > 0, "whole months came from the monthly rollup"

        # a session written into the past after the rollups were built
        add_session(engine, "hist-rl-gus", "2026-08-30T09:00", "2026-10-31T01:00")
        assert_matches(engine, NOW)

        # an open session closed late, at a time in the past (best-time closing)
        with session_scope(engine) as session:
            session.exec(
                update(ServerSession)
                .where(ServerSession.user == "hist-rl-cy")
                .values(
                    stopped_at=at("2026-11-03T10:00"),
                    duration_s=(at("2026-11-03T10:00") - at("2026-10-20T08:00")).total_seconds(),
                    stop_reason="unknown",
                )
            )
        assert_matches(engine, NOW)

        # the next day is sealed when midnight passes, and a month when its last day is
        assert_matches(engine, NOW + timedelta(days=1))
        assert_matches(engine, at("2026-12-02T09:00"))
    finally:
        engine.dispose()


def test_a_build_in_chunks_interrupted_goes_on_where_it_stopped(db_url, monkeypatch):
    engine = prepared(db_url)
    monkeypatch.setattr(rollup, "CHUNK_DAYS", 9)
    try:
        seed(engine)
        real = rollup._rebuild
        calls = 0

        def failing_third(conn, start, end):  # noqa: ANN001, ANN202
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("the database went away")
            return real(conn, start, end)

        monkeypatch.setattr(rollup, "_rebuild", failing_third)
        with pytest.raises(RuntimeError):
            rollup.refresh(engine, NOW)
        with engine.connect() as conn:
            sealed = conn.execute(text("SELECT sealed_until FROM usage_rollup_state")).scalar()
        assert str(sealed).startswith("2026-07-28"), "two chunks of 9 days kept from 10 July"
        monkeypatch.setattr(rollup, "_rebuild", real)
        assert rollup.refresh(engine, NOW) is True
        assert rollup.behind(engine, NOW) is None
        assert_matches(engine, NOW)
    finally:
        engine.dispose()


def test_a_rollup_far_behind_is_left_to_the_loop_and_reports_are_computed_meanwhile(
    db_url, monkeypatch
):
    engine = prepared(db_url)
    monkeypatch.setattr(report, "INLINE_SESSIONS", 5)
    try:
        seed(engine)
        assert_matches(engine, NOW)  # computed from the sessions: same rows
        assert count(engine, "usage_day") == 0, "a report did not build a rollup this far behind"

        async def one_round() -> None:
            loop = asyncio.create_task(keep_rollups_current(engine, interval=3600))
            await wait_for_async(
                lambda: rollup.behind(engine, NOW) is None, 30, "the rollups", interval=0.05
            )
            loop.cancel()

        monkeypatch.setattr(report, "utcnow", lambda: NOW)
        asyncio.run(asyncio.wait_for(one_round(), 30))
        assert count(engine, "usage_user_month") > 0
        assert_matches(engine, NOW)  # now from the rollups
    finally:
        engine.dispose()


def test_stop_ends_a_build_after_the_chunk_under_way(db_url, monkeypatch):
    engine = prepared(db_url)
    monkeypatch.setattr(rollup, "CHUNK_DAYS", 9)
    try:
        seed(engine)
        stop = threading.Event()
        stop.set()
        assert rollup.refresh(engine, NOW, stop=stop) is False
        assert rollup.behind(engine, NOW) is not None, "one chunk, not the whole build"
        assert rollup.refresh(engine, NOW) is True
        assert_matches(engine, NOW)
    finally:
        engine.dispose()


def test_a_chunk_replaces_only_its_own_days(db_url, monkeypatch):
    """A report that found the rollups current a moment before a long rebuild began still
    reads every day: a chunk leaves the days after it (stale) until their own chunk."""
    engine = prepared(db_url)
    monkeypatch.setattr(rollup, "CHUNK_DAYS", 9)
    try:
        seed(engine)
        assert rollup.refresh(engine, NOW) is True
        days, months = count(engine, "usage_day"), count(engine, "usage_user_month")
        add_session(engine, "hist-rl-late", "2026-07-15T10:00", "2026-07-15T11:00")
        assert rollup._build_chunk(engine, rollup.midnight(NOW)) is not None
        assert rollup.behind(engine, NOW) is not None, "more chunks to go"
        assert (count(engine, "usage_day"), count(engine, "usage_user_month")) == (days, months)
        assert rollup.refresh(engine, NOW) is True
        assert_matches(engine, NOW)
    finally:
        engine.dispose()


# --- edges found by trying it (each once wrong) ------------------------------------------------
def both_ways(engine, since, until, now, by) -> None:  # noqa: ANN001
    """report.usage (rollups) and usage_in_db (sessions alone) both give aggregate's rows."""
    from hubkeeper.history.usage_db import usage_in_db

    want = expected(engine, since, until, now, by)
    assert got(engine, since, until, now, by) == want
    direct = usage_in_db(engine, since=since, until=until, by=by, now=now, prices=PRICES)
    assert {r.key: rounded(r.as_dict()) for r in direct} == want


def test_a_session_starting_in_the_last_half_millisecond_of_a_day_stays_on_that_day(db_url):
    # SQLite's date() rounds to milliseconds: 23:59:59.9997 once stepped to the day after next
    engine = prepared(db_url)
    try:
        add_session(engine, "hist-rl-late", "2026-01-01T23:59:59.999700", "2026-01-02T12:00")
        add_session(engine, "hist-rl-late", "2026-01-05T10:00", "2026-01-05T11:00")
        for by in ("day", "user"):
            both_ways(engine, at("2026-01-01T00:00"), at("2026-01-09T00:00"), NOW, by)
    finally:
        engine.dispose()


def test_now_exactly_at_midnight_counts_nothing_today(db_url):
    engine = prepared(db_url)
    try:
        add_session(engine, "hist-rl-open", "2026-01-15T10:00")
        midnight = at("2026-02-01T00:00")
        for by in ("day", "user", "group"):
            both_ways(engine, at("2026-01-01T00:00"), at("2026-02-05T00:00"), midnight, by)
    finally:
        engine.dispose()


def test_a_closed_session_without_a_duration_is_still_found(db_url):
    # the recorder always sets duration_s; a row written some other way must not vanish
    engine = prepared(db_url)
    try:
        long = add_session(engine, "hist-rl-ann", "2025-01-01T00:00", "2025-12-31T00:00")
        add_session(engine, "hist-rl-ben", "2025-07-03T10:00", "2025-07-03T11:00")
        with session_scope(engine) as session:
            session.exec(
                update(ServerSession).where(ServerSession.id == long).values(duration_s=None)
            )
        for by in ("day", "user"):
            both_ways(engine, at("2025-07-01T00:00"), at("2025-07-10T00:00"), NOW, by)
    finally:
        engine.dispose()


def test_a_window_from_the_first_days_of_year_one_is_answered(db_url):
    from datetime import UTC, datetime

    engine = prepared(db_url)
    try:
        add_session(engine, "hist-rl-ann", "2026-01-01T00:00", "2026-03-01T00:00")
        since = datetime(1, 1, 2, tzinfo=UTC)
        for by in ("day", "user", "group"):
            assert usage(engine, since=since, until=at("0001-01-09T00:00"), by=by, now=NOW) == (
                []
                if by != "day"
                else usage(engine, since=since, until=at("0001-01-09T00:00"), by="day", now=NOW)
            )
        rows = usage(engine, since=since, until=NOW, by="user", now=NOW)
        assert [r.key for r in rows] == ["hist-rl-ann"]
    finally:
        engine.dispose()


def test_the_definition_uses_utc_days_whatever_the_postgres_session_zone(db_url):
    """`aggregate` (the reference) and the rollups agree on a PostgreSQL session in
    Pacific/Kiritimati (UTC+14), where a 12:00 UTC start is already the next local day."""
    if not db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL session TimeZone: needs HUBKEEPER_TEST_POSTGRES_URL")
    from sqlalchemy import create_engine

    from hubkeeper.db.engine import normalise_url

    prepared(db_url).dispose()
    engine = create_engine(
        normalise_url(db_url), connect_args={"options": "-c TimeZone=Pacific/Kiritimati"}
    )
    try:
        seed(engine)
        utc = prepared(db_url)
        try:
            for since, until in WINDOWS:
                assert expected(engine, since, until, NOW, "day") == expected(
                    utc, since, until, NOW, "day"
                )
        finally:
            utc.dispose()
        assert_matches(engine, NOW)
    finally:
        engine.dispose()


def test_the_migration_to_profiles_empties_the_rollups_so_they_rebuild(db_url):
    """Migration 0015: rollups built before sessions had profiles hold no profile; the
    upgrade empties them and clears their state, and the next report rebuilds them."""
    from hubkeeper.db.engine import create_db_engine, migrate
    from hubkeeper.history.usage_db import bind_time

    migrate(db_url, "0011")
    engine = create_db_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    'INSERT INTO server_session ("user", server, started_at, stopped_at, '
                    "duration_s) VALUES ('hist-rl-mig', '', :a, :b, 7200)"
                ),
                {
                    "a": bind_time(conn, at("2026-08-03T10:00")),
                    "b": bind_time(conn, at("2026-08-03T12:00")),
                },
            )
            conn.execute(text("INSERT INTO usage_day VALUES ('2026-08-03', 5, 99999, 5)"))
            conn.execute(
                text(
                    "INSERT INTO usage_rollup_state (id, max_id, sealed_until, open_ids) "
                    "VALUES (1, 1000, :s, '[]')"
                ),
                {"s": bind_time(conn, at("2026-11-10T00:00"))},
            )
        migrate(db_url)
        assert (count(engine, "usage_rollup_state"), count(engine, "usage_day")) == (0, 0)
        add_session(engine, "hist-rl-mig", "2026-08-04T10:00", "2026-08-04T13:00", profile="gpu")
        since, until = at("2026-08-01T00:00"), at("2026-08-31T00:00")
        for by in ("day", "profile"):
            assert got(engine, since, until, NOW, by) == expected(engine, since, until, NOW, by)
        assert got(engine, since, until, NOW, "profile")["gpu"]["cost"] == 9.0
        assert got(engine, since, until, NOW, "day")["2026-08-03"]["server_hours"] == 2.0
        assert count(engine, "usage_day_profile") == 2, "rebuilt from the rollups"
    finally:
        engine.dispose()
