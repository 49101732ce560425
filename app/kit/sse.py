"""Server-sent events: one way to write an event, and the headers every stream sends."""

from __future__ import annotations

import json
from typing import Any

SSE_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}


def sse(data: dict[str, Any], event: str | None = None, event_id: int | None = None) -> str:
    """One event: optional `event:` and `id:` lines, then `data:` as JSON."""
    head = f"event: {event}\n" if event else ""
    if event_id is not None:
        head += f"id: {event_id}\n"
    return f"{head}data: {json.dumps(data)}\n\n"


def reconnect_event() -> str:
    """The last event of a stream that ends because Hubkeeper is shutting down: the page's
    EventSource reconnects by itself (to this process's successor)."""
    return sse({"message": "Hubkeeper is restarting; reconnect"}, event="reconnect")
