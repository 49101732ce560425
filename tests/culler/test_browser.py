"""The Culler page in real Chromium through the real hub: save a group timeout, see the
preview, "Cull now" after confirming, and find the cull on the Culls page."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.browsing import shot, sign_in

pytestmark = pytest.mark.browser

ADMIN = "culler-br-admin"
IDLE = "culler-br-idle"
GROUP = "culler-br-grp"


def test_admin_sets_a_group_timeout_previews_and_culls_now(page, hub, hubkeeper_server):
    hub.create_users([ADMIN], admin=True)
    hub.create_users([IDLE])
    hub.add_to_group(GROUP, [IDLE])
    api = hubkeeper_server.direct_url + "api/v1/culler"
    token = {"Authorization": f"token {hub.user_token(ADMIN)}"}
    before = httpx.get(api, headers=token).json()
    hub.start_server(IDLE)
    try:
        sign_in(page, hub, hubkeeper_server, ADMIN)
        page.get_by_role("link", name="Culler", exact=True).click()
        expect(page.get_by_role("heading", name="Culler", exact=True)).to_be_visible()
        page.get_by_label(re.compile("Group timeouts")).fill(f"{GROUP}=1")
        page.get_by_role("button", name="Save settings").click()
        expect(page).to_have_url(re.compile(r"culler\?saved=1"))
        # shown back in human units
        expect(page.get_by_label(re.compile("Group timeouts"))).to_have_value(f"{GROUP}=1s")
        time.sleep(2)  # idle past the group's 1 s timeout
        page.reload()
        preview = page.locator("#preview-table")
        expect(preview).to_contain_text(IDLE)
        shot(page, "culler", "preview")

        page.get_by_role("button", name="Cull now").first.click()
        confirm = page.locator("#confirm-dialog")
        expect(confirm).to_be_visible()
        expect(confirm).to_contain_text("Cull now?")
        confirm.get_by_role("button", name="Cull now").click()
        expect(page.locator("#ran-notice")).to_be_visible(timeout=60_000)
        model = hub.server_model(IDLE)
        assert model is None or not model.get("ready")

        page.get_by_role("link", name="Culls", exact=True).click()
        row = page.locator("#culls-table tbody tr", has_text=IDLE)
        expect(row).to_contain_text("idle")
        expect(row).to_contain_text(ADMIN)
        shot(page, "culls", "list")
    finally:
        httpx.put(api, json=before, headers=token)
        hub.stop_server(IDLE)


def test_why_link_opens_a_servers_idleness_on_a_phone(page, hub, hubkeeper_server):
    admin, busy = "culler-br-why-admin", "culler-br-why"
    hub.create_users([admin], admin=True)
    hub.create_users([busy])
    hub.start_server(busy)
    try:
        page.set_viewport_size({"width": 414, "height": 860})
        sign_in(page, hub, hubkeeper_server, admin)
        page.goto(hubkeeper_server.direct_url + f"users/{busy}")
        page.locator("[data-idleness-link]").first.click()
        expect(page.locator("#idleness-decision")).to_contain_text("keep")
        expect(page.locator("#signals-table")).to_contain_text("hub")
        wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not wide
        shot(page, "culler", "idleness-phone")
    finally:
        hub.stop_server(busy)
