"""The console in real Chromium, through the real hub: OAuth sign-in, stop, start, stop-all,
and what managers and people without a role see."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browsing import sign_in

pytestmark = pytest.mark.browser

ADMIN = "br-admin"
MANAGER = "br-manager"
NOBODY = "br-nobody"
ANN = "br-ann"
BEN = "br-ben"


@pytest.fixture(scope="module")
def people(hub, hubkeeper_server):
    hub.create_users([ADMIN], admin=True)
    hub.create_users([MANAGER, NOBODY, ANN, BEN])
    hub.add_to_group("managers", [MANAGER])


def server_row(page: Any, user: str, server: str = "") -> Any:
    return page.locator(f'#results tbody tr[data-user="{user}"][data-server="{server}"]')


def search(page: Any, text: str) -> None:
    page.keyboard.press("/")  # the shortcut focuses the search box
    expect(page.get_by_label("Search")).to_be_focused()
    page.keyboard.type(text)
    expect(page).to_have_url(re.compile(r"[?&]q=" + re.escape(text)))


def test_admin_stops_and_starts_a_server(page, hub, hubkeeper_server, people):
    hub.start_server(ANN)
    progress_requests: list[str] = []
    page.on("request", lambda r: "/progress" in r.url and progress_requests.append(r.url))

    sign_in(page, hub, hubkeeper_server, ADMIN)
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    expect(page.locator(".whoami")).to_contain_text(ADMIN)
    search(page, ANN)
    row = server_row(page, ANN)
    expect(row).to_have_attribute("data-status", "running", timeout=15_000)

    row.get_by_role("button", name="Stop").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Stop {ANN}’s server?")
    dialog.get_by_role("button", name="Stop server").click()
    expect(row).to_have_attribute("data-status", re.compile("stopped"), timeout=30_000)
    expect(page.locator("#toasts")).to_contain_text(f"{ANN}'s server")

    row.get_by_role("button", name="Start").click()
    expect(row.locator(".spawn-progress")).to_be_visible(timeout=5_000)
    expect(row).to_have_attribute("data-status", "running", timeout=60_000)
    expect(row.get_by_role("button", name="Stop")).to_be_visible()
    assert any(f"users/{ANN}/server/progress" in url for url in progress_requests)
    # The view survives a reload: it is in the URL.
    page.reload()
    expect(page.get_by_label("Search")).to_have_value(ANN)
    hub.stop_server(ANN)


def test_admin_stops_all_servers_after_confirming(page, hub, hubkeeper_server, people):
    hub.start_server(ANN)
    hub.start_server(BEN)
    sign_in(page, hub, hubkeeper_server, ADMIN)
    search(page, "br-")
    expect(server_row(page, BEN)).to_have_attribute("data-status", "running", timeout=15_000)

    page.get_by_role("button", name="Stop all…").click()
    dialog = page.locator("#stop-all-dialog")
    expect(dialog).to_be_visible()
    heading = dialog.get_by_role("heading", name=re.compile(r"^Stop \d+ servers?\?$"))
    expect(heading).to_be_visible()
    total = int(re.findall(r"\d+", heading.inner_text())[0])
    assert total >= 2
    dialog.get_by_label("Reason").fill("Browser test: maintenance")
    dialog.get_by_role("button", name=re.compile(r"^Stop \d+ servers?$")).click()

    summary = dialog.locator("[data-job-summary]")
    expect(summary).to_be_visible(timeout=60_000)
    expect(dialog.get_by_role("heading")).to_contain_text("stopped")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(server_row(page, ANN)).to_have_attribute("data-status", "stopped", timeout=20_000)
    expect(server_row(page, BEN)).to_have_attribute("data-status", "stopped", timeout=20_000)


def test_manager_sees_no_actions_and_cannot_act(page, hub, hubkeeper_server, people):
    sign_in(page, hub, hubkeeper_server, MANAGER)
    expect(page.locator(".role-badge")).to_have_text("manager")
    search(page, ANN)
    expect(server_row(page, ANN)).to_be_visible()
    for name in ("Start", "Stop", "Stop all…", "Open"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    # Even with the page's own CSRF token, a manager's action is refused.
    csrf = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    status = page.evaluate(
        """async ([url, csrf]) => (await fetch(url, {method: "POST",
               headers: {"X-CSRF-Token": csrf, "HX-Request": "true"}})).status""",
        [f"{hubkeeper_server.proxied_url}users/{ANN}/server/start", csrf],
    )
    assert status == 403


def test_person_without_role_lands_on_their_own_page_and_sees_a_clear_403_elsewhere(
    page, hub, hubkeeper_server, people
):
    page.goto(hubkeeper_server.proxied_url)
    page.locator("#username_input").fill(NOBODY)
    page.locator("#password_input").fill("any-password")
    page.locator("#login_submit").click()
    # every signed-in hub user has their own page (role `user`, issue #16)
    expect(page.get_by_role("heading", name="Your servers")).to_be_visible(timeout=20_000)
    expect(page).to_have_url(re.compile(r"/services/hubkeeper/me$"))
    page.goto(hubkeeper_server.proxied_url + "users")
    expect(page.get_by_role("heading", name="Not allowed here")).to_be_visible()
    expect(page.locator(".error-detail")).to_contain_text(f"You are signed in as {NOBODY}")
    expect(page.get_by_role("link", name="Back to the hub")).to_be_visible()
    page.locator("#main").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()


def test_admin_opens_a_users_server_after_a_reminder(page, hub, hubkeeper_server, people):
    hub.start_server(BEN)
    try:
        sign_in(page, hub, hubkeeper_server, ADMIN)
        search(page, BEN)
        row = server_row(page, BEN)
        expect(row).to_have_attribute("data-status", "running", timeout=15_000)
        row.get_by_role("button", name="Open").click()
        dialog = page.locator("#confirm-dialog")
        reminder = f"You are acting as {BEN}: tell them before changing anything."
        expect(dialog).to_contain_text(reminder)
        with page.expect_popup() as popup_info:
            dialog.get_by_role("button", name="Open server").click()
        popup = popup_info.value
        popup.wait_for_load_state()
        # The tab goes to the user's server; the hub may first ask the admin to authorize
        # access to someone else's server (its own OAuth page for that server).
        assert f"/user/{BEN}/" in popup.url or f"client_id=jupyterhub-user-{BEN}" in popup.url
        expect(page.locator("#toasts")).to_contain_text(reminder)
        popup.close()
        # The visit is in the audit log, under the admin's name.
        page.get_by_role("link", name="Audit", exact=True).click()
        expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
        page.get_by_label("Action").select_option("server.access")
        expect(page).to_have_url(re.compile(r"action=server\.access"))
        first = page.locator("#audit-results tbody tr").first
        expect(first).to_contain_text(ADMIN)
        expect(first).to_contain_text(BEN)
    finally:
        hub.stop_server(BEN)
