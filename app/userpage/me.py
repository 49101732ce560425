"""`GET me`: the signed-in person's own servers with the culler's outlook ("stops at 14:05 UTC
for idleness unless you use it", "kept until 16:05 UTC", "no culling planned") and a **Keep
running** button per running server (`POST me/server/keep`, `me/servers/{server}/keep`: HTMX
with the CSRF token, the server's card comes back in place with the keeps left).

Every signed-in hub user (role `user` included; admins and managers for their own servers):
it shows only the caller's servers, from one read of the hub for that user and the pass's own
decision (`Culler.my_servers`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hubkeeper.culler.deps import CullerDep
from hubkeeper.culler.service import Culler
from hubkeeper.deps import CurrentUser
from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.clock import parse_iso, utcnow
from hubkeeper.web.params import ServerName
from hubkeeper.web.strict import refuse_unknown
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)


def _when(at: datetime, now: datetime) -> str:
    """HH:MM UTC today, else the date too."""
    return f"{at:%H:%M} UTC" if at.date() == now.date() else f"{at:%Y-%m-%d %H:%M} UTC"


def outlook_text(item: dict[str, Any], now: datetime, *, enabled: bool) -> str:
    """One server's outlook in words, for its owner (UTC times)."""
    if item["status"] == "stopped":
        return "not running"
    if item["status"] == "pending":
        return "starting or stopping"
    at = parse_iso(item.get("cull_at"))
    kept = parse_iso(item.get("keep_until"))
    off = "" if enabled else " (the culler is off now)"
    if at is None:
        reason = str(item.get("reason") or "")
        why = f" ({reason})" if reason.startswith(("exempt", "busy", "named")) else ""
        return "no culling planned" + why
    when = "at the next pass" if at <= now else f"at {_when(at, now)}"
    if item.get("cull_reason") == "max_age":
        text = f"stops {when}: its maximum age (keeping cannot postpone this)"
    elif kept is not None and kept >= at:
        text = f"kept until {_when(kept, now)}; then stops for idleness unless you use it"
    else:
        text = f"stops {when} for idleness unless you use it"
    return text + off


async def _views(culler: Culler, user: str) -> tuple[list[dict[str, Any]], str]:
    """The caller's servers, each with `text` (its outlook); the note says why none show."""
    now = utcnow()
    try:
        items = await culler.my_servers(user, now=now)
    except HubkeeperError as exc:
        return [], exc.detail
    for item in items:
        item["text"] = outlook_text(item, now, enabled=bool(item.get("enabled", True)))
    return items, ""


@router.get("/me")
async def my_page(request: Request, who: CurrentUser, culler: CullerDep) -> Response:
    """The caller's own servers, their outlook and a Keep running button."""
    refuse_unknown(request.query_params, set())
    servers, note = await _views(culler, who.name)
    cfg = (await culler.current()).settings
    context = {"servers": servers, "note": note, "cfg": cfg, "active_nav": "me"}
    return render(request, "me/me.html", context)


async def _keep(request: Request, who: CurrentUser, culler: Culler, server: str) -> Response:
    message, failed = "", False
    try:
        kept = await culler.keep(who, who.name, server)
        message = f"Kept: {kept['keeps_left']} keep(s) left."
    except HubkeeperError as exc:
        message, failed = exc.detail, True
    servers, note = await _views(culler, who.name)
    found = next((s for s in servers if s["name"] == server), None)
    context = {"server": found, "name": server, "message": message, "failed": failed}
    context["note"] = note
    return render(request, "me/_server.html", context)


@router.post("/me/server/keep")
async def keep_default(request: Request, who: CurrentUser, culler: CullerDep) -> Response:
    """Keep the caller's default server running; its card comes back with the result."""
    return await _keep(request, who, culler, "")


@router.post("/me/servers/{server}/keep")
async def keep_named(
    request: Request, server: ServerName, who: CurrentUser, culler: CullerDep
) -> Response:
    """Keep one of the caller's named servers running; its card comes back."""
    return await _keep(request, who, culler, server)
