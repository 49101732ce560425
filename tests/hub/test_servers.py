"""ServerGateway against the real session hub: servers reached directly at the proxy's route
target, with a token the hub issues for that one server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import httpx
import pytest

from hubkeeper.demo.localhub import LOG_FILE_NAME, NO_HIDDEN_PREFIX, LocalHub, free_port
from hubkeeper.errors import Conflict, NotFound
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.servers import Route, ServerGateway, ServerUnreachable

USER = "reach-files"
EMAIL_USER = "reach-ann@example.org"
# '+' (plus addressing) and other characters the hub escapes in URLs (url_escape_path) but
# configurable-http-proxy keeps decoded in its route keys.
PLUS_USER = "reach-ann+hub's@example.org"
HIDDEN_USER = f"{NO_HIDDEN_PREFIX}reach"


@pytest.fixture
async def hub_client(hub: LocalHub) -> AsyncIterator[HubClient]:
    client = HubClient(hub.api_url, hub.service_token, timeout=30)
    try:
        yield client
    finally:
        await client.aclose()


def direct(client: HubClient, hub: LocalHub) -> ServerGateway:
    return ServerGateway(
        client, proxy_api_url=hub.proxy_api_url, proxy_token=hub.proxy_token, timeout=30
    )


@pytest.fixture(scope="module")
def running(hub: LocalHub) -> Iterator[str]:
    hub.create_users([USER])
    hub.start_server(USER)
    try:
        yield USER
    finally:
        hub.stop_server(USER)


async def test_reads_the_log_status_and_kernels_directly(hub, hub_client, running):
    gateway = direct(hub_client, hub)
    try:
        tail = await gateway.read_file_range(USER, "", LOG_FILE_NAME, last=200)
        assert 0 < len(tail.data) <= 200 and tail.size and tail.size > 200
        whole = await gateway.read_file_range(USER, "", LOG_FILE_NAME, 0)
        assert whole.start == 0 and (b"Jupyter Server" in whole.data or b"ServerApp" in whole.data)
        past = await gateway.read_file_range(USER, "", LOG_FILE_NAME, 10**9)
        assert past.data == b"" and past.size

        # Straight at the server's own address, with the server's base URL kept.
        route = gateway._routes[(USER, "")]
        assert route.base.endswith(f"/user/{USER}")
        assert f":{hub.port}/" not in route.base and f":{hub.hub_port}/" not in route.base

        status = await gateway.server_status(USER)
        assert {"started", "last_activity", "kernels", "connections"} <= set(status)
        assert await gateway.list_kernels(USER) == []
        token = await asyncio.to_thread(hub.user_token, USER)
        async with httpx.AsyncClient(timeout=30) as http:
            created = await http.post(
                f"{route.base}/api/kernels",
                json={"name": "python3"},
                headers={"Authorization": f"token {token}"},
            )
        assert created.status_code == 201, created.text
        kernel_id = created.json()["id"]
        assert [k["id"] for k in await gateway.list_kernels(USER)] == [kernel_id]
        await gateway.delete_kernel(USER, "", kernel_id)
        assert await gateway.list_kernels(USER) == []
        with pytest.raises(NotFound) as gone:
            await gateway.delete_kernel(USER, "", kernel_id)
        assert gone.value.code == "kernel_not_found"
    finally:
        await gateway.aclose()


async def test_reading_an_empty_file_never_writes_416_warnings_into_the_log(
    hub, hub_client, running
):
    """Any Range on an empty file is a 416, which the server logs into its own log: a watcher
    of an empty or just-truncated log would fill it with its own requests. A HEAD comes first."""
    home = hub.homes_dir / USER
    (home / "reach-empty.txt").write_text("")
    log = home / LOG_FILE_NAME
    before = log.stat().st_size
    gateway = direct(hub_client, hub)
    try:
        for _ in range(3):
            assert (await gateway.read_file_range(USER, "", "reach-empty.txt", 0)).data == b""
            assert (await gateway.read_file_range(USER, "", "reach-empty.txt", last=10)).size == 0
        assert await gateway.file_size(USER, "", LOG_FILE_NAME) >= before
    finally:
        await gateway.aclose()
    await asyncio.sleep(0.5)  # the server writes its request log after answering
    written = log.read_bytes()[before:].decode(errors="replace")
    assert " 416 " not in written, written


async def test_a_missing_file_names_the_path_tried(hub, hub_client, running):
    gateway = direct(hub_client, hub)
    try:
        for path in ("no-such-file.txt", ".no-such-hidden.txt"):
            with pytest.raises(NotFound) as missing:
                await gateway.read_file_range(USER, "", path, last=10)
            assert missing.value.code == "file_not_found"
            assert repr(path) in missing.value.detail
    finally:
        await gateway.aclose()


async def test_each_server_gets_its_own_narrow_token_never_the_service_token(
    hub, hub_client, running
):
    gateway = direct(hub_client, hub)
    try:
        assert "authorization" not in gateway._http.headers  # no default credential
        await gateway.server_status(USER)
        await gateway.server_status(USER)
        assert list(gateway.tokens._tokens) == [(USER, "")]  # cached: issued once
        assert gateway.tokens.minted == 1
        token = gateway.tokens._tokens[(USER, "")][0]
        assert token not in (hub.service_token, hub.admin_token, hub.proxy_token)
        me = await asyncio.to_thread(hub.api, "GET", "/user", token=token)
        assert me.status_code == 200
        # Plus the identity scopes every token has on its own owner (read:users:name/groups).
        scopes = set(me.json()["scopes"])
        assert f"access:servers!server={USER}/" in scopes
        assert {s for s in scopes if not s.endswith(f"!user={USER}")} == {
            f"access:servers!server={USER}/"
        }
        assert all(
            s.startswith(("read:users:name", "read:users:groups"))
            for s in scopes - {f"access:servers!server={USER}/"}
        )
        assert (await asyncio.to_thread(hub.api, "GET", "/users", token=token)).status_code == 403
    finally:
        await gateway.aclose()


async def test_a_stale_route_is_read_again(hub, hub_client, running):
    gateway = direct(hub_client, hub)
    try:
        await gateway.server_status(USER)
        dead = f"http://127.0.0.1:{free_port()}/user/{USER}"
        gateway._routes[(USER, "")] = Route(USER, "", dead)
        # as when the proxy's table changed since (a restart elsewhere): an unchanged answer
        # is otherwise not parsed again
        gateway._routes_body = b""
        assert (await gateway.server_status(USER))["started"]
        assert gateway._routes[(USER, "")].base != dead
    finally:
        await gateway.aclose()


async def test_no_proxy_settings_is_server_unreachable_naming_them(hub_client, running):
    gateway = ServerGateway(hub_client)
    try:
        assert gateway.mode == "" and not gateway.counts_as_activity
        with pytest.raises(ServerUnreachable) as refused:
            await gateway.server_status(USER)
        assert refused.value.status_code == 503
        assert refused.value.code == "server_unreachable"
        for name in ("HUBKEEPER_PROXY_API_URL", "HUBKEEPER_PROXY_URL"):
            assert name in refused.value.detail
        report = await gateway.report()
        assert report["reachable"] is False and "HUBKEEPER_PROXY_API_URL" in report["detail"]
    finally:
        await gateway.aclose()


async def test_the_proxy_fallback_works_and_says_it_counts_as_activity(hub, hub_client, running):
    gateway = ServerGateway(hub_client, proxy_url=hub.origin + "/ignored/path")
    try:
        assert gateway.mode == "proxy" and gateway.counts_as_activity
        assert "activity" in gateway.notice
        chunk = await gateway.read_file_range(USER, "", LOG_FILE_NAME, last=50)
        assert chunk.data
        report = await gateway.report()
        assert report["via"] == "proxy" and report["counts_as_activity"] is True
    finally:
        await gateway.aclose()


async def test_a_server_that_is_not_running_is_not_running(hub, hub_client):
    await asyncio.to_thread(hub.create_users, ["reach-stopped"])
    for gateway in (direct(hub_client, hub), ServerGateway(hub_client, proxy_url=hub.origin)):
        try:
            with pytest.raises(Conflict) as stopped:
                await gateway.server_status("reach-stopped")
            assert stopped.value.code == "server_not_running"
            with pytest.raises(NotFound) as unknown:
                await gateway.server_status("reach-nobody-at-all")
            assert unknown.value.code == "user_not_found"
        finally:
            await gateway.aclose()


async def test_a_user_named_like_an_email_address(hub, hub_client):
    await asyncio.to_thread(hub.create_users, [EMAIL_USER])
    await asyncio.to_thread(hub.start_server, EMAIL_USER)
    gateway = direct(hub_client, hub)
    try:
        assert (await gateway.server_status(EMAIL_USER))["started"]
        assert (await gateway.read_file_range(EMAIL_USER, "", LOG_FILE_NAME, last=10)).data
        model = await asyncio.to_thread(hub.server_model, EMAIL_USER)
        assert model and model["url"] == f"/user/{EMAIL_USER}/"  # '@' kept, as the hub says
        assert quote(EMAIL_USER, safe="") not in model["url"]
    finally:
        await gateway.aclose()
        await asyncio.to_thread(hub.stop_server, EMAIL_USER)


async def test_a_user_named_with_characters_the_hub_escapes_is_reached(hub, hub_client):
    await asyncio.to_thread(hub.create_users, [PLUS_USER])
    await asyncio.to_thread(hub.start_server, PLUS_USER)
    gateway = direct(hub_client, hub)
    try:
        assert (await gateway.server_status(PLUS_USER))["started"]
        assert (await gateway.read_file_range(PLUS_USER, "", LOG_FILE_NAME, last=10)).data
        # The server answers at the hub's URL for it ('+' and "'" escaped, '@' kept) ...
        model = await asyncio.to_thread(hub.server_model, PLUS_USER)
        assert model and model["url"] == "/user/reach-ann%2Bhub%27s@example.org/"
        # ... which is where the gateway reads it, though the proxy's key is decoded.
        assert gateway._routes[(PLUS_USER, "")].base.endswith(model["url"].rstrip("/"))
    finally:
        await gateway.aclose()
        await asyncio.to_thread(hub.stop_server, PLUS_USER)


async def test_a_hidden_log_refused_by_the_server_says_so(hub, hub_client):
    await asyncio.to_thread(hub.create_users, [HIDDEN_USER])
    await asyncio.to_thread(hub.start_server, HIDDEN_USER)
    gateway = direct(hub_client, hub)
    try:
        with pytest.raises(NotFound) as hidden:
            await gateway.read_file_range(HIDDEN_USER, "", LOG_FILE_NAME, last=10)
        assert hidden.value.code == "file_hidden"
        assert "ContentsManager.allow_hidden=True" in hidden.value.detail
        with pytest.raises(NotFound) as missing:
            await gateway.read_file_range(HIDDEN_USER, "", "not-there.txt", last=10)
        assert missing.value.code == "file_not_found"
    finally:
        await gateway.aclose()
        await asyncio.to_thread(hub.stop_server, HIDDEN_USER)


async def test_a_route_table_read_just_before_the_server_started_is_read_again(
    hub, hub_client, running
):
    gateway = direct(hub_client, hub)
    try:
        # As if the table had been read a moment ago, before this server had its route.
        gateway._routes = {}
        gateway._routes_read_at = time.monotonic()
        assert (await gateway.server_status(USER))["started"]
        assert (USER, "") in gateway._routes
    finally:
        await gateway.aclose()


async def test_a_proxy_api_that_never_answers_is_named_with_the_wait(hub_client):
    """A read timeout's own text is empty: the sentence says what happened instead."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts (the backlog), never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    gateway = ServerGateway(hub_client, proxy_api_url=url, timeout=0.5)
    try:
        with pytest.raises(ServerUnreachable) as refused:
            await gateway.server_status(USER)
        assert refused.value.detail.endswith("did not answer within 0.5 s"), refused.value.detail
    finally:
        await gateway.aclose()
        silent.close()
