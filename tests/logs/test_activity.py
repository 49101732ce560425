"""Watching a log is nobody's activity: reading and following a server's log for longer than
two of the hub's activity intervals leaves the server's (and its user's) `last_activity` on the
hub unchanged — while one request through the proxy, `no_track_activity=1` and all, does
change it (configurable-http-proxy records it; the hub copies it every interval).

On the session's activity hub (tests/conftest.py `activity_hub`, a hub of its own shared with
the culler's kernel tests): `c.JupyterHub.last_activity_interval` = 1 s, activity kept to the
second, and the single-user servers reporting every 1 s (`JUPYTERHUB_ACTIVITY_INTERVAL`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hubkeeper.demo.localhub import LocalHub
from tests.serving import serve_hubkeeper
from tests.waiting import wait_for

pytestmark = pytest.mark.own_hub

INTERVAL = 1  # seconds: the activity hub's last_activity_interval
USER = "reach-activity"
ADMIN = "reach-activity-admin"


def activity(hub: LocalHub) -> tuple[Any, Any]:
    body = hub.api("GET", f"/users/{USER}").json()
    return body["servers"][""]["last_activity"], body["last_activity"]


def settled(hub: LocalHub, quiet: float, timeout: float = 60) -> tuple[Any, Any]:
    """The activity once it has not changed for `quiet` seconds (start-up settles)."""
    deadline = time.monotonic() + timeout
    last, since = activity(hub), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "last_activity never settled"
        time.sleep(0.5)
        now = activity(hub)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_reading_and_following_a_log_leaves_last_activity_unchanged(
    activity_hub: LocalHub, tmp_path: Path
) -> None:
    hub = activity_hub
    try:
        hub.create_users([ADMIN], admin=True)
        hub.create_users([USER])
        hub.start_server(USER)
        with serve_hubkeeper(hub, tmp_path) as served:
            before = settled(hub, quiet=2.5 * INTERVAL)
            auth = {"Authorization": f"token {hub.user_token(ADMIN)}"}
            api = served.direct_url + f"api/v1/users/{USER}/logs"
            with httpx.Client(timeout=60, headers=auth) as client:
                started = time.monotonic()
                for _ in range(3):
                    assert client.get(api, params={"lines": 20}).status_code == 200
                with client.stream("GET", api + "/stream") as stream:
                    assert stream.status_code == 200
                    for _line in stream.iter_lines():
                        if time.monotonic() - started > 2.5 * INTERVAL:
                            break
            time.sleep(1.5 * INTERVAL)  # the hub's next copy from the proxy and the server
            assert activity(hub) == before, "watching the log counted as the user's activity"

            # The same kind of read through the proxy does count: what the gateway avoids.
            token = hub.user_token(USER)
            through_proxy = httpx.get(
                f"{hub.url}/user/{USER}/api/status",
                params={"no_track_activity": "1"},
                headers={"Authorization": f"token {token}"},
                timeout=30,
            )
            assert through_proxy.status_code == 200
            wait_for(
                lambda: activity(hub)[0] != before[0],
                10 * INTERVAL,
                "the proxied read to show as activity",
                interval=0.5,
            )
    finally:
        hub.stop_server(USER)
