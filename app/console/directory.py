"""A local copy of the hub's users, so that no page or API request walks the hub.

Why: at 50,000 users the hub answers a filtered page in 50-100 ms and a full walk takes ~20 s;
the console must answer every search, filter, sort and deep page in a few milliseconds.

How it stays fresh (see `run`):
- a full, paced sweep at start and every `full_sync_interval` s (sooner when the hub's user
  count stops matching ours); it also removes users the hub no longer has;
- every `active_sync_interval` s the cheap queries: `state=active` (cost grows with running
  servers, not users), the 50 newest users (`sort=-id`) and the 50 most recently active
  (`sort=-last_activity`); a user we thought active that left the active list is re-read alone.

How it answers fast: rows (one per server) and users sit in presorted lists, one per sort
key, updated in place for small change batches and rebuilt for big ones; queries filter those
lists and cache their result per `version`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from app.config import Settings
from app.errors import HubkeeperError, NotFound
from app.hub.client import HubClient
from app.hub.models import HubUser

log = logging.getLogger(__name__)

STATUSES = ("any", "active", "running", "starting", "stopping", "stopped")
ROW_SORTS = ("name", "-name", "last_activity", "-last_activity", "started", "-started")
USER_STATES = ("any", "running", "pending", "stopped")
USER_SORTS = ("name", "-name", "last_activity", "-last_activity")

CHEAP_PAGE = 50  # newest / recently active users per active sync
SWEEP_PAGE = 200
SWEEP_SOONER_MIN_GAP = 30.0  # s between a finished sweep and one asked for "sooner"
VERIFY_MISSING_MAX = 200  # users missing from a sweep re-read one by one (else dropped)
REFRESH_CONCURRENCY = 8
ACTIVE_SORT_MAX = 2000  # up to this many active users, sort theirs rather than scan all
REBUILD_THRESHOLD = 300  # more dirty users than this → rebuild indexes instead of patching
CACHE_SIZE = 64
MAX_BACKOFF = 30.0


@dataclass(frozen=True, slots=True)
class ServerRow:
    """One server (default or named, stopped too) of one user, as the console lists it."""

    user: str
    server: str  # "" = the default server
    status: str  # running | starting | stopping | stopped
    started: datetime | None
    last_activity: datetime | None  # the server's, else the user's
    url: str  # hub path, e.g. /user/ann/ or /user/ann/lab/
    admin: bool
    groups: tuple[str, ...]
    user_last_activity: datetime | None
    pending: str | None  # the hub's "spawn" | "stop" | None


def rows_of(user: HubUser, base_url: str = "/") -> tuple[ServerRow, ...]:
    """The rows of one user: its servers by name; a user with none gets a stopped default."""
    groups = tuple(sorted(user.groups))
    if not user.servers:
        url = f"{base_url.rstrip('/')}/user/{quote(user.name, safe='')}/"
        return (
            ServerRow(
                user=user.name,
                server="",
                status="stopped",
                started=None,
                last_activity=user.last_activity,
                url=url,
                admin=user.admin,
                groups=groups,
                user_last_activity=user.last_activity,
                pending=None,
            ),
        )
    return tuple(
        ServerRow(
            user=user.name,
            server=name,
            status=server.status,
            started=server.started,
            last_activity=server.last_activity or user.last_activity,
            url=server.url,
            admin=user.admin,
            groups=groups,
            user_last_activity=user.last_activity,
            pending=server.pending,
        )
        for name, server in sorted(user.servers.items())
    )


INF = float("inf")


def _f(value: datetime | None) -> float:
    """A time as seconds; None as +inf so it sorts last."""
    return INF if value is None else value.timestamp()


def _nf(value: datetime | None) -> float:
    """Descending order as ascending on -seconds; None still last."""
    return INF if value is None else -value.timestamp()


# Every key ends with a unique part, so an item can be found again by bisecting on its key.
# Time keys are (seconds, names): a stable sort on seconds over the name order gives the same
# order, which is how the bulk rebuild makes them cheaply.
ROW_TIME_FIELDS: dict[str, tuple[str, Callable[[datetime | None], float]]] = {
    "last_activity": ("last_activity", _f),
    "-last_activity": ("last_activity", _nf),
    "started": ("started", _f),
    "-started": ("started", _nf),
}


def _time_key(field: str, fn: Callable[[datetime | None], float]) -> Callable[[ServerRow], Any]:
    def key(row: ServerRow) -> tuple[float, str, str]:
        return (fn(getattr(row, field)), row.user, row.server)

    return key


ROW_KEYS: dict[str, Callable[[ServerRow], Any]] = {
    "name": lambda r: (r.user, r.server),
    **{sort: _time_key(field, fn) for sort, (field, fn) in ROW_TIME_FIELDS.items()},
}
USER_KEYS: dict[str, Callable[[HubUser], Any]] = {
    "name": lambda u: u.name,
    "last_activity": lambda u: (_f(u.last_activity), u.name),
    "-last_activity": lambda u: (_nf(u.last_activity), u.name),
}

T = TypeVar("T")


def _row_text(row: ServerRow) -> str:
    """What `q` is matched against: user and server name, NUL-separated (no name has NUL)."""
    return f"{row.user}\x00{row.server}".lower()


class _SortedIndex(Generic[T]):
    """Items kept sorted by a unique key, with parallel columns the filters scan.

    Filters read the columns (plain strings and tuples, made together so they sit close in
    memory), never the items: touching 50,000 scattered objects costs more than the filtering.
    `lowers[i]` is the search text of `items[i]`, `statuses[i]` its status word, `groups[i]`
    its groups. Small changes insert/remove by bisection; big ones rebuild wholesale.
    """

    def __init__(
        self, key: Callable[[T], Any], columns: Callable[[T], tuple[str, str, tuple[str, ...]]]
    ) -> None:
        self.key = key
        self.columns = columns
        self.items: list[T] = []
        self.lowers: list[str] = []
        self.statuses: list[str] = []
        self.groups: list[tuple[str, ...]] = []

    def set(
        self,
        items: list[T],
        lowers: list[str],
        statuses: list[str],
        groups: list[tuple[str, ...]],
    ) -> None:
        self.items, self.lowers, self.statuses, self.groups = items, lowers, statuses, groups

    def add(self, item: T) -> None:
        i = bisect.bisect_left(self.items, self.key(item), key=self.key)
        lower, status, groups = self.columns(item)
        self.items.insert(i, item)
        self.lowers.insert(i, lower)
        self.statuses.insert(i, status)
        self.groups.insert(i, groups)

    def remove(self, item: T) -> None:
        k = self.key(item)
        i = bisect.bisect_left(self.items, k, key=self.key)
        if i < len(self.items) and self.key(self.items[i]) == k:
            del self.items[i]
            del self.lowers[i]
            del self.statuses[i]
            del self.groups[i]


def _row_columns(row: ServerRow) -> tuple[str, str, tuple[str, ...]]:
    return _row_text(row), row.status, row.groups


# A user's state word: which of the contract's `state` filters it passes.
RUNNING, PENDING, BOTH, STOPPED = "running", "pending", "running+pending", "stopped"


def user_state(rows: Iterable[ServerRow]) -> str:
    statuses = {r.status for r in rows}
    running = "running" in statuses
    pending = bool(statuses & {"starting", "stopping"})
    if running and pending:
        return BOTH
    return RUNNING if running else PENDING if pending else STOPPED


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


class UserDirectory:
    """The hub's users in memory, kept in sync by `run()`; queries are pure and fast."""

    def __init__(
        self,
        hub: HubClient,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.clock = clock
        self._base_url = settings.hub_base_url or "/"

        # what the UI reads
        self.ready = False
        self.synced_at: datetime | None = None
        self.full_synced_at: datetime | None = None
        self.version = 0
        self._active_error: str | None = None
        self._sweep_error: str | None = None

        # the data
        self._users: dict[str, HubUser] = {}
        self._rows: dict[str, tuple[ServerRow, ...]] = {}
        self._active: set[str] = set()  # users with any server not stopped
        self._group_counts: Counter[str] = Counter()
        self._row_total = 0

        # indexes, patched lazily from `_dirty` (name → the user and rows before the change)
        self._row_index = {k: _SortedIndex[ServerRow](f, _row_columns) for k, f in ROW_KEYS.items()}
        self._user_index = {
            k: _SortedIndex[HubUser](f, self._user_columns) for k, f in USER_KEYS.items()
        }
        self._built = False
        self._dirty: dict[str, tuple[HubUser | None, tuple[ServerRow, ...]]] = {}
        self._cache: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        self._cache_version = -1

        # sync bookkeeping
        self._hub_total: int | None = None
        self._touched: set[str] | None = None  # names upserted while a sweep runs
        self._sweep_soon = asyncio.Event()
        self._last_sweep_end: datetime | None = None

    # --- state for the UI ----------------------------------------------------------------
    @property
    def stale(self) -> bool:
        """True while the last sync attempt (active or full) failed."""
        return self._active_error is not None or self._sweep_error is not None

    @property
    def last_error(self) -> str | None:
        return self._active_error or self._sweep_error

    def lag_seconds(self) -> float | None:
        """Seconds since the last successful active sync (None before the first)."""
        if self.synced_at is None:
            return None
        return max(0.0, (self.clock() - self.synced_at).total_seconds())

    # --- applying what the hub said ------------------------------------------------------
    def upsert(self, user: HubUser) -> bool:
        """Take the hub's view of one user; True when anything visible changed."""
        if self._touched is not None:
            self._touched.add(user.name)
        old = self._users.get(user.name)
        if old is not None and old == user:
            return False
        self._forget(user.name, old)
        self._users[user.name] = user
        rows = rows_of(user, self._base_url)
        self._rows[user.name] = rows
        self._row_total += len(rows)
        self._group_counts.update(user.groups)
        if any(r.status != "stopped" for r in rows):
            self._active.add(user.name)
        else:
            self._active.discard(user.name)
        self.version += 1
        return True

    def remove(self, name: str) -> bool:
        old = self._users.get(name)
        if old is None:
            return False
        self._forget(name, old)
        del self._users[name]
        self._rows.pop(name, None)
        self._active.discard(name)
        self.version += 1
        return True

    def _forget(self, name: str, old: HubUser | None) -> None:
        """Undo the counters of the old state and remember it for patching the indexes."""
        old_rows = self._rows.get(name, ())
        if name not in self._dirty:
            self._dirty[name] = (old, old_rows)
        if old is not None:
            self._row_total -= len(old_rows)
            self._group_counts.subtract(old.groups)
            for g in old.groups:
                if self._group_counts[g] <= 0:
                    del self._group_counts[g]

    # --- indexes -------------------------------------------------------------------------
    def reindex(self) -> None:
        """Bring the sorted lists up to date (patched when few users changed, else rebuilt)."""
        if self._built and not self._dirty:
            return
        if not self._built or len(self._dirty) > REBUILD_THRESHOLD:
            self._rebuild()
        else:
            for name, (old_user, old_rows) in self._dirty.items():
                for row in old_rows:
                    for index in self._row_index.values():
                        index.remove(row)
                if old_user is not None:
                    for uindex in self._user_index.values():
                        uindex.remove(old_user)
                new_user = self._users.get(name)
                if new_user is not None:
                    for row in self._rows[name]:
                        for index in self._row_index.values():
                            index.add(row)
                    for uindex in self._user_index.values():
                        uindex.add(new_user)
        self._dirty.clear()
        self._cache.clear()
        self._cache_version = self.version

    def _user_columns(self, user: HubUser) -> tuple[str, str, tuple[str, ...]]:
        return user.name.lower(), user_state(self._rows.get(user.name, ())), ()

    def _rebuild(self) -> None:
        rows = sorted((row for rows in self._rows.values() for row in rows), key=ROW_KEYS["name"])
        cols = (
            [_row_text(r) for r in rows],
            [r.status for r in rows],
            [r.groups for r in rows],
        )
        self._row_index["name"].set(rows, *cols)
        seconds = {
            "last_activity": [_f(r.last_activity) for r in rows],
            "started": [_f(r.started) for r in rows],
        }
        for field in ("last_activity", "started"):
            asc = seconds[field]
            desc = [INF if x == INF else -x for x in asc]  # None stays last
            for sort, keys in ((field, asc), ("-" + field, desc)):
                # stable: equal seconds keep the (user, server) order, as the unique key says
                order = sorted(range(len(rows)), key=keys.__getitem__)
                self._row_index[sort].set(
                    [rows[i] for i in order],
                    [cols[0][i] for i in order],
                    [cols[1][i] for i in order],
                    [cols[2][i] for i in order],
                )
        users = sorted(self._users.values(), key=USER_KEYS["name"])
        ulowers = [u.name.lower() for u in users]
        ustates = [user_state(self._rows.get(u.name, ())) for u in users]
        self._user_index["name"].set(users, ulowers, ustates, [()] * len(users))
        asc = [_f(u.last_activity) for u in users]
        desc = [INF if x == INF else -x for x in asc]
        for sort, keys in (("last_activity", asc), ("-last_activity", desc)):
            order = sorted(range(len(users)), key=keys.__getitem__)
            self._user_index[sort].set(
                [users[i] for i in order],
                [ulowers[i] for i in order],
                [ustates[i] for i in order],
                [()] * len(users),  # users are not filtered by group
            )
        self._built = True

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], list[Any]]) -> list[Any]:
        self.reindex()
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        result = compute()
        self._cache[key] = result
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    # --- queries (pure, no awaits) -------------------------------------------------------
    def query_rows(
        self,
        *,
        q: str = "",
        status: str = "any",
        group: str = "",
        sort: str = "name",
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[ServerRow], int]:
        """One row per server, filtered, sorted and paged; returns (page, total)."""
        _check(status, STATUSES, "status")
        _check(sort, ROW_SORTS, "sort")
        rows = self._cached(
            ("rows", q.lower(), status, group, sort),
            lambda: self._filter_rows(q=q.lower(), status=status, group=group, sort=sort),
        )
        offset = max(0, offset)
        return rows[offset : offset + max(0, limit)], len(rows)

    def _filter_rows(self, *, q: str, status: str, group: str, sort: str) -> list[ServerRow]:
        if "\x00" in q:
            return []
        reverse = sort == "-name"
        index = self._row_index["name" if reverse else sort]
        if status not in ("any", "stopped") and len(self._active) < ACTIVE_SORT_MAX:
            # few servers run compared with users: sort just those rows
            return sorted(
                (
                    r
                    for name in self._active
                    for r in self._rows[name]
                    if (r.status == status or (status == "active" and r.status != "stopped"))
                    and (not q or q in _row_text(r))
                    and (not group or group in r.groups)
                ),
                key=index.key,
                reverse=reverse,
            )
        # one tight pass per filter, each over the survivors of the last (positions only)
        picked: Iterable[int] | None = None
        if status == "active":
            picked = [i for i, st in enumerate(index.statuses) if st != "stopped"]
        elif status != "any":
            picked = [i for i, st in enumerate(index.statuses) if st == status]
        if q:
            lowers = index.lowers
            if picked is None:
                picked = [i for i, text in enumerate(lowers) if q in text]
            else:
                picked = [i for i in picked if q in lowers[i]]
        if group:
            groups = index.groups
            if picked is None:
                picked = [i for i, gs in enumerate(groups) if group in gs]
            else:
                picked = [i for i in picked if group in groups[i]]
        items = index.items
        out = list(items) if picked is None else [items[i] for i in picked]
        if reverse:
            out.reverse()
        return out

    def query_users(
        self,
        *,
        q: str = "",
        state: str = "any",
        sort: str = "name",
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[HubUser], int]:
        """Users (running = a server runs; pending = one starts/stops; stopped = none active)."""
        _check(state, USER_STATES, "state")
        _check(sort, USER_SORTS, "sort")
        users = self._cached(
            ("users", q.lower(), state, sort),
            lambda: self._filter_users(q=q.lower(), state=state, sort=sort),
        )
        offset = max(0, offset)
        return users[offset : offset + max(0, limit)], len(users)

    def _filter_users(self, *, q: str, state: str, sort: str) -> list[HubUser]:
        reverse = sort == "-name"
        index = self._user_index["name" if reverse else sort]
        wanted = {
            "any": (RUNNING, PENDING, BOTH, STOPPED),
            "running": (RUNNING, BOTH),
            "pending": (PENDING, BOTH),
            "stopped": (STOPPED,),
        }[state]
        if state in ("running", "pending") and len(self._active) < ACTIVE_SORT_MAX:
            return sorted(
                (
                    self._users[name]
                    for name in self._active
                    if user_state(self._rows[name]) in wanted and (not q or q in name.lower())
                ),
                key=index.key,
                reverse=reverse,
            )
        items, lowers, states = index.items, index.lowers, index.statuses
        if state == "any":
            out = [items[i] for i, text in enumerate(lowers) if q in text] if q else list(items)
        elif q:
            out = [items[i] for i, st in enumerate(states) if st in wanted and q in lowers[i]]
        else:
            out = [items[i] for i, st in enumerate(states) if st in wanted]
        if reverse:
            out.reverse()
        return out

    def get(self, name: str) -> HubUser | None:
        return self._users.get(name)

    def rows_for(self, name: str) -> tuple[ServerRow, ...]:
        return self._rows.get(name, ())

    def groups(self) -> list[str]:
        """Every group name seen on a user, sorted."""
        return sorted(g for g, n in self._group_counts.items() if n > 0)

    def counts(self) -> dict[str, int]:
        """Servers by status, and users, for the header."""
        counts = {"running": 0, "starting": 0, "stopping": 0}
        for name in self._active:
            for r in self._rows[name]:
                if r.status in counts:
                    counts[r.status] += 1
        active = sum(counts.values())
        counts["stopped"] = self._row_total - active
        counts["users"] = len(self._users)
        return counts

    def __len__(self) -> int:
        return len(self._users)

    # --- talking to the hub --------------------------------------------------------------
    async def refresh_user(self, name: str) -> HubUser | None:
        """Re-read one user from the hub now; None (and dropped) when the hub has none."""
        try:
            user = await self.hub.get_user(name)
        except NotFound:
            self.remove(name)
            return None
        self.upsert(user)
        return user

    async def _refresh_many(self, names: Iterable[str]) -> None:
        limit = asyncio.Semaphore(REFRESH_CONCURRENCY)

        async def one(name: str) -> None:
            async with limit:
                await self.refresh_user(name)

        await asyncio.gather(*(one(n) for n in names))

    async def refresh_active(self) -> None:
        """Pull `state=active` now; re-read users we thought active that left that list."""
        active: list[HubUser] = []
        async for page, _total in self.hub.iter_user_pages(
            state="active", include_stopped_servers=True, page_size=SWEEP_PAGE
        ):
            active.extend(page)
        for user in active:
            self.upsert(user)
        seen = {u.name for u in active}
        gone = [name for name in self._active if name not in seen]
        if gone:
            await self._refresh_many(gone)

    async def sync_active(self) -> None:
        """One active pass: newest users, recently active users, then the active list."""
        newest, total = await self.hub.user_page(sort="-id", limit=CHEAP_PAGE)
        recent, _ = await self.hub.user_page(sort="-last_activity", limit=CHEAP_PAGE)
        for user in (*newest, *recent):
            self.upsert(user)
        await self.refresh_active()
        if self.ready and total != len(self._users):
            # users were created in bulk or deleted: the sweep finds out which
            if self._hub_total != total:
                log.info("hub has %d users, directory %d: sweeping soon", total, len(self._users))
            self._sweep_soon.set()
        self._hub_total = total
        self.reindex()
        self.synced_at = self.clock()
        self._active_error = None

    async def full_sweep(self) -> None:
        """Walk every user (paced); drop the users the hub no longer has."""
        self._touched = set()
        try:
            async for page, total in self.hub.iter_user_pages(
                page_size=SWEEP_PAGE,
                pause=self.settings.full_sync_page_pause,
                include_stopped_servers=True,
            ):
                for user in page:
                    self.upsert(user)
                self._hub_total = total
            missing = set(self._users) - self._touched
        finally:
            self._touched = None
        if missing:
            if len(missing) <= VERIFY_MISSING_MAX:
                # a user deleted mid-walk shifts the pages: re-read before dropping anyone
                await self._refresh_many(missing)
            else:
                for name in missing:
                    self.remove(name)
        self.reindex()
        self.full_synced_at = self.clock()
        self._last_sweep_end = self.full_synced_at
        self._sweep_error = None
        self.ready = True

    # --- the loops -----------------------------------------------------------------------
    async def run(self) -> None:
        """Sync until cancelled: a sweep loop and an active loop; errors never end them."""
        sweeper = asyncio.create_task(self._sweep_loop(), name="hubkeeper-directory-sweep")
        try:
            await self._active_loop()
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

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
                await asyncio.sleep(min(backoff, MAX_BACKOFF))
                backoff = min(backoff * 2, MAX_BACKOFF)

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
                await asyncio.sleep(min(backoff, MAX_BACKOFF))
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
