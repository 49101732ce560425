"""Sign-in through the real hub's OAuth, sessions, CSRF and token auth."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import httpx
import pytest
from bs4 import BeautifulSoup
from sqlmodel import select

from hubkeeper.auth.sessions import SESSION_COOKIE, STATE_COOKIE, issue_session
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import WebSession
from tests.auth.hub_login import hub_login, sign_in

PREFIX = "/services/hubkeeper/"


@pytest.fixture(scope="module")
def people(hub):
    hub.create_users(["auth-admin"], admin=True)
    hub.create_users(["auth-manager", "auth-nobody"])
    hub.add_to_group("managers", ["auth-manager"])
    return {
        "admin": hub.user_token("auth-admin"),
        "manager": hub.user_token("auth-manager"),
        "nobody": hub.user_token("auth-nobody"),
    }


def api(hubkeeper_server, path: str, token: str | None = None, method: str = "GET", **kw):
    headers = {"Authorization": f"token {token}"} if token else {}
    return httpx.request(
        method, hubkeeper_server.direct_url + path, headers=headers, timeout=15, **kw
    )


def test_admin_signs_in_through_hub_oauth_and_returns_to_next(hub, hubkeeper_server, people):
    with httpx.Client(timeout=15) as client:
        callback = sign_in(
            client, hub.url, hubkeeper_server.proxied_url, "auth-admin", f"{PREFIX}audit"
        )
        assert callback.status_code == 302
        assert callback.headers["location"] == f"{PREFIX}audit"
        cookie = next(c for c in client.cookies.jar if c.name == SESSION_COOKIE)
        assert cookie.path == PREFIX
        assert cookie.has_nonstandard_attr("HttpOnly")
        set_cookie = callback.headers.get_list("set-cookie")
        assert any("samesite=lax" in h.lower() for h in set_cookie if SESSION_COOKIE in h)
        me = client.get(hubkeeper_server.proxied_url + "api/v1/me")
        assert me.json() == {"name": "auth-admin", "role": "admin"}
        hk = hubkeeper_server.app.state.hk
        with session_scope(hk.engine) as db:
            stored = db.exec(select(WebSession).where(WebSession.user == "auth-admin")).first()
        assert stored is not None
        assert stored.access_token.startswith("gAAAA")  # Fernet: not the token itself
        audit = client.get(
            hubkeeper_server.proxied_url + "api/v1/audit",
            params={"actor": "auth-admin", "action": "auth.login"},
        ).json()
        assert audit["items"][0]["outcome"] == "ok"


@pytest.mark.parametrize(
    "evil_next",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "http:/evil",
    ],
)
def test_open_redirect_in_next_is_refused(hub, hubkeeper_server, people, evil_next):
    with httpx.Client(timeout=15) as client:
        callback = sign_in(
            client, hub.url, hubkeeper_server.proxied_url, "auth-admin", quote(evil_next, safe="")
        )
        assert callback.status_code == 302
        assert callback.headers["location"] == PREFIX


def test_oauth_state_mismatch_is_refused(hub, hubkeeper_server, people):
    with httpx.Client(timeout=15) as client:
        hub_login(client, hub.url, "auth-admin")
        start = client.get(hubkeeper_server.proxied_url + "login")
        assert start.status_code == 302
        assert any(name.startswith(STATE_COOKIE) for name in client.cookies)
        authorize = client.get(start.headers["location"])
        callback_url = authorize.headers["location"]
        parts = urlsplit(callback_url)
        forged = callback_url.replace("state=", "state=forged", 1)
        refused = client.get(hub.url + forged if not parts.netloc else forged)
        assert refused.status_code == 403
        assert SESSION_COOKIE not in client.cookies
        # And with no state cookie at all (the callback replayed in another browser).
    with httpx.Client(timeout=15) as other:
        replay = other.get(hub.url + callback_url if not parts.netloc else callback_url)
        assert replay.status_code == 403
        assert "state" in replay.text.lower()


def test_anonymous_page_redirects_to_login_and_api_is_401(hubkeeper_server):
    page = httpx.get(hubkeeper_server.direct_url + "users?status=running", timeout=15)
    assert page.status_code == 302
    assert page.headers["location"] == f"{PREFIX}login?next=" + quote(
        f"{PREFIX}users?status=running", safe=""
    )
    response = api(hubkeeper_server, "api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"] == "login_required"


def test_api_tokens_map_to_roles(hubkeeper_server, people):
    assert api(hubkeeper_server, "api/v1/me", people["admin"]).json() == {
        "name": "auth-admin",
        "role": "admin",
    }
    assert api(hubkeeper_server, "api/v1/me", people["manager"]).json()["role"] == "manager"
    bearer = httpx.get(
        hubkeeper_server.direct_url + "api/v1/me",
        headers={"Authorization": f"Bearer {people['manager']}"},
        timeout=15,
    )
    assert bearer.json()["role"] == "manager"
    # an ordinary hub user: role `user`, their own servers only
    nobody = api(hubkeeper_server, "api/v1/me", people["nobody"])
    assert nobody.json() == {"name": "auth-nobody", "role": "user"}
    refused = api(hubkeeper_server, "api/v1/users", people["nobody"])
    assert refused.status_code == 403
    assert refused.json()["error"] == "no_role"
    bogus = api(hubkeeper_server, "api/v1/me", "not-a-real-token")
    assert bogus.status_code == 401
    assert set(bogus.json()) == {"error", "detail"}


def test_manager_token_cannot_act(hubkeeper_server, people):
    response = api(
        hubkeeper_server, "api/v1/users/auth-nobody/server/start", people["manager"], method="POST"
    )
    assert response.status_code == 403


def _session_cookie(hubkeeper_server, user: str, role: str, **kw) -> tuple[dict[str, str], str]:
    hk = hubkeeper_server.app.state.hk
    name, value, csrf = asyncio.run(issue_session(hk, user=user, role=role, **kw))
    return {name: value}, csrf


def test_write_without_csrf_is_refused(hubkeeper_server):
    cookies, csrf = _session_cookie(hubkeeper_server, "auth-admin", "admin")
    url = hubkeeper_server.direct_url + "api/v1/users/auth-nobody/server/stop"
    refused = httpx.post(url, cookies=cookies, timeout=15)
    assert refused.status_code == 403
    assert refused.json()["error"] == "csrf_failed"
    wrong = httpx.post(url, cookies=cookies, headers={"X-CSRF-Token": "nope"}, timeout=15)
    assert wrong.status_code == 403
    allowed = httpx.post(url, cookies=cookies, headers={"X-CSRF-Token": csrf}, timeout=15)
    assert allowed.status_code != 403  # past auth: 409 already stopped, or 200
    logout = httpx.post(hubkeeper_server.direct_url + "logout", cookies=cookies, timeout=15)
    assert logout.status_code == 403


def test_signed_in_person_without_role_gets_a_403_page_not_a_loop(hubkeeper_server):
    cookies, _ = _session_cookie(hubkeeper_server, "auth-nobody", "")
    page = httpx.get(hubkeeper_server.direct_url + "users", cookies=cookies, timeout=15)
    assert page.status_code == 403
    soup = BeautifulSoup(page.text, "html.parser")
    assert "auth-nobody" in soup.get_text()
    assert soup.select_one(f'form[action="{PREFIX}logout"]') is not None


def test_ordinary_user_through_real_oauth_lands_on_their_own_page(hub, hubkeeper_server, people):
    with httpx.Client(timeout=15) as client:
        callback = sign_in(client, hub.url, hubkeeper_server.proxied_url, "auth-nobody")
        assert callback.status_code == 302
        assert callback.headers["location"] == f"{PREFIX}me"
        page = client.get(hub.url + callback.headers["location"], follow_redirects=True)
        assert page.status_code == 200
        soup = BeautifulSoup(page.text, "html.parser")
        assert soup.select_one("h1").get_text(strip=True) == "Your servers"
        # the navigation offers their page only
        assert [a["href"] for a in soup.select("nav.mainnav a")] == [f"{PREFIX}me"]
        # the console's front page sends them to their page; every reader page stays 403
        home = client.get(hubkeeper_server.proxied_url)
        assert home.headers["location"] == f"{PREFIX}me"
        assert client.get(hubkeeper_server.proxied_url + "users").status_code == 403


def test_logout_ends_the_session(hubkeeper_server):
    cookies, csrf = _session_cookie(hubkeeper_server, "auth-admin", "admin")
    me = httpx.get(hubkeeper_server.direct_url + "api/v1/me", cookies=cookies, timeout=15)
    assert me.status_code == 200
    out = httpx.post(
        hubkeeper_server.direct_url + "logout", cookies=cookies, data={"_csrf": csrf}, timeout=15
    )
    assert out.status_code == 200
    again = httpx.get(hubkeeper_server.direct_url + "api/v1/me", cookies=cookies, timeout=15)
    assert again.status_code == 401


def test_identity_is_rechecked_and_a_dead_token_ends_the_session(hubkeeper_server):
    hk = hubkeeper_server.app.state.hk
    cookies, _ = _session_cookie(hubkeeper_server, "auth-admin", "admin", access_token="revoked")
    session_id = next(iter(cookies.values()))
    from hubkeeper.auth.sessions import _unsign

    sid = _unsign(hk, session_id)
    with session_scope(hk.engine) as db:
        row = db.get(WebSession, sid)
        assert row is not None
        row.checked_at = datetime.now(UTC) - timedelta(minutes=6)
    me = httpx.get(hubkeeper_server.direct_url + "api/v1/me", cookies=cookies, timeout=15)
    assert me.status_code == 401
    with session_scope(hk.engine) as db:
        assert db.get(WebSession, sid) is None


def test_recheck_picks_up_a_role_change(hub, hubkeeper_server, people):
    """A manager removed from the managers group loses access at the next re-check."""
    hub.create_users(["auth-fleeting"])
    hub.add_to_group("managers", ["auth-fleeting"])
    with httpx.Client(timeout=15) as client:
        sign_in(client, hub.url, hubkeeper_server.proxied_url, "auth-fleeting")
        assert client.get(hubkeeper_server.proxied_url + "api/v1/me").json()["role"] == "manager"
        hub.api(
            "DELETE",
            "/groups/managers/users",
            json={"users": ["auth-fleeting"]},
            token=hub.admin_token,
        )
        hk = hubkeeper_server.app.state.hk
        with session_scope(hk.engine) as db:
            for row in db.exec(select(WebSession).where(WebSession.user == "auth-fleeting")):
                row.checked_at = datetime.now(UTC) - timedelta(minutes=6)
        assert client.get(hubkeeper_server.proxied_url + "api/v1/me").json()["role"] == "user"
        assert client.get(hubkeeper_server.proxied_url + "api/v1/users").status_code == 403
