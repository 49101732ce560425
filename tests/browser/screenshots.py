"""`HUBKEEPER_TEST_SCREENSHOTS=1` saves pages to test-artifacts/<prefix>-<name>-<scheme>.png
(light and dark) so a person can look at them; otherwise this does nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SHOTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


def shot(page: Any, prefix: str, name: str) -> None:
    if not os.environ.get("HUBKEEPER_TEST_SCREENSHOTS"):
        return
    SHOTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.wait_for_timeout(300)  # let the colour transitions finish
        page.screenshot(path=str(SHOTS / f"{prefix}-{name}-{scheme}.png"), full_page=True)
    page.emulate_media(color_scheme="light")
