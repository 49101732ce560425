"""A lockdown outlives a restart, and the pages show it (state card, controls, banner)."""

from __future__ import annotations

from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from hubkeeper.actions.lockdown_state import LockdownState, current, remember
from hubkeeper.auth.sessions import issue_session
from hubkeeper.db.engine import create_db_engine
from hubkeeper.lockdown import service
from hubkeeper.main import create_app

ADMIN = "lock-page-admin"
MANAGER = "lock-page-manager"


@pytest.fixture(scope="module")
def people(hub):
    hub.create_users([ADMIN], admin=True)
    hub.create_users([MANAGER])
    hub.add_to_group("managers", [MANAGER])


def sign_in(client: TestClient, user: str, role: str) -> str:
    hk = client.app.state.hk  # type: ignore[attr-defined]
    name, value, csrf = client.portal.call(lambda: issue_session(hk, user=user, role=role))
    client.cookies.set(name, value)
    return str(csrf)


def test_a_lockdown_survives_a_restart(hub, make_settings, db_url):
    settings = make_settings(db_url)
    headers = {"Authorization": f"token {hub.user_token('admin')}"}
    with TestClient(create_app(settings)) as first:
        response = first.post(
            "/api/v1/lockdown",
            json={"reason": "lock-test restart", "stop_servers": False},
            headers=headers,
        )
        assert response.status_code == 200, response.text
    with TestClient(create_app(settings)) as second:
        # Loaded at start-up: the hook's endpoint says so before anyone reads the state.
        assert second.get("/api/v1/lockdown/status").json()["locked"] is True
        state = second.get("/api/v1/lockdown", headers=headers).json()
        assert state["active"] is True and state["reason"] == "lock-test restart"
        assert second.delete("/api/v1/lockdown", headers=headers).status_code == 200
        assert second.get("/api/v1/lockdown/status").json()["locked"] is False


def test_the_page_shows_the_state_and_admins_get_the_controls(hub, make_settings, people):
    with TestClient(create_app(make_settings())) as client:
        csrf = sign_in(client, ADMIN, "admin")
        page = BeautifulSoup(client.get("/lockdown").text, "html.parser")
        assert page.select_one("[data-lockdown]")["data-lockdown"] == "open"
        assert page.select_one("#lockdown-state").get_text() == "Hub is open"
        form = page.select_one("#lock-form")
        assert form is not None and form.select_one("textarea[name=reason][required]")
        assert form.select_one("input[name=stop_servers][checked]")
        assert form.has_attr("hx-confirm")
        assert not page.select_one("#lockdown-banner .lockdown-banner")
        nav = [a.get_text() for a in page.select(".mainnav a")]
        assert "Lockdown" in nav

        # An empty reason is sent back to the form, nothing locked.
        empty = client.post("/lockdown", data={"reason": "  "}, headers={"X-CSRF-Token": csrf})
        assert empty.status_code == 422
        assert BeautifulSoup(empty.text, "html.parser").select_one(".field-error")
        assert not current(client.app.state.hk).active  # type: ignore[attr-defined]
        # Without CSRF: refused.
        assert client.post("/lockdown", data={"reason": "x"}).status_code == 403

        locked = client.post(
            "/lockdown",
            data={"reason": "lock-test <b>page</b>"},  # no stop_servers: keep them
            headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
        )
        try:
            assert locked.status_code == 204
            assert locked.headers["HX-Redirect"].endswith("/lockdown")
            for path in ("/lockdown", "/users", "/audit"):
                html = BeautifulSoup(client.get(path).text, "html.parser")
                banner = html.select_one("#lockdown-banner .lockdown-banner")
                assert banner is not None, path
                assert "lock-test <b>page</b>" in banner.get_text()  # escaped, shown as text
                assert banner.select_one("b") is None
            page = BeautifulSoup(client.get("/lockdown").text, "html.parser")
            assert page.select_one("#lockdown-state").get_text() == "Hub is locked"
            assert page.select_one("#lock-form") is None
            lift_form = page.select_one("form.lockdown-lift")
            assert lift_form["hx-post"].endswith("lockdown/lift")
            row = page.select_one("#lockdown-history-table tbody tr")
            assert "lock-test <b>page</b>" in row.get_text() and "active" in row.get_text()

            # A manager sees the state and the history, and no controls.
            sign_in(client, MANAGER, "manager")
            page = BeautifulSoup(client.get("/lockdown").text, "html.parser")
            assert page.select_one("#lockdown-state").get_text() == "Hub is locked"
            assert page.select_one("form.lockdown-lift") is None
            assert page.select_one("#lockdown-history-table")
            assert client.post("/lockdown/lift", headers={"X-CSRF-Token": csrf}).status_code in (
                403,
            )
            csrf = sign_in(client, ADMIN, "admin")
        finally:
            lifted = client.post(
                "/lockdown/lift", headers={"X-CSRF-Token": csrf}, follow_redirects=False
            )
        assert lifted.status_code == 303
        page = BeautifulSoup(client.get("/lockdown").text, "html.parser")
        assert page.select_one("#lockdown-state").get_text() == "Hub is open"
        assert not page.select_one("#lockdown-banner .lockdown-banner")
        row = page.select_one("#lockdown-history-table tbody tr")
        assert ADMIN in row.get_text()


def test_the_status_endpoint_serves_the_last_state_when_the_database_fails(make_settings: Any):
    with TestClient(create_app(make_settings())) as client:
        hk = client.app.state.hk  # type: ignore[attr-defined]
        remember(hk, LockdownState(active=True, reason="lock-test db down", by="x"))
        engine, hk.engine = hk.engine, create_db_engine("sqlite:////nonexistent/dir/x.sqlite")
        try:
            state = client.portal.call(service.refresh, hk)
            assert state.active and state.reason == "lock-test db down"
            status = client.get("/api/v1/lockdown/status")
            assert status.status_code == 200 and status.json()["locked"] is True
        finally:
            hk.engine.dispose()
            hk.engine = engine
