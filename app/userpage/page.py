"""`GET users/{name}`: one user's page — their servers (state, the culler's outlook, actions
for admins, a link to each server's log for admins), sessions, culls, exemptions that apply to
them, and the audit entries where they are the target.

Admins and managers (managers read-only: no actions, no log links); a signed-in hub user
without a Hubkeeper role sees their own page only, read-only, without the audit entries and
links to pages they cannot open (the contract's "their own page"). The servers come from the
directory (a user it does not know yet is read from the hub, 404 if none); the rest from
Hubkeeper's database. `?part=servers` answers the servers region alone (it refreshes itself
after an action and every few seconds).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hubkeeper.actions.audit import about_user
from hubkeeper.audit import names as _names  # noqa: F401 - the action_name filter
from hubkeeper.auth.dependencies import check_csrf, require_reader
from hubkeeper.auth.principal import Principal
from hubkeeper.console import views as _views  # noqa: F401 - figures, human_bytes, percent
from hubkeeper.console.api import find_user
from hubkeeper.culler import exemptions, keeps, records
from hubkeeper.culler import service as culler
from hubkeeper.culler.policy import Outlook, outlook
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import AuditEvent, CullEvent, CullExemption, ServerSession
from hubkeeper.deps import StateDep
from hubkeeper.directory.rows import ServerRow, rows_of
from hubkeeper.errors import Forbidden, HubkeeperError
from hubkeeper.history import service as history
from hubkeeper.hub.models import HubUser
from hubkeeper.kit.clock import utcnow
from hubkeeper.kit.window import BadInput
from hubkeeper.quotas.api import month_use
from hubkeeper.state import HubkeeperState
from hubkeeper.web.params import UserName
from hubkeeper.web.strict import refuse_unknown
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)

SHOWN = 20  # rows per table; each links to its full list
PARTS = ("servers",)


@dataclass(frozen=True)
class ServerView:
    row: ServerRow
    outlook: Outlook
    keeps_left: int | None = None  # keeps left in this start (None: not known)


def _exempt_reason(rows: list[CullExemption], user: HubUser, now: Any) -> str | None:
    for row in rows:
        if exemptions.state_of(row, now) != "active":
            continue
        if row.user == user.name:
            return row.reason
        if row.group and row.group in user.groups:
            return f"{row.reason} (group {row.group})"
    return None


def _applying(rows: list[CullExemption], user: HubUser) -> list[CullExemption]:
    """Exemptions naming the user or one of their groups (active, expired or deleted)."""
    return [r for r in rows if r.user == user.name or (r.group and r.group in user.groups)]


async def _servers(
    hk: HubkeeperState, user: HubUser, applying: list[CullExemption]
) -> tuple[list[ServerView], str]:
    """The user's servers with the culler's outlook for each; the note says why there is no
    outlook (the settings could not be read)."""
    rows = hk.directory.rows_for(user.name) or rows_of(user, hk.settings.hub_base_url or "/")
    now = utcnow()
    try:
        cfg = (await culler.current_settings(hk.engine, hk.settings)).settings
    except HubkeeperError as exc:  # the database is down: the servers still show
        return [ServerView(r, Outlook("none", "unknown")) for r in rows], exc.detail
    reason = _exempt_reason(applying, user, now)
    given = await asyncio.to_thread(keeps.for_user, hk.engine, user.name)

    def keep_of(server: str) -> keeps.KeepState | None:
        found = user.servers.get(server)
        return keeps.of(given, user.name, found) if found is not None else None

    views = []
    for r in rows:
        keep = keep_of(r.server)
        until = keep.until if keep else None
        seen = outlook(cfg, user, r.server, exempt=reason, now=now, kept_until=until)
        left = max(0, cfg.max_keeps - (keep.count if keep else 0))
        views.append(ServerView(r, seen, keeps_left=left))
    return views, ""


def _exemptions(hk: HubkeeperState, user: HubUser) -> list[CullExemption]:
    """Exemptions naming the user or their groups (blocking: run in a thread)."""
    every, _ = exemptions.listing(hk.engine, include_deleted=True, limit=500)
    return _applying(every, user)


def _records(hk: HubkeeperState, user: HubUser, *, audit: bool) -> dict[str, Any]:
    """The user's sessions, culls and (for readers) audit entries (blocking: a thread)."""
    sessions: list[ServerSession]
    culls: list[CullEvent]
    events: list[AuditEvent] = []
    events_total = 0
    sessions, sessions_total = history.list_sessions(hk.engine, user=user.name, limit=SHOWN)
    culls, culls_total = records.search(hk.engine, user=user.name, limit=SHOWN)
    if not audit:
        return {
            "sessions": sessions,
            "sessions_total": sessions_total,
            "culls": culls,
            "culls_total": culls_total,
            "events": events,
            "events_total": events_total,
        }
    with session_scope(hk.engine) as session:
        events, events_total = about_user(session, user.name, limit=SHOWN)
        for event in events:
            session.expunge(event)
    return {
        "sessions": sessions,
        "sessions_total": sessions_total,
        "culls": culls,
        "culls_total": culls_total,
        "events": events,
        "events_total": events_total,
    }


async def _viewer(request: Request, name: str) -> Principal | None:
    """Admins and managers may see any user's page; a signed-in hub user with no Hubkeeper
    role their own (None). Everyone else is refused as on every reader page."""
    try:
        return await require_reader(request)
    except Forbidden as exc:
        own = getattr(request.state, "signed_in_as", None)  # set for browser sessions only
        if exc.code != "no_role" or own != name:
            raise
    await check_csrf(request, request.state.csrf_token)  # the region's polls are fetches
    return None


@router.get("/users/{name}")
async def user_page(name: UserName, request: Request, hk: StateDep) -> Response:
    """One user's servers, sessions, culls, exemptions and audit entries."""
    viewer = await _viewer(request, name)
    refuse_unknown(request.query_params, {"part"})
    part = request.query_params.get("part", "")
    if part and part not in PARTS:
        raise BadInput(f"part must be one of: {', '.join(PARTS)}")
    user = await find_user(hk, name)
    applying = await asyncio.to_thread(_exemptions, hk, user)
    servers, outlook_note = await _servers(hk, user, applying)
    context: dict[str, Any] = {
        "user": user,
        "servers": servers,
        "outlook_note": outlook_note,
        "resources": hk.resources,
    }
    if part == "servers":  # the region's poll: the servers only
        return render(request, "console/_user_servers.html", context)
    now = utcnow()
    found = await asyncio.to_thread(_records, hk, user, audit=viewer is not None)
    quota = await month_use(hk, user.name, list(user.groups))
    context.update(
        found,
        quota=quota,
        exemptions=applying,
        exemption_states={r.id: exemptions.state_of(r, now) for r in applying},
        counts=hk.directory.counts(),
        active_nav="users",
        # their own page: no audit trail (a reader's), no links to readers' pages
        own_page=viewer is None,
    )
    return render(request, "console/user.html", context)
