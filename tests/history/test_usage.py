"""Usage aggregation on sessions written directly: day split, clipping, by user/group, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from hubkeeper.history.service import sessions_between
from hubkeeper.history.usage import UsageRow, aggregate, apply_prices, safe_cell, to_csv
from tests.history.factories import add_session, at, prepared

WINDOW = {"since": at("2026-11-01T00:00"), "until": at("2026-11-04T00:00")}
NOW = at("2026-11-10T00:00")


def rows_of(db_url: str, by: str, groups: dict[str, list[str]] | None = None) -> dict:
    engine = prepared(db_url)
    try:
        found = sessions_between(engine, WINDOW["since"], WINDOW["until"])
    finally:
        engine.dispose()
    rows = aggregate(found, by=by, now=NOW, groups_of=lambda u: (groups or {}).get(u, []), **WINDOW)
    return {r.key: r.as_dict() for r in rows}


def seed(db_url: str) -> None:
    engine = prepared(db_url)
    try:
        # over midnight: 2 h on the 1st, 3 h on the 2nd
        add_session(engine, "hist-ann", "2026-11-01T22:00", "2026-11-02T03:00")
        # clipped: started before the window, 1 h inside it
        add_session(engine, "hist-ben", "2026-10-31T20:00", "2026-11-01T01:00")
        # a second session of ann on the 2nd, named server: 1 h
        add_session(engine, "hist-ann", "2026-11-02T10:00", "2026-11-02T11:00", server="gpu")
        # outside the window entirely
        add_session(engine, "hist-cy", "2026-10-01T10:00", "2026-10-01T11:00")
        add_session(engine, "hist-cy", "2026-11-05T10:00", "2026-11-05T11:00")
        # clipped at the end: 2 h inside
        add_session(engine, "=cmd|' /C calc'!A0", "2026-11-03T22:00", "2026-11-04T05:00")
    finally:
        engine.dispose()


def test_by_day_splits_at_midnight_clips_and_counts_distinct_users(db_url):
    seed(db_url)
    rows = rows_of(db_url, "day")
    assert list(rows) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert rows["2026-11-01"] == {
        "key": "2026-11-01",
        "sessions": 2,
        "server_hours": 3.0,
        "users": 2,
        "cost": None,
    }
    assert rows["2026-11-02"] == {
        "key": "2026-11-02",
        "sessions": 2,
        "server_hours": 4.0,
        "users": 1,
        "cost": None,
    }
    assert rows["2026-11-03"]["server_hours"] == 2.0
    assert rows["2026-11-03"]["sessions"] == 1


def test_by_user_and_by_group(db_url):
    seed(db_url)
    by_user = rows_of(db_url, "user")
    assert by_user["hist-ann"] == {
        "key": "hist-ann",
        "sessions": 2,
        "server_hours": 6.0,
        "users": 1,
        "cost": None,
    }
    assert by_user["hist-ben"]["server_hours"] == 1.0
    assert "hist-cy" not in by_user
    assert list(by_user)[0] == "hist-ann"  # most hours first

    groups = {"hist-ann": ["hist-a", "hist-b"], "hist-ben": ["hist-b"]}
    by_group = rows_of(db_url, "group", groups)
    assert by_group["hist-b"] == {
        "key": "hist-b",
        "sessions": 3,
        "server_hours": 7.0,
        "users": 2,
        "cost": None,
    }
    assert by_group["hist-a"]["server_hours"] == 6.0  # ann counts in both of her groups
    assert by_group["(no group)"]["users"] == 1


def test_an_open_session_counts_up_to_now():
    from hubkeeper.db.models import ServerSession

    open_one = ServerSession(user="hist-ann", started_at=at("2026-11-03T20:00"))
    rows = aggregate(
        [open_one], by="user", now=at("2026-11-03T21:30"), groups_of=lambda u: [], **WINDOW
    )
    assert rows[0].server_hours == 1.5


def test_csv_parses_back_and_neutralises_formulas(db_url):
    seed(db_url)
    engine = prepared(db_url)
    try:
        found = sessions_between(engine, WINDOW["since"], WINDOW["until"])
    finally:
        engine.dispose()
    text = to_csv(aggregate(found, by="user", now=NOW, **WINDOW))
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["key", "sessions", "server_hours", "users", "cost"]
    keys = {row[0]: row for row in parsed[1:]}
    assert keys["'=cmd|' /C calc'!A0"] == ["'=cmd|' /C calc'!A0", "1", "2.000", "1", ""]
    assert keys["hist-ann"][2] == "6.000"
    assert [safe_cell(v) for v in ("+1", "-1", "@x", "ok", 5)] == ["'+1", "'-1", "'@x", "ok", 5]


# --- the same rows computed in the database (hubkeeper.history.usage_db) ------------------
def db_rows_of(db_url: str, by: str, groups: dict[str, list[str]] | None = None, **window):
    from hubkeeper.history.usage_db import usage_in_db

    engine = prepared(db_url)
    try:
        rows = usage_in_db(
            engine,
            by=by,
            now=NOW,
            groups_of=lambda u: (groups or {}).get(u, []),
            **(window or WINDOW),
        )
    finally:
        engine.dispose()
    return {r.key: r.as_dict() for r in rows}


def test_database_aggregate_matches_the_python_definition(db_url):
    seed(db_url)
    engine = prepared(db_url)
    try:
        # long, open, zero-length at midnight, ending exactly at midnight, two-day spans
        add_session(engine, "hist-dee", "2026-10-20T10:00", "2026-11-03T01:00")
        add_session(engine, "hist-dee", "2026-11-02T00:00", "2026-11-02T00:00")
        add_session(engine, "hist-eve", "2026-11-01T20:00", "2026-11-02T00:00")
        add_session(engine, "hist-eve", "2026-11-02T23:30")
    finally:
        engine.dispose()
    groups = {"hist-ann": ["hist-a", "hist-b"], "hist-ben": ["hist-b"], "hist-eve": ["hist-e"]}
    windows = [WINDOW, {"since": at("2026-11-01T12:00"), "until": at("2026-11-02T18:30")}]
    for window in windows:
        for by in ("day", "user", "group"):
            assert db_rows_of(db_url, by, groups, **window) == rows_of_window(
                db_url, by, groups, window
            ), (by, window)


def rows_of_window(db_url: str, by: str, groups: dict, window: dict) -> dict:
    engine = prepared(db_url)
    try:
        found = sessions_between(engine, window["since"], window["until"])
    finally:
        engine.dispose()
    rows = aggregate(found, by=by, now=NOW, groups_of=lambda u: groups.get(u, []), **window)
    return {r.key: r.as_dict() for r in rows}


def test_groups_at_session_start_win_over_current_groups(db_url):
    import json

    from hubkeeper.db.engine import session_scope
    from hubkeeper.db.models import ServerSession

    engine = prepared(db_url)
    try:
        with session_scope(engine) as session:
            for groups in (["hist-then"], []):
                session.add(
                    ServerSession(
                        user="hist-gus",
                        started_at=at("2026-11-01T10:00"),
                        stopped_at=at("2026-11-01T11:00"),
                        duration_s=3600,
                        groups=json.dumps(groups),
                    )
                )
    finally:
        engine.dispose()
    now_groups = {"hist-gus": ["hist-now"]}
    by_group = db_rows_of(db_url, "group", now_groups)
    assert set(by_group) == {"hist-then", "(no group)"}
    assert by_group == rows_of(db_url, "group", now_groups)


def test_days_are_utc_days_on_a_postgres_session_in_new_york(db_url):
    """Issue #7: a PostgreSQL session with TimeZone=America/New_York still buckets at UTC
    midnight (a 22:00-03:00 UTC session is 2 h on the 1st and 3 h on the 2nd, not 5 h on the
    1st as New York's day would have it)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL session TimeZone: needs HUBKEEPER_TEST_POSTGRES_URL")
    from sqlalchemy import create_engine, text

    from hubkeeper.db.engine import normalise_url
    from hubkeeper.history.usage_db import usage_in_db

    seed(db_url)
    engine = create_engine(
        normalise_url(db_url), connect_args={"options": "-c TimeZone=America/New_York"}
    )
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW TimeZone")).scalar() == "America/New_York"
        rows = {r.key: r.as_dict() for r in usage_in_db(engine, by="day", now=NOW, **WINDOW)}
    finally:
        engine.dispose()
    assert rows == rows_of(db_url, "day")
    assert rows["2026-11-01"]["server_hours"] == 3.0 and rows["2026-11-02"]["server_hours"] == 4.0


# --- cost (HUBKEEPER_PRICES) ------------------------------------------------------------------
PRICES = {"gpu": 2.0, "*": 0.5}  # "cpu" has no price of its own: "*"
COST_WINDOW = {"since": at("2026-11-01T00:00"), "until": at("2026-11-08T00:00")}


def seed_profiles(engine) -> None:  # noqa: ANN001
    # ann: 4 h gpu over midnight (2 h + 2 h), 2 h default; ben: 6 h cpu; cy: 1.5 h gpu
    add_session(
        engine,
        "cost-ann",
        "2026-11-01T22:00",
        "2026-11-02T02:00",
        profile="gpu",
        groups=["physics"],
    )
    add_session(engine, "cost-ann", "2026-11-03T10:00", "2026-11-03T12:00", groups=["physics"])
    add_session(
        engine,
        "cost-ben",
        "2026-11-02T09:00",
        "2026-11-02T15:00",
        profile="cpu",
        groups=["physics", "chem"],
    )
    add_session(engine, "cost-cy", "2026-11-05T00:00", "2026-11-05T01:30", profile="gpu", groups=[])


def test_cost_per_day_user_group_and_profile_matches_hand_computed_figures(db_url):
    from hubkeeper.history.report import usage
    from hubkeeper.history.usage_db import usage_in_db

    engine = prepared(db_url)
    try:
        seed_profiles(engine)

        def costs(by: str, prices=PRICES) -> dict:  # noqa: ANN001
            # the rollups (a week of closed days) and the sessions alone give the same figures
            rolled = usage(engine, by=by, now=NOW, prices=prices, **COST_WINDOW)
            direct = usage_in_db(engine, by=by, now=NOW, prices=prices, **COST_WINDOW)
            found = {r.key: r.cost for r in rolled if r.seconds}
            assert found == {r.key: r.cost for r in direct if r.seconds}, by
            return {k: None if v is None else round(v, 6) for k, v in found.items()}

        assert costs("user") == {"cost-ann": 9.0, "cost-ben": 3.0, "cost-cy": 3.0}
        assert costs("group") == {"physics": 12.0, "chem": 3.0, "(no group)": 3.0}
        assert costs("day") == {
            "2026-11-01": 4.0,
            "2026-11-02": 7.0,
            "2026-11-03": 1.0,
            "2026-11-05": 3.0,
        }
        assert costs("profile") == {"gpu": 11.0, "cpu": 3.0, "(default)": 1.0}
        with engine.connect() as conn:
            from sqlalchemy import text

            assert conn.execute(text("SELECT count(*) FROM usage_day_profile")).scalar(), (
                "by=day was priced from the rollup"
            )
        by_profile = {
            r.key: r.as_dict() for r in usage(engine, by="profile", now=NOW, **COST_WINDOW)
        }
        assert by_profile["gpu"] == {
            "key": "gpu",
            "sessions": 2,
            "server_hours": 5.5,
            "users": 2,
            "cost": None,  # no prices: no cost
        }
        # prices apply when read: a new price list reprices the same rollups ("cpu" and the
        # default have no price and no "*": they cost nothing)
        assert costs("profile", {"gpu": 1.0}) == {"gpu": 5.5, "cpu": 0.0, "(default)": 0.0}
    finally:
        engine.dispose()


def test_hours_and_cost_round_once_and_agree_at_a_price_of_one():
    # 119,105 s = 33.08472 h: rounded to three decimals first (33.085) it would show as
    # 33.09 hours beside a cost of 33.08, which reads as a wrong bill.
    row = UsageRow("ada")
    row.add_seconds(None, 119_105)
    apply_prices([row], {"*": 1.0})
    assert f"{row.hours:.2f}" == f"{row.cost:.2f}" == "33.08"
    assert row.server_hours == 33.085  # the API's three decimals are unchanged


def test_an_open_session_is_in_no_window_that_begins_after_now(db_url):
    engine = prepared(db_url)
    try:
        add_session(engine, "hist-open", "2026-11-03T20:00")  # still running
        future = at("2999-01-01T00:00")
        assert sessions_between(engine, future, future + timedelta(days=30)) == []
        now_on = sessions_between(engine, at("2026-11-04T00:00"), future)
        assert [s.user for s in now_on] == ["hist-open"]  # it runs on into a window begun since
    finally:
        engine.dispose()
