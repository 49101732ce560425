"""Record and read the audit trail. Every action, by a person or the system, and its outcome."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import AuditEvent
from hubkeeper.db.paging import fetch_page

if TYPE_CHECKING:
    from hubkeeper.kit.actors import Actor
    from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)


def record(
    engine: Engine,
    *,
    actor: str,
    action: str,
    target: str = "",
    outcome: str = "ok",
    detail: str = "",
    error: str = "",
    via: str = "web",
) -> AuditEvent:
    """Write one audit event now (its own transaction, so a failed action is still kept)."""
    event = AuditEvent(
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
        error=error,
        via=via,
    )
    with session_scope(engine) as session:
        session.add(event)
        session.flush()
        session.refresh(event)
    return event


async def audit(
    hk: HubkeeperState,
    who: Actor,
    action: str,
    target: str,
    *,
    outcome: str = "ok",
    detail: str = "",
    error: str = "",
) -> None:
    """Write one audit event off the event loop; a database failure is logged, not raised."""
    try:
        await asyncio.to_thread(
            record,
            hk.engine,
            actor=who.name,
            action=action,
            target=target,
            outcome=outcome,
            detail=detail,
            error=error,
            via=who.via,
        )
    except Exception:
        log.exception("could not write audit event %s %s by %s", action, target, who.name)


def search(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[AuditEvent], int]:
    """Newest first, filtered; returns the page and the total that matched."""
    query = select(AuditEvent)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    if target:
        query = query.where(col(AuditEvent.target).contains(target))
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    return fetch_page(
        session,
        query,
        col(AuditEvent.at).desc(),
        col(AuditEvent.id).desc(),
        offset=offset,
        limit=limit,
    )


def about_user(session: Session, user: str, *, limit: int = 50) -> tuple[list[AuditEvent], int]:
    """Events whose target is `user`: their default server (`user`), a named one
    (`user/server`) or an exemption (`user:user`); newest first. Exact, unlike `search`'s
    substring `target` (user names never hold "/")."""
    escaped = user.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(AuditEvent).where(
        or_(
            col(AuditEvent.target) == user,
            col(AuditEvent.target) == f"user:{user}",
            col(AuditEvent.target).like(f"{escaped}/%", escape="\\"),
        )
    )
    return fetch_page(
        session,
        query,
        col(AuditEvent.at).desc(),
        col(AuditEvent.id).desc(),
        offset=0,
        limit=limit,
    )
