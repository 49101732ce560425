"""The events Hubkeeper notifies about (the contract's "Notifications")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from hubkeeper.db.models import Notification
from hubkeeper.kit.clock import as_utc, iso_utc, utcnow

EventName = Literal[
    "cull.warning",
    "cull.done",
    "lockdown.on",
    "lockdown.off",
    "stop_all.done",
    "spawn.failed",
    "quota.warning",
    "quota.exceeded",
]
EVENTS: tuple[str, ...] = EventName.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Event:
    """One notification.

    `key` makes it happen once: replicas (or passes) that record the same key record it once.
    It names the event and what it is about, e.g. `cull.warning:ann/gpu:<server started>`.
    `text` is the sentence a chat webhook shows as-is; `link` is the payload's `url` (for
    `cull.warning`, the user's keep page).
    """

    event: EventName
    key: str
    text: str
    user: str | None = None
    server: str | None = None
    reason: str | None = None
    link: str | None = None
    at: datetime = field(default_factory=utcnow)


def server_label(user: str | None, server: str | None) -> str:
    """`ann's server` or `ann's server "gpu"`, for the texts."""
    if not user:
        return "a server"
    return f"{user}'s server" + (f' "{server}"' if server else "")


def payload(note: Notification) -> dict[str, str | None]:
    """The JSON body POSTed to each webhook (the contract's `event, at, user, server, reason,
    text, url`); chat webhooks display `text` as-is."""
    return {
        "event": note.event,
        "at": iso_utc(as_utc(note.at)),
        "user": note.user,
        "server": note.server,
        "reason": note.reason,
        "text": note.text,
        "url": note.link,
    }
