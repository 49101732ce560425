"""A token is accepted only when the hub reports a scope that reaches Hubkeeper (HubAuth's
rule), whoever owns it; the sign-in's token likewise; unknown tokens are remembered briefly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import httpx
import pytest

from hubkeeper.auth.sessions import issue_session
from hubkeeper.auth.tokens import TokenCache, reaches_service
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import WebSession
from hubkeeper.errors import Unauthenticated
from tests.auth.hub_login import follow_until_callback, hub_login


def scoped_token(hub, owner: str, scopes: list[str]) -> str:
    """A token of `owner` limited by the hub to `scopes` (made with the hub-admin token)."""
    response = hub.api(
        "POST",
        f"/users/{owner}/tokens",
        token=hub.admin_token,
        json={"scopes": scopes, "note": "scope tests", "expires_in": 3600},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def test_reaches_service_follows_the_hubs_scope_filters():
    need = {"access:services!service=hubkeeper"}
    assert reaches_service(["access:services"], need)
    assert reaches_service(["access:services!service=hubkeeper"], need)
    assert not reaches_service(["access:services!service=other"], need)
    assert not reaches_service(["access:servers", "admin:users", "read:users:activity"], need)
    assert not reaches_service([], need)


@pytest.mark.parametrize(
    "scopes",
    [
        ["read:users:activity!user=admin"],  # the issue's example: an admin's narrow token
        ["access:servers!server=admin/", "users:activity!user=admin"],  # a server's token
        ["access:services!service=another-service"],
    ],
)
def test_an_admins_token_without_the_service_scope_is_refused(hub, hubkeeper_server, scopes):
    token = scoped_token(hub, "admin", scopes)
    assert hub.api("GET", "/user", token=token).json()["admin"] is True  # the hub says admin
    headers = {"Authorization": f"token {token}"}
    base = hubkeeper_server.direct_url
    me = httpx.get(base + "api/v1/me", headers=headers, timeout=15)
    assert me.status_code == 403
    assert me.json()["error"] == "insufficient_scope"
    start = httpx.post(base + "api/v1/users/admin/server/start", headers=headers, timeout=15)
    assert start.status_code == 403
    assert hub.server_model("admin") is None or not hub.server_model("admin").get("ready")


def test_the_same_admin_with_the_service_scope_is_let_in(hub, hubkeeper_server):
    token = scoped_token(hub, "admin", ["access:services!service=hubkeeper"])
    me = httpx.get(
        hubkeeper_server.direct_url + "api/v1/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    assert me.status_code == 200, me.text
    assert me.json() == {"name": "admin", "role": "admin"}


def test_a_session_whose_token_lost_the_scope_ends_at_the_recheck(hub, hubkeeper_server):
    hk = hubkeeper_server.app.state.hk
    token = scoped_token(hub, "admin", ["read:users:activity!user=admin"])
    name, value, _ = asyncio.run(issue_session(hk, user="admin", role="admin", access_token=token))
    from hubkeeper.auth.sessions import _unsign

    sid = _unsign(hk, value)
    with session_scope(hk.engine) as db:
        row = db.get(WebSession, sid)
        assert row is not None
        row.checked_at = datetime.now(UTC) - timedelta(minutes=6)
    me = httpx.get(hubkeeper_server.direct_url + "api/v1/me", cookies={name: value}, timeout=15)
    assert me.status_code == 403
    assert me.json()["error"] == "insufficient_scope"
    with session_scope(hk.engine) as db:
        assert db.get(WebSession, sid) is None


def test_two_sign_ins_at_once_both_finish(hub, hubkeeper_server):
    """Two tabs start signing in before either finishes: each flow keeps its own state."""
    hub.create_users(["auth-twotabs"], admin=True)
    with httpx.Client(timeout=15) as client:
        hub_login(client, hub.url, "auth-twotabs")
        login = hubkeeper_server.proxied_url + "login?next="
        first = client.get(login + "%2Fservices%2Fhubkeeper%2Faudit")
        second = client.get(login + "%2Fservices%2Fhubkeeper%2Fusers")
        state_cookies = [c for c in client.cookies.jar if c.name.startswith("hubkeeper-oauth")]
        assert len(state_cookies) == 2
        # The first tab finishes first, then the second: neither gets oauth_state_mismatch.
        for started, target in ((first, "audit"), (second, "users")):
            authorize = urljoin(str(started.request.url), started.headers["location"])
            callback = follow_until_callback(client, authorize)
            assert callback.status_code == 302, callback.text[:300]
            assert callback.headers["location"] == f"/services/hubkeeper/{target}"
        assert not [c for c in client.cookies.jar if c.name.startswith("hubkeeper-oauth")]


def test_expired_htmx_polls_are_told_to_sign_in_once(hubkeeper_server):
    url = hubkeeper_server.direct_url + "users/rows?since=3"
    page = "http://127.0.0.1/services/hubkeeper/users?status=running"
    headers = {"HX-Request": "true", "HX-Current-URL": page}
    with httpx.Client(timeout=15) as client:
        first = client.get(url, headers=headers)
        assert first.status_code == 204
        # The page the poll came from, not the poll's own URL.
        assert first.headers["HX-Redirect"] == (
            "/services/hubkeeper/login?next=%2Fservices%2Fhubkeeper%2Fusers%3Fstatus%3Drunning"
        )
        client.cookies.set("hubkeeper-login-pending", "1")  # path-scoped: set for the test
        again = client.get(url, headers=headers)
        assert again.status_code == 204
        assert "HX-Redirect" not in again.headers
    outside = httpx.get(
        url, headers={"HX-Request": "true", "HX-Current-URL": "http://x/user/evil/"}, timeout=15
    )
    assert outside.headers["HX-Redirect"].endswith("next=%2Fservices%2Fhubkeeper%2F")


class CountingHub:
    """The real hub client, counting the identity requests that reach the hub."""

    def __init__(self, hub_client) -> None:
        self.inner = hub_client
        self.calls = 0

    async def identify(self, token: str):
        self.calls += 1
        return await self.inner.identify(token)


async def test_unknown_tokens_are_remembered_briefly(hub):
    from hubkeeper.hub.client import HubClient

    real = HubClient(hub.api_url, hub.service_token, timeout=10)
    counting = CountingHub(real)
    cache = TokenCache(ttl=60, negative_ttl=0.5)

    async def flood() -> None:
        for _ in range(50):
            with pytest.raises(Unauthenticated):
                await cache.identify(counting, "not-a-token")  # type: ignore[arg-type]

    try:
        await flood()
        assert counting.calls == 1  # one hub request for fifty tries
        await asyncio.sleep(0.6)
        await flood()
        assert counting.calls == 2
        good = hub.user_token("admin")
        await cache.identify(counting, good)  # type: ignore[arg-type]
        await cache.identify(counting, good)  # type: ignore[arg-type]
        assert counting.calls == 3
    finally:
        await real.aclose()


def test_a_sign_in_whose_token_lacks_the_access_scope_is_refused(hub, make_settings):
    """The real OAuth flow, finished by a Hubkeeper that asks for another access scope: the
    hub's token for the session does not carry it, so no session is made."""
    from starlette.testclient import TestClient

    from hubkeeper.main import create_app

    hub.create_users(["auth-scopeless"], admin=True)
    settings = make_settings(JUPYTERHUB_OAUTH_ACCESS_SCOPES='["access:services!service=other"]')
    with (
        TestClient(create_app(settings), follow_redirects=False) as app,
        httpx.Client(timeout=15) as browser,
    ):
        hub_login(browser, hub.url, "auth-scopeless")
        start = app.get("/services/hubkeeper/login")
        assert start.status_code == 302
        authorize = browser.get(start.headers["location"])
        assert authorize.status_code == 302, authorize.text[:300]
        callback = urljoin(hub.url, authorize.headers["location"])
        assert "/services/hubkeeper/oauth_callback" in callback
        path = callback[len(hub.url) :] if callback.startswith(hub.url) else callback
        for name, value in start.cookies.items():
            app.cookies.set(name, value)
        finished = app.get(path)
        assert finished.status_code == 403
        assert "insufficient_scope" in finished.text or "scope" in finished.text.lower()
        assert "hubkeeper-session" not in finished.cookies
