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
from typing import TYPE_CHECKING

from hubkeeper.errors import HubkeeperError, NotFound
from hubkeeper.hub.models import HubUser
from hubkeeper.loops.retry import cancel_and_wait, retry_pause

if TYPE_CHECKING:
    from hubkeeper.config import Settings
    from hubkeeper.hub.client import HubClient, UserPage

log = logging.getLogger("hubkeeper.directory.store")  # one logger name for the directory

CHEAP_PAGE = 50  # newest / recently active users per active sync
SWEEP_PAGE = 200
SWEEP_SOONER_MIN_GAP = 30.0  # s between a finished sweep and one asked for "sooner"
VERIFY_MISSING_MAX = 200  # users missing from a sweep re-read one by one (else dropped)
REFRESH_CONCURRENCY = 8
MAX_BACKOFF = 30.0


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

    async def refresh_active(self) -> None:
        """Pull `state=active` now; re-read users we thought active that left that list."""
        pages: list[UserPage] = []
        async for page, _total in self.hub.iter_user_pages(
            state="active", include_stopped_servers=True, page_size=SWEEP_PAGE
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

    async def sync_active(self) -> None:
        """One active pass: newest users, recently active users, then the active list."""
        newest, total = await self.hub.user_page(sort="-id", limit=CHEAP_PAGE)
        recent, _ = await self.hub.user_page(sort="-last_activity", limit=CHEAP_PAGE)
        for page in (newest, recent):
            for user in page:
                self.upsert(user, fetched_at=page.fetched_at)
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

    async def full_sweep(self) -> None:
        """Walk every user (paced); drop the users the hub no longer has."""
        self._touched = set()
        began = time.monotonic()
        try:
            # A walk of every user is bulk work: it must not hold up sign-ins or pages.
            async for page, total in self.hub.bulk.iter_user_pages(
                page_size=SWEEP_PAGE,
                pause=self.settings.full_sync_page_pause,
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

    async def _active_loop(self) -> None:
        backoff = 1.0
        while True:
            try:
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
