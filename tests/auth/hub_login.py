"""Sign in through the real hub's login form and OAuth, as a browser would, with httpx."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx


def hub_login(client: httpx.Client, hub_url: str, username: str) -> None:
    """Log in to the hub itself (dummy authenticator: any password)."""
    page = client.get(hub_url + "/hub/login")
    match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    data = {"username": username, "password": "any-password"}
    if match:
        data["_xsrf"] = match.group(1)
    response = client.post(hub_url + "/hub/login", data=data)
    assert response.status_code in (200, 302), response.text[:300]


def follow_until_callback(client: httpx.Client, url: str, max_hops: int = 8) -> httpx.Response:
    """Follow redirects by hand and return Hubkeeper's answer to `oauth_callback`."""
    response = client.get(url)
    for _ in range(max_hops):
        if "/oauth_callback" in str(response.request.url):
            return response
        assert response.status_code in (301, 302, 303, 307), (
            response.status_code,
            str(response.request.url),
            response.text[:300],
        )
        response = client.get(urljoin(str(response.request.url), response.headers["location"]))
    raise AssertionError("never reached oauth_callback")


def sign_in(
    client: httpx.Client, hub_url: str, service_url: str, username: str, next_url: str = ""
) -> httpx.Response:
    """Hub login + Hubkeeper OAuth; returns the callback response (a redirect to `next`)."""
    hub_login(client, hub_url, username)
    login = service_url + "login" + (f"?next={next_url}" if next_url else "")
    return follow_until_callback(client, login)
