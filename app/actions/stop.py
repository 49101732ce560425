"""Stopping a server: the one primitive (`ServerStopper.stop_and_wait`) stop-all, the culler,
lockdown enforcement and the console use, and the stop intents it leaves for the session
recorder.

Stop intents: who asked for a server to stop and why, kept in the database. Whichever replica
asks the hub to stop a server writes an intent first (`ServerStopper.stop_recorded`);
whichever replica records the stop (the session recorder runs on the leader only) reads it
back (`take_intent`) and closes the session with that reason and `stopped_by`. An intent is
used once and expires after `INTENT_TTL` seconds (a stop the hub never carried out must not be
blamed on an old request).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import StopIntent
from hubkeeper.errors import Conflict, HubkeeperError, NotFound
from hubkeeper.kit.actors import Actor, server_label, target_of
from hubkeeper.kit.clock import as_utc, utcnow

if TYPE_CHECKING:
    from hubkeeper.actions.audit import AuditTrail
    from hubkeeper.history.recorder import SessionRecorder
    from hubkeeper.hub.client import HubClient

log = logging.getLogger(__name__)

INTENT_TTL = 300.0  # s an announced stop stays attributable to whoever asked
STOP_POLL_S = 0.5  # s between looks at a server the hub is still stopping (a 202)
# The hub's answers that mean "nothing left to stop": the server went meanwhile.
GONE_CODES = ("already_stopped", "server_not_found", "user_not_found")


class StopReason(StrEnum):
    """Why a server is stopped: the session's `stop_reason` (values as stored)."""

    ADMIN = "admin"  # a person: the console, the API, stop-all
    CULLED = "culled"
    LOCKDOWN = "lockdown"


StopResult = Literal["stopped", "stopping", "gone"]


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


class ServerStopper:
    """Stops users' servers for whoever asks (console, stop-all jobs, culler, lockdown
    enforcement), holding exactly what a stop needs: the hub client, the database for the
    stop intents, the session recorder (None in the CLI, which records no sessions) and the
    audit trail. Built once per process (`create_app`, `cli_state`): `hk.stopper`."""

    def __init__(
        self,
        hub: HubClient,
        engine: Engine,
        trail: AuditTrail,
        history: SessionRecorder | None = None,
    ) -> None:
        self.hub = hub
        self.engine = engine
        self.trail = trail  # stop-all and the enforcement write their own records here too
        self.history = history

    async def stop_recorded(
        self,
        who: Actor,
        user: str,
        server: str,
        *,
        reason: StopReason | str,
        bulk: bool = False,
        client: HubClient | None = None,
    ) -> str:
        """Ask the hub to stop a server ("stopped" | "stopping"), after recording who asked
        and why (a `StopReason`) where every replica's recorder finds it.

        `bulk=True` when this stop is one of many (stop-all, lockdown enforcement, a cull
        pass): it then uses the hub client's bulk budget and never delays interactive
        requests. `client`: a view of the hub client with a budget of its own
        (`HubClient.budget`) to use instead.

        Raises what `HubClient.stop_server` raises (HubkeeperError family; 503
        hub_unavailable); the intent is withdrawn then. A database error writing the intent
        is logged and the stop goes ahead (the session then closes as "unknown" on other
        replicas).
        """
        history = self.history
        if history is not None:
            history.expect_stop(user, server, reason=str(reason), by=who.name)
        intent_id: int | None = None
        try:
            intent_id = await asyncio.to_thread(
                write_intent, self.engine, user, server, str(reason), who.name
            )
        except Exception as exc:
            log.warning("could not store the stop intent for %s/%s: %s", user, server, exc)
        try:
            hub = client or (self.hub.bulk if bulk else self.hub)
            return await hub.stop_server(user, server)
        except HubkeeperError:
            if history is not None:
                history.forget_stop(user, server)
            if intent_id is not None:
                try:
                    await asyncio.to_thread(drop_intent, self.engine, intent_id)
                except Exception as exc:
                    log.warning("could not withdraw stop intent %s: %s", intent_id, exc)
            raise

    async def stop_and_wait(
        self,
        who: Actor,
        user: str,
        server: str,
        *,
        reason: StopReason,
        client: HubClient,
        wait_s: float | None = None,
        audit_detail: str | None = None,
    ) -> StopResult:
        """Stop one server: the intent, the hub's stop, the wait, the audit record.

        `client`: the hub client (or budget view, `HubClient.bulk` for one stop of many) to
        use. `wait_s`: follow a stop the hub answered 202 for until the server is gone, at
        most that many seconds (then 504 `stop_timeout`); None answers "stopping" at once. A
        server that went meanwhile (already stopped, or its user or server deleted) is
        "gone": nothing was done. `audit_detail`: write `server.stop` (ok, or failed with the
        error) with this detail; None when the caller records the outcome itself (the
        culler's batched cull records).

        Raises the HubkeeperError family (503 `hub_unavailable`, 504 `stop_timeout`, ...),
        after auditing it when `audit_detail` is given.
        """
        target = target_of(user, server)
        try:
            try:
                result = await self.stop_recorded(who, user, server, reason=reason, client=client)
            except (Conflict, NotFound) as exc:
                if exc.code not in GONE_CODES:
                    raise
                return "gone"
            if result == "stopping" and wait_s is not None:
                await wait_stopped(client, user, server, wait_s)
                result = "stopped"
        except HubkeeperError as exc:
            if audit_detail is not None:
                await self.trail.write(
                    who,
                    "server.stop",
                    target,
                    outcome="failed",
                    detail=audit_detail,
                    error=exc.detail,
                )
            raise
        if audit_detail is not None:
            detail = "; ".join(part for part in (audit_detail, f"hub: {result}") if part)
            await self.trail.write(who, "server.stop", target, detail=detail)
        return "stopped" if result == "stopped" else "stopping"


async def wait_stopped(hub: HubClient, user: str, server: str, limit_s: float) -> None:
    """Follow a slow stop (the hub answered 202; it has no stop progress stream) until the
    server is gone; 504 `stop_timeout` after `limit_s` seconds. A user deleted meanwhile
    counts as stopped."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            current = await hub.get_user(user)
        except NotFound:
            return
        found = current.servers.get(server)
        if found is None or found.status == "stopped":
            return
        if time.monotonic() >= deadline:
            raise HubkeeperError(
                f"{server_label(user, server)} was still stopping after {limit_s:g} s",
                code="stop_timeout",
                status_code=504,
            )
        await asyncio.sleep(STOP_POLL_S)
