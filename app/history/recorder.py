"""Server sessions recorded from what the user directory sees change.

The directory calls `on_change(old, new)` for every change of a user (on the event loop, so
it only compares the two and queues a write); `run()` writes the queue every second in a
worker thread and, once the directory's first sweep is done, reconciles the database with
what runs now (sessions left open while Hubkeeper was down are closed as "unknown"; servers
started meanwhile get a session from their `started` time).

Stop reasons: "admin" / "lockdown" / "culled" when Hubkeeper stopped the server
(`hubkeeper.history.intents.stop_recorded` calls `expect_stop` and stores a stop intent in the
database just before the hub is asked, so the replica recording the stop finds it whichever
replica asked), else "unknown" (the user, the hub, a crash: we cannot tell).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.history.intents import take_intent
from hubkeeper.hub.models import HubUser
from hubkeeper.kit.clock import utcnow

if TYPE_CHECKING:
    from hubkeeper.console.directory import UserDirectory

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
EXPECT_TTL = 300.0  # s an announced stop stays attributable to whoever asked
LIVE = ("running", "stopping")  # a session is open through its stopping phase

Key = tuple[str, str]  # (user, server)


@dataclass(frozen=True)
class Open:
    user: str
    server: str
    started_at: datetime
    groups: tuple[str, ...] | None = None  # the user's groups at the start (usage by group)


@dataclass(frozen=True)
class Close:
    user: str
    server: str
    at: datetime
    reason: str
    by: str | None


@dataclass(frozen=True)
class Reconcile:
    live: frozenset[Key]  # running or stopping now: their open sessions stay open
    running: dict[Key, datetime]  # running now, with their start time
    at: datetime
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by user, now


Op = Open | Close | Reconcile


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _servers(user: HubUser | None, statuses: tuple[str, ...]) -> dict[str, datetime | None]:
    if user is None:
        return {}
    return {n: s.started for n, s in user.servers.items() if s.status in statuses}


class SessionRecorder:
    """Turns directory changes into `ServerSession` rows; `hk.history`."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self.reconciled = False
        self._queue: list[Op] = []
        self._expected: dict[Key, tuple[str, str, float]] = {}  # reason, by, monotonic deadline
        self._inflight: asyncio.Future[None] | None = None

    # --- what Hubkeeper is about to do -------------------------------------------------
    def expect_stop(self, user: str, server: str, *, reason: str, by: str) -> None:
        """Call just before asking the hub to stop a server: its session closes with `reason`."""
        self._expected[(user, server)] = (reason, by, time.monotonic() + EXPECT_TTL)

    def forget_stop(self, user: str, server: str) -> None:
        """The stop was refused or failed: a later stop is not ours."""
        self._expected.pop((user, server), None)

    def _reason(self, key: Key) -> tuple[str, str | None]:
        found = self._expected.pop(key, None)
        if found is None or found[2] < time.monotonic():
            return "unknown", None
        return found[0], found[1]

    def stop_recording(self) -> None:
        """This replica no longer records (leadership lost or shutting down): drop what is
        queued; the next leader reconciles from the hub's state."""
        self.reconciled = False
        self._queue.clear()

    # --- what the directory saw ----------------------------------------------------------
    def on_change(self, old: HubUser | None, new: HubUser | None) -> None:
        """A directory listener: compare the two states and queue opens and closes (cheap)."""
        if not self.reconciled:
            return  # the reconcile derives everything from the state it finds
        either = new or old
        if either is None:
            return
        name = either.name
        was = _servers(old, LIVE)
        live = _servers(new, LIVE)
        running = _servers(new, ("running",))
        now = self.clock()
        for server, started in was.items():
            if server not in live:
                reason, by = self._reason((name, server))
                self._queue.append(Close(name, server, now, reason, by))
            elif started and live[server] and live[server] != started:
                # restarted between two syncs: the hub's start time moved
                restarted = live[server] or now
                self._queue.append(Close(name, server, min(now, restarted), "unknown", None))
                self._queue.append(
                    Open(name, server, restarted, tuple(new.groups) if new else None)
                )
        for server, started in running.items():
            if server not in was:
                groups = tuple(new.groups) if new else None
                self._queue.append(Open(name, server, started or now, groups))

    def reconcile_with(self, directory: UserDirectory) -> None:
        """Queue a reconcile against the directory's current rows; recording starts now."""
        rows, _ = directory.query_rows(status="active", limit=10**9)
        live = frozenset((r.user, r.server) for r in rows if r.status in LIVE)
        now = self.clock()
        running = {(r.user, r.server): r.started or now for r in rows if r.status == "running"}
        groups = {r.user: tuple(r.groups) for r in rows}
        self._queue.append(Reconcile(live, running, now, groups))
        self.reconciled = True

    # --- writing -------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write what is queued (in a thread); waits for a write still under way first.

        The write is shielded: a cancelled loop must not lose a batch the thread is writing;
        the lifespan's last `flush()` then waits for it and writes the rest.
        """
        if self._inflight is not None and not self._inflight.done():
            await asyncio.shield(self._inflight)
        if not self._queue:
            return
        ops, self._queue = self._queue, []
        self._inflight = asyncio.ensure_future(self._write(ops))
        await asyncio.shield(self._inflight)

    async def _write(self, ops: list[Op]) -> None:
        try:
            await asyncio.to_thread(apply_ops, self.engine, ops)
        except Exception:
            log.exception("could not record %d server session change(s); will retry", len(ops))
            self._queue[:0] = ops

    async def run(self, directory: UserDirectory, interval: float = FLUSH_SECONDS) -> None:
        """Lifespan task: reconcile after the first sweep, then flush every `interval` s."""
        while not directory.ready:  # noqa: ASYNC110 - `ready` is a plain flag, not an event
            await asyncio.sleep(0.2)
        self.reconcile_with(directory)
        while True:
            await self.flush()
            await asyncio.sleep(interval)


# --- the database side (blocking: worker thread) ---------------------------------------------
def _open_sessions(session: Session, key: Key | None = None) -> list[ServerSession]:
    query = select(ServerSession).where(col(ServerSession.stopped_at).is_(None))
    if key is not None:
        query = query.where(ServerSession.user == key[0], ServerSession.server == key[1])
    return list(session.exec(query).all())


def _intended(
    session: Session, user: str, server: str, at: datetime, reason: str, by: str | None
) -> tuple[str, str | None]:
    """The reason this process knows, else the stop intent another replica stored (consumed
    either way, so it cannot be used twice)."""
    stored = take_intent(session, user, server, at)
    if reason == "unknown" and stored is not None:
        return stored
    return reason, by


def _groups_json(groups: tuple[str, ...] | None) -> str | None:
    return None if groups is None else json.dumps(sorted(groups))


def _close(row: ServerSession, at: datetime, reason: str, by: str | None) -> None:
    started = aware(row.started_at)
    at = max(at, started)
    row.stopped_at = at
    row.duration_s = (at - started).total_seconds()
    row.stop_reason = reason
    row.stopped_by = by


def apply_ops(engine: Engine, ops: list[Op]) -> None:
    """Apply a batch in order, in one transaction (an open never doubles an open session)."""
    with session_scope(engine) as session:
        for op in ops:
            if isinstance(op, Open):
                if not _open_sessions(session, (op.user, op.server)):
                    session.add(
                        ServerSession(
                            user=op.user,
                            server=op.server,
                            started_at=op.started_at,
                            groups=_groups_json(op.groups),
                        )
                    )
            elif isinstance(op, Close):
                rows = _open_sessions(session, (op.user, op.server))
                reason, by = _intended(session, op.user, op.server, op.at, op.reason, op.by)
                for row in rows:
                    _close(row, op.at, reason, by)
                    session.add(row)
            else:
                have: set[Key] = set()
                for row in _open_sessions(session):
                    key = (row.user, row.server)
                    if key in op.live:
                        have.add(key)
                    else:
                        reason, by = _intended(session, *key, op.at, "unknown", None)
                        _close(row, op.at, reason, by)
                        session.add(row)
                for key, started in op.running.items():
                    if key not in have:
                        session.add(
                            ServerSession(
                                user=key[0],
                                server=key[1],
                                started_at=started,
                                groups=_groups_json(op.groups.get(key[0])),
                            )
                        )
            session.flush()
