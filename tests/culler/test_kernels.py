"""Kernel culling from outside, through the server gateway (directly at the proxy's route
target), on a hub whose activity bookkeeping runs every second, so a call that counted as
activity would show on the hub within the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from hubkeeper.demo.localhub import LocalHub
from hubkeeper.errors import HubError
from tests.culler.helpers import QUIET, app_client, call, cfg, later, names, server_up
from tests.waiting import wait_for


@pytest.fixture
def client(activity_client):
    return activity_client


def server_activity(hub: LocalHub, user: str) -> Any:
    return (hub.server_model(user) or {}).get("last_activity")


def test_kernel_culled_server_stays_connected_kept_activity_untouched(client, activity_hub):
    hub, hk = activity_hub, client.app.state.hk
    (user,) = names("kernels", "k")
    hub.create_users([user])
    hub.start_server(user)
    try:
        base = call(client, hk.servers._base, user, "")
        token = hub.user_token(user)
        auth = {"Authorization": f"token {token}"}
        kernels = []
        for _ in range(2):
            made = httpx.post(
                f"{base}/api/kernels", json={"name": "python3"}, headers=auth, timeout=60
            )
            assert made.status_code == 201, made.text
            kernels.append(made.json()["id"])
        idle_kernel, connected_kernel = kernels
        ws_url = base.replace("http://", "ws://") + (f"/api/kernels/{connected_kernel}/channels")
        with connect(ws_url, additional_headers=auth, open_timeout=30):
            wait_for(
                lambda: (
                    {
                        k["id"]: k["connections"]
                        for k in call(client, hk.servers.list_kernels, user, "")
                    }.get(connected_kernel)
                    == 1
                ),
                timeout=30,
                what="the websocket to count as a connection",
            )
            # Let the server's own activity reports settle, then note where they stand.
            time.sleep(3)
            before = server_activity(hub, user)

            settings = cfg(kernels={"enabled": True, "timeout_s": 60})
            result = call(client, hk.culler.kernels_pass, settings, now=later(100), users={user})
            assert [(c.kernel_id, c.reason) for c in result.culled] == [(idle_kernel, "idle")]
            assert not result.error_items()
            left = [k["id"] for k in call(client, hk.servers.list_kernels, user, "")]
            assert left == [connected_kernel]  # cull_connected off keeps it
            assert server_up(hub, user)

            # Several activity intervals later the hub still has the same activity.
            time.sleep(4)
            assert server_activity(hub, user) == before

            connected = cfg(kernels={"enabled": True, "timeout_s": 60, "cull_connected": True})
            result = call(client, hk.culler.kernels_pass, connected, now=later(100), users={user})
            assert [c.kernel_id for c in result.culled] == [connected_kernel]
        assert call(client, hk.servers.list_kernels, user, "") == []
        assert server_up(hub, user)
    finally:
        hub.stop_server(user)


def test_a_server_whose_api_fails_is_skipped_and_noted(hub, make_settings):
    """On the session hub: the activity hub checks its routes every second and would put the
    deleted route back at once (jupyterhub/app.py `update_last_activity` calls
    `proxy.check_routes`), so the pass could find the server's API working again."""
    (user,) = names("kernels", "broken")
    hub.create_users([user])
    hub.start_server(user)
    try:
        with app_client(make_settings(**QUIET)) as client:
            hk = client.app.state.hk
            # The gateway cannot find a route for this server any more: its API "fails".
            base = call(client, hk.servers._base, user, "")
            hub_proxy = httpx.delete(
                f"{hub.proxy_api_url}/api/routes/user/{user}",
                headers={"Authorization": f"token {hub.proxy_token}"},
            )
            assert hub_proxy.status_code == 204
            hk.servers._routes.clear()
            settings = cfg(kernels={"enabled": True, "timeout_s": 60})
            result = call(client, hk.culler.kernels_pass, settings, now=later(100), users={user})
            (noted,) = result.error_items()
            assert noted["user"] == user and noted["error"]
            assert base
    finally:
        hub.stop_server(user)


