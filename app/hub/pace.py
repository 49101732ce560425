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
for them, and the pages are a backstop for what the routes miss. Who goes next is chosen
when the gap ends, among all who wait then. Sharing turns first come, first served, a
5,000-server start's mints had made 723 of their ~1,000 requests after 45 minutes
(bench/hub_load.py, 53e6b9b). While pages wait, they still get one turn in FIRST_IN_A_ROW + 1:
at 5,000 servers the renewals alone are ~18 mints a minute, about half the pace, and a hub
twice as slow would fill it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
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
# While `first` turns wait, at most this many of them go in a row before a waiting page.
FIRST_IN_A_ROW = 4


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
    next start no sooner than t × (1 - share) / share seconds later (at most MAX_GAP; t on
    `clock`, the gap on the event loop's clock, both monotonic seconds): while answers take
    under ~0.9 s, at most `share` of the hub's time goes to them, since a slow answer waits
    longer before the next. t is the time of the HTTP requests made in the turn
    (`note_request`), or the turn's own time when none reported (a stand-in hub). One per
    app (`HubClient.pace`), shared by every kind of background work. A turn cannot be taken
    inside another: it would wait for itself."""

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
        # A turn runs, its gap is not over yet, or it was handed to a waiter not yet resumed.
        self._held = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # Who waits, each kind first come, first served (futures `_hand_over` resolves).
        self._first: deque[asyncio.Future[None]] = deque()
        self._rest: deque[asyncio.Future[None]] = deque()
        self._firsts_in_a_row = 0
        self.last_gap = 0.0  # seconds the last turn's gap lasted (tests)
        self.requests = 0  # paced requests made (benchmarks, tests)
        self.busy = 0.0  # seconds they took

    @contextlib.asynccontextmanager
    async def turn(self, *, first: bool = False) -> AsyncIterator[None]:
        """Wait for this request's turn (ahead of waiters not `first` when `first`, see
        FIRST_IN_A_ROW), then time it (the body makes one request, with its retries)."""
        await self._wait_for_turn(first)
        gap = 0.0
        try:
            began = self.clock()
            turn = _Turn()
            token = _current.set(turn)
            try:
                yield
            finally:
                _current.reset(token)
                took = turn.answered_in if turn.requests else self.clock() - began
                self.requests += 1
                self.busy += took
                gap = self.last_gap = min(took * (1 - self.share) / self.share, MAX_GAP)
        finally:
            # The turn stays held through the gap (whatever failed above: else background
            # work would stop for good); whoever waits when it ends goes next.
            asyncio.get_running_loop().call_later(gap, self._hand_over)

    async def _wait_for_turn(self, first: bool) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # an app started again on a new loop: the old is gone
            self._loop, self._held = loop, False
            self._first.clear()
            self._rest.clear()
        if not self._held:
            self._held = True
            self._firsts_in_a_row = self._firsts_in_a_row + 1 if first else 0
            return
        future: asyncio.Future[None] = loop.create_future()
        waiting = self._first if first else self._rest
        waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._hand_over()  # handed the turn as it was cancelled: its gap is over
            else:
                with contextlib.suppress(ValueError):  # `_hand_over` may have dropped it
                    waiting.remove(future)
            raise

    def _hand_over(self) -> None:
        """The gap is over: hand the turn to the next waiter, or free it."""
        while self._first or self._rest:
            take_first = bool(self._first) and (
                not self._rest or self._firsts_in_a_row < FIRST_IN_A_ROW
            )
            future = (self._first if take_first else self._rest).popleft()
            if future.done():  # cancelled while waiting
                continue
            self._firsts_in_a_row = self._firsts_in_a_row + 1 if take_first else 0
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
