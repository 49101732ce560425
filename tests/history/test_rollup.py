"""The daily usage rollup gives the rows `aggregate` defines, and notices every change that
can touch a closed day: sessions inserted into the past, open sessions closed at a past time,
a new day sealed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text, update

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.history.rollup import by_day
from hubkeeper.history.service import sessions_between
from hubkeeper.history.usage import aggregate
from tests.history.factories import add_session, at, prepared

SINCE, UNTIL = at("2026-10-25T00:00"), at("2026-11-12T00:00")


def expected(engine, since, until, now) -> dict:  # noqa: ANN001
    found = sessions_between(engine, since, until)
    return {
        r.key: r.as_dict() for r in aggregate(found, since=since, until=until, by="day", now=now)
    }


def got(engine, since, until, now) -> dict:  # noqa: ANN001
    return {r.key: r.as_dict() for r in by_day(engine, since=since, until=until, now=now)}


def rollup_days(engine) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM usage_day")).scalar() or 0)


def test_the_rollup_matches_the_definition_through_changes(db_url):
    engine = prepared(db_url)
    now = at("2026-11-10T15:00")
    try:
        add_session(engine, "hist-rl-ann", "2026-10-26T22:00", "2026-10-28T03:00")
        add_session(engine, "hist-rl-ben", "2026-11-01T10:00", "2026-11-01T12:00")
        add_session(engine, "hist-rl-ben", "2026-11-09T23:00")  # open, across midnight
        add_session(engine, "hist-rl-cy", "2026-10-20T08:00")  # open for weeks
        for since, until in ((SINCE, UNTIL), (at("2026-10-27T13:30"), at("2026-11-05T06:00"))):
            assert got(engine, since, until, now) == expected(engine, since, until, now)
        assert rollup_days(engine) > 0, "the closed days came from the rollup"

        # a session written into the past after the rollup was built
        add_session(engine, "hist-rl-dee", "2026-10-30T09:00", "2026-10-31T01:00")
        assert got(engine, SINCE, UNTIL, now) == expected(engine, SINCE, UNTIL, now)

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
        assert got(engine, SINCE, UNTIL, now) == expected(engine, SINCE, UNTIL, now)

        # the next day is sealed when midnight passes
        later = now + timedelta(days=1)
        assert got(engine, SINCE, UNTIL, later) == expected(engine, SINCE, UNTIL, later)
        # a window ending in the middle of a day, starting in the middle of one
        odd = (at("2026-10-26T05:00"), at("2026-11-08T17:45"))
        assert got(engine, *odd, later) == expected(engine, *odd, later)
    finally:
        engine.dispose()
