"""`api/v1/sessions` and `api/v1/usage` on a fresh Hubkeeper with sessions written directly."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hubkeeper.main import create_app
from tests.history.factories import add_session, prepared
from tests.waiting import wait_for

ANN, BEN, MANAGER = "hist-api-ann", "hist-api-ben", "hist-api-manager"
EVIL = '=HYPERLINK("http://x")'


@pytest.fixture
def client(hub, make_settings, db_url) -> Iterator[TestClient]:
    hub.create_users([ANN, BEN, MANAGER])
    hub.add_to_group("managers", [MANAGER])
    hub.add_to_group("hist-api-team", [ANN, BEN])
    engine = prepared(db_url)
    try:
        add_session(engine, ANN, "2026-11-01T22:00", "2026-11-02T03:00", reason="admin", by="x")
        add_session(engine, BEN, "2026-11-02T10:00", "2026-11-02T12:00")
        add_session(engine, EVIL, "2026-11-02T10:00", "2026-11-02T11:00")
    finally:
        engine.dispose()
    app = create_app(make_settings(db_url))
    with TestClient(app) as test_client:
        wait_for(lambda: app.state.hk.directory.ready, 30, "the directory's first sweep")
        yield test_client


def token(hub: Any, name: str) -> dict[str, str]:
    return {"Authorization": f"token {hub.user_token(name)}"}


# A bare-date `until` includes that day (hubkeeper.kit.window): November 1st and 2nd.
WINDOW = {"since": "2026-11-01", "until": "2026-11-02"}


def test_sessions_are_listed_newest_first_and_filtered(hub, client):
    admin = token(hub, "admin")
    body = client.get("api/v1/sessions", params=WINDOW, headers=admin).json()
    assert body["total"] == 3 and body["offset"] == 0 and body["limit"] == 50
    assert [i["user"] for i in body["items"]][-1] == ANN
    first = body["items"][-1]
    assert set(first) == {
        "id", "user", "server", "started_at", "stopped_at", "duration_s", "stop_reason",
        "stopped_by", "profile", "peak_memory_bytes", "mean_cpu_percent", "memory_limit_bytes",
    }  # fmt: skip
    assert first["peak_memory_bytes"] is None and first["mean_cpu_percent"] is None
    assert first["duration_s"] == 5 * 3600 and first["stop_reason"] == "admin"
    only = client.get(
        "api/v1/sessions", params={"stop_reason": "admin", **WINDOW}, headers=admin
    ).json()
    assert [i["user"] for i in only["items"]] == [ANN]
    none = client.get("api/v1/sessions", params={"since": "2026-11-05"}, headers=admin).json()
    assert none["total"] == 0
    paged = client.get("api/v1/sessions", params={"limit": 1, "offset": 1}, headers=admin).json()
    assert paged["total"] == 3 and len(paged["items"]) == 1


def test_usage_by_day_user_and_group(hub, client):
    admin = token(hub, "admin")
    day = client.get("api/v1/usage", params=WINDOW, headers=admin).json()
    assert day["by"] == "day" and day["since"] == "2026-11-01T00:00:00+00:00"
    assert [(r["key"], r["server_hours"], r["users"]) for r in day["rows"]] == [
        ("2026-11-01", 2.0, 1),
        ("2026-11-02", 6.0, 3),
    ]
    users = client.get("api/v1/usage", params={**WINDOW, "by": "user"}, headers=admin).json()
    assert users["rows"][0] == {
        "key": ANN,
        "sessions": 1,
        "server_hours": 5.0,
        "users": 1,
        "cost": None,  # no HUBKEEPER_PRICES
    }
    groups = client.get("api/v1/usage", params={**WINDOW, "by": "group"}, headers=admin).json()
    rows = {r["key"]: r for r in groups["rows"]}
    assert rows["hist-api-team"] == {
        "key": "hist-api-team",
        "sessions": 2,
        "server_hours": 7.0,
        "users": 2,
        "cost": None,
    }
    assert rows["(no group)"]["users"] == 1  # EVIL is not a hub user


def test_usage_csv_is_an_attachment_with_formulas_neutralised(hub, client):
    response = client.get(
        "api/v1/usage",
        params={**WINDOW, "by": "user", "format": "csv"},
        headers=token(hub, "admin"),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    # named for the days it holds: the bare-date until includes 2 November, and no more
    assert response.headers["content-disposition"] == (
        'attachment; filename="hubkeeper-usage-user-20261101-20261102.csv"'
    )
    parsed = list(csv.reader(io.StringIO(response.text)))
    assert parsed[0] == ["key", "sessions", "server_hours", "users", "cost"]
    assert ["'" + EVIL, "1", "1.000", "1", ""] in parsed


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"since": "2026-11-05", "until": "2026-11-01"},
        {"by": "week"},
        {"format": "xls"},
    ],
)
def test_bad_usage_parameters_are_422(hub, client, params):
    response = client.get("api/v1/usage", params=params, headers=token(hub, "admin"))
    assert response.status_code == 422, response.text
    assert response.json()["error"]


def test_bad_session_parameters_are_422(hub, client):
    admin = token(hub, "admin")
    for params in ({"since": "2026-13-01"}, {"until": "x"}, {"stop_reason": "bored"}):
        response = client.get("api/v1/sessions", params=params, headers=admin)
        assert response.status_code == 422, (params, response.text)
    assert client.get("api/v1/sessions", params={"limit": 501}, headers=admin).status_code == 422


def test_managers_read_and_anonymous_is_refused(hub, client):
    manager = token(hub, MANAGER)
    assert client.get("api/v1/sessions", headers=manager).status_code == 200
    assert client.get("api/v1/usage", headers=manager).status_code == 200
    for path in ("api/v1/sessions", "api/v1/usage"):
        anonymous = client.get(path)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "login_required"
    assert client.get("api/v1/usage", headers=token(hub, ANN)).status_code == 403


def test_usage_with_prices_carries_cost_and_answers_by_profile(hub, client, monkeypatch):
    monkeypatch.setattr(client.app.state.hk.settings, "prices", {"*": 2.0})  # type: ignore[attr-defined]
    admin = token(hub, "admin")
    users = client.get("api/v1/usage", params={**WINDOW, "by": "user"}, headers=admin).json()
    assert {r["key"]: r["cost"] for r in users["rows"]} == {ANN: 10.0, BEN: 4.0, EVIL: 2.0}
    profiles = client.get("api/v1/usage", params={**WINDOW, "by": "profile"}, headers=admin)
    assert profiles.json()["rows"] == [
        {"key": "(default)", "sessions": 3, "server_hours": 8.0, "users": 3, "cost": 16.0}
    ]
