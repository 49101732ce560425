"""Server sessions recorded from what the user directory sees change.

The directory calls `on_change(old, new)` for every change of a user (on the event loop, so
it only compares the two and queues a write); `run()` writes the queue every second in a
worker thread. Once the directory's first active sync is done (it then knows every running
server), `run()` reconciles the database with what runs now:

- a session left open while Hubkeeper was down whose server no longer runs is closed at the
  best time known: the hub's `last_activity` of that server (JupyterHub sets it to the stop
  time when a server stops: `user.py` `User.stop`), capped at now and never before the
  session's start; if the hub no longer knows the server (user deleted), at the last time
  Hubkeeper saw it running (`seen_at`, kept every `SEEN_SECONDS`). Never the restart time.
- a server found stopped after the hub was unreadable for `HUB_GAP` (a hub restart) may have
  died with the hub, whose stop time for it is then its own restart: it closes at the later
  of its last activity seen and the last sync that saw it running, if earlier.
- a server stopped and started again meanwhile (its `started` changed) is two sessions: the
  old one closed at the new start at the latest, a new one opened at the new `started`;
- a server running without an open session gets one from its `started` time.

The directory applies hub answers in the order they were asked for (`UserDirectory.upsert`'s
`fetched_at`), so a late, older answer never reopens or closes a session. The database keeps
at most one open session per server (a partial unique index).

Stop reasons: "admin" / "lockdown" / "culled" when Hubkeeper stopped the server
(`hubkeeper.actions.stop.ServerStopper.stop_recorded` calls `expect_stop` and stores a stop
intent in the database just before the hub is asked, so the replica recording the stop finds it
whichever replica asked), else "unknown" (the user, the hub, a crash: we cannot tell).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from hubkeeper.actions.stop import take_intent
from hubkeeper.db.activity import HUB, ActivityRecorder
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.db.outage import is_unavailable, summary
from hubkeeper.errors import HubkeeperError
from hubkeeper.hub.models import HubUser
from hubkeeper.kit.clock import as_utc, utcnow

if TYPE_CHECKING:
    from hubkeeper.directory.store import UserDirectory

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
SEEN_SECONDS = 60.0  # s between updates of `seen_at` on the open sessions
RECONCILE_RETRY = 2.0  # s between reconcile attempts while the hub cannot be read
EXPECT_TTL = 300.0  # s an announced stop stays attributable to whoever asked
LIVE = ("running", "stopping")  # a session is open through its stopping phase
SAME_START = timedelta(seconds=1)  # a stored start this close to the hub's is the same run
# No active sync for this long: the hub was down (or unreadable) meanwhile. A server found
# stopped after such a gap may have died with the hub, and then the hub's stop time is its
# restart: JupyterHub's startup stops a server "that appears to have stopped while the Hub
# was down" with `User.stop`, which stamps `last_activity` with now (jupyterhub/app.py
# `check_spawner`, jupyterhub/user.py `User.stop`).
HUB_GAP = timedelta(seconds=30)

Key = tuple[str, str]  # (user, server)


@dataclass(frozen=True)
class Open:
    user: str
    server: str
    started_at: datetime
    groups: tuple[str, ...] | None = None  # the user's groups at the start (usage by group)
    profile: str | None = None  # user_options["profile"] (what HUBKEEPER_PRICES prices by)


@dataclass(frozen=True)
class Close:
    user: str
    server: str
    at: datetime
    reason: str
    by: str | None


@dataclass(frozen=True)
class Seen:
    at: datetime  # every open session was seen running then


@dataclass(frozen=True)
class Reconcile:
    live: dict[Key, datetime | None]  # running or stopping now, with the hub's `started`
    at: datetime
    ended: dict[Key, datetime] = field(default_factory=dict)  # best stop time of the rest
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by user, now
    profiles: dict[Key, str] = field(default_factory=dict)  # of the live servers that have one


Op = Open | Close | Seen | Reconcile


def aware(value: datetime) -> datetime:
    """In UTC: SQLite hands back naive datetimes (stored as UTC), PostgreSQL aware ones in the
    session's TimeZone (which must not decide which UTC day a session falls on)."""
    return as_utc(value)


def _servers(user: HubUser | None, statuses: tuple[str, ...]) -> dict[str, datetime | None]:
    if user is None:
        return {}
    return {n: s.started for n, s in user.servers.items() if s.status in statuses}


def _profile(user: HubUser | None, server: str) -> str | None:
    found = user.servers.get(server) if user is not None else None
    return found.profile if found is not None else None


def _last_alive(old: HubUser | None, server: str, seen: datetime) -> datetime:
    """The best evidence of when a server that vanished during a hub outage last ran: the
    later of its last activity Hubkeeper saw and the last sync that saw it running (`seen`,
    UTC). Its proxy route vanished with the old proxy, so it tells nothing later."""
    found = old.servers.get(server) if old is not None else None
    activity = as_utc(found.last_activity) if found and found.last_activity else None
    return max(seen, activity) if activity is not None else seen


