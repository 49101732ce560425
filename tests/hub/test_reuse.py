"""What one user's server can learn about another through Hubkeeper's gateway, and how the
gateway names a proxy API it cannot use.

Recording HTTP servers stand in for users' servers (code a user controls: an address another
user's server used before, a server that sets cookies); the proxy routes and the tokens are
the session hub's real ones.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from hubkeeper.demo.localhub import LocalHub, free_port
from hubkeeper.errors import Conflict
from hubkeeper.hub import servers as servers_module
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.servers import ServerGateway, ServerUnreachable

OWNER = "reuse-owner"
OTHER = "reuse-other"


class StandIn(ThreadingHTTPServer):
    """A stand-in for a user's server whose base URL is `/user/<owner>/`: answers there like
    jupyter_server's `api/status`, 404 elsewhere; records every request's path and headers."""

    owner = ""
    set_cookie = ""
    seen: list[tuple[str, dict[str, str]]]


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.seen.append((self.path, dict(self.headers.items())))
        ours = self.path.startswith(f"/user/{self.server.owner}/")
        body = b'{"started": "2026-01-01T00:00:00Z"}' if ours else b"404: Not Found"
        self.send_response(200 if ours else 404)
        if self.server.set_cookie:
            self.send_header("Set-Cookie", self.server.set_cookie)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stand_ins(hub: LocalHub) -> Iterator[Callable[[str], StandIn]]:
    """`serve(owner)`: a stand-in routed by the hub's proxy as `owner`'s default server;
    `route(owner, stand_in)` routes it again (a server restarted at another address)."""
    hub.create_users([OWNER, OTHER])
    started: list[StandIn] = []
    routed: set[str] = set()

    def route(owner: str, stand_in: StandIn) -> None:
        stand_in.owner = owner
        added = httpx.post(
            f"{hub.proxy_api_url}/api/routes/user/{owner}",
            json={
                "target": f"http://127.0.0.1:{stand_in.server_address[1]}",
                "user": owner,
                "server_name": "",
            },
            headers={"Authorization": f"token {hub.proxy_token}"},
        )
        assert added.status_code == 201, added.text
        routed.add(owner)

    def serve(owner: str) -> StandIn:
        stand_in = StandIn(("127.0.0.1", 0), Handler)
        stand_in.seen = []
        threading.Thread(target=stand_in.serve_forever, daemon=True).start()
        started.append(stand_in)
        route(owner, stand_in)
        return stand_in

    serve.route = route  # type: ignore[attr-defined]
    try:
        yield serve
    finally:
        for owner in routed:
            httpx.delete(
                f"{hub.proxy_api_url}/api/routes/user/{owner}",
                headers={"Authorization": f"token {hub.proxy_token}"},
            )
        for stand_in in started:
            stand_in.shutdown()
            stand_in.server_close()


@pytest.fixture
async def gateway(hub: LocalHub) -> AsyncIterator[ServerGateway]:
    client = HubClient(hub.api_url, hub.service_token, timeout=30)
    gateway = ServerGateway(
        client, proxy_api_url=hub.proxy_api_url, proxy_token=hub.proxy_token, timeout=30
    )
    try:
        yield gateway
    finally:
        await gateway.aclose()
        await client.aclose()


async def test_an_address_reused_by_another_users_server_never_gets_the_owners_token(
    stand_ins, gateway
):
    old = await asyncio.to_thread(stand_ins, OWNER)
    await gateway.server_status(OWNER)
    owner_token = old.seen[-1][1]["Authorization"]

    # OWNER's server restarts at a new address; OTHER's new server gets the old one (pod IPs
    # are reused in Kubernetes, ports on one host).
    new = await asyncio.to_thread(stand_ins, OWNER)
    await asyncio.to_thread(stand_ins.route, OTHER, old)
    old.seen.clear()
    await asyncio.sleep(servers_module.ROUTES_MAX_AGE + 0.5)

    assert (await gateway.server_status(OWNER))["started"]
    assert [path for path, _headers in new.seen] and not old.seen, (
        "OTHER's server at OWNER's old address received OWNER's token"
    )
    assert new.seen[-1][1]["Authorization"] == owner_token


async def test_a_reused_address_gets_no_token_even_before_the_routes_are_read_again(
    stand_ins, gateway
):
    """Within the route table's lifetime too: the address is asked, without a token, whether
    it serves the owner's base URL before the owner's token is sent."""
    old = await asyncio.to_thread(stand_ins, OWNER)
    await gateway.server_status(OWNER)
    new = await asyncio.to_thread(stand_ins, OWNER)
    await asyncio.to_thread(stand_ins.route, OTHER, old)
    old.seen.clear()

    assert (await gateway.server_status(OWNER))["started"]  # at once: no wait for a re-read
    leaked = [path for path, headers in old.seen if "Authorization" in headers]
    assert not leaked, f"OTHER's server at OWNER's old address received OWNER's token: {leaked}"
    assert new.seen[-1][1]["Authorization"]


async def test_a_cookie_one_server_sets_never_reaches_another(stand_ins, gateway):
    planter = await asyncio.to_thread(stand_ins, OWNER)
    planter.set_cookie = "planted=by-owner; Path=/"
    victim = await asyncio.to_thread(stand_ins, OTHER)
    await gateway.server_status(OWNER)
    await gateway.server_status(OWNER)
    await gateway.server_status(OTHER)
    sent = [headers.get("Cookie") for _path, headers in planter.seen[1:] + victim.seen]
    assert sent and not any(sent), f"cookies a user's server set were sent on: {sent}"


async def test_a_proxy_api_that_is_down_is_server_unreachable_not_hub_unavailable(hub):
    client = HubClient(hub.api_url, hub.service_token, timeout=30)
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = ServerGateway(client, proxy_api_url=dead, proxy_token=hub.proxy_token, timeout=5)
    try:
        with pytest.raises(ServerUnreachable) as down:
            await gateway.server_status(OWNER)
        assert down.value.status_code == 503 and down.value.code == "server_unreachable"
        assert dead in down.value.detail and "HUBKEEPER_PROXY_API_URL" in down.value.detail
    finally:
        await gateway.aclose()
        await client.aclose()


async def test_an_address_that_does_not_serve_the_users_base_url_is_unreachable_not_hidden(
    stand_ins, gateway
):
    lost = await asyncio.to_thread(stand_ins, OWNER)
    lost.owner = "somebody-else"  # answers 404 at OWNER's base URL, for files and listings
    with pytest.raises((ServerUnreachable, Conflict)) as unreachable:
        await gateway.read_file_range(OWNER, "", ".jupyter-server-log.txt", last=10)
    # the stand-in's user has no server on the hub: "not running"; with one, "unreachable"
    assert unreachable.value.code in ("server_unreachable", "server_not_running")
    assert all("Authorization" not in headers for _path, headers in lost.seen)
