"""A lockdown for the length of a `with` block, set and lifted through the API as an admin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def locked(admin: Any, reason: str) -> Iterator[None]:
    """Lock the hub (servers keep running) as `admin` (an httpx client at `.client`, the
    service URL at `.base`, the session's `.csrf`); lift it afterwards, whatever happened."""
    headers = {"X-CSRF-Token": admin.csrf}
    response = admin.client.post(
        admin.base + "api/v1/lockdown",
        json={"reason": reason, "stop_servers": False},
        headers=headers,
    )
    assert response.status_code in (200, 201), response.text
    try:
        yield
    finally:
        admin.client.delete(admin.base + "api/v1/lockdown", headers=headers)