def stop_time(user: HubUser | None, server: str, now: datetime) -> datetime | None:
    """The hub's best word on when a server that no longer runs stopped (None: no word).

    Its `last_activity`, which JupyterHub sets to the stop time when it stops a server
    (`user.py` `User.stop`), capped at `now`.
    """
    found = user.servers.get(server) if user is not None else None
    if found is None or found.last_activity is None or found.status in LIVE:
        return None
    return min(as_utc(found.last_activity), now)


class SessionRecorder:
    """Turns directory changes into `ServerSession` rows; `hk.history`."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        activity: ActivityRecorder | None = None,
    ) -> None:
        self.engine = engine
        # the servers' activity in 5-minute buckets (db/activity.py), recorded with the
        # sessions: same leader, same flush
        self.activity = activity or ActivityRecorder(engine)
        self.clock = clock
        self.reconciled = False
        self._queue: list[Op] = []
        self._expected: dict[Key, tuple[str, str, float]] = {}  # reason, by, monotonic deadline
        self._inflight: asyncio.Future[None] | None = None
        self.synced_at: datetime | None = None  # the directory's last active sync, as noted

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
        self.activity.stop_recording()

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
        if new is not None:
            self._note_activity(old, new, live)
        now = self.clock()
        for server, started in was.items():
            if server not in live:
                reason, by = self._reason((name, server))
                at = stop_time(new, server, now) or now
                if self.synced_at is not None and now - self.synced_at > HUB_GAP:
                    at = min(at, _last_alive(old, server, self.synced_at))
                self._queue.append(Close(name, server, at, reason, by))
            elif started and live[server] and live[server] != started:
                # stopped and started again between two syncs: the hub's start time moved.
                # The old run ended before the new one began.
                restarted = live[server] or now
                reason, by = self._reason((name, server))
                self._queue.append(Close(name, server, min(now, restarted), reason, by))
                self._queue.append(
                    Open(
                        name,
                        server,
                        restarted,
                        tuple(new.groups) if new else None,
                        _profile(new, server),
                    )
                )
        for server, started in live.items():
            if server not in was:
                groups = tuple(new.groups) if new else None
                self._queue.append(
                    Open(name, server, started or now, groups, _profile(new, server))
                )

    def _note_activity(
        self, old: HubUser | None, new: HubUser, live: dict[str, datetime | None]
    ) -> None:
        """A running server's `last_activity` moved (the hub's, or the proxy route's as the
        directory applies it): mark its bucket. The time noted is the activity's own, not now."""
        for server in live:
            now_at = new.servers[server].last_activity
            before = old.servers.get(server) if old is not None else None
            if now_at is not None and (before is None or before.last_activity != now_at):
                self.activity.note(new.name, server, now_at, HUB)

    def reconcile_with(self, directory: UserDirectory, open_keys: Iterable[Key] = ()) -> None:
        """Queue a reconcile against the directory as it is now; recording starts now.

        `open_keys`: the open sessions in the database; for those whose server no longer
        runs, the hub's stop time is looked up in the directory (see `reconcile`).
        """
        rows, _ = directory.query_rows(status="active", limit=10**9)
        live = {(r.user, r.server): r.started for r in rows if r.status in LIVE}
        now = self.clock()
        ended: dict[Key, datetime] = {}
        for key in open_keys:
            if key not in live:
                at = stop_time(directory.get(key[0]), key[1], now)
                if at is not None:
                    ended[key] = at
        groups = {r.user: tuple(r.groups) for r in rows}
        profiles = {
            key: found
            for key in live
            if (found := _profile(directory.get(key[0]), key[1])) is not None
        }
        self._queue.append(Reconcile(live, now, ended, groups, profiles))
        self.reconciled = True
        self.activity.recording = True
        for row in rows:  # what runs now was last used then
            if row.status in LIVE:
                self.activity.note(row.user, row.server, row.last_activity, HUB)

    async def reconcile(self, directory: UserDirectory) -> None:
        """Read the open sessions, ask the hub about the users whose server no longer runs
        (the directory's active sync does not bring them), then `reconcile_with`.

        Raises HubUnavailable (and reconciles nothing) when the hub cannot be read.
        """
        open_keys = await asyncio.to_thread(_open_keys, self.engine)
        live, _ = directory.query_rows(status="active", limit=10**9)
        running = {(r.user, r.server) for r in live if r.status in LIVE}
        unknown = {user for user, server in open_keys if (user, server) not in running}
        unknown = {name for name in unknown if directory.get(name) is None}
        for name in sorted(unknown):
            await directory.refresh_user(name, bulk=True)  # None (dropped) if deleted
        self.reconcile_with(directory, open_keys)

    def mark_seen(self, directory: UserDirectory) -> None:
        """Queue `seen_at` = the last active sync for every open session (they ran then)."""
        if self.reconciled and directory.synced_at is not None:
            self._queue.append(Seen(directory.synced_at))

    # --- writing -------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write what is queued (in a thread); waits for a write still under way first.

        The write is shielded: a cancelled loop must not lose a batch the thread is writing;
        the lifespan's last `flush()` then waits for it and writes the rest.
        """
        if self._inflight is not None and not self._inflight.done():
            await asyncio.shield(self._inflight)
        await self.activity.flush()
        if not self._queue:
            return
        ops, self._queue = self._queue, []
        self._inflight = asyncio.ensure_future(self._write(ops))
        await asyncio.shield(self._inflight)

    async def _write(self, ops: list[Op]) -> None:
        try:
            await asyncio.to_thread(apply_ops, self.engine, ops)
        except IntegrityError:
            # another writer (a replica) opened the same session first: the retry sees it
            log.warning("session history: a concurrent write won; retrying %d change(s)", len(ops))
            self._queue[:0] = ops
        except Exception as exc:
            if is_unavailable(exc):  # an outage: one line per try, not a traceback each
                log.warning(
                    "database unavailable (%s): %d server session change(s) wait",
                    summary(exc),
                    len(ops),
                )
            else:
                log.exception("could not record %d server session change(s); will retry", len(ops))
            self._queue[:0] = ops

    async def run(self, directory: UserDirectory, interval: float = FLUSH_SECONDS) -> None:
        """Lifespan task: reconcile once the directory knows every running server (its first
        active sync or sweep), then flush every `interval` s and mark the open sessions seen
        every `SEEN_SECONDS`."""
        while not self.reconciled:
            if directory.synced_at is None and not directory.ready:
                await asyncio.sleep(0.2)
                continue
            try:
                await self.reconcile(directory)
            except HubkeeperError as exc:
                log.warning("session history: cannot reconcile yet: %s", exc.detail)
                await asyncio.sleep(RECONCILE_RETRY)
        seen = time.monotonic()
        while True:
            # Noted every tick, so a sync that ends an outage finds the one before it here.
            self.synced_at = directory.synced_at
            if time.monotonic() - seen >= SEEN_SECONDS:
                self.mark_seen(directory)
                seen = time.monotonic()
            await self.flush()
            await asyncio.sleep(interval)


# --- the database side (blocking: worker thread) ---------------------------------------------
def _open_sessions(session: Session, key: Key | None = None) -> list[ServerSession]:
    query = select(ServerSession).where(col(ServerSession.stopped_at).is_(None))
    if key is not None:
        query = query.where(ServerSession.user == key[0], ServerSession.server == key[1])
    return list(session.exec(query).all())


def _open_keys(engine: Engine) -> list[Key]:
    with session_scope(engine) as session:
        return [(row.user, row.server) for row in _open_sessions(session)]


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
    at = max(aware(at), started)
    row.stopped_at = at
    row.duration_s = (at - started).total_seconds()
    row.stop_reason = reason
    row.stopped_by = by


def _reconcile(session: Session, op: Reconcile) -> None:
    have: set[Key] = set()
    for row in _open_sessions(session):
        key = (row.user, row.server)
        started = op.live.get(key)
        if key in op.live and (
            started is None or abs(as_utc(started) - aware(row.started_at)) <= SAME_START
        ):
            have.add(key)  # the same run, still going
            continue
        if key in op.live and started is not None:
            # stopped and started again while we were away: the old run ended by the new start
            at = min(as_utc(started), op.at)
        else:
            seen = aware(row.seen_at) if row.seen_at is not None else None
            at = min(op.ended.get(key) or seen or aware(row.started_at), op.at)
        reason, by = _intended(session, *key, at, "unknown", None)
        _close(row, at, reason, by)
        session.add(row)
    session.flush()  # the closes first: one open session per server (unique index)
    for key, started in op.live.items():
        if key not in have:
            session.add(
                ServerSession(
                    user=key[0],
                    server=key[1],
                    started_at=started or op.at,
                    groups=_groups_json(op.groups.get(key[0])),
                    profile=op.profiles.get(key),
                )
            )


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
                            profile=op.profile,
                        )
                    )
            elif isinstance(op, Close):
                rows = _open_sessions(session, (op.user, op.server))
                reason, by = _intended(session, op.user, op.server, op.at, op.reason, op.by)
                for row in rows:
                    _close(row, op.at, reason, by)
                    session.add(row)
            elif isinstance(op, Seen):
                session.exec(
                    update(ServerSession)
                    .where(col(ServerSession.stopped_at).is_(None))
                    .where(col(ServerSession.started_at) <= op.at)
                    .values(seen_at=op.at)
                )
            else:
                _reconcile(session, op)
            session.flush()
