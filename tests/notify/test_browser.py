"""The Notifications page in real Chromium on a phone: deliveries with long texts, errors and
names stay on the screen (no sideways scroll) at 360 and 414 px, and the event filter works."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from hubkeeper.outbox.events import Event
from tests.browsing import shot, sign_in
from tests.web.test_phone_and_keyboard import no_sideways_scroll

pytestmark = pytest.mark.browser

ADMIN = "ntb-admin"


@pytest.fixture(scope="module")
def seeded(hub, hubkeeper_server) -> None:
    hub.create_users([ADMIN], admin=True)
    outbox = hubkeeper_server.app.state.hk.outbox
    urls = outbox.urls
    # deliveries to an address nobody answers (they stay `retrying`); a long URL secret
    outbox.urls = ("http://127.0.0.1:9/services/T000/B000/" + "x" * 80,)
    try:
        long_name = "ntb-" + "very-long-user-name-" * 4
        outbox.record(
            Event(
                "quota.exceeded",
                key="ntb:1",
                text=f"{long_name} has used up their server-hours for 2026-12: 10.5 of 10 "
                "hours (resets 2027-01-01 00:00 UTC)",
                user=long_name,
                reason="10.5 of 10 server-hours",
            )
        )
        outbox.record(
            Event(
                "spawn.failed",
                key="ntb:2",
                text='ntb-ann\'s server "gpu" failed to start: ' + "the hub answered 500 " * 8,
                user="ntb-ann",
                server="gpu",
            )
        )
    finally:
        outbox.urls = urls


def test_the_notifications_page_fits_a_phone_and_filters(page: Any, hub, hubkeeper_server, seeded):
    sign_in(page, hub, hubkeeper_server, ADMIN)
    url = hubkeeper_server.proxied_url + "notifications"
    for width in (360, 414):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        expect(page.locator(".notification-text").first).to_be_visible()
        no_sideways_scroll(page)
        shot(page, f"w{width}", "notifications")
    page.get_by_label("Event").select_option("spawn.failed")
    expect(page).to_have_url(url + "?event=spawn.failed")
    texts = page.locator("tbody td[data-label=Event] code")
    expect(texts.first).to_have_text("spawn.failed")
    assert set(texts.all_inner_texts()) == {"spawn.failed"}
