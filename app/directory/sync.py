"""The loops that keep the user directory current from the hub (`DirectorySync`, mixed into
`hubkeeper.directory.store.UserDirectory`): an active sync every
`HUBKEEPER_ACTIVE_SYNC_INTERVAL` s (`GET /hub/api/users?state=active`, whose cost grows with
running servers, not with users), a paced full sweep of every user, and single-user refreshes
after an action. This is the seam where cheaper change signals plug in (the proxy's routing
table, issue #14); the store does not care where its users come from.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from hubkeeper.errors import HubkeeperError, NotFound
from hubkeeper.hub.models import HubUser
from hubkeeper.loops.retry import cancel_and_wait, retry_pause

if TYPE_CHECKING:
    from hubkeeper.config import Settings
    from hubkeeper.hub.client import HubClient, UserPage
    from hubkeeper.hub.servers import Route


class RouteSource(Protocol):
    """Where the proxy's routing table is read (`hubkeeper.hub.servers.ServerGateway`)."""

    async def read_routes(self) -> dict[tuple[str, str], Route]: ...


log = logging.getLogger("hubkeeper.directory.store")  # one logger name for the directory

CHEAP_PAGE = 50  # newest / recently active users per active sync
SWEEP_PAGE = 200
SWEEP_SOONER_MIN_GAP = 30.0  # s between a finished sweep and one asked for "sooner"
VERIFY_MISSING_MAX = 200  # users missing from a sweep re-read one by one (else dropped)
REFRESH_CONCURRENCY = 8
MAX_BACKOFF = 30.0
# With the routes as the change signal: the users most recently active at the hub are read
# this often (seconds), one cheap page. Starting a server from the hub's pages makes its user
# active, so a spawn still pending (no route yet) shows within this time.
RECENT_EVERY = 10.0
RECENT_PAGE = 20  # users in that page: those who just clicked Start are at its top
# The reconciliation (`state=active` every HUBKEEPER_RECONCILE_INTERVAL with the routes as the
# change signal) reads in pages of RECONCILE_PAGE users, each page in its turn of the share of
# the hub's time all background requests share (hub/pace.py), in a task of its own beside the
# routes watch. Why that is safe: the hub answers a page on its one thread, so a page of 50
# running users (20-50 ms measured at 1,000-5,000 servers) is the longest any other request
# waits behind it, and the pace keeps the walk with the mints and sweeps at a few per cent of
# the hub's time; the routes watch goes on every second meanwhile, so starts and stops still
# show within 3 s however long the walk takes (under a minute at 1,000 running servers).
# What the walk is for (pending spawns started by another API client, servers without a
# route) is not time-critical; a user who stops mid-walk shifts the pages, and the users so
# missed are caught by the routes or by the next walk.
RECONCILE_PAGE = 50
# The walk's cost grows with the running servers (a page of 100 took 50-100 ms of the hub's
# thread at 5,000 running, 2 % of its time at a 300-s interval); the interval grows with it,
# RECONCILE_GAP_PER_PAGE s per page of the walk, so the walk alone stays under ~1 % of the
# hub's time (at 5,000 running: 100 pages, every 500 s). Below 3,000 running, the setting
# rules.
RECONCILE_GAP_PER_PAGE = 5.0
# The hub moves a route before it clears the spawn's or stop's pending flag (handlers/base.py:
# `finish_user_spawn` adds the route, then the spawn future's callback clears
# `_spawn_pending`; `stop_single_user` deletes the route, then stops the server, then clears
# `_stop_pending`). So the re-read a route change triggers can still say "pending" though the
# hub finishes a moment later. Such a user is read again every FOLLOW_UP_EVERY s for
# FOLLOW_UP_FOR s, so a quick start or stop shows about a second after the hub finishes it
# rather than at the next pending re-read (HUBKEEPER_ACTIVE_SYNC_INTERVAL). Bounded so a
# slow spawner (a pod's 30-s grace period) costs the hub at most a handful of user reads.
FOLLOW_UP_EVERY = 1.0
FOLLOW_UP_FOR = 5.0


