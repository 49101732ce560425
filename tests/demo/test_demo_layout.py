"""`make demo`'s own layout (app/demo/run.py build_hub): the hub starts Hubkeeper as a managed
service, which gets JUPYTERHUB_API_URL on the hub's own port and the proxy API settings. The
fault this pins: Logs said "alice's server is stopped" while the header counted it running."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from hubkeeper.demo.localhub import free_port
from hubkeeper.demo.run import ADMIN, _wait_for_hubkeeper, build_hub
from tests.waiting import wait_for

pytestmark = [pytest.mark.own_hub, pytest.mark.subprocess]

USER = "alice"


def test_the_demo_shows_a_running_servers_log_as_soon_as_the_hub_says_ready(
    tmp_path: Path,
) -> None:
    hub = build_hub(tmp_path / "demo", free_port())
    with hub:
        assert _wait_for_hubkeeper(hub, timeout=60), hub.log_tail()
        hub.create_users([USER])
        auth = {"Authorization": f"token {hub.user_token(ADMIN)}"}
        logs = f"{hub.origin}{hub.service_prefix}api/v1/users/{USER}/logs"
        with httpx.Client(timeout=30, headers=auth) as client:
            # The managed service really got the hub's own port and the proxy API.
            health = client.get(f"{hub.origin}{hub.service_prefix}api/v1/health").json()
            assert health["servers"]["via"] == "proxy_api", health
            assert health["servers"]["counts_as_activity"] is False

            response = hub.api("POST", f"/users/{USER}/server", json={})
            assert response.status_code in (201, 202), response.text
            wait_for(
                lambda: (hub.server_model(USER) or {}).get("ready"), 60, "ready", interval=0.05
            )
            ready_at = time.monotonic()
            first = client.get(logs, params={"lines": 10})
            took = time.monotonic() - ready_at
            # The very first read after the hub reports ready succeeds: no lag, no retry.
            assert first.status_code == 200, first.text
            assert first.json()["lines"]
            # The bound. Measured here at ~0.1-0.3 s with other suites running.
            assert took < 1.0, f"the log took {took:.2f} s after the hub reported ready"
        hub.stop_server(USER)
