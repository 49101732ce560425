"""Lockdown through the API of the shared Hubkeeper, enforced by the real hub's spawn hook.

Every test that locks lifts again in a `finally`: the session hub and Hubkeeper are shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.waiting import wait_for

ANN = "lock-ann"
BEN = "lock-ben"
MANAGER = "lock-manager"


@pytest.fixture(scope="module")
def people(hub, hubkeeper_server):
    hub.create_users([ANN, BEN, MANAGER])
    hub.add_to_group("managers", [MANAGER])


@pytest.fixture(scope="module")
def admin(hub, hubkeeper_server, people) -> Iterator[httpx.Client]:
    token = hub.user_token("admin")
    with httpx.Client(
        base_url=hubkeeper_server.direct_url,
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture(scope="module")
def manager(hub, hubkeeper_server, people) -> Iterator[httpx.Client]:
    token = hub.user_token(MANAGER)
    with httpx.Client(
        base_url=hubkeeper_server.direct_url,
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ) as client:
        yield client


def lift(client: httpx.Client) -> None:
    """Lift whatever lockdown there is (the finally of every test that locks)."""
    response = client.delete("api/v1/lockdown")
    assert response.status_code in (200, 409), response.text


def audit(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    response = client.get("api/v1/audit", params={"limit": "500", **params})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_a_lock_refuses_spawns_at_the_hub_and_in_hubkeeper(hub, hubkeeper_server, admin):
    reason = "lock-test: moving the file server"
    response = admin.post("api/v1/lockdown", json={"reason": reason, "stop_servers": False})
    try:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["active"] is True and body["reason"] == reason and body["job"] is None
        assert body["by"] == "admin" and body["since"].endswith("+00:00")

        again = admin.post("api/v1/lockdown", json={"reason": "twice"})
        assert again.status_code == 409
        assert again.json()["error"] == "already_locked"

        # The hook's endpoint needs no credentials.
        status = httpx.get(hubkeeper_server.direct_url + "api/v1/lockdown/status").json()
        assert status["locked"] is True
        assert status["message"] == (
            f"The hub is locked by an administrator: {reason}. "
            "New servers cannot start until it is lifted."
        )

        # The real pre_spawn_hook: the hub itself refuses, with our message.
        refused = hub.api("POST", f"/users/{ANN}/server", json={})
        assert refused.status_code == 503, refused.text
        assert refused.json()["message"] == status["message"]
        assert hub.server_model(ANN) is None or not hub.server_model(ANN).get("ready")

        # Hubkeeper refuses before asking the hub, and audits the refusal.
        mine = admin.post(f"api/v1/users/{ANN}/server/start")
        assert mine.status_code == 409
        assert mine.json() == {"error": "locked", "detail": status["message"]}
        starts = audit(admin, action="server.start", target=ANN)
        assert starts[0]["outcome"] == "failed" and reason in starts[0]["error"]

        state = admin.get("api/v1/lockdown").json()
        assert state == {
            "active": True,
            "reason": reason,
            "since": body["since"],
            "by": "admin",
        }
    finally:
        lift(admin)

    assert admin.delete("api/v1/lockdown").json()["error"] == "not_locked"
    assert admin.get("api/v1/lockdown").json()["active"] is False
    assert httpx.get(hubkeeper_server.direct_url + "api/v1/lockdown/status").json() == {
        "locked": False,
        "message": "",
    }
    # Open again: the hub starts servers.
    try:
        started = admin.post(f"api/v1/users/{ANN}/server/start")
        assert started.status_code == 200, started.text
        wait_for(lambda: (hub.server_model(ANN) or {}).get("ready"), 60, "ann's server")
    finally:
        hub.stop_server(ANN)
    refused_lift, lifted = audit(admin, action="lockdown.off")[:2]
    assert (refused_lift["outcome"], lifted["outcome"]) == ("failed", "ok")
    assert lifted["target"] == "hub" and reason in lifted["detail"]
    refused_lock = audit(admin, action="lockdown.on", outcome="failed")[0]
    assert "already locked" in refused_lock["error"]


def test_a_lock_stops_running_servers(hub, hubkeeper_server, admin):
    hub.start_server(BEN)
    try:
        response = admin.post("api/v1/lockdown", json={"reason": "lock-test: stop them"})
        assert response.status_code == 200, response.text
        job_id = response.json()["job"]
        assert job_id
        job = wait_for(
            lambda: (j := admin.get(f"api/v1/jobs/{job_id}").json())["state"] == "done" and j,
            60,
            "the stop-all job",
        )
        assert job["failed"] == [] and job["total"] >= 1
        model = hub.server_model(BEN)
        assert model is None or not model.get("ready")
        on = audit(admin, action="lockdown.on")[0]
        assert on["outcome"] == "ok" and "lock-test: stop them" in on["detail"]
        assert on["actor"] == "admin" and on["via"] == "api"
        stops = audit(admin, action="server.stop", target=BEN)
        assert stops and stops[0]["outcome"] == "ok"
        stop_all = audit(admin, action="servers.stop_all")[0]
        assert "lockdown: lock-test: stop them" in stop_all["detail"]
        # Stopped and still locked: the hub will not restart it.
        assert hub.api("POST", f"/users/{BEN}/server", json={}).status_code == 503
    finally:
        lift(admin)
        if (hub.server_model(BEN) or {}).get("ready"):
            hub.stop_server(BEN)


def test_managers_read_but_cannot_lock_or_lift(admin, manager):
    assert manager.get("api/v1/lockdown").status_code == 200
    assert manager.get("api/v1/lockdowns").status_code == 200
    refused = manager.post("api/v1/lockdown", json={"reason": "manager tries"})
    assert refused.status_code == 403
    assert manager.delete("api/v1/lockdown").status_code == 403
    assert admin.get("api/v1/lockdown").json()["active"] is False


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": 5}, "nonsense"],
)
def test_bad_lock_requests_are_refused_and_change_nothing(admin, body):
    before = admin.get("api/v1/lockdowns").json()["total"]
    response = admin.post("api/v1/lockdown", json=body)
    try:
        assert response.status_code == 422, response.text
        assert response.json()["error"]
    finally:
        if response.status_code == 200:
            lift(admin)
    assert admin.get("api/v1/lockdown").json()["active"] is False
    assert admin.get("api/v1/lockdowns").json()["total"] == before


def test_history_lists_lockdowns_newest_first_with_who_lifted(admin):
    for n in (1, 2):
        response = admin.post(
            "api/v1/lockdown", json={"reason": f"lock-test history {n}", "stop_servers": False}
        )
        try:
            assert response.status_code == 200
        finally:
            lift(admin)
    page = admin.get("api/v1/lockdowns", params={"limit": 2}).json()
    assert page["limit"] == 2 and page["offset"] == 0 and page["total"] >= 2
    newest, older = page["items"]
    assert newest["reason"] == "lock-test history 2" and older["reason"] == "lock-test history 1"
    assert set(newest) == {
        "id",
        "reason",
        "started_at",
        "started_by",
        "ended_at",
        "ended_by",
        "stop_servers",
    }
    assert newest["started_by"] == "admin" and newest["ended_by"] == "admin"
    assert newest["stop_servers"] is False and newest["ended_at"] >= newest["started_at"]
    assert admin.get("api/v1/lockdowns", params={"limit": 501}).status_code == 422


def test_the_hub_s_own_pages_show_a_lockdown_before_anyone_clicks_start(
    hub, hubkeeper_server, admin
):
    """hub_plugin.configure: the reason on /hub/home and the spawn page (escaped: the hub
    renders announcements unescaped), and a refused spawn without "try restarting"."""
    reason = "pages-test <b>disk</b> swap & more"
    cat = "lock-cat"  # a server of their own that never ran
    hub.create_users([cat])
    # Redirects not followed at sign-in: the hub would start the server from there.
    with httpx.Client(base_url=hub.url, timeout=30) as ann:
        from tests.auth.hub_login import hub_login

        hub_login(ann, hub.url, cat)
        ann.follow_redirects = True
        # an earlier test's lockdown may still be on the hub's pages (reused up to 5 s)
        wait_for(lambda: "Locked:" not in ann.get("/hub/home").text, 20, "no lockdown shown")
        response = admin.post("api/v1/lockdown", json={"reason": reason, "stop_servers": False})
        assert response.status_code == 200, response.text
        try:
            escaped = "pages-test &lt;b&gt;disk&lt;/b&gt; swap &amp; more"

            def home_shows_it() -> bool:  # pages reuse Hubkeeper's answer up to 5 s
                return escaped in ann.get("/hub/home").text

            wait_for(home_shows_it, 20, "the lockdown on /hub/home")
            home = ann.get("/hub/home").text
            assert "<b>disk</b>" not in home
            spawn = ann.get(f"/hub/spawn/{cat}")
            assert escaped in spawn.text
            assert "try restarting" not in spawn.text.lower(), spawn.text[-1500:]
        finally:
            lift(admin)
        wait_for(lambda: escaped not in ann.get("/hub/home").text, 20, "the notice gone")
