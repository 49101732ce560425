"""One share of the hub's time for all of Hubkeeper's background requests.

The hub answers every request on its one thread, so a user's call that arrives while the hub
answers one of ours waits for it. How often that happens is the share of the hub's time our
requests take: below a few per cent a user's p95 does not move; above about 5 % it jumps
(bench/hub_load.py at 5,000 servers: mints at 3 % plus the reconciliation walk at 2 % made
it 7 times the hub alone's). Paced one by one, each kind of background work stayed within
its own share, and together they did not: so they share one.

Paced here: the bulk token mints (hub/server_tokens.py), the reconciliation's `state=active`
walk and every full sweep after the first (directory/sync.py). Not paced: what someone waits
for (a page, an action, a culler's read of the one user it decides about, a route change's
re-read of its user), and the first sweep, without which the console has no list.

Mints go ahead of sweep and walk pages (`turn(first=True)`): the culler's kernel pass waits
for them, and the pages are a backstop for what the routes miss. Shared first come, first
served, a 5,000-server start's mints got a third of the turns and ran 45 minutes
(bench/hub_load.py, 53e6b9b); in the steady state they are a few turns a minute, so pages
never starve for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass

# Hubkeeper's background requests together take at most this share of the hub's time
# (what jupyterhub-idle-culler's one `state=active` walk a pass takes at 5,000 running
# servers, bench/hub_load.py), measured as the time each HTTP request takes to be answered
# (`HubClient._send` reports it): not any wait for a free request slot or between retries.
BACKGROUND_SHARE = 0.03
# The longest gap (seconds) one answer can earn. The time a request takes includes any wait
# behind the hub's own work: at 5,000 servers the hub's `update_last_activity` (every 300 s,
# one query a route) holds its thread for ~10 s, and a mint caught behind it would otherwise
# stop every kind of background work for over five minutes (bench/hub_load.py, 20e60b9:
# mints stalled at a tenth of a start's). Up to answers of ~0.9 s the share holds; a hub
# slower than that still gets at most one background request per MAX_GAP.
MAX_GAP = 30.0


@dataclass
class _Turn:
    answered_in: float = 0.0  # seconds of HTTP requests made in this turn
    requests: int = 0


# The turn the running task is in, if any: HubClient._send adds its request's time to it.
_current: ContextVar[_Turn | None] = ContextVar("hubkeeper_hub_turn", default=None)


def note_request(seconds: float) -> None:
    """Count one HTTP request of `seconds` (perf_counter) towards the turn it was made in
    (none: the request is not background work)."""
    turn = _current.get()
    if turn is not None:
        turn.answered_in += seconds
        turn.requests += 1


class HubPace:
    """Runs background requests one at a time, and after one that took t seconds lets the
    next start no sooner than t × (1 - share) / share seconds later (at most MAX_GAP; seconds
    of time.monotonic): while answers take under ~0.9 s, at most `share` of the hub's time
    goes to them, since a slow answer waits longer before the next. t is the time of the
    HTTP requests made in the turn (`note_request`), or the turn's own time when none
    reported (a stand-in hub). One per app (`HubClient.pace`), shared by every kind of
    background work. A turn cannot be taken inside another: it would wait for itself."""

    def __init__(
        self,
        share: float = BACKGROUND_SHARE,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"a share of the hub's time is in (0, 1], not {share}")
        self.share = share
        self.clock = clock
        self._held = False
        # Waiters as (0 for `first`, else 1; arrival; future): first come, first served
        # within each kind, `first` ones ahead of the rest.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._free_at = 0.0
        self.requests = 0  # paced requests made (benchmarks, tests)
        self.busy = 0.0  # seconds they took

    @contextlib.asynccontextmanager
    async def turn(self, *, first: bool = False) -> AsyncIterator[None]:
        """Wait for this request's turn (ahead of every waiter not `first` when `first`),
        then time it (the body makes one request, with its retries)."""
        await self._acquire(first)
        try:
            wait = self._free_at - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            began = self.clock()
            turn = _Turn()
            token = _current.set(turn)
            try:
                yield
            finally:
                _current.reset(token)
                ended = self.clock()
                took = turn.answered_in if turn.requests else ended - began
                self.requests += 1
                self.busy += took
                self._free_at = ended + min(took * (1 - self.share) / self.share, MAX_GAP)
        finally:
            self._release()

    async def _acquire(self, first: bool) -> None:
        if not self._held and not self._waiters:
            self._held = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (0 if first else 1, next(self._arrivals), future)
        heapq.heappush(self._waiters, entry)
        try:
            await future  # `_release` hands the turn over: `_held` stays True
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed the turn as it was cancelled: pass it on
            else:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._held = False


@contextlib.asynccontextmanager
async def paced(pace: HubPace | None) -> AsyncIterator[None]:
    """`pace.turn()`, or nothing when there is no pace (work someone waits for)."""
    if pace is None:
        yield
        return
    async with pace.turn():
        yield
