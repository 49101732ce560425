"""Stop intents: who asked for a server to stop and why, kept in the database.

Whichever replica asks the hub to stop a server writes an intent first (`stop_recorded`);
whichever replica records the stop (the session recorder runs on the leader only) reads it
back (`take_intent`) and closes the session with that reason and `stopped_by`. An intent is
used once and expires after `INTENT_TTL` seconds (a stop the hub never carried out must not be
blamed on an old request).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import StopIntent
from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.actors import Actor
from hubkeeper.kit.clock import as_utc, utcnow

if TYPE_CHECKING:
    from hubkeeper.hub.client import HubClient
    from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)

INTENT_TTL = 300.0  # s an announced stop stays attributable to whoever asked


def write_intent(engine: Engine, user: str, server: str, reason: str, by: str) -> int:
    """Store an intent (blocking); returns its id."""
    with session_scope(engine) as session:
        row = StopIntent(user=user, server=server, reason=reason, by=by[:255], at=utcnow())
        session.add(row)
        session.flush()
        return int(row.id or 0)


def drop_intent(engine: Engine, intent_id: int) -> None:
    """The stop was refused or failed: a later stop is not ours (blocking)."""
    with session_scope(engine) as session:
        session.exec(delete(StopIntent).where(col(StopIntent.id) == intent_id))


def take_intent(session: Session, user: str, server: str, at: datetime) -> tuple[str, str] | None:
    """The newest unexpired intent for this server as (reason, by), consumed; None if there
    is none. Runs inside the recorder's write transaction; also prunes expired intents."""
    oldest = as_utc(at) - timedelta(seconds=INTENT_TTL)
    session.exec(delete(StopIntent).where(col(StopIntent.at) < oldest))
    found = session.exec(
        select(StopIntent)
        .where(StopIntent.user == user, StopIntent.server == server)
        .order_by(col(StopIntent.at).desc(), col(StopIntent.id).desc())
    ).all()
    if not found:
        return None
    for row in found:
        session.delete(row)
    return found[0].reason, found[0].by


async def stop_recorded(
    hk: HubkeeperState,
    who: Actor,
    user: str,
    server: str,
    *,
    reason: str,
    bulk: bool = False,
    client: HubClient | None = None,
) -> str:
    """Ask the hub to stop a server ("stopped" | "stopping"), after recording who asked and
    why (reason: admin | culled | lockdown) where every replica's recorder finds it.

    `bulk=True` when this stop is one of many (stop-all, lockdown enforcement, a cull pass): it
    then uses the hub client's bulk budget and never delays interactive requests. `client`: a
    view of the hub client with a budget of its own (`HubClient.budget`) to use instead.

    Raises what `HubClient.stop_server` raises (HubkeeperError family; 503 hub_unavailable);
    the intent is withdrawn then. A database error writing the intent is logged and the stop
    goes ahead (the session then closes as "unknown" on other replicas).
    """
    if hk.history is not None:
        hk.history.expect_stop(user, server, reason=reason, by=who.name)
    intent_id: int | None = None
    try:
        intent_id = await asyncio.to_thread(write_intent, hk.engine, user, server, reason, who.name)
    except Exception as exc:
        log.warning("could not store the stop intent for %s/%s: %s", user, server, exc)
    try:
        hub = client or (hk.hub.bulk if bulk else hk.hub)
        return await hub.stop_server(user, server)
    except HubkeeperError:
        if hk.history is not None:
            hk.history.forget_stop(user, server)
        if intent_id is not None:
            try:
                await asyncio.to_thread(drop_intent, hk.engine, intent_id)
            except Exception as exc:
                log.warning("could not withdraw stop intent %s: %s", intent_id, exc)
        raise
