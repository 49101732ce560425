"""What a user's server receives from Hubkeeper, shown against the real hub: a recording HTTP
server is registered in the proxy as a user's server (a route with the hub's `user` /
`server_name` data, target = the recorder), Hubkeeper reads it, and every credential it got is
tried against the hub and Hubkeeper: none lists users, starts another user's server, or opens
Hubkeeper's API.

The recorder is a stand-in at an edge the real hub cannot give us (code a user controls,
reading its request headers), named as such.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from hubkeeper.demo.localhub import LOG_FILE_NAME, LocalHub
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.servers import ServerGateway

OWNER = "reach-recorder"
VICTIM = "reach-victim"


class RecordingServer(BaseHTTPRequestHandler):
    """Stand-in for a user's server: records every request's Authorization and path, and
    answers like a jupyter_server would for status, kernels and a Range file read."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append((self.path, self.headers.get("Authorization")))
        path = self.path.split("?", 1)[0]
        if path.endswith("/api"):  # jupyter_server's version, answered without a token
            self._send(200, json.dumps({"version": "2"}).encode())
        elif path.endswith("/api/status"):
            self._send(200, json.dumps({"started": "2026-01-01T00:00:00Z"}).encode())
        elif path.endswith("/api/kernels"):
            self._send(200, b"[]")
        elif "/files/" in path:
            self._send(206, b"a line\n", {"Content-Range": "bytes 0-6/7"})
        else:
            self._send(404, b"{}")

    def do_DELETE(self) -> None:  # noqa: N802
        self.seen.append((self.path, self.headers.get("Authorization")))
        self._send(204, b"")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder(hub: LocalHub) -> Iterator[list[tuple[str, str | None]]]:
    """The recorder, routed by the hub's proxy as OWNER's default server."""
    hub.create_users([OWNER, VICTIM])
    RecordingServer.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    route = f"{hub.proxy_api_url}/api/routes/user/{OWNER}"
    proxy_auth = {"Authorization": f"token {hub.proxy_token}"}
    target = f"http://127.0.0.1:{server.server_address[1]}"
    added = httpx.post(
        route, json={"target": target, "user": OWNER, "server_name": ""}, headers=proxy_auth
    )
    assert added.status_code == 201, added.text
    try:
        yield RecordingServer.seen
    finally:
        httpx.delete(route, headers=proxy_auth)
        server.shutdown()
        server.server_close()


async def test_credentials_a_users_server_receives_open_nothing_else(
    hub, hubkeeper_server, recorder
):
    # The gateway exactly as create_app builds it, from the settings Hubkeeper runs with.
    settings = hubkeeper_server.settings
    client = HubClient(settings.hub_api_url, settings.hub_api_token)
    gateway = ServerGateway.from_settings(client, settings)
    try:
        await gateway.server_status(OWNER)
        await gateway.list_kernels(OWNER)
        await gateway.read_file_range(OWNER, "", LOG_FILE_NAME, last=100)
        await gateway.delete_kernel(OWNER, "", "some-kernel")
    finally:
        await gateway.aclose()
        await client.aclose()
    await asyncio.to_thread(check_recorded, hub, hubkeeper_server, recorder)


def check_recorded(hub: LocalHub, hubkeeper_server: Any, recorder: list[Any]) -> None:
    # The probes asking whether the address serves this base URL carry nothing at all.
    probes = [path for path, authorization in recorder if authorization is None]
    assert all(path.split("?")[0].endswith("/api") for path in probes), probes
    authorized = [(path, auth) for path, auth in recorder if auth is not None]
    assert len(authorized) == 4
    tokens = set()
    for path, authorization in authorized:
        assert "no_track_activity=1" in path
        assert authorization and authorization.startswith("token ")
        tokens.add(authorization.removeprefix("token "))
    secrets = {hub.service_token, hub.admin_token, hub.proxy_token}
    assert not tokens & secrets, "a user's server received one of Hubkeeper's own secrets"

    for token in tokens:
        auth = {"Authorization": f"token {token}"}
        # Not a way to list users ...
        assert hub.api("GET", "/users", token=token).status_code == 403
        # ... nor to start someone else's server ...
        assert hub.api("POST", f"/users/{VICTIM}/server", token=token).status_code == 403
        assert hub.server_model(VICTIM) is None
        # ... nor to make itself more tokens, nor to open Hubkeeper.
        assert hub.api("POST", f"/users/{VICTIM}/tokens", token=token).status_code == 403
        for url in (hubkeeper_server.direct_url, hubkeeper_server.proxied_url):
            opened = httpx.get(url + "api/v1/users", headers=auth, timeout=30)
            assert opened.status_code in (401, 403), opened.text
        # What it is: the owner's token for that one server.
        me = hub.api("GET", "/user", token=token).json()
        assert me["name"] == OWNER
        assert f"access:servers!server={OWNER}/" in me["scopes"]
        assert not [s for s in me["scopes"] if s.startswith(("admin", "servers", "tokens"))]
