"""In real Chromium: the API docs page renders from local files under the CSP, and two tabs
signing in at once both arrive."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

USER = "gd-twotabs"


def test_api_docs_render_without_a_cdn(page: Any, hubkeeper_server: Any) -> None:
    blocked: list[str] = []
    outside: list[str] = []
    page.on(
        "console",
        lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.on(
        "request",
        lambda req: outside.append(req.url) if not req.url.startswith("http://127.0.0.1") else None,
    )
    page.goto(hubkeeper_server.proxied_url + "api/docs")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible(timeout=20_000)
    paths = [text.replace("\u200b", "") for text in operations.all_inner_texts()]
    assert "/api/v1/health" in paths and "/api/v1/users" in paths, paths
    expect(page.get_by_text("Hubkeeper", exact=False).first).to_be_visible()
    assert not blocked, blocked
    assert not outside, outside


def test_two_tabs_signing_in_at_once_both_arrive(
    page: Any, hub: Any, hubkeeper_server: Any
) -> None:
    hub.create_users([USER], admin=True)
    context = page.context
    # Log in to the hub itself (next=/hub/home: /hub/spawn would start a server).
    page.goto(hub.url + "/hub/login?next=%2Fhub%2Fhome")
    page.locator("#username_input").fill(USER)
    page.locator("#password_input").fill("any-password")
    page.locator("#login_submit").click()
    expect(page).to_have_url(re.compile(r"/hub/home"), timeout=20_000)

    # Both tabs start signing in before either comes back. Playwright cannot hold a redirect
    # inside a navigation, so each flow's first leg (`login` → 302 to the hub) is made with the
    # context's request client, which shares the browser's cookie jar: both state cookies are
    # in the browser before either tab goes on to the hub.
    second = context.new_page()
    held = []
    for target in ("audit", "history"):
        start = context.request.get(
            hubkeeper_server.proxied_url + f"login?next=/services/hubkeeper/{target}",
            max_redirects=0,
        )
        assert start.status == 302
        held.append(start.headers["location"])
    states = [c for c in context.cookies() if c["name"].startswith("hubkeeper-oauth-state")]
    assert len(states) == 2, states
    # The first tab finishes first (with one shared state cookie it would be refused).
    for tab, authorize, target in ((page, held[0], "audit"), (second, held[1], "history")):
        tab.goto(authorize)
        expect(tab).to_have_url(re.compile(rf"/services/hubkeeper/{target}"), timeout=20_000)
        expect(tab.locator("body")).not_to_contain_text("state mismatch")
    second.close()


def test_the_csv_download_link_works_with_the_session(
    page: Any, hub: Any, hubkeeper_server: Any
) -> None:
    """A download made by a link on Hubkeeper's own page is a read the CSRF rules let through."""
    hub.create_users(["gd-download"], admin=True)
    page.goto(hubkeeper_server.proxied_url + "history")
    expect(page).to_have_url(re.compile(r"/hub/login"))
    page.locator("#username_input").fill("gd-download")
    page.locator("#password_input").fill("any-password")
    page.locator("#login_submit").click()
    expect(page).to_have_url(re.compile(r"/services/hubkeeper/history"), timeout=20_000)
    with page.expect_download() as caught:
        page.get_by_role("link", name="Download CSV").click()
    download = caught.value
    path = download.path()
    assert download.failure() is None
    text = Path(path).read_text(encoding="utf-8")
    assert text.startswith("key,") or "sessions" in text.splitlines()[0], text[:200]


def test_authorize_in_the_api_docs_sends_the_token(page: Any, hub: Any, hubkeeper_server: Any):
    """The schema's security scheme works in Swagger UI: Authorize with a hub token, then
    "Try it out" on GET me answers 200 with the token's owner."""
    token = hub.user_token("admin")
    page.goto(hubkeeper_server.proxied_url + "api/docs")
    page.locator("button.authorize").first.click()
    dialog = page.locator(".modal-ux")
    # the `bearer` scheme's box (the `token` one's help mentions Bearer too: match its name)
    bearer = dialog.locator(".auth-container").filter(
        has=page.locator("h4 code", has_text=re.compile(r"^bearer$"))
    )
    bearer.locator("input").first.fill(token)
    bearer.locator("button.authorize").click()  # each scheme has its own form
    bearer.locator("button.btn-done").click()
    me = page.locator(".opblock").filter(has=page.locator('[data-path="/api/v1/me"]'))
    me.locator(".opblock-summary").first.click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()
    status = me.locator(".live-responses-table tbody .response-col_status").first
    expect(status).to_have_text(re.compile(r"^\s*200"), timeout=20_000)
    expect(me.locator(".live-responses-table .microlight").first).to_contain_text('"admin"')
