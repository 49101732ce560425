"""`GET api/v1/audit`: filters, paging, times in UTC, roles — on SQLite (and PostgreSQL when
HUBKEEPER_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hubkeeper.actions.audit import record, search
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import AuditEvent
from hubkeeper.main import create_app

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def add_event(engine: Any, minutes: int, **fields: Any) -> None:
    values = {"actor": "ann", "action": "server.stop", "target": "bob", "via": "web", **fields}
    with session_scope(engine) as session:
        session.add(AuditEvent(at=T0 + timedelta(minutes=minutes), **values))


@pytest.fixture(scope="module")
def admin_token(hub: Any) -> str:
    return str(hub.user_token("admin"))


@pytest.fixture
def client(make_settings: Any, db_url: str, admin_token: str) -> Iterator[TestClient]:
    app = create_app(make_settings(db_url))
    with TestClient(app, base_url="http://testserver") as test_client:
        test_client.headers["Authorization"] = f"token {admin_token}"
        engine = app.state.hk.engine
        add_event(engine, 0, action="server.start", target="bob")
        add_event(engine, 10, target="bob/gpu", outcome="failed", error="it is not running")
        add_event(engine, 20, actor="cy", action="servers.stop_all", target="*", via="api")
        add_event(engine, 30, actor="cy", target="dee")
        yield test_client


def actions(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["actor"], e["target"]) for e in body["items"]]


def test_newest_first_with_the_contract_shape(client):
    body = client.get("/api/v1/audit").json()
    assert body["total"] == 4 and body["offset"] == 0 and body["limit"] == 50
    assert actions(body) == [("cy", "dee"), ("cy", "*"), ("ann", "bob/gpu"), ("ann", "bob")]
    event = body["items"][2]
    assert set(event) == {
        "id",
        "at",
        "actor",
        "action",
        "target",
        "outcome",
        "detail",
        "error",
        "via",
    }
    assert event["outcome"] == "failed" and event["error"] == "it is not running"
    assert datetime.fromisoformat(event["at"]) == T0 + timedelta(minutes=10)
    assert event["at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor": "cy"}, [("cy", "dee"), ("cy", "*")]),
        ({"action": "server.stop"}, [("cy", "dee"), ("ann", "bob/gpu")]),
        ({"target": "bob"}, [("ann", "bob/gpu"), ("ann", "bob")]),
        ({"outcome": "failed"}, [("ann", "bob/gpu")]),
        ({"since": "2026-03-01T12:10:00Z"}, [("cy", "dee"), ("cy", "*"), ("ann", "bob/gpu")]),
        ({"until": "2026-03-01T12:10:00Z"}, [("ann", "bob")]),
        # another offset means the same instant: 14:15+02:00 = 12:15Z
        ({"since": "2026-03-01T14:15:00+02:00"}, [("cy", "dee"), ("cy", "*")]),
        ({"actor": "cy", "action": "server.stop"}, [("cy", "dee")]),
        ({"actor": "nobody"}, []),
    ],
)
def test_filters(client, params, expected):
    body = client.get("/api/v1/audit", params=params).json()
    assert actions(body) == expected
    assert body["total"] == len(expected)


def test_paging(client):
    body = client.get("/api/v1/audit", params={"offset": 1, "limit": 2}).json()
    assert actions(body) == [("cy", "*"), ("ann", "bob/gpu")]
    assert body["total"] == 4 and body["offset"] == 1 and body["limit"] == 2


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"since": "yesterday"}, {"outcome": "meh"}],
)
def test_bad_filters_are_422(client, params):
    response = client.get("/api/v1/audit", params=params)
    assert response.status_code == 422
    # since/until are read by the kit's one parser (invalid_parameter, as sessions and usage).
    assert response.json()["error"] == "invalid_parameter"


def test_anonymous_is_refused(client):
    response = client.get("/api/v1/audit", headers={"Authorization": ""})
    assert response.status_code == 401


def test_record_keeps_failures_and_search_counts(make_settings, db_url):
    app = create_app(make_settings(db_url))
    with TestClient(app):
        engine = app.state.hk.engine
        target = f"u-{uuid.uuid4().hex[:6]}"
        record(
            engine,
            actor="x",
            action="server.start",
            target=target,
            outcome="failed",
            error="boom",
            via="cli",
        )
        with session_scope(engine) as session:
            events, total = search(session, target=target)
        assert total == 1
        assert (events[0].outcome, events[0].error, events[0].via) == ("failed", "boom", "cli")


def test_target_matches_like_wildcards_only_as_themselves(client):
    """`_` and `%` in `target` are plain characters (and so is the escape character)."""
    engine = client.app.state.hk.engine
    for minute, target in enumerate(("abc", "a_c", "a%c", "a/c", "a/_c"), start=40):
        add_event(engine, minute, target=target)

    def found(target: str) -> list[str]:
        body = client.get("/api/v1/audit", params={"target": target}).json()
        return sorted(e["target"] for e in body["items"])

    assert found("a_c") == ["a_c"]
    assert found("a%c") == ["a%c"]
    assert found("%") == ["a%c"]
    assert found("a/c") == ["a/c"]
    assert found("/_") == ["a/_c"]
    assert found("b") == sorted(["abc", "bob", "bob/gpu"])
