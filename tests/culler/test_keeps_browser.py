"""An ordinary hub user in real Chromium at 414 px: OAuth lands them on their own page, which
shows their server's outlook; "Keep running" postpones the cull in place."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browsing import shot
from tests.web.test_phone_and_keyboard import axe_violations

pytestmark = pytest.mark.browser

USER = "culler-br-keeper"


def test_an_ordinary_user_keeps_their_server_running_on_a_phone(page, hub, hubkeeper_server):
    hub.create_users([USER])
    hub.start_server(USER)
    try:
        page.set_viewport_size({"width": 414, "height": 860})
        page.goto(hubkeeper_server.proxied_url)
        page.locator("#username_input").fill(USER)
        page.locator("#password_input").fill("any-password")
        page.locator("#login_submit").click()
        expect(page).to_have_url(re.compile(r"/services/hubkeeper/me$"), timeout=20_000)
        page.wait_for_load_state()
        expect(page.get_by_role("heading", name="Your servers")).to_be_visible()
        nav = page.locator("nav.mainnav a")
        expect(nav).to_have_count(1)
        card = page.get_by_role("article", name="Default server")
        expect(card.locator("[data-outlook]")).to_contain_text(
            re.compile(r"stops at (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC for idleness unless you use it")
        )
        expect(card.locator("[data-keeps-left]")).to_have_text("3")
        card.get_by_role("button", name="Keep running").click()
        card = page.get_by_role("article", name="Default server")
        expect(card.locator("[data-keep-result]")).to_have_text("Kept: 2 keep(s) left.")
        expect(card.locator("[data-outlook]")).to_contain_text(
            re.compile(r"kept until (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC")
        )
        expect(card.locator("[data-keeps-left]")).to_have_text("2")
        wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not wide
        assert axe_violations(page) == []
        shot(page, "me", "kept-phone")
    finally:
        hub.stop_server(USER)
