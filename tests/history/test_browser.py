"""The history page in real Chromium, signed in through the real hub; screenshots on request."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browsing import shot, sign_in
from tests.history.test_page import seed_recent

pytestmark = pytest.mark.browser

MANAGER = "hist-br-manager"


def test_a_manager_reads_the_history_and_switches_to_groups(page, hub, hubkeeper_server):
    hub.create_users([MANAGER])
    hub.add_to_group("managers", [MANAGER])
    seed_recent(hubkeeper_server.settings.database_url)
    sign_in(page, hub, hubkeeper_server, MANAGER)
    page.get_by_role("link", name="History", exact=True).click()
    expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
    expect(page.get_by_role("img", name="Server-hours per day")).to_be_visible()
    expect(page.locator("#usage-table")).to_contain_text("hist-<script>alert(1)</script>")
    shot(page, "history", "by-user")

    page.get_by_label("Usage by", exact=True).select_option("group")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"[?&]by=group"))
    expect(page.get_by_role("heading", name="Usage by group")).to_be_visible()
    page.get_by_text("Values per day").click()
    expect(page.locator("#day-table")).to_be_visible()


def test_cost_by_profile_reads_on_a_phone(page, hub, hubkeeper_server, monkeypatch):
    hub.create_users([MANAGER])
    hub.add_to_group("managers", [MANAGER])
    seed_recent(hubkeeper_server.settings.database_url)
    monkeypatch.setattr(hubkeeper_server.app.state.hk.settings, "prices", {"*": 1.25})
    page.set_viewport_size({"width": 414, "height": 860})
    sign_in(page, hub, hubkeeper_server, MANAGER)
    page.goto(hubkeeper_server.direct_url + "history?by=profile")
    expect(page.get_by_role("heading", name="Usage by profile")).to_be_visible()
    cost = page.locator("#usage-table tbody tr", has_text="(default)").locator("td.cell-cost")
    expect(cost).to_be_visible()
    # a card per row on a phone: each value under its column's name
    label = cost.evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Cost"'
    expect(page.get_by_role("link", name="Download CSV")).to_be_visible()
    wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not wide
    shot(page, "history", "cost-phone")
