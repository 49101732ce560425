"""The hub plugin on the real hub (the session hub runs `hub_plugin.configure` and gives
Hubkeeper the narrow role), and Hubkeeper getting its server tokens from it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hubkeeper.demo.localhub import FALLBACK_SCOPES, SERVICE_SCOPES, LocalHub
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.server_tokens import PLUGIN_SCOPE, Credentials, ServerTokens, TokenMode
from tests.serving import serve_hubkeeper

ENDPOINT = "/hubkeeper/server-tokens"
USER = "plugin-user"
OTHER_ADMIN = "plugin-admin"  # an admin without the custom scope
# The hub adds these to every token so its owner can read who they are.
IDENTITY = ("read:users:name!user=", "read:users:groups!user=")


@pytest.fixture(scope="module")
def people(hub):
    hub.create_users([USER])
    hub.create_users([OTHER_ADMIN], admin=True)


def _access_scopes(hub: LocalHub, token: str) -> set[str]:
    scopes = hub.api("GET", "/user", token=token).json()["scopes"]
    return {s for s in scopes if not s.startswith(IDENTITY)}


def test_hubkeeper_s_token_cannot_mint_a_token_for_anyone(hub, people):
    """The narrow role: no `tokens`, so the hub refuses what made it hub admin before."""
    for name in ("admin", OTHER_ADMIN, USER):
        response = hub.api(
            "POST", f"/users/{name}/tokens", token=hub.service_token, json={"scopes": ["self"]}
        )
        assert response.status_code == 403, (name, response.text)
    made_admin = hub.api("PATCH", f"/users/{USER}", token=hub.service_token, json={"admin": True})
    assert made_admin.status_code == 403


def test_the_endpoint_mints_a_one_server_token_that_expires_within_the_hour(hub, people):
    response = hub.api("POST", ENDPOINT, token=hub.service_token, json={"user": USER, "server": ""})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    expires = datetime.fromisoformat(body["expires_at"])
    now = datetime.now(UTC)
    assert now + timedelta(minutes=55) < expires <= now + timedelta(hours=1, seconds=5)
    assert hub.api("GET", "/user", token=body["token"]).json()["name"] == USER
    assert _access_scopes(hub, body["token"]) == {f"access:servers!server={USER}/"}
    # It cannot act on the hub's API beyond reading its own name.
    assert hub.api("GET", "/users", token=body["token"]).status_code == 403


def test_the_endpoint_refuses_tokens_without_the_scope_and_unknown_names(hub, people):
    asked = {"user": USER, "server": ""}
    for holder in (USER, OTHER_ADMIN):  # an ordinary user; an admin without the scope
        refused = hub.api("POST", ENDPOINT, token=hub.user_token(holder), json=asked)
        assert refused.status_code == 403, (holder, refused.text)
        assert PLUGIN_SCOPE in refused.json()["message"]
    token = hub.service_token
    for body, status in [
        ({"user": "no-such-plugin-user", "server": ""}, 404),
        ({"user": USER, "server": "no-such-server"}, 404),
        ({"user": USER}, 201),  # server defaults to the default server
        ({"server": ""}, 400),
        ({"user": USER, "server": 3}, 400),
        (["not", "an", "object"], 400),
    ]:
        answer = hub.api("POST", ENDPOINT, token=token, json=body)
        assert answer.status_code == status, (body, answer.text)


async def test_hubkeeper_reads_a_server_with_a_plugin_token(hub, people, make_settings):
    """Plugin mode end to end: the gateway mints through the endpoint, once per hour."""
    from hubkeeper.hub.servers import ServerGateway

    await asyncio.to_thread(hub.start_server, USER)
    settings = make_settings()
    client = HubClient(settings.hub_api_url, settings.hub_api_token)
    gateway = ServerGateway.from_settings(client, settings)
    try:
        assert (await gateway.tokens.credentials()).mode is TokenMode.PLUGIN
        first = await gateway.server_status(USER)
        again = await gateway.server_status(USER)
        assert "started" in first and "started" in again
        assert gateway.tokens.minted == 1  # one token, reused
        assert await gateway.tokens.report() == {"mode": "plugin", "warnings": []}
    finally:
        await gateway.aclose()
        await client.aclose()
        await asyncio.to_thread(hub.stop_server, USER)


def test_health_says_plugin_mode_without_warnings(hubkeeper_server):
    health = httpx.get(hubkeeper_server.direct_url + "api/v1/health", timeout=30).json()
    assert health["server_tokens"] == {"mode": "plugin", "warnings": []}


def test_modes_and_warnings_follow_the_scopes():
    narrow = Credentials(frozenset(SERVICE_SCOPES), 0.0)
    assert (narrow.mode, narrow.warnings) == (TokenMode.PLUGIN, [])
    fallback = Credentials(frozenset(FALLBACK_SCOPES), 0.0)
    assert fallback.mode is TokenMode.TOKENS
    assert len(fallback.warnings) == 1 and "equivalent to hub admin" in fallback.warnings[0]
    admin = Credentials(frozenset([*FALLBACK_SCOPES, "admin:users", "admin:servers"]), 0.0)
    assert len(admin.warnings) == 3
    filtered = Credentials(frozenset(["list:users", "tokens!user=alice"]), 0.0)
    assert filtered.mode is TokenMode.TOKENS and filtered.warnings == []  # filtered: not admin
    nothing = Credentials(frozenset(["list:users"]), 0.0)
    assert nothing.mode is TokenMode.NONE and "cannot read users' servers" in nothing.warnings[0]


@pytest.mark.own_hub
async def test_without_the_plugin_the_tokens_fallback_works_and_health_warns(tmp_path):
    with (
        LocalHub(tmp_path / "hub", plugin=False) as bare,
        serve_hubkeeper(bare, tmp_path) as served,
    ):
        await asyncio.to_thread(bare.create_users, [USER])
        await asyncio.to_thread(bare.start_server, USER)
        async with httpx.AsyncClient(base_url=served.direct_url, timeout=30) as client:
            health = (await client.get("api/v1/health")).json()
        assert health["server_tokens"]["mode"] == "tokens"
        assert "equivalent to hub admin" in health["server_tokens"]["warnings"][0]
        from hubkeeper.hub.servers import ServerGateway

        client = HubClient(served.settings.hub_api_url, served.settings.hub_api_token)
        gateway = ServerGateway.from_settings(client, served.settings)
        try:
            assert isinstance(gateway.tokens, ServerTokens)
            assert "started" in await gateway.server_status(USER)
            assert gateway.tokens.minted == 1
        finally:
            await gateway.aclose()
            await client.aclose()
        await asyncio.to_thread(bare.stop_server, USER)


def test_admins_pages_say_how_server_tokens_are_had(hub, hubkeeper_server):
    from tests.auth.hub_login import sign_in

    with httpx.Client(timeout=30) as browser:
        sign_in(browser, hub.url, hubkeeper_server.proxied_url, "admin")
        page = browser.get(hubkeeper_server.proxied_url + "users", follow_redirects=True)
    assert page.status_code == 200
    assert "one-server tokens from the hub plugin" in page.text
    assert "credential-note" not in page.text  # no warning: the narrow role


def test_the_list_form_mints_many_tokens_in_one_request(hub, people):
    servers = [{"user": USER, "server": ""}, {"user": "no-such-plugin-user", "server": ""}]
    response = hub.api("POST", ENDPOINT, token=hub.service_token, json={"servers": servers})
    assert response.status_code == 201, response.text
    minted, missing = response.json()["tokens"]
    assert minted["user"] == USER and minted["token"] and minted["expires_at"]
    assert _access_scopes(hub, minted["token"]) == {f"access:servers!server={USER}/"}
    assert missing == {
        "user": "no-such-plugin-user",
        "server": "",
        "error": "No such user: no-such-plugin-user",
        "status": 404,
    }
    for bad in ([], [{"server": ""}], "x", [{"user": USER}] * 201):
        answer = hub.api("POST", ENDPOINT, token=hub.service_token, json={"servers": bad})
        assert answer.status_code == 400, (bad, answer.text)
    refused = hub.api("POST", ENDPOINT, token=hub.user_token(USER), json={"servers": servers})
    assert refused.status_code == 403


async def test_a_pass_over_many_servers_mints_their_tokens_in_bulk(hub, people, make_settings):
    settings = make_settings()
    client = HubClient(settings.hub_api_url, settings.hub_api_token)
    tokens = ServerTokens(client)
    try:
        keys = [(USER, ""), (OTHER_ADMIN, "")]
        assert await tokens.prefetch(keys) == 2
        assert await tokens.prefetch(keys) == 0  # cached
        assert tokens.minted == 2
        assert await tokens.token(USER, "") == tokens._tokens[(USER, "")][0]
        assert tokens.minted == 2  # no request for a cached one
    finally:
        await client.aclose()


def test_a_bad_item_in_a_list_mints_nothing(hub, people):
    def tokens_of_user() -> int:
        listed = hub.api("GET", f"/users/{USER}/tokens", token=hub.admin_token)
        return len(listed.json()["api_tokens"])

    before = tokens_of_user()
    body = {"servers": [{"user": USER, "server": ""}] * 3 + ["not an item"]}
    answer = hub.api("POST", ENDPOINT, token=hub.service_token, json=body)
    assert answer.status_code == 400
    assert tokens_of_user() == before
