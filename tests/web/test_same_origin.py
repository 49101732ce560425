"""Cookie-authenticated requests under JupyterHub's own defences (jupyterhub/_xsrf_utils.py,
4.1+): a page on a user's server shares Hubkeeper's origin unless the hub uses
`subdomain_host`, so script-made requests need the CSRF token, reads included, and writes must
come from the same origin. Header tokens are not affected."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from hubkeeper.auth.sessions import issue_session

FETCH = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "empty"}


@pytest.fixture(scope="module")
def session(hubkeeper_server):
    hk = hubkeeper_server.app.state.hk
    name, value, csrf = asyncio.run(issue_session(hk, user="web-admin", role="admin"))
    return {name: value}, csrf


def get(hubkeeper_server, session, path: str, headers: dict[str, str], **params: str):
    cookies, _ = session
    return httpx.get(
        hubkeeper_server.direct_url + path,
        cookies=cookies,
        headers=headers,
        params=params,
        timeout=15,
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),  # no Sec-Fetch-* (curl, older browsers): a plain read
        ({"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}, 200),
        (
            {
                "Sec-Fetch-Mode": "navigate",
                "Sec-Fetch-Site": "cross-site",
                "Sec-Fetch-Dest": "document",
            },
            200,  # a link from elsewhere may open a page
        ),
        ({"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "empty"}, 200),  # a download
        ({"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}, 403),
        ({"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "object"}, 403),
        ({"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "same-origin"}, 200),
        ({"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site"}, 403),
        (FETCH, 403),  # fetch/XHR from a user's server on the same origin
        ({**FETCH, "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Mode": "same-origin", "Sec-Fetch-Site": "same-origin"}, 403),
    ],
)
def test_cookie_reads_need_the_token_unless_they_are_page_views(
    hubkeeper_server, session, headers, status
):
    for path in ("users", "api/v1/me"):
        response = get(hubkeeper_server, session, path, headers)
        assert response.status_code == status, (path, headers, response.text[:200])
        if status == 403:
            assert "csrf" in response.text.lower()


def test_script_reads_with_the_token_pass(hubkeeper_server, session):
    _, csrf = session
    assert (
        get(hubkeeper_server, session, "api/v1/me", {**FETCH, "X-CSRF-Token": csrf}).status_code
        == 200
    )
    # EventSource cannot send headers: the token may come in the query.
    assert get(hubkeeper_server, session, "api/v1/me", FETCH, _csrf=csrf).status_code == 200
    assert get(hubkeeper_server, session, "api/v1/me", FETCH, _csrf="wrong").status_code == 403


@pytest.mark.parametrize(
    ("site", "with_token", "allowed"),
    [
        ("same-origin", True, True),
        (None, True, True),  # no Sec-Fetch-Site: the token decides
        ("same-origin", False, False),
        ("same-site", True, False),
        ("cross-site", True, False),
        ("none", True, False),
    ],
)
def test_cookie_writes_need_the_token_and_the_same_origin(
    hubkeeper_server, session, site, with_token, allowed
):
    cookies, csrf = session
    headers = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    if site:
        headers["Sec-Fetch-Site"] = site
    if with_token:
        headers["X-CSRF-Token"] = csrf
    response = httpx.post(
        hubkeeper_server.direct_url + "api/v1/users/web-nobody/server/stop",
        cookies=cookies,
        headers=headers,
        timeout=15,
    )
    if allowed:
        assert response.status_code != 403, response.text  # past auth: 404 unknown user
    else:
        assert response.status_code == 403
        assert response.json()["error"] == "csrf_failed"


def test_header_tokens_skip_the_browser_checks(hub, hubkeeper_server):
    hub.create_users(["web-tokenadmin"], admin=True)
    token = hub.user_token("web-tokenadmin")
    response = httpx.get(
        hubkeeper_server.direct_url + "api/v1/me",
        headers={"Authorization": f"token {token}", **FETCH, "Sec-Fetch-Site": "cross-site"},
        timeout=15,
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "evil_next",
    [
        "/user/someone/",  # same origin, but a user's server
        "/hub/admin",
        "/services/hubkeeper/../../user/x/",
        "/services/hubkeeper/%2e%2e/%2e%2e/user/x/",
        "/services/hubkeeperish/",
    ],
)
def test_next_stays_under_the_service_prefix(hubkeeper_server, evil_next):
    from hubkeeper.auth.oauth import safe_next

    prefix = hubkeeper_server.settings.service_prefix
    assert safe_next(evil_next, prefix) == prefix
    assert safe_next(prefix + "audit?actor=a", prefix) == prefix + "audit?actor=a"
    start = httpx.get(hubkeeper_server.direct_url + "login", params={"next": evil_next}, timeout=15)
    assert start.status_code == 302
    state_cookie = next(v for k, v in start.cookies.items() if k.startswith("hubkeeper-oauth"))
    hk = hubkeeper_server.app.state.hk
    from hubkeeper.auth.sessions import serializer

    assert serializer(hk, "oauth-state").loads(state_cookie)["next"] == prefix
