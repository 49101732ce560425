"""`GET api/v1/culler/backtest` and `.../suggest`: figures on made history, validation (422,
strict), roles (managers read, people without a role 403); and, against the real hub, a
server's activity recorded into buckets by the session recorder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hubkeeper.db.activity import BUCKET, PER_DAY, Marks, bucket_of, from_bytes, write_marks
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerActivity, ServerSession
from hubkeeper.kit.clock import utcnow
from tests.culler.helpers import QUIET, app_client, names, server_up, set_activity
from tests.waiting import wait_for

MANAGER = "culler-bt-manager"
NOBODY = "culler-bt-nobody"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # sessions start here; bucket-aligned
WINDOW = {"since": "2026-11-01", "until": "2026-11-03"}


def mark(marks: dict, user: str, server: str, buckets: list[int]) -> None:
    """Hub activity in `buckets` counted from T0."""
    for k in buckets:
        day, bit = divmod(bucket_of(T0) + k, PER_DAY)
        marks.setdefault((user, server, day), Marks()).hub |= 1 << bit


def add(engine, user: str, start_min: int, stop_min: int, groups: list[str], server: str = ""):  # noqa: ANN001, ANN201
    with session_scope(engine) as session:
        session.add(
            ServerSession(
                user=user,
                server=server,
                started_at=T0 + timedelta(minutes=start_min),
                stopped_at=T0 + timedelta(minutes=stop_min),
                duration_s=(stop_min - start_min) * 60,
                stop_reason="unknown",
                groups=json.dumps(groups),
            )
        )


@pytest.fixture
def client(make_settings, hub, db_url):
    """An app on the made history, on SQLite (and PostgreSQL when the tests have one)."""
    hub.create_users([MANAGER, NOBODY])
    hub.add_to_group("managers", [MANAGER])
    with app_client(make_settings(db_url, **QUIET)) as c:
        engine = c.app.state.hk.engine
        marks: dict = {}
        # ann (physics): active 30 min, then idle until 4 h: a 30 min timeout cuts at 1 h
        add(engine, "bt-ann", 0, 240, ["physics"])
        mark(marks, "bt-ann", "", list(range(6)))
        # ben (physics, maths): idle 40 min then back at 1 h 15 (bucket 14), until 2 h:
        # cut at 1 h, a regret; his own activity after that keeps him from a second cut
        add(engine, "bt-ben", 0, 120, ["physics", "maths"])
        mark(marks, "bt-ben", "", [*range(6), *range(14, 24)])
        # cy (no group): cut at 1 h, stopped at 1 h 30, a new server started at 1 h 10
        add(engine, "bt-cy", 0, 90, [])
        mark(marks, "bt-cy", "", list(range(6)))
        add(engine, "bt-cy", 70, 100, [], server="gpu")
        mark(marks, "bt-cy", "gpu", list(range(14, 20)))
        write_marks(engine, marks)
        yield c


@pytest.fixture
def admin(hub):
    return {"Authorization": f"token {hub.user_token('admin')}"}


@pytest.fixture
def manager(hub):
    return {"Authorization": f"token {hub.user_token(MANAGER)}"}


def test_backtest_per_group_and_user_on_made_history(client, manager):
    got = client.get(
        "api/v1/culler/backtest", params={"timeout_s": "30m", **WINDOW}, headers=manager
    )
    assert got.status_code == 200, got.text
    body = got.json()
    rows = {row["key"]: row for row in body["items"]}
    assert list(rows) == ["(no group)", "maths", "physics"]
    assert rows["physics"] == {
        "key": "physics",
        "sessions": 2,
        "server_hours": 6.0,
        "saved_hours": 4.0,  # ann 3 h, ben 1 h
        "saved_cost": None,
        "cut_sessions": 2,
        "regret_sessions": 1,  # ben, back 15 min after the cut
    }
    assert rows["maths"]["regret_sessions"] == 1 and rows["maths"]["saved_hours"] == 1.0
    # cy: the default server cut at 1 h (saved 30 min), regretted (gpu started at 1 h 10);
    # gpu active until 1 h 40 = its stop: never cut
    assert rows["(no group)"] == {
        "key": "(no group)",
        "sessions": 2,
        "server_hours": 2.0,
        "saved_hours": 0.5,
        "saved_cost": None,
        "cut_sessions": 1,
        "regret_sessions": 1,
    }
    assert body["total"] == {
        "sessions": 4,
        "server_hours": 8.0,
        "saved_hours": 4.5,
        "saved_cost": None,
        "cut_sessions": 3,
        "regret_sessions": 2,
    }
    by_user = client.get(
        "api/v1/culler/backtest",
        params={"timeout_s": 1800, "by": "user", **WINDOW},
        headers=manager,
    ).json()
    assert [r["key"] for r in by_user["items"]] == ["bt-ann", "bt-ben", "bt-cy"]
    # kernel activity: none recorded, so every session is idle from its first bucket's end;
    # all are cut 35 min in but gpu (started 1 h 10, bucket end 1 h 15 + 30 min > 1 h 40)
    kernels = client.get(
        "api/v1/culler/backtest",
        params={"timeout_s": "30m", "idle_source": "kernels", **WINDOW},
        headers=manager,
    ).json()
    assert kernels["total"]["cut_sessions"] == 3
    # outside the window: nothing
    empty = client.get(
        "api/v1/culler/backtest",
        params={"timeout_s": "1h", "since": "2026-10-01", "until": "2026-10-02"},
        headers=manager,
    ).json()
    assert empty["items"] == [] and empty["total"]["sessions"] == 0


def test_suggest_per_group(client, admin):
    # dan (lab): back 25 min after his first half hour, every time: a 15 min cut (at 45)
    # regrets (back at 55), a 30 min one never happens
    engine = client.app.state.hk.engine
    add(engine, "bt-dan", 0, 240, ["lab"])
    marks: dict = {}
    mark(marks, "bt-dan", "", [*range(6), *range(10, 48)])
    write_marks(engine, marks)
    got = client.get(
        "api/v1/culler/backtest/suggest", params={"max_regret": 0, **WINDOW}, headers=admin
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["max_regret"] == 0 and body["candidates"][0] == 900
    found = {row["key"]: row for row in body["items"]}
    # 15 min cuts ann, ben and cy at 45 min: ben is back at 1 h 15, cy's gpu starts at
    # 1 h 10, both more than 15 min later: no regret
    assert {k: r["timeout_s"] for k, r in found.items()} == {
        "(no group)": 900,
        "lab": 1800,
        "maths": 900,
        "physics": 900,
    }
    assert found["lab"]["cut_sessions"] == 0 and found["lab"]["regret_rate"] == 0
    assert found["physics"]["saved_hours"] == 3.25 + 1.25  # cut at 45: ann 3 h 15, ben 1 h 15
    lenient = client.get(
        "api/v1/culler/backtest/suggest", params={"max_regret": "1", **WINDOW}, headers=admin
    ).json()
    assert {r["key"]: r["timeout_s"] for r in lenient["items"]}["lab"] == 900


@pytest.mark.parametrize(
    "params",
    [
        {},  # timeout_s is required
        {"timeout_s": "soon"},
        {"timeout_s": "1m"},  # shorter than a bucket
        {"timeout_s": "60d"},
        {"timeout_s": "30m", "idle_source": "proxy"},
        {"timeout_s": "30m", "by": "day"},
        {"timeout_s": "30m", "since": "yesterday"},
        {"timeout_s": "30m", "since": "2026-11-03", "until": "2026-11-01"},
        {"timeout_s": "30m", "timeout": "1h"},  # unknown parameter
        {"timeout_s": "30m", "since": "10000-01-01"},
    ],
)
def test_bad_backtest_input_is_422(client, admin, params):
    got = client.get("api/v1/culler/backtest", params=params, headers=admin)
    assert got.status_code == 422, got.text
    assert set(got.json()) == {"error", "detail"}


@pytest.mark.parametrize(
    "params",
    [{"max_regret": 2}, {"max_regret": "-0.1"}, {"max_regret": "nan"}, {"timeout_s": "1h"}],
)
def test_bad_suggest_input_is_422(client, admin, params):
    got = client.get("api/v1/culler/backtest/suggest", params=params, headers=admin)
    assert got.status_code == 422, got.text
    assert set(got.json()) == {"error", "detail"}


def test_the_widest_window_is_answered(client, admin):
    got = client.get(
        "api/v1/culler/backtest",
        params={"timeout_s": "8h", "since": "0001-01-02", "until": "9999-12-29"},
        headers=admin,
    )
    assert got.status_code == 200, got.text
    assert got.json()["total"]["sessions"] == 4
    suggested = client.get(
        "api/v1/culler/backtest/suggest",
        params={"since": "0001-01-02", "until": "9999-12-29", "by": "user"},
        headers=admin,
    )
    assert suggested.status_code == 200, suggested.text


def test_roles_managers_read_people_without_a_role_do_not(client, hub, manager):
    nobody = {"Authorization": f"token {hub.user_token(NOBODY)}"}
    for path in ("api/v1/culler/backtest", "api/v1/culler/backtest/suggest"):
        params = {"timeout_s": "1h"} if path.endswith("backtest") else {}
        assert client.get(path, params=params, headers=manager).status_code == 200
        assert client.get(path, params=params, headers=nobody).status_code == 403
        assert client.get(path, params=params).status_code == 401


def test_a_running_servers_activity_is_recorded_in_buckets(make_settings, hub):
    """The real hub: a server's `last_activity` moving is seen by the directory, and the
    session recorder marks its 5-minute bucket in `server_activity`."""
    (user,) = names("bt", "active")
    hub.create_users([user])
    with app_client(make_settings(**QUIET, HUBKEEPER_RECONCILE_INTERVAL=0.5)) as client:
        engine = client.app.state.hk.engine
        hub.start_server(user)
        try:
            wait_for(lambda: server_up(hub, user), 60, "the server")
            # a later activity than the start's (the hub keeps the newest; up to 59 min ahead)
            when = utcnow() + timedelta(minutes=20)
            set_activity(hub, user, "", when)
            day, bit = divmod(bucket_of(when), PER_DAY)

            def marked() -> bool:
                with session_scope(engine) as session:
                    row = session.scalars(
                        select(ServerActivity).where(
                            ServerActivity.user == user, ServerActivity.day == day
                        )
                    ).first()
                    return row is not None and bool(from_bytes(row.hub) >> bit & 1)

            wait_for(marked, 30, "the activity's bucket marked")
            with session_scope(engine) as session:
                row = session.scalars(
                    select(ServerActivity).where(ServerActivity.user == user)
                ).first()
                assert row is not None and row.server == "" and row.kernels == b""
                assert len(row.hub) <= PER_DAY // 8
            # the backtest reads it: the session is open and was active in that bucket
            assert bucket_of(when) * BUCKET > 0
        finally:
            hub.stop_server(user)


@pytest.mark.parametrize(
    ("raw", "name", "says"),
    [
        ("99999999999", "timeout_s", "timeout_s must be between 5 min and 30 d, not '99999999999'"),
        ("60d", "timeout_s", "timeout_s must be between 5 min and 30 d, not 60 d"),
        ("soon", "The idle timeout", "The idle timeout: 'soon' is not a duration"),
    ],
)
def test_a_bad_timeout_is_named_as_its_reader_knows_it(raw, name, says):
    from hubkeeper.culler.backtest_api import parse_timeout
    from hubkeeper.kit.window import BadInput

    with pytest.raises(BadInput) as caught:
        parse_timeout(raw, name)
    assert caught.value.detail.startswith(says)
