"""Lockdown in real Chromium through the real hub: lock after confirming, the banner, lift."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browsing import shot, sign_in
from tests.waiting import wait_for

pytestmark = pytest.mark.browser

ADMIN = "lock-br-admin"
ANN = "lock-br-ann"


@pytest.fixture(scope="module")
def people(hub, hubkeeper_server):
    hub.create_users([ADMIN], admin=True)
    hub.create_users([ANN])


def hubkeeper_sees_running(hubkeeper_server, token: str, name: str) -> bool:
    listed = httpx.get(
        hubkeeper_server.direct_url + "api/v1/users",
        params={"q": name, "state": "running"},
        headers={"Authorization": f"token {token}"},
    ).json()
    return any(user["name"] == name for user in listed["items"])


def test_admin_locks_from_the_page_sees_the_banner_and_lifts(page, hub, hubkeeper_server, people):
    hub.start_server(ANN)
    try:
        # The page counts running servers from Hubkeeper's copy, which follows the proxy's
        # routes within seconds; open it once the copy has the start, as an admin would.
        admin_token = hub.user_token("admin")
        wait_for(
            lambda: hubkeeper_sees_running(hubkeeper_server, admin_token, ANN),
            20,
            "Hubkeeper to list ann's server as running",
        )
        sign_in(page, hub, hubkeeper_server, ADMIN)
        page.get_by_role("link", name="Lockdown", exact=True).click()
        expect(page.get_by_role("heading", name="Hub is open")).to_be_visible()
        stop = page.get_by_label(re.compile("Also stop all running servers"))
        expect(stop).to_be_checked()
        page.get_by_label(re.compile("Reason")).fill("Upgrading the file server; back at 14:00")
        shot(page, "lockdown", "open")

        # the dialog says what the choice made now will do
        stop.uncheck()
        page.get_by_role("button", name="Lock the hub…").click()
        confirm = page.locator("#confirm-dialog")
        expect(confirm).to_contain_text("running now will keep running")
        confirm.get_by_role("button", name="Cancel").click()
        expect(confirm).to_be_hidden()
        stop.check()

        page.get_by_role("button", name="Lock the hub…").click()
        expect(confirm).to_be_visible()
        expect(confirm).to_contain_text("Lock the hub?")
        expect(confirm).to_contain_text("running now will be stopped")
        confirm.get_by_role("button", name="Lock the hub").click()

        progress = page.locator("#stop-all-dialog")
        expect(progress).to_be_visible()
        expect(progress.locator("[data-job-summary]")).to_be_visible(timeout=60_000)
        expect(progress).to_contain_text("stopped")
        shot(page, "lockdown", "stopped")
        progress.get_by_role("button", name="Close").click()

        banner = page.locator("#lockdown-banner")
        expect(banner).to_contain_text("The hub is locked")
        expect(banner).to_contain_text("Upgrading the file server")
        expect(page.get_by_role("heading", name="Hub is locked")).to_be_visible()
        model = hub.server_model(ANN)
        assert model is None or not model.get("ready")
        shot(page, "lockdown", "locked")

        page.get_by_role("link", name="Users", exact=True).click()
        expect(page.locator("#lockdown-banner")).to_contain_text("The hub is locked")
        shot(page, "lockdown", "banner-on-users")
        page.get_by_role("link", name="Lockdown details").click()

        page.get_by_role("button", name="Lift lockdown").click()
        expect(confirm).to_contain_text("Lift the lockdown?")
        confirm.get_by_role("button", name="Lift lockdown").click()
        expect(page.get_by_role("heading", name="Hub is open")).to_be_visible()
        expect(page.locator("#lockdown-banner")).to_be_empty()
        expect(page.locator("#lockdown-history-table tbody tr").first).to_contain_text(ADMIN)
        shot(page, "lockdown", "lifted")
    finally:
        token = hub.user_token("admin")
        httpx.delete(
            hubkeeper_server.direct_url + "api/v1/lockdown",
            headers={"Authorization": f"token {token}"},
        )
        if (hub.server_model(ANN) or {}).get("ready"):
            hub.stop_server(ANN)