def test_kernel_culling_refuses_to_go_through_the_proxy(make_settings):
    """Through the proxy every call would count as activity and keep servers alive forever."""
    for proxy in ({"HUBKEEPER_PROXY_URL": "http://127.0.0.1:9"}, {}):
        settings = make_settings(HUBKEEPER_PROXY_API_URL="", **proxy)
        with app_client(settings) as client:
            hk = client.app.state.hk
            result = call(client, hk.culler.kernels_pass, cfg(kernels={"enabled": True}))
            assert "HUBKEEPER_PROXY_API_URL" in result.error and result.planned == []


class NotJupyter(BaseHTTPRequestHandler):
    """A stand-in for a user's server running a web app of its own (named as such): its base
    URL answers the gateway's probe, and `api/kernels` answers 200 with an HTML page."""

    protocol_version = "HTTP/1.1"

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self._send(b"icon", "image/x-icon")

    def do_GET(self) -> None:  # noqa: N802
        self._send(b"<html><body>my own app</body></html>", "text/html")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@pytest.fixture
def not_jupyter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotJupyter)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_answering_non_json_kernels_is_one_error_and_the_pass_goes_on(
    hub, make_settings, not_jupyter
):
    """On the session hub: the activity hub above checks its routes every second and would
    point the odd route back at once (jupyterhub/app.py `update_last_activity` calls
    `proxy.check_routes`); here that happens every 5 minutes."""
    healthy, odd = names("kernels", "healthy", "odd")
    hub.create_users([healthy, odd])
    hub.start_server(healthy)
    hub.start_server(odd)
    proxy = {"Authorization": f"token {hub.proxy_token}"}

    def route_odd_to_its_own_app(hk: Any) -> None:
        table = httpx.get(f"{hub.proxy_api_url}/api/routes", headers=proxy).json()
        (spec,) = [k for k, v in table.items() if v.get("user") == odd]
        routed = httpx.post(
            f"{hub.proxy_api_url}/api/routes{spec}",
            json={"target": not_jupyter, "user": odd, "server_name": ""},
            headers=proxy,
        )
        assert routed.status_code == 201, routed.text
        hk.servers._routes_read_at = float("-inf")  # read the proxy's table again

    try:
        with app_client(make_settings(**QUIET, HUBKEEPER_CULL_TIMEOUT=3600)) as client:
            hk = client.app.state.hk
            base = call(client, hk.servers._base, healthy, "")
            made = httpx.post(
                f"{base}/api/kernels",
                json={"name": "python3"},
                headers={"Authorization": f"token {hub.user_token(healthy)}"},
                timeout=60,
            )
            assert made.status_code == 201, made.text
            admin = {"Authorization": f"token {hub.user_token('admin')}"}

            route_odd_to_its_own_app(hk)
            with pytest.raises(HubError) as raised:
                call(client, hk.servers.list_kernels, odd, "")
            assert raised.value.code == "server_bad_answer"

            route_odd_to_its_own_app(hk)
            preview = client.get("api/v1/culler/preview", params={"within": 3700}, headers=admin)
            assert preview.status_code == 200, preview.text
            planned = {(c["user"], c["kind"]) for c in preview.json()}
            assert (healthy, "kernel") in planned  # the healthy server was looked at

            route_odd_to_its_own_app(hk)
            ran = client.post("api/v1/culler/run", headers=admin)
            assert ran.status_code == 200, ran.text
            errors = [e for e in ran.json()["errors"] if e["user"] in (healthy, odd)]
            assert [(e["user"], e["server"]) for e in errors] == [(odd, "")]
            assert "not JSON" in errors[0]["error"]
            assert call(client, hk.servers.list_kernels, healthy, "")  # handled, kept (not idle)
    finally:
        hub.stop_server(healthy)
        hub.stop_server(odd)
