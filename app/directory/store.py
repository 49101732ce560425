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
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hubkeeper.config import Settings
from hubkeeper.directory.index import (
    ROW_KEYS,
    ROW_TIME_FIELDS,
    USER_KEYS,
    USER_TIME_FIELDS,
    Selection,
    SortedIndex,
    contiguous,
    gather,
    row_columns,
    row_text,
)
from hubkeeper.directory.rows import BOTH, PENDING, RUNNING, STOPPED, ServerRow, rows_of, user_state
from hubkeeper.directory.sync import DirectorySync, RouteSource
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.models import HubUser
from hubkeeper.hub.servers import Route
from hubkeeper.kit.clock import utcnow

log = logging.getLogger(__name__)

# row statuses to filter on: "pending" = starting or stopping, "active" = not stopped
STATUSES = ("any", "active", "running", "pending", "starting", "stopping", "stopped")
ROW_SORTS = ("name", "-name", "last_activity", "-last_activity", "started", "-started")
USER_STATES = ("any", "active", "running", "pending", "stopped")
USER_SORTS = ("name", "-name", "last_activity", "-last_activity", "started", "-started")
ROW_PENDING = ("starting", "stopping")

SMALL_SET = 3000  # this few candidate users (active, in a group): sort theirs, scan no index
REBUILD_THRESHOLD = 300  # more dirty users than this → rebuild indexes instead of patching
REBUILD_MIN_GAP = 2.0  # s between rebuilds asked for by queries (the loops force theirs)
CACHE_SIZE = 64


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


