"""The history page in real Chromium, signed in through the real hub; screenshots on request."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.screenshots import shot
from tests.browser.test_console import sign_in
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