class DirectorySync:
    """The hub-reading half of the user directory; the store's state is declared here so the
    type checker follows the mixin (set in `UserDirectory.__init__`)."""

    if TYPE_CHECKING:
        hub: HubClient
        settings: Settings
        clock: Callable[[], datetime]
        ready: bool
        synced_at: datetime | None
        full_synced_at: datetime | None
        _users: dict[str, HubUser]
        _active: set[str]
        _active_error: str | None
        _sweep_error: str | None
        _hub_total: int | None
        _touched: set[str] | None
        _sweep_soon: asyncio.Event
        _fetched: dict[str, float]
        routes: RouteSource | None
        change_source: str
        _route_table: dict[tuple[str, str], Route] | None
        _routes_error: str | None
        _reconciled_at: float
        _recent_at: float
        _pending_at: float
        _follow_ups: dict[str, tuple[float, float]]  # user -> (next re-read, last), monotonic
        _reconciling: asyncio.Task[None] | None
        _noted_version: int  # `version` after the routes' activity was last applied
        version: int

        def upsert(self, user: HubUser, *, fetched_at: float | None = None) -> bool: ...
        def remove(self, name: str, *, fetched_at: float | None = None) -> bool: ...
        async def rebuild_off_loop(self) -> None: ...

    async def refresh_user(self, name: str, *, bulk: bool = False) -> HubUser | None:
        """Re-read one user from the hub now; None (and dropped) when the hub has none.

        `bulk=True` for re-reads that are part of work on many servers (the hub client's
        bulk budget, see `HubClient`). Raises HubUnavailable.
        """
        sent = time.monotonic()
        try:
            user = await (self.hub.bulk if bulk else self.hub).get_user(name)
        except NotFound:
            self.remove(name, fetched_at=sent)
            return None
        self.upsert(user, fetched_at=sent)
        return user

    async def _refresh_many(self, names: Iterable[str], *, bulk: bool = False) -> None:
        limit = asyncio.Semaphore(REFRESH_CONCURRENCY)

        async def one(name: str) -> None:
            async with limit:
                await self.refresh_user(name, bulk=bulk)

        await asyncio.gather(*(one(n) for n in names))

    def active_age(self) -> float | None:
        """Seconds since the hub's `state=active` list was last read (None: never). With the
        proxy's routes as the change signal this is the reconciliation's age, not the
        directory's: what must see pending spawns (lockdown enforcement) reads it afresh."""
        read_at = getattr(self, "_active_read_at", None)
        return None if read_at is None else time.monotonic() - read_at

    async def refresh_active(self, *, page_size: int = SWEEP_PAGE, paced: bool = False) -> None:
        """Pull `state=active` now (pages of `page_size`; `paced`: each in its turn of the
        hub's time background work shares, `hub.pace`); re-read users we thought active that
        left that list."""
        self._active_read_at = time.monotonic()
        pages: list[UserPage] = []
        async for page, _total in self.hub.iter_user_pages(
            state="active",
            include_stopped_servers=True,
            page_size=page_size,
            pace=self.hub.pace if paced else None,
        ):
            pages.append(page)
        seen: set[str] = set()
        for page in pages:
            for user in page:
                self.upsert(user, fetched_at=page.fetched_at)
                seen.add(user.name)
        gone = [name for name in self._active if name not in seen]
        if gone:
            await self._refresh_many(gone)

    async def sync_active(self, *, paced: bool = False) -> None:
        """One active pass: newest users, recently active users, then the active list
        (`paced`: in RECONCILE_PAGE pages, each in its turn of `hub.pace`, the
        reconciliation's way)."""
        newest, total = await self.hub.user_page(sort="-id", limit=CHEAP_PAGE)
        recent, _ = await self.hub.user_page(sort="-last_activity", limit=CHEAP_PAGE)
        for page in (newest, recent):
            for user in page:
                self.upsert(user, fetched_at=page.fetched_at)
        if paced:
            await self.refresh_active(page_size=RECONCILE_PAGE, paced=True)
        else:
            await self.refresh_active()
        if self.ready and total != len(self._users):
            # users were created in bulk or deleted: the sweep finds out which
            if self._hub_total != total:
                log.info("hub has %d users, directory %d: sweeping soon", total, len(self._users))
            self._sweep_soon.set()
        self._hub_total = total
        await self.rebuild_off_loop()
        self.synced_at = self.clock()
        self._active_error = None

    async def sync_by_routes(self, routes: RouteSource) -> None:
        """One tick with the proxy's routing table as the change signal (issue #14): the
        proxy answers, the hub is asked only about what changed.

        - A route that appeared, vanished or changed target (a start, a stop, a restart):
          that one user is re-read from the hub.
        - The routes' `last_activity` (the proxy's, fresher than the hub's copy of it, which
          the hub takes every 5 minutes) updates the servers' activity without the hub.
        - Users with a spawn or stop pending are re-read every HUBKEEPER_ACTIVE_SYNC_INTERVAL
          (a spawn that fails, or a slow stop, changes no route).
        - The users most recently active at the hub every RECENT_EVERY s (one page of 50:
          spawns started from the hub's pages, still pending, without a route yet).
        - `state=active` and the newest users every HUBKEEPER_RECONCILE_INTERVAL: whatever
          the proxy cannot see (spawns pending from another API client, servers without a
          route, users created at the hub). Paced, in a task of its own (`_reconcile`), so
          the next ticks go on meanwhile; the first tick (and the first after the proxy API
          answers again) reconciles at once, unpaced.

        A proxy API that does not answer: this tick falls back to the hub's `state=active`
        (`sync_active`), and health says so (`_routes_error`). Raises what the hub client
        raises.
        """
        now = time.monotonic()
        try:
            table = await routes.read_routes()
        except HubkeeperError as exc:
            if self._routes_error is None:
                log.warning("proxy routes unavailable (%s): asking the hub instead", exc.detail)
            self._routes_error = exc.detail
            self._route_table = None  # a fresh start once it answers again
            await self.sync_active()
            self._reconciled_at = now
            return
        if self._routes_error is not None:
            log.info("proxy routes answer again: watching them")
        self._routes_error = None
        previous, self._route_table = self._route_table, table
        # The same table as last tick (the gateway reuses unchanged Routes, so this compares
        # identities): no route moved, and unless a user changed since, no activity is new.
        same = previous is not None and previous == table
        changed: set[str] = set()
        if previous is not None and not same:
            for key in previous.keys() | table.keys():
                before, after = previous.get(key), table.get(key)
                if before is None or after is None or before.base != after.base:
                    changed.add(key[0])
        moved = set(changed)
        settings = self.settings
        changed |= {name for name, (due, _) in self._follow_ups.items() if now >= due}
        if now - self._pending_at >= settings.active_sync_interval:
            changed |= {name for name in self._active if self._has_pending(name)}
            self._pending_at = now
        if changed:
            try:
                await self._refresh_many(changed)
            except BaseException:
                # the hub did not answer: compare with the old table next tick, so the routes
                # that moved are still noticed then (the new table would hide them)
                self._route_table = previous
                raise
        self._plan_follow_ups(moved, now)
        if not (same and self.version == self._noted_version):
            for route in table.values():
                if route.last_activity is not None:
                    self._note_activity(route.user, route.server, route.last_activity)
            self._noted_version = self.version
        if previous is None:
            self._reconciled_at = self._recent_at = now
            await self.sync_active()
            return
        walking = self._reconciling is not None and not self._reconciling.done()
        if not walking and now - self._reconciled_at >= self.reconcile_every():
            self._reconciled_at = self._recent_at = now
            self._reconciling = asyncio.create_task(
                self._reconcile(), name="hubkeeper-directory-reconcile"
            )
        if now - self._recent_at >= RECENT_EVERY:
            self._recent_at = now
            recent, total = await self.hub.user_page(sort="-last_activity", limit=RECENT_PAGE)
            for user in recent:
                self.upsert(user, fetched_at=recent.fetched_at)
            # The page's total says, for free, that users were created at the hub: read the
            # newest then (a user with no server has no route to show it), not every tick.
            if self.ready and total > len(self._users):
                newest, _ = await self.hub.user_page(sort="-id", limit=CHEAP_PAGE)
                for user in newest:
                    self.upsert(user, fetched_at=newest.fetched_at)
        await self.rebuild_off_loop()
        self.synced_at = self.clock()
        self._active_error = None

    def reconcile_every(self) -> float:
        """Seconds between the paced `state=active` walks: HUBKEEPER_RECONCILE_INTERVAL, or
        longer on a big hub (RECONCILE_GAP_PER_PAGE s for each page the walk reads)."""
        pages = -(-len(self._active) // RECONCILE_PAGE)
        return max(self.settings.reconcile_interval, pages * RECONCILE_GAP_PER_PAGE)

    async def _reconcile(self) -> None:
        """The paced `state=active` walk (`sync_by_routes`); a failure is logged and shown
        in health (the next walk retries at its interval), never raised."""
        try:
            await self.sync_active(paced=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._active_error = _describe(exc)
            _log_failure("reconciliation", exc)

    async def stop_reconciling(self) -> None:
        """Cancel a reconciliation under way (the sync's end, tests)."""
        if self._reconciling is not None:
            await cancel_and_wait(self._reconciling)
            self._reconciling = None

    def _plan_follow_ups(self, moved: set[str], now: float) -> None:
        """Follow up the users whose route just moved and whose re-read still says pending
        (FOLLOW_UP_EVERY); drop those no longer pending or past FOLLOW_UP_FOR."""
        for name in moved:
            if self._has_pending(name):
                self._follow_ups[name] = (now, now + FOLLOW_UP_FOR)
        for name, (due, last) in list(self._follow_ups.items()):
            if now >= last or not self._has_pending(name):
                del self._follow_ups[name]
            elif now >= due:  # read this tick (or just planned): the next one
                self._follow_ups[name] = (now + FOLLOW_UP_EVERY, last)

    def _has_pending(self, name: str) -> bool:
        user = self._users.get(name)
        return user is not None and any(s.pending for s in user.servers.values())

    def _note_activity(self, name: str, server: str, at: datetime) -> None:
        """The proxy saw `server` used at `at`: newer than what the hub said, keep it. Not an
        answer from the hub, so it never displaces one (the user's fetch stamp is kept)."""
        user = self._users.get(name)
        current = user.servers.get(server) if user is not None else None
        if user is None or current is None:
            return
        if current.last_activity is not None and current.last_activity >= at:
            return
        servers = {**user.servers, server: current.model_copy(update={"last_activity": at})}
        newest = at if user.last_activity is None or at > user.last_activity else None
        update: dict[str, object] = {"servers": servers}
        if newest is not None:
            update["last_activity"] = newest
        self.upsert(user.model_copy(update=update), fetched_at=self._fetched.get(name))

    async def full_sweep(self) -> None:
        """Walk every user (`full_sync_page_pause` between pages; after the first sweep each
        page also waits its turn of `hub.pace`); drop the users the hub no longer has."""
        self._touched = set()
        began = time.monotonic()
        try:
            # A walk of every user is bulk work: it must not hold up sign-ins or pages. After
            # the first (the console's list waits for it) it is background work, paced.
            async for page, total in self.hub.bulk.iter_user_pages(
                page_size=SWEEP_PAGE,
                pause=self.settings.full_sync_page_pause,
                pace=self.hub.pace if self.ready else None,
                include_stopped_servers=True,
            ):
                for user in page:
                    self.upsert(user, fetched_at=page.fetched_at)
                self._hub_total = total
            missing = set(self._users) - self._touched
        finally:
            self._touched = None
        if missing:
            if len(missing) <= VERIFY_MISSING_MAX:
                # a user deleted mid-walk shifts the pages: re-read before dropping anyone
                await self._refresh_many(missing, bulk=True)
            else:
                for name in missing:
                    self.remove(name, fetched_at=began)
        await self.rebuild_off_loop()
        first = not self.ready
        self.full_synced_at = self.clock()
        self._sweep_error = None
        self.ready = True
        if first:
            # The first sweep leaves ~10 long-lived objects per user; every later full
            # collection would walk them all (200+ ms of event loop at 50,000 users). Freeze
            # them out of the collector's reach once: they hold no reference cycles, so a user
            # replaced later is still freed by its reference count.
            gc.freeze()

    # --- the loops -----------------------------------------------------------------------
    async def run(self) -> None:
        """Sync until cancelled: a sweep loop and an active loop; errors never end them."""
        sweeper = asyncio.create_task(self._sweep_loop(), name="hubkeeper-directory-sweep")
        try:
            await self._active_loop()
        finally:
            await cancel_and_wait(sweeper)
            await self.stop_reconciling()

    async def _active_loop(self) -> None:
        backoff = 1.0
        while True:
            try:
                if self.routes is not None:
                    await self.sync_by_routes(self.routes)
                    backoff = 1.0
                    # asking the hub instead (the proxy API fails): at the hub's pace
                    failing = self._routes_error is not None
                    settings = self.settings
                    await asyncio.sleep(
                        settings.active_sync_interval if failing else settings.routes_interval
                    )
                    continue
                await self.sync_active()
                backoff = 1.0
                await asyncio.sleep(self.settings.active_sync_interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._active_error = _describe(exc)
                _log_failure("active sync", exc)
                await retry_pause(min(backoff, MAX_BACKOFF))
                backoff = min(backoff * 2, MAX_BACKOFF)

    def sweep_soon(self) -> None:
        """Ask for a full sweep soon (call on the directory's event loop): for changes the
        cheap syncs cannot see, such as the groups of users who are neither new nor active."""
        self._sweep_soon.set()

    async def _sweep_loop(self) -> None:
        backoff = 1.0
        while True:
            try:
                self._sweep_soon.clear()
                await self.full_sweep()
                backoff = 1.0
                await self._wait_for_next_sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._sweep_error = _describe(exc)
                _log_failure("full sweep", exc)
                await retry_pause(min(backoff, MAX_BACKOFF))
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _wait_for_next_sweep(self) -> None:
        interval = self.settings.full_sync_interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sweep_soon.wait(), timeout=interval)
            # asked for sooner: still leave a gap so a mismatch cannot make us sweep nonstop
            await asyncio.sleep(min(SWEEP_SOONER_MIN_GAP, interval))
        self._sweep_soon.clear()


def _describe(exc: Exception) -> str:
    if isinstance(exc, HubkeeperError):
        return exc.detail
    return f"{type(exc).__name__}: {exc}"


def _log_failure(what: str, exc: Exception) -> None:
    if isinstance(exc, HubkeeperError):
        log.warning("directory %s failed: %s", what, exc.detail)
    else:
        log.exception("directory %s failed unexpectedly", what)
