"""`metrics` (scope read:metrics unless public), `api/v1/health/live` and `.../ready`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import CullEvent
from hubkeeper.demo.localhub import MANAGERS_GROUP
from hubkeeper.health.routes import HubCheck
from hubkeeper.kit.metrics import observe_cull_pass
from hubkeeper.main import create_app
from tests.waiting import wait_for

USER = "ops-met-ann"
MANAGER = "ops-met-manager"
SERIES = {
    "hubkeeper_culls",
    "hubkeeper_cull_pass_seconds",
    "hubkeeper_server_sessions_open",
    "hubkeeper_lockdown_active",
    "hubkeeper_hub_request_seconds",
    "hubkeeper_directory_lag_seconds",
    "hubkeeper_leader",
    "hubkeeper_notifications",
    "hubkeeper_notification_deliveries",
}


@pytest.fixture
def client(hub, make_settings, db_url) -> Iterator[TestClient]:
    hub.create_users([USER])
    app = create_app(make_settings(db_url))
    with TestClient(app) as test_client:
        wait_for(lambda: app.state.hk.directory.ready, 30, "the first sweep")
        yield test_client


def families(body: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(body)}


def test_metrics_need_a_token_with_read_metrics(hub, client):
    assert client.get("metrics").status_code == 401
    assert client.get("metrics").json()["error"] == "login_required"
    plain = client.get("metrics", headers={"Authorization": f"token {hub.user_token(USER)}"})
    assert plain.status_code == 403 and plain.json()["error"] == "missing_scope"
    ok = client.get("metrics", headers={"Authorization": f"token {hub.user_token('admin')}"})
    assert ok.status_code == 200, ok.text
    assert ok.headers["content-type"].startswith("text/plain")
    found = families(ok.text)
    assert set(found) >= SERIES, SERIES - set(found)
    leader = {s.labels["loop"]: s.value for s in found["hubkeeper_leader"].samples}
    # the only replica always leads every loop
    assert leader == {
        "directory-sync": 1.0,
        "session-recorder": 1.0,
        "lockdown-enforcer": 1.0,
        "culler": 1.0,
        "kernel-culler": 1.0,
        "usage-rollup": 1.0,
        "backtest-summary": 1.0,
        "notify-sender": 1.0,
        "quota-watch": 1.0,
    }
    assert found["hubkeeper_lockdown_active"].samples[0].value == 0.0
    outcomes = {s.labels.get("outcome") for s in found["hubkeeper_hub_request_seconds"].samples}
    assert "ok" in outcomes


def test_culls_are_counted_from_the_cull_event_table_and_passes_observed(
    hub, make_settings, db_url
):
    app = create_app(make_settings(db_url, HUBKEEPER_METRICS_PUBLIC="1"))
    with TestClient(app) as client:
        before = families(client.get("metrics").text)
        assert before["hubkeeper_culls"].samples == []  # no culls yet
        with session_scope(app.state.hk.engine) as session:
            for kind in ("server", "server", "kernel"):
                session.add(CullEvent(kind=kind, user="metrics-test", reason="idle"))
        observe_cull_pass(1.5)
        after = families(client.get("metrics").text)
        culls = {
            (s.labels["kind"], s.labels["reason"]): s.value
            for s in after["hubkeeper_culls"].samples
            if s.name == "hubkeeper_culls_total"
        }
        assert culls == {("server", "idle"): 2.0, ("kernel", "idle"): 1.0}
        count = [
            s.value
            for s in after["hubkeeper_cull_pass_seconds"].samples
            if s.name == "hubkeeper_cull_pass_seconds_count"
        ]
        assert count and count[0] >= 1


def test_health_live_and_ready(client):
    assert client.get("api/v1/health/live").json() == {"status": "ok"}
    ready = client.get("api/v1/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert client.get("api/v1/health").json()["status"] == "ok"  # the old one, unchanged


def test_ready_is_503_when_the_hub_or_the_database_is_down(make_settings, tmp_path):
    # No lifespan (no `with`): the database is never reached before the probe asks.
    settings = make_settings(
        f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'db.sqlite'}",
        JUPYTERHUB_API_URL="http://127.0.0.1:9/hub/api",
        HUBKEEPER_HUB_TIMEOUT=1,
    )
    client = TestClient(create_app(settings))
    ready = client.get("api/v1/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "error", "hub": "unreachable"}
    assert client.get("api/v1/health/live").status_code == 200


def test_the_health_page_says_what_the_json_says(hub, client):
    admin = {"Authorization": f"token {hub.user_token('admin')}"}
    page = client.get("health", headers=admin)
    assert page.status_code == 200, page.text
    html = BeautifulSoup(page.text, "html.parser")
    report = client.get("api/v1/health").json()
    assert html.select_one("#health-status").get_text(" ", strip=True).startswith("OK")
    assert f"JupyterHub {report['hub']['version']}" in html.select_one("#health-hub").get_text()
    assert "hub plugin" in html.select_one("#health-server-tokens").get_text()
    assert html.find("a", href=lambda h: bool(h) and h.endswith("api/v1/health"))
    # every page's footer links here, not to the JSON
    assert html.select_one(".site-footer a[href$='/health']")
    assert client.get("health", params={"x": "1"}, headers=admin).status_code == 422


def test_the_health_page_shows_a_degraded_hub_and_escapes_details(hub, client, monkeypatch):
    hk = client.app.state.hk  # type: ignore[attr-defined]
    # the hub check's cached answer: down, and fresh for the next minute
    hk.health_hub_check = HubCheck(reachable=False, checked_at=time.monotonic() + 60)
    refused = property(lambda _self: "<script>alert(1)</script> the proxy API refused")
    monkeypatch.setattr(type(hk.directory), "routes_error", refused)
    try:
        page = client.get("health", headers={"Authorization": f"token {hub.user_token('admin')}"})
    finally:
        hk.health_hub_check = None
    assert page.status_code == 200  # what someone opens to see why
    html = BeautifulSoup(page.text, "html.parser")
    assert "Degraded" in html.select_one("#health-status").get_text()
    assert "does not answer" in html.select_one("#health-hub").get_text()
    changes = html.select_one("#health-changes")
    assert "hub's list of active users" in changes.get_text()
    assert not changes.find("script") and "<script>alert(1)</script>" in changes.get_text()


def test_a_proxy_that_fails_is_told_in_the_status_and_managers_reach_the_page(
    hub, client, monkeypatch
):
    hk = client.app.state.hk  # type: ignore[attr-defined]
    refused = property(lambda _self: "the proxy API refused")
    monkeypatch.setattr(type(hk.directory), "routes_error", refused)
    hub.create_users([MANAGER])
    hub.add_to_group(MANAGERS_GROUP, [MANAGER])
    page = client.get("health", headers={"Authorization": f"token {hub.user_token(MANAGER)}"})
    assert page.status_code == 200, page.text
    html = BeautifulSoup(page.text, "html.parser")
    status = html.select_one("#health-status")
    assert "banner-warning" in status["class"]
    assert "the proxy's routes cannot be read" in status.get_text()
    assert html.select_one("#health-changes").get_text().count("The proxy API refused") == 1
    assert html.select_one(".site-footer a[href$='/health']")  # managers have the link too
