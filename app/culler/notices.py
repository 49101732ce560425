"""What the culler tells people through the outbox (hubkeeper.outbox): `cull.warning` before
a server's idle cull, `cull.done` after each server cull.

A warning goes out during a real (not dry-run) server pass for a server whose idle cull is
due within `warn_before_s` seconds. Its key names the server start, the keeps given in it and
the due minute, so it is recorded once per due time whatever the number of passes and
replicas; a keep (or use) that moves the cull later warrants a new warning when the new time
comes near.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from hubkeeper.config import Settings
from hubkeeper.culler.decide import Cull, Verdict
from hubkeeper.culler.keeps import KeepState, start_key
from hubkeeper.hub.models import HubServer
from hubkeeper.kit.clock import as_utc
from hubkeeper.outbox.events import Event, server_label


def own_page_url(settings: Settings) -> str:
    """A user's own page (`<prefix>me`) as a browser reaches it: the hub's public origin (when
    known) + the service prefix; relative to the hub's origin otherwise."""
    parts = urlsplit(settings.browser_hub_url)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return origin + settings.service_prefix + "me"


@dataclass(frozen=True)
class Due:
    """A server the pass kept, and its verdict (for warnings)."""

    user: str
    server: HubServer
    verdict: Verdict
    keep: KeepState | None


def warning_for(
    due: Due, *, now: datetime, warn_before_s: int, max_age_s: int, link: str
) -> Event | None:
    """The `cull.warning` for a kept server whose idle cull is due within `warn_before_s`
    seconds of `now` (UTC); None when it is not (or max age comes first: not warned)."""
    at = due.verdict.idle_due()
    if at is None or not (now < at <= now + timedelta(seconds=warn_before_s)):
        return None
    started = due.server.started
    if max_age_s and started is not None and as_utc(started) + timedelta(seconds=max_age_s) <= at:
        return None
    count = due.keep.count if due.keep else 0
    name = due.server.name
    key = f"cull.warning:{due.user}/{name}:{start_key(due.server)}:k{count}:{at:%Y-%m-%dT%H:%M}"
    text = (
        f"{server_label(due.user, name)} stops at {at:%H:%M} UTC for idleness unless it is "
        f"used or kept: {link}"
    )
    return Event("cull.warning", key, text, user=due.user, server=name, reason="idle", link=link)


def done_for(cull: Cull, event_id: int | None, now: datetime) -> Event:
    """The `cull.done` for a server the pass stopped (keyed by its cull record's id)."""
    label = server_label(cull.user, cull.server)
    if cull.reason == "max_age":
        text = f"Stopped {label} at its maximum age"
    else:
        minutes = round((cull.inactive_s or 0) / 60)
        text = f"Stopped {label} after {minutes} min idle"
    key = (
        f"cull.done:{event_id}"
        if event_id is not None
        else f"cull.done:{cull.user}/{cull.server}:{now.isoformat()}"
    )
    return Event("cull.done", key, text, user=cull.user, server=cull.server, reason=cull.reason)
