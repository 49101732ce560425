"""`GET api/v1/culler/backtest` and `GET api/v1/culler/backtest/suggest`: the recorded
history replayed under a candidate idle timeout (culler/backtest.py). Read-only (admins and
managers); the replay runs in a worker thread."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from hubkeeper.culler import backtest
from hubkeeper.culler.backtest_summary import replay_fast
from hubkeeper.deps import CurrentReader, StateDep
from hubkeeper.kit.clock import utcnow
from hubkeeper.kit.durations import parse_duration, short
from hubkeeper.kit.window import BadInput, window
from hubkeeper.state import HubkeeperState
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["culler"], dependencies=STRICT_QUERY)

DEFAULT_DAYS = 30  # the window when `since` is not given
Source = Annotated[
    Literal["hub", "kernels"],
    Query(description="idle means no hub/route activity (hub) or no kernel activity (kernels)"),
]
By = Annotated[Literal["group", "user"], Query(description="rows per group or per user")]
When = Annotated[str | None, Query()]  # described by web/openapi.py COMMON_PARAMS


def parse_timeout(raw: str, name: str = "timeout_s") -> int:
    """Whole seconds from "1800" or "30m" (app/kit/durations.py), between one bucket (5 min)
    and 30 days. Raises BadInput (422 `invalid_parameter`) naming the value `name` (the
    API's parameter; the page passes its field's label)."""
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise BadInput(f"{name}: {exc}") from None
    if not backtest.MIN_TIMEOUT <= seconds <= backtest.MAX_TIMEOUT:
        # a number far past the limit reads better as typed than as "1157407 d 9 h ..."
        given = short(seconds) if seconds <= 365 * 86400 else repr(raw.strip())
        raise BadInput(
            f"{name} must be between {short(backtest.MIN_TIMEOUT)} and "
            f"{short(backtest.MAX_TIMEOUT)}, not {given}"
        )
    return seconds


def _groups_of(hk: HubkeeperState) -> backtest.GroupsOf:
    def groups_of(user: str) -> Sequence[str]:
        found = hk.directory.get(user)
        return found.groups if found is not None else ()

    return groups_of


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    """One backtest at a time per event loop, waiting here rather than in a worker thread:
    queued backtests must not take every thread `asyncio.to_thread` has (the recorder's
    writes use them too)."""
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(1)
    return gate


async def replays(
    hk: HubkeeperState,
    timeouts: Sequence[int],
    *,
    since: datetime,
    until: datetime,
    source: str,
    by: str,
) -> dict[int, backtest.Result]:
    """The window's sessions replayed under each timeout in a worker thread, one at a time
    (`_gate`): from the backtest summary where it is built, the rest read and replayed
    (backtest_summary.replay_fast)."""
    async with _gate():
        return await asyncio.to_thread(
            functools.partial(
                replay_fast,
                hk.engine,
                timeouts,
                since=since,
                until=until,
                now=utcnow(),
                source=source,
                by=by,
                groups_of=_groups_of(hk),
                prices=hk.settings.prices,
            )
        )


@router.get("/culler/backtest")
async def get_backtest(
    who: CurrentReader,
    hk: StateDep,
    timeout_s: Annotated[str, Query(description='idle timeout: seconds, or "30m", "2h"')],
    idle_source: Source = "hub",
    since: When = None,
    until: When = None,
    by: By = "group",
) -> dict[str, object]:
    """What a server idle timeout of `timeout_s` would have done to the sessions started in
    `[since, until)` (default: the last 30 days): per group or user, the sessions, their
    server-hours, the hours saved, the sessions cut and the cuts regretted (the user active
    again within 15 minutes). `saved_cost`: the hours saved × HUBKEEPER_PRICES's price of each
    session's profile ("*" for the others), null when no prices are set. 422 on bad input."""
    timeout = parse_timeout(timeout_s)
    start, stop = window(since, until, now=utcnow(), default_days=DEFAULT_DAYS)
    found = await replays(hk, (timeout,), since=start, until=stop, source=idle_source, by=by)
    return backtest.items(found[timeout])


@router.get("/culler/backtest/suggest")
async def get_suggestion(
    who: CurrentReader,
    hk: StateDep,
    max_regret: Annotated[
        float, Query(ge=0, le=1, description="the regret rate allowed, 0 to 1 (0.05 = 5 %)")
    ] = 0.05,
    idle_source: Source = "hub",
    since: When = None,
    until: When = None,
    by: By = "group",
) -> dict[str, object]:
    """Per group or user, the shortest timeout among 15 min, 30 min, 1 h, 2 h, 4 h and 8 h
    whose regret rate (regretted cuts per session) stays at or under `max_regret`, with its
    figures; `timeout_s` null when none does. Same window and sources as `backtest`."""
    start, stop = window(since, until, now=utcnow(), default_days=DEFAULT_DAYS)
    found = await replays(
        hk, backtest.CANDIDATES, since=start, until=stop, source=idle_source, by=by
    )
    items = backtest.suggest_from(found, max_regret)
    return {"max_regret": max_regret, "candidates": list(backtest.CANDIDATES), "items": items}
