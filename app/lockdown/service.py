"""Lock the hub (no server may start), lift it, and read its history; every change audited.

The database is the truth, so the CLI and other replicas agree: each Hubkeeper keeps a copy
in memory (`app.lockdown.state`), loaded at start-up, replaced on every change it makes, and
re-read every `REFRESH_SECONDS` by `watch()` to pick up changes made elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from hubkeeper.actions.audit import audit
from hubkeeper.actions.lockdown_state import OPEN, LockdownState, current, remember
from hubkeeper.actions.stop import StopReason
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import Lockdown
from hubkeeper.db.outage import summary
from hubkeeper.db.paging import fetch_page
from hubkeeper.errors import Conflict, HubkeeperError
from hubkeeper.jobs.store import Job
from hubkeeper.kit.actors import Actor
from hubkeeper.kit.clock import as_utc, utcnow
from hubkeeper.outbox.events import Event
from hubkeeper.outbox.record import Outbox

if TYPE_CHECKING:
    from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
REASON_MAX = 500


def _state_of(row: Lockdown | None) -> LockdownState:
    if row is None:
        return OPEN
    return LockdownState(
        active=True,
        reason=row.reason,
        since=as_utc(row.started_at),
        by=row.started_by,
        id=row.id,
        stop_servers=row.stop_servers,
    )


def _active(session: Session) -> Lockdown | None:
    query = (
        select(Lockdown)
        .where(col(Lockdown.ended_at).is_(None))
        .order_by(col(Lockdown.started_at).desc(), col(Lockdown.id).desc())
        .limit(1)
    )
    return session.exec(query).first()


def load(engine: Engine) -> LockdownState:
    """The active lockdown in the database, if any (blocking: call it in a thread)."""
    with session_scope(engine) as session:
        return _state_of(_active(session))


async def refresh(hk: HubkeeperState) -> LockdownState:
    """Re-read the state from the database into memory; on a database error keep the old one."""
    try:
        state = await asyncio.to_thread(load, hk.engine)
    except Exception as exc:
        log.warning(
            "could not read the lockdown state; keeping the last known one: %s", summary(exc)
        )
        return current(hk)
    remember(hk, state)
    return state


async def watch(hk: HubkeeperState, interval: float = REFRESH_SECONDS) -> None:
    """Lifespan task: pick up lockdowns set by the CLI or another replica. Never dies."""
    while True:
        await asyncio.sleep(interval)
        await refresh(hk)


def _insert(engine: Engine, who: str, reason: str, stop_servers: bool) -> LockdownState:
    """Insert the active row; the database's unique index on the active row decides a race.

    No check-then-insert: two locks at the same instant (two admins, two replicas) both try
    the insert and exactly one commits; the other gets the IntegrityError → `_AlreadyLocked`.
    """
    try:
        with session_scope(engine) as session:
            row = Lockdown(reason=reason, started_by=who, stop_servers=stop_servers)
            session.add(row)
            session.flush()
            session.refresh(row)
            return _state_of(row)
    except IntegrityError:
        with session_scope(engine) as session:
            raise _AlreadyLocked(_state_of(_active(session))) from None


def _end(engine: Engine, who: str) -> Lockdown | None:
    """End every active row in one conditional UPDATE; None when there was none.

    Ending all (not "the" active one) makes a lift always unlock; the `WHERE ended_at IS
    NULL` makes two lifts at once end it once: the second finds nothing left (→ 409).
    """
    with session_scope(engine) as session:
        ended = session.exec(
            update(Lockdown)
            .where(col(Lockdown.ended_at).is_(None))
            .values(ended_at=utcnow(), ended_by=who)
            .returning(col(Lockdown.id))
        ).all()
        if not ended:
            return None
        newest = session.exec(
            select(Lockdown)
            .where(col(Lockdown.id).in_([row[0] for row in ended]))
            .order_by(col(Lockdown.started_at).desc(), col(Lockdown.id).desc())
            .limit(1)
        ).one()
        session.expunge(newest)
        return newest


class _AlreadyLocked(Exception):
    def __init__(self, state: LockdownState) -> None:
        self.state = state


def already_locked(state: LockdownState) -> Conflict:
    return Conflict(
        f"The hub is already locked (since {state.since:%Y-%m-%d %H:%M} UTC by {state.by}: "
        f"{state.reason})"
        if state.since
        else "The hub is already locked",
        code="already_locked",
    )


@dataclass
class LockResult:
    state: LockdownState
    job: Job | None
    stop_error: str | None = None


async def lock(
    hk: HubkeeperState,
    who: Actor,
    reason: str,
    *,
    stop_servers: bool,
    outbox: Outbox | None = None,
) -> LockResult:
    """Lock first (so nothing restarts meanwhile), then stop the running servers if asked.

    `outbox`: where the `lockdown.on` notification is recorded (once per lockdown row).
    Raises 409 already_locked, 503 database_unavailable."""
    reason = reason.strip()
    try:
        state = await asyncio.to_thread(_insert, hk.engine, who.name, reason, stop_servers)
    except _AlreadyLocked as exc:
        remember(hk, exc.state)
        error = already_locked(exc.state)
        await audit(hk, who, "lockdown.on", "hub", outcome="failed", error=error.detail)
        raise error from None
    remember(hk, state)
    await audit(
        hk,
        who,
        "lockdown.on",
        "hub",
        detail=f"reason: {reason}; stop servers: {'yes' if stop_servers else 'no'}",
    )
    if outbox is not None:
        await outbox.emit(
            Event(
                "lockdown.on",
                key=f"lockdown.on:{state.id}",
                text=f"Hub locked by {who.name}: {reason}",
                reason=reason,
            )
        )
    if not stop_servers:
        return LockResult(state, None)
    try:
        job = await hk.jobs.start_stop_all(
            who, f"lockdown: {reason}", stop_reason=StopReason.LOCKDOWN
        )
    except HubkeeperError as exc:
        # The lock holds; only the stopping failed (audited by the job as servers.stop_all).
        log.warning("lockdown set, but its stop-all could not start: %s", exc.detail)
        return LockResult(state, None, stop_error=exc.detail)
    return LockResult(state, job)


async def unlock(hk: HubkeeperState, who: Actor, *, outbox: Outbox | None = None) -> Lockdown:
    """Lift the active lockdown; 409 not_locked when there is none. `outbox`: where the
    `lockdown.off` notification is recorded (once per lockdown row)."""
    ended = await asyncio.to_thread(_end, hk.engine, who.name)
    if ended is None:
        remember(hk, OPEN)
        error = Conflict("The hub is not locked", code="not_locked")
        await audit(hk, who, "lockdown.off", "hub", outcome="failed", error=error.detail)
        raise error
    remember(hk, OPEN)
    await audit(hk, who, "lockdown.off", "hub", detail=f"lifted lockdown: {ended.reason}")
    if outbox is not None:
        await outbox.emit(
            Event(
                "lockdown.off",
                key=f"lockdown.off:{ended.id}",
                text=f"Hub unlocked by {who.name}; servers may start again (it was locked for: "
                f"{ended.reason})",
                reason=ended.reason,
            )
        )
    return ended


def history(engine: Engine, *, offset: int = 0, limit: int = 50) -> tuple[list[Lockdown], int]:
    """Every lockdown, newest first (blocking: call it in a thread)."""
    with session_scope(engine) as session:
        rows, total = fetch_page(
            session,
            select(Lockdown),
            col(Lockdown.started_at).desc(),
            col(Lockdown.id).desc(),
            offset=offset,
            limit=limit,
        )
        for row in rows:
            session.expunge(row)
        return rows, total