class UserDirectory(DirectorySync):
    """The hub's users in memory, kept in sync by `run()`; queries are pure and fast."""

    def __init__(
        self,
        hub: HubClient,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        routes: RouteSource | None = None,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.clock = clock
        # The proxy's routing table as the change signal (directory/sync.py); None: the hub's
        # state=active list every HUBKEEPER_ACTIVE_SYNC_INTERVAL instead.
        self.routes = routes
        self.change_source = "proxy_routes" if routes is not None else "hub"
        self._route_table: dict[tuple[str, str], Route] | None = None
        self._routes_error: str | None = None
        self._reconciled_at = float("-inf")  # time.monotonic() of the last state=active read
        self._recent_at = float("-inf")
        self._pending_at = float("-inf")
        self._follow_ups: dict[str, tuple[float, float]] = {}
        self._reconciling: asyncio.Task[None] | None = None  # a paced state=active walk
        self._noted_version = -1  # `version` when the routes' activity was last applied
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
        self._texts: dict[str, tuple[str, ...]] = {}  # search text of each row
        self._states: dict[str, str] = {}  # user_state() of each user
        self._active: set[str] = set()  # users with any server not stopped
        self._group_members: dict[str, set[str]] = {}
        self._row_total = 0

        # indexes, patched lazily from `_dirty` (name → the user and rows before the change)
        self._row_index = {k: SortedIndex[ServerRow](f, row_columns) for k, f in ROW_KEYS.items()}
        self._user_index = {
            k: SortedIndex[HubUser](f, self._user_columns) for k, f in USER_KEYS.items()
        }
        self._built = False
        self._rebuilding = False  # a rebuild is running in a worker thread
        self._rebuilt_at = 0.0
        self._dirty: dict[str, tuple[HubUser | None, tuple[ServerRow, ...]]] = {}
        # Selections point into the index lists: valid until the next reindex, which clears it.
        self._cache: OrderedDict[tuple[Any, ...], Selection[Any]] = OrderedDict()
        self._cache_version = -1
        self._counts: tuple[int, dict[str, int]] | None = None

        # sync bookkeeping
        self._hub_total: int | None = None
        self._touched: set[str] | None = None  # names upserted while a sweep runs
        # When the hub answer behind each user's state was asked for (time.monotonic()):
        # an answer asked for earlier that arrives later is older, and is dropped. Kept for
        # removed users too, so a late answer cannot bring a deleted user back.
        self._fetched: dict[str, float] = {}
        self._sweep_soon = asyncio.Event()

        # called with (old, new) on every change of a user (None = absent); must be cheap
        self.listeners: list[Callable[[HubUser | None, HubUser | None], None]] = []

    # --- state for the UI ----------------------------------------------------------------
    @property
    def stale(self) -> bool:
        """True while the last sync attempt (active or full) failed."""
        return self._active_error is not None or self._sweep_error is not None

    @property
    def last_error(self) -> str | None:
        return self._active_error or self._sweep_error

    @property
    def hub_total(self) -> int | None:
        """How many users the hub said it has, at the last sync (None before)."""
        return self._hub_total

    def running_users(self) -> list[HubUser]:
        """The users with any server not stopped (a snapshot of the copy: for lists)."""
        return [self._users[name] for name in self._active if name in self._users]

    def all_users(self) -> list[HubUser]:
        """Every user (a snapshot of the copy: for lists)."""
        return list(self._users.values())

    def names(self) -> list[str]:
        """Every user's name (a snapshot)."""
        return list(self._users)

    def follow_state(
        self,
        *,
        synced_at: datetime | None,
        full_synced_at: datetime | None,
        hub_total: int | None,
    ) -> None:
        """Take the leading replica's sync state (directory/shared.py): this directory is
        as current as what it follows; ready once the leader has swept the hub."""
        self.synced_at = synced_at
        self.full_synced_at = full_synced_at
        self._hub_total = hub_total
        self._active_error = self._sweep_error = None
        if full_synced_at is not None:
            self.ready = True

    @property
    def routes_error(self) -> str | None:
        """Why the proxy's routes could not be read last time (None when they could, or when
        they are not used)."""
        return self._routes_error

    def lag_seconds(self) -> float | None:
        """Seconds since the last successful active sync (None before the first)."""
        if self.synced_at is None:
            return None
        return max(0.0, (self.clock() - self.synced_at).total_seconds())

    # --- applying what the hub said ------------------------------------------------------
    def _is_older(self, name: str, fetched_at: float | None) -> bool:
        """Whether an answer asked for at `fetched_at` is older than what we hold (and if
        not, remember it as the newest). None = asked for just now."""
        stamp = time.monotonic() if fetched_at is None else fetched_at
        if stamp < self._fetched.get(name, float("-inf")):
            return True
        self._fetched[name] = stamp
        return False

    def upsert(self, user: HubUser, *, fetched_at: float | None = None) -> bool:
        """Take the hub's view of one user; True when anything visible changed.

        `fetched_at` is `time.monotonic()` when the request behind this view was sent (the
        hub client stamps its pages with it, `UserPage.fetched_at`); a view older than the
        one applied last is dropped, so a slow answer never flips a server back. None =
        asked for now.
        """
        if self._touched is not None:
            self._touched.add(user.name)
        if self._is_older(user.name, fetched_at):
            return False
        old = self._users.get(user.name)
        if old is not None and old == user:
            return False
        self._forget(user.name, old)
        self._users[user.name] = user
        rows = rows_of(user, self._base_url)
        self._rows[user.name] = rows
        self._texts[user.name] = tuple(row_text(r) for r in rows)
        self._states[user.name] = user_state(rows)
        self._row_total += len(rows)
        for g in user.groups:
            self._group_members.setdefault(g, set()).add(user.name)
        if any(r.status != "stopped" for r in rows):
            self._active.add(user.name)
        else:
            self._active.discard(user.name)
        self.version += 1
        self._notify(old, user)
        return True

    def remove(self, name: str, *, fetched_at: float | None = None) -> bool:
        """Drop a user the hub no longer has (unless a newer answer showed it since)."""
        if self._is_older(name, fetched_at):
            return False
        old = self._users.get(name)
        if old is None:
            return False
        self._forget(name, old)
        del self._users[name]
        self._rows.pop(name, None)
        self._texts.pop(name, None)
        self._states.pop(name, None)
        self._active.discard(name)
        self.version += 1
        self._notify(old, None)
        return True

    def _notify(self, old: HubUser | None, new: HubUser | None) -> None:
        for listener in self.listeners:
            try:
                listener(old, new)
            except Exception:  # a listener's bug must not break the sync
                log.exception("directory listener %r failed", listener)

    def _forget(self, name: str, old: HubUser | None) -> None:
        """Undo the counters of the old state and remember it for patching the indexes."""
        old_rows = self._rows.get(name, ())
        if name not in self._dirty:
            self._dirty[name] = (old, old_rows)
        if old is not None:
            self._row_total -= len(old_rows)
            for g in old.groups:
                members = self._group_members.get(g)
                if members is not None:
                    members.discard(name)
                    if not members:
                        del self._group_members[g]

    # --- indexes -------------------------------------------------------------------------
    def reindex(self, *, force: bool = True) -> None:
        """Bring the sorted lists up to date (patched when few users changed, else rebuilt).

        Queries pass `force=False`: while a sweep streams in thousands of changes they then
        keep using lists up to REBUILD_MIN_GAP s old instead of rebuilding per request (rows
        are immutable, so an old list is consistent, only late); the sync loops force it.
        """
        if self._rebuilding or (self._built and not self._dirty):
            return
        if not self._built or len(self._dirty) > REBUILD_THRESHOLD:
            if not force and self._built and time.monotonic() - self._rebuilt_at < REBUILD_MIN_GAP:
                return
            self._rebuild()
            self._rebuilt_at = time.monotonic()
        else:
            for name, (old_user, old_rows) in self._dirty.items():
                self._patch(name, old_user, old_rows)
        self._dirty.clear()
        self._cache.clear()
        self._cache_version = self.version

    def _patch(self, name: str, old_user: HubUser | None, old_rows: tuple[ServerRow, ...]) -> None:
        """Move one user's rows and entry in every index from their old to their new state."""
        new_user = self._users.get(name)
        new_rows = {r.server: r for r in self._rows.get(name, ())} if new_user else {}
        before = {r.server: r for r in old_rows}
        for index in self._row_index.values():
            if not index.built:  # built from the name order when first used
                continue
            for server, row in before.items():
                if server in new_rows:
                    index.replace(row, new_rows[server])
                else:
                    index.remove(row)
            for server, row in new_rows.items():
                if server not in before:
                    index.add(row)
        for uindex in self._user_index.values():
            if not uindex.built:
                continue
            if old_user is not None and new_user is not None:
                uindex.replace(old_user, new_user)
            elif old_user is not None:
                uindex.remove(old_user)
            elif new_user is not None:
                uindex.add(new_user)

    def _user_columns(self, user: HubUser) -> tuple[str, str, tuple[str, ...]]:
        return user.name.lower(), self._states.get(user.name, STOPPED), ()

    def _rebuild(self) -> None:
        """Rebuild every order now, on the event loop (queries use `rebuild_off_loop`)."""
        self._row_index, self._user_index = build_indexes(
            self._rows, self._texts, self._users, self._states, self._user_columns
        )
        self._built = True

    async def rebuild_off_loop(self) -> None:
        """Bring the lists up to date; a wholesale rebuild runs in a worker thread.

        At 50,000 users a rebuild takes ~300 ms: on the event loop that would stall every
        request. The thread builds new lists from a snapshot while queries keep reading the
        old ones (consistent, only late); changes that arrive meanwhile stay in `_dirty` and
        are patched onto the new lists once they are swapped in.
        """
        if self._rebuilding:
            return
        if self._built and len(self._dirty) <= REBUILD_THRESHOLD:
            self.reindex()
            return
        self._rebuilding = True
        try:
            snapshot = (dict(self._rows), dict(self._texts), dict(self._users), dict(self._states))
            self._dirty.clear()  # what changes from here on is patched onto the new lists
            row_index, user_index = await asyncio.to_thread(
                build_indexes, *snapshot, self._user_columns
            )
            self._row_index, self._user_index = row_index, user_index
            self._built = True
            self._rebuilt_at = time.monotonic()
        finally:
            self._rebuilding = False
        self._cache.clear()
        self._cache_version = -1
        if len(self._dirty) <= REBUILD_THRESHOLD:
            self.reindex()

    def _row_order(self, sort: str) -> SortedIndex[ServerRow]:
        index = self._row_index[sort]
        # the name order is the base the time orders are built from, never built itself:
        # before the first sweep it is empty (a page asked that early lists nobody, not a 500)
        if not index.built and sort in ROW_TIME_FIELDS:
            build_row_order(self._row_index, sort)
        return index

    def _user_order(self, sort: str) -> SortedIndex[HubUser]:
        index = self._user_index[sort]
        if not index.built and sort in USER_TIME_FIELDS:
            build_user_order(self._user_index, sort)
        return index

    def _cached(
        self, key: tuple[Any, ...], compute: Callable[[], Selection[Any]]
    ) -> Selection[Any]:
        self.reindex(force=False)
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
        return rows.page(offset, limit), len(rows)

    def _filter_rows(self, *, q: str, status: str, group: str, sort: str) -> Selection[ServerRow]:
        if "\x00" in q:
            return Selection([])
        reverse = sort == "-name"
        index = self._row_order("name" if reverse else sort)
        # Few users can match (few servers run; a small group): sort just their rows.
        candidates: set[str] | None = None
        if status not in ("any", "stopped"):
            candidates = self._active
        if group:
            members = self._group_members.get(group, set())
            candidates = members if candidates is None else candidates & members
        if candidates is not None and len(candidates) < SMALL_SET:
            small = sorted(
                (
                    r
                    for name in candidates
                    for r in self._rows[name]
                    if (
                        status == "any"
                        or r.status == status
                        or (status == "active" and r.status != "stopped")
                        or (status == "pending" and r.status in ROW_PENDING)
                    )
                    and (not q or q in row_text(r))
                ),
                key=index.key,
                reverse=reverse,
            )
            return Selection(small)
        # one tight pass per filter, each over the survivors of the last (positions only)
        picked: list[int] | None = None
        if status == "active":
            picked = [i for i, st in enumerate(index.statuses) if st != "stopped"]
        elif status == "pending":
            picked = [i for i, st in enumerate(index.statuses) if st in ROW_PENDING]
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
        return Selection(index.items, picked, reverse)

    def query_users(
        self,
        *,
        q: str = "",
        state: str = "any",
        group: str = "",
        sort: str = "name",
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[HubUser], int]:
        """Users (running = a server runs; pending = one starts/stops; active = either;
        stopped = none active), optionally only members of `group`."""
        _check(state, USER_STATES, "state")
        _check(sort, USER_SORTS, "sort")
        users = self._cached(
            ("users", q.lower(), state, group, sort),
            lambda: self._filter_users(q=q.lower(), state=state, group=group, sort=sort),
        )
        return users.page(offset, limit), len(users)

    def _filter_users(self, *, q: str, state: str, group: str, sort: str) -> Selection[HubUser]:
        reverse = sort == "-name"
        index = self._user_order("name" if reverse else sort)
        wanted = {
            "any": (RUNNING, PENDING, BOTH, STOPPED),
            "active": (RUNNING, PENDING, BOTH),
            "running": (RUNNING, BOTH),
            "pending": (PENDING, BOTH),
            "stopped": (STOPPED,),
        }[state]
        candidates: set[str] | None = (
            self._active if state in ("active", "running", "pending") else None
        )
        if group:
            members = self._group_members.get(group, set())
            candidates = members if candidates is None else candidates & members
        if candidates is not None and len(candidates) < SMALL_SET:
            return Selection(
                sorted(
                    (
                        self._users[name]
                        for name in candidates
                        if self._states.get(name, STOPPED) in wanted
                        and (not q or q in name.lower())
                    ),
                    key=index.key,
                    reverse=reverse,
                )
            )
        lowers, states = index.lowers, index.statuses
        picked: list[int] | None
        if state == "any":
            picked = [i for i, text in enumerate(lowers) if q in text] if q else None
        elif q:
            picked = [i for i, st in enumerate(states) if st in wanted and q in lowers[i]]
        else:
            picked = [i for i, st in enumerate(states) if st in wanted]
        if group:
            items = index.items
            members = self._group_members.get(group, set())
            picked = [
                i
                for i in (range(len(items)) if picked is None else picked)
                if items[i].name in members
            ]
        return Selection(index.items, picked, reverse)

    def get(self, name: str) -> HubUser | None:
        return self._users.get(name)

    def rows_for(self, name: str) -> tuple[ServerRow, ...]:
        return self._rows.get(name, ())

    def groups(self) -> list[str]:
        """Every group name seen on a user, sorted."""
        return sorted(self._group_members)

    def counts(self) -> dict[str, int]:
        """Servers by status, and users, for the header (computed once per version)."""
        if self._counts is not None and self._counts[0] == self.version:
            return dict(self._counts[1])
        counts = {"running": 0, "starting": 0, "stopping": 0}
        for name in self._active:
            for r in self._rows[name]:
                if r.status in counts:
                    counts[r.status] += 1
        active = sum(counts.values())
        counts["stopped"] = self._row_total - active
        counts["users"] = len(self._users)
        self._counts = (self.version, counts)
        return dict(counts)

    def __len__(self) -> int:
        return len(self._users)

    # --- talking to the hub --------------------------------------------------------------


def build_indexes(
    rows_by_name: dict[str, tuple[ServerRow, ...]],
    texts: dict[str, tuple[str, ...]],
    users: dict[str, HubUser],
    states: dict[str, str],
    user_columns: Callable[[HubUser], tuple[str, str, tuple[str, ...]]],
) -> tuple[dict[str, SortedIndex[ServerRow]], dict[str, SortedIndex[HubUser]]]:
    """Every sorted list, built from scratch (pure: safe to run in a worker thread)."""
    row_index = {k: SortedIndex[ServerRow](f, row_columns) for k, f in ROW_KEYS.items()}
    user_index = {k: SortedIndex[HubUser](f, user_columns) for k, f in USER_KEYS.items()}
    # name order without comparing tuples: users by name, each user's rows by server
    names = sorted(rows_by_name)
    rows = [row for name in names for row in rows_by_name[name]]
    lowers = [text for name in names for text in texts[name]]
    row_index["name"].set(rows, lowers, [r.status for r in rows], [r.groups for r in rows])
    ordered_users = [users[name] for name in names]
    ulowers = [texts[name][0].partition("\x00")[0] for name in names]
    ustates = [states[name] for name in names]
    user_index["name"].set(ordered_users, ulowers, ustates, [()] * len(ordered_users))
    for sort in ROW_TIME_FIELDS:
        build_row_order(row_index, sort)
    for sort in USER_TIME_FIELDS:
        build_user_order(user_index, sort)
    return row_index, user_index


def build_row_order(row_index: dict[str, SortedIndex[ServerRow]], sort: str) -> None:
    """A time order of rows, from the name order (a stable sort keeps ties by name)."""
    base = row_index["name"]
    field, fn = ROW_TIME_FIELDS[sort]
    keys = [fn(getattr(r, field)) for r in base.items]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    row_index[sort].set(
        gather(base.items, order),
        contiguous(gather(base.lowers, order)),
        gather(base.statuses, order),
        gather(base.groups, order),
    )


def build_user_order(user_index: dict[str, SortedIndex[HubUser]], sort: str) -> None:
    base = user_index["name"]
    value, fn = USER_TIME_FIELDS[sort]
    keys = [fn(value(u)) for u in base.items]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    user_index[sort].set(
        gather(base.items, order),
        contiguous(gather(base.lowers, order)),
        gather(base.statuses, order),
        [()] * len(keys),  # users are not filtered by group
    )
