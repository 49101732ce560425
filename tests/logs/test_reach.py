"""How logs reach the server, per proxy setting: none → 503 `server_unreachable` (never 409
for a running server), the HUBKEEPER_PROXY_URL fallback → works and says its reads count as
activity (health and pages), and a hidden log refused by the server says so."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from hubkeeper.auth.sessions import issue_session
from hubkeeper.demo.localhub import NO_HIDDEN_PREFIX, LocalHub
from hubkeeper.main import create_app

ADMIN = "reach-logs-admin"
RUNNER = "reach-logs-runner"
HIDDEN = f"{NO_HIDDEN_PREFIX}reach-logs"
NO_PROXY = {"HUBKEEPER_PROXY_API_URL": "", "HUBKEEPER_PROXY_AUTH_TOKEN": ""}


@pytest.fixture(scope="module")
def running(hub: LocalHub) -> Iterator[str]:
    hub.create_users([ADMIN], admin=True)
    hub.create_users([RUNNER])
    hub.start_server(RUNNER)
    try:
        yield hub.user_token(ADMIN)
    finally:
        hub.stop_server(RUNNER)


def page(client: TestClient, path: str) -> BeautifulSoup:
    hk = client.app.state.hk  # type: ignore[attr-defined]
    name, value, _ = client.portal.call(lambda: issue_session(hk, user=ADMIN, role="admin"))
    client.cookies.set(name, value)
    response = client.get(path)
    assert response.status_code == 200, response.text[:300]
    return BeautifulSoup(response.text, "html.parser")


def test_no_proxy_settings_is_503_server_unreachable_not_409(make_settings: Any, running: str):
    with TestClient(create_app(make_settings(**NO_PROXY))) as client:
        auth = {"Authorization": f"token {running}"}
        for path in (f"/api/v1/users/{RUNNER}/logs", f"/api/v1/users/{RUNNER}/logs/stream"):
            response = client.get(path, headers=auth)
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["error"] == "server_unreachable"
            assert "HUBKEEPER_PROXY_API_URL" in body["detail"]
            assert "HUBKEEPER_PROXY_URL" in body["detail"]
        health = client.get("/api/v1/health").json()
        assert health["servers"]["reachable"] is False and health["servers"]["via"] is None
        notice = page(client, "/logs").select_one("[data-servers-notice]")
        assert notice is not None and notice["data-servers-notice"] == "unconfigured"


def test_the_proxy_fallback_reads_and_says_it_counts_as_activity(
    hub: LocalHub, make_settings: Any, running: str
):
    settings = make_settings(**NO_PROXY, HUBKEEPER_PROXY_URL=hub.origin)
    with TestClient(create_app(settings)) as client:
        auth = {"Authorization": f"token {running}"}
        response = client.get(f"/api/v1/users/{RUNNER}/logs", params={"lines": 3}, headers=auth)
        assert response.status_code == 200, response.text
        assert response.json()["lines"]
        health = client.get("/api/v1/health").json()["servers"]
        assert health == {
            "reachable": True,
            "via": "proxy",
            "counts_as_activity": True,
            "detail": client.app.state.hk.servers.notice,  # type: ignore[attr-defined]
        }
        assert "activity" in health["detail"]
        for path in ("/logs", f"/logs/{RUNNER}"):
            notice = page(client, path).select_one("[data-servers-notice]")
            assert notice is not None and notice["data-servers-notice"] == "proxy"
            assert "counts as the user" in notice.get_text()


def test_a_log_refused_as_hidden_names_allow_hidden(hub: LocalHub, make_settings: Any, running):
    hub.create_users([HIDDEN])
    hub.start_server(HIDDEN)
    try:
        with TestClient(create_app(make_settings())) as client:
            auth = {"Authorization": f"token {running}"}
            response = client.get(f"/api/v1/users/{HIDDEN}/logs", headers=auth)
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "log_hidden"
            assert "ContentsManager.allow_hidden=True" in response.json()["detail"]
            missing = client.get(f"/api/v1/users/{RUNNER}/logs", headers=auth)  # a path that exists
            assert missing.status_code == 200
    finally:
        hub.stop_server(HIDDEN)


def test_a_missing_log_names_the_path_tried(make_settings: Any, running: str):
    settings = make_settings(HUBKEEPER_SERVER_LOG_PATH="logs/not-written-here.txt")
    with TestClient(create_app(settings)) as client:
        auth = {"Authorization": f"token {running}"}
        response = client.get(f"/api/v1/users/{RUNNER}/logs", headers=auth)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "log_not_found"
        assert "logs/not-written-here.txt" in response.json()["detail"]
