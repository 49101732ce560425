"""Decisions about one user or server (logs, stop, start, access) read that user from the hub at
the moment of the request, never from the directory's copy: here the directory syncs once at
start-up and then not for an hour, while servers start and stop behind its back."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from hubkeeper.auth.principal import Principal
from hubkeeper.console import service
from hubkeeper.main import create_app
from tests.waiting import wait_for

USER = "reach-now"
ADMIN = "reach-now-admin"
WHO = Principal(name=ADMIN, role="admin", via="api")
# every sync frozen, the proxy's routes as the change signal too (it caught the stop below
# under load, and the assertion that the copy is stale failed)
FROZEN = {
    "HUBKEEPER_ACTIVE_SYNC_INTERVAL": 3600,
    "HUBKEEPER_FULL_SYNC_INTERVAL": 3600,
    "HUBKEEPER_ROUTES_INTERVAL": 3600,
}


def test_a_server_the_hub_reports_running_is_never_called_stopped(hub: Any, make_settings: Any):
    hub.create_users([ADMIN], admin=True)
    hub.create_users([USER])
    hub.stop_server(USER)
    token = hub.user_token(ADMIN)
    auth = {"Authorization": f"token {token}"}
    with TestClient(create_app(make_settings(**FROZEN))) as client:
        hk = client.app.state.hk  # type: ignore[attr-defined]
        # the first sweep, then none for an hour
        wait_for(lambda: hk.directory.ready, 30, "the directory's first sweep")
        assert all(row.status == "stopped" for row in hk.directory.rows_for(USER))

        hub.start_server(USER)  # behind the directory's back: its copy still says stopped
        assert all(row.status == "stopped" for row in hk.directory.rows_for(USER))
        logs = client.get(f"/api/v1/users/{USER}/logs", params={"lines": 3}, headers=auth)
        assert logs.status_code == 200, logs.text  # not 409 "stopped"

        url = client.portal.call(service.access_server, hk, WHO, USER, "")
        assert url.endswith(f"/user/{USER}/")

        hub.stop_server(USER)  # behind its back again; the directory now says running
        assert any(row.status == "running" for row in hk.directory.rows_for(USER))
        stop = client.post(f"/api/v1/users/{USER}/server/stop", headers=auth)
        assert stop.status_code == 409 and stop.json()["error"] == "already_stopped"
        # And a start is not refused as "already running" by a stale copy either.
        start = client.post(f"/api/v1/users/{USER}/server/start", headers=auth)
        assert start.status_code == 200, start.text
    hub.stop_server(USER)
