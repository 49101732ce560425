"""When the hub cannot be reached: reads come from the directory (flagged stale), actions
answer 503 `hub_unavailable` and are still audited as failed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hubkeeper.auth.sessions import issue_session
from hubkeeper.demo.localhub import free_port
from hubkeeper.hub.models import HubUser
from hubkeeper.main import create_app
from tests.waiting import wait_for


@pytest.fixture
def offline(make_settings: Any) -> Iterator[tuple[TestClient, Any]]:
    settings = make_settings(
        JUPYTERHUB_API_URL=f"http://127.0.0.1:{free_port()}/hub/api",
        HUBKEEPER_ACTIVE_SYNC_INTERVAL="0.2",
        HUBKEEPER_HUB_TIMEOUT="2",
    )
    app = create_app(settings)
    hk = app.state.hk
    with TestClient(app) as client:
        name, value, csrf = asyncio.run(issue_session(hk, user="admin", role="admin"))
        client.cookies.set(name, value)
        client.headers["X-CSRF-Token"] = csrf
        # what an earlier sync would have left behind
        hk.directory.upsert(HubUser(name="ann", groups=["physics"]))
        yield client, hk


def test_reads_are_served_from_the_directory_and_flagged_stale(offline):
    client, hk = offline
    wait_for(lambda: hk.directory.stale, 15, "the directory to go stale")
    status = client.get("/api/v1/directory").json()
    assert status["stale"] is True
    assert "unreachable" in status["last_error"]
    assert status["ready"] is False

    listed = client.get("/api/v1/users")
    assert listed.status_code == 200
    assert [u["name"] for u in listed.json()["items"]] == ["ann"]
    assert client.get("/api/v1/users/ann").json()["groups"] == ["physics"]


def test_reading_a_user_the_directory_lacks_is_503(offline):
    client, _ = offline
    response = client.get("/api/v1/users/zed")
    assert response.status_code == 503
    assert response.json()["error"] == "hub_unavailable"


def test_actions_are_503_and_audited_as_failed(offline):
    client, _ = offline
    for url in (
        "/api/v1/users/ann/server/start",
        "/api/v1/users/ann/servers/gpu/stop",
    ):
        response = client.post(url)
        assert response.status_code == 503, response.text
        body = response.json()
        assert set(body) == {"error", "detail"} and body["error"] == "hub_unavailable"
    stop_all = client.post("/api/v1/servers/stop-all", json={"reason": "outage"})
    assert stop_all.status_code == 503
    audit = client.get("/api/v1/audit", params={"actor": "admin"}).json()
    assert [(e["action"], e["target"], e["outcome"], e["via"]) for e in audit["items"]] == [
        ("servers.stop_all", "*", "failed", "web"),
        ("server.stop", "ann/gpu", "failed", "web"),
        ("server.start", "ann", "failed", "web"),
    ]


def test_a_cookie_write_without_csrf_is_refused(offline):
    client, _ = offline
    response = client.post("/api/v1/users/ann/server/start", headers={"X-CSRF-Token": ""})
    assert response.status_code == 403
