"""Record and read the audit trail. Every action, by a person or the system, and its outcome.

No action goes unrecorded when Hubkeeper's database is down:
- a person's action (web, api, cli) first checks that the trail can be written
  (`require_recordable`) and is refused with 503 `database_unavailable` when it cannot:
  nothing was done, so nothing is missing. Sign-in writes its record before the session.
- a record written after the fact (the outcome of an action under way when the database
  went away, the system's own actions: culler, lockdown enforcement, stop-all jobs) goes to
  the local spool (`hubkeeper.actions.spool`, fsynced JSON lines) and is written into the
  database, at most once by its event_id, by the next successful write or by
  `keep_spool_flushed` (every replica runs it) once the database answers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from hubkeeper.actions.spool import AuditSpool, spool_at
from hubkeeper.db.engine import database_ok, session_scope
from hubkeeper.db.models import AuditEvent
from hubkeeper.db.outage import is_unavailable, summary
from hubkeeper.db.paging import fetch_page
from hubkeeper.errors import DatabaseUnavailable
from hubkeeper.kit.clock import utcnow

if TYPE_CHECKING:
    from hubkeeper.kit.actors import Actor
    from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)

SPOOL_FLUSH_INTERVAL = 5.0  # s between tries to write spooled events while any are waiting
NOT_RECORDABLE = (
    "Hubkeeper's database is unreachable, so this action cannot be written to the audit "
    "trail; nothing was done. Try again once the database answers"
)


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
    at: datetime | None = None,
    event_id: str | None = None,
) -> AuditEvent:
    """Write one audit event now (its own transaction, so a failed action is still kept).

    Raises the database's error: callers that write before acting (sign-in) are refused."""
    event = AuditEvent(
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
        error=error,
        via=via,
        at=at or utcnow(),
        event_id=event_id or uuid.uuid4().hex,
    )
    with session_scope(engine) as session:
        session.add(event)
        session.flush()
        session.refresh(event)
    return event


def spool_of(hk: HubkeeperState) -> AuditSpool:
    return spool_at(hk.settings.audit_spool_path)


class AuditTrail:
    """Where audit events go: the database, and the local spool while it is unavailable.

    What the actions and the system's loops hold instead of the whole state; `audit(hk, ...)`
    is the same for callers that have the state at hand."""

    def __init__(self, engine: Engine, spool: AuditSpool) -> None:
        self.engine = engine
        self.spool = spool

    @classmethod
    def of(cls, hk: HubkeeperState) -> AuditTrail:
        """The trail of this Hubkeeper: its database and its spool file."""
        return cls(hk.engine, spool_of(hk))

    async def require_recordable(self, who: Actor) -> None:
        """Before a person's action: raises DatabaseUnavailable (503
        `database_unavailable`) unless the trail can be written now (the system's own actions
        go on, their records spooled)."""
        if who.via == "system":
            return
        if not await asyncio.to_thread(database_ok, self.engine):
            log.warning("refused %s's action: the database is unavailable", who.name)
            raise DatabaseUnavailable(NOT_RECORDABLE)

    async def write(
        self,
        who: Actor,
        action: str,
        target: str,
        *,
        outcome: str = "ok",
        detail: str = "",
        error: str = "",
    ) -> None:
        """Write one audit event off the event loop; never raises. While the database is
        unavailable the event is kept in the spool (fsynced) and written when it is back."""
        event: dict[str, Any] = {
            "event_id": uuid.uuid4().hex,
            "at": utcnow(),
            "actor": who.name,
            "action": action,
            "target": target,
            "outcome": outcome,
            "detail": detail,
            "error": error,
            "via": who.via,
        }
        spool = self.spool
        try:
            await asyncio.to_thread(record, self.engine, **event)
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("could not write audit event %s %s by %s", action, target, who.name)
                return
            try:
                await asyncio.to_thread(spool.append, event)
            except OSError:
                log.exception(
                    "LOST audit event %s %s by %s: no database and no spool",
                    action,
                    target,
                    who.name,
                )
                return
            log.warning(
                "database unavailable (%s): audit event %s %s by %s kept in %s",
                summary(exc),
                action,
                target,
                who.name,
                spool.path,
            )
            return
        if spool.pending():  # the database is back: write what it missed
            await self.flush()

    async def flush(self) -> int:
        """Write the spooled events into the database; how many, 0 while it is still
        unavailable. Never raises."""
        try:
            return await asyncio.to_thread(self.spool.drain, self.engine)
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("could not write the audit spool %s", self.spool.path)
            return 0


async def require_recordable(hk: HubkeeperState, who: Actor) -> None:
    """Before a person's action: 503 `database_unavailable` unless the audit trail can be
    written now (the system's own actions go on, their records spooled)."""
    await AuditTrail.of(hk).require_recordable(who)


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
    """Write one audit event off the event loop; never raises. While the database is
    unavailable the event is kept in the local spool (fsynced) and written when it is back."""
    await AuditTrail.of(hk).write(who, action, target, outcome=outcome, detail=detail, error=error)


async def flush_spool(hk: HubkeeperState) -> int:
    """Write the spooled events into the database; 0 while it is still unavailable."""
    return await AuditTrail.of(hk).flush()


async def keep_spool_flushed(hk: HubkeeperState, interval: float = SPOOL_FLUSH_INTERVAL) -> None:
    """Every replica, forever: write spooled events once the database answers (seconds)."""
    trail = AuditTrail.of(hk)
    while True:
        if await asyncio.to_thread(trail.spool.pending):
            await trail.flush()
        await asyncio.sleep(interval)


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
        # autoescape: `%`, `_` and the escape character itself match only themselves (a
        # target `a_c` must not find `abc`), on SQLite and PostgreSQL alike.
        query = query.where(col(AuditEvent.target).contains(target, autoescape=True))
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
