"""Helpers for browser tests (`page` fixture, tests/conftest.py): signing in through the hub,
and screenshots for a person to look at."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

SHOTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


def sign_in(page: Any, hub: Any, server: Any, user: str) -> None:
    """Open Hubkeeper through the hub's proxy; the hub asks us to log in; OAuth brings us back."""
    page.goto(server.proxied_url)
    expect(page).to_have_url(re.compile(r"/hub/login"))
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill("any-password")
    page.locator("#login_submit").click()
    expect(page).to_have_url(re.compile(r"/services/hubkeeper/users"), timeout=20_000)
    page.wait_for_load_state()  # common.js (deferred) is in place: shortcuts and dialogs work


def shot(page: Any, prefix: str, name: str) -> None:
    """`HUBKEEPER_TEST_SCREENSHOTS=1` saves the page to
    test-artifacts/<prefix>-<name>-<scheme>.png (light and dark); otherwise does nothing."""
    if not os.environ.get("HUBKEEPER_TEST_SCREENSHOTS"):
        return
    SHOTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.wait_for_timeout(300)  # let the colour transitions finish
        page.screenshot(path=str(SHOTS / f"{prefix}-{name}-{scheme}.png"), full_page=True)
    page.emulate_media(color_scheme="light")
