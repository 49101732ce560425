"""The local hub itself: Hubkeeper registered as a service, roles, and a browser sign-in."""

from __future__ import annotations

import re

import httpx
import pytest
from bs4 import BeautifulSoup

from hubkeeper.demo.localhub import SERVICE_SCOPES


def hub_home(hub, username: str) -> BeautifulSoup:
    """Sign in through the hub's login form (dummy authenticator) and read /hub/home."""
    with httpx.Client(follow_redirects=True, timeout=30) as client:
        login = client.get(hub.url + "/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text)
        data = {"username": username, "password": "any password"}
        if xsrf:
            data["_xsrf"] = xsrf.group(1)
        # Do not follow the login redirect: it goes to /hub/spawn, which starts a server.
        client.post(hub.url + "/hub/login", data=data, follow_redirects=False)
        home = client.get(hub.url + "/hub/home")
        assert home.status_code == 200
        return BeautifulSoup(home.text, "html.parser")


def service_links(page: BeautifulSoup) -> list[str]:
    return [str(a.get("href")) for a in page.select("a[href*='/services/']")]


def test_hub_registers_hubkeeper_with_its_role(hub):
    response = hub.api("GET", "/services/hubkeeper", token=hub.admin_token)
    assert response.status_code == 200, response.text
    service = response.json()
    assert service["prefix"] == hub.service_prefix
    assert service["url"] == hub.service_url
    assert "hubkeeper-service" in service["roles"]
    identity = hub.api("GET", "/user").json()
    assert identity["kind"] == "service"
    for scope in SERVICE_SCOPES:
        assert scope in identity["scopes"]


def test_services_menu_lists_hubkeeper_for_everyone(hub):
    """Every user may start Hubkeeper's sign-in (Hubkeeper itself answers 403 to people
    without a role), so the hub lists it in everyone's Services menu."""
    hub.create_users(["menu-manager", "menu-user"])
    hub.add_to_group("managers", ["menu-manager"])
    for name in ("admin", "menu-manager", "menu-user"):
        assert "/services/hubkeeper/" in service_links(hub_home(hub, name)), name


def test_user_token_is_the_users(hub):
    hub.create_users(["token-owner"])
    token = hub.user_token("token-owner")
    me = httpx.get(hub.api_url + "/user", headers={"Authorization": f"token {token}"})
    assert me.json()["name"] == "token-owner"


@pytest.mark.browser
def test_browser_signs_in_to_the_hub(hub, page):
    # next=/hub/home: the default after login is /hub/spawn, which would start a server.
    page.goto(hub.url + "/hub/login?next=%2Fhub%2Fhome")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("anything")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/hub/home$"))
    services = page.locator("a[href*='/services/hubkeeper/']")
    assert services.count() >= 1
