"""`api/v1/lockdown` (state, lock, lift), `lockdown/status` for the hub's hook, `lockdowns`."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from hubkeeper.actions.lockdown_state import OPEN, current
from hubkeeper.deps import CurrentAdmin, CurrentReader, OutboxDep, StateDep
from hubkeeper.lockdown import service
from hubkeeper.lockdown.schemas import (
    LockdownItem,
    LockdownList,
    LockdownOut,
    LockOut,
    LockRequest,
    LockStatus,
)
from hubkeeper.web.openapi import errors
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["lockdown"], dependencies=STRICT_QUERY)


@router.get("/lockdown", response_model=LockdownOut)
async def get_lockdown(who: CurrentReader, hk: StateDep) -> LockdownOut:
    """Whether the hub is locked, since when, by whom and why (read fresh from the database)."""
    return LockdownOut.of(await service.refresh(hk))


@router.post("/lockdown", response_model=LockOut, responses=errors(409))
async def lock(body: LockRequest, who: CurrentAdmin, hk: StateDep, outbox: OutboxDep) -> LockOut:
    """Lock the hub (409 already_locked); with stop_servers, also start a stop-all job."""
    result = await service.lock(hk, who, body.reason, stop_servers=body.stop_servers, outbox=outbox)
    out = LockdownOut.of(result.state)
    return LockOut(
        **out.model_dump(),
        job=result.job.id if result.job else None,
        stop_error=result.stop_error,
    )


@router.delete("/lockdown", response_model=LockdownOut, responses=errors(409))
async def lift(who: CurrentAdmin, hk: StateDep, outbox: OutboxDep) -> LockdownOut:
    """Lift the lockdown (409 not_locked); servers may start again."""
    await service.unlock(hk, who, outbox=outbox)
    return LockdownOut.of(OPEN)


@router.get("/lockdown/status", response_model=LockStatus)
async def status(hk: StateDep) -> LockStatus:
    """No auth: for the hub's pre-spawn hook. Served from memory (refreshed every 2 s)."""
    state = current(hk)
    return LockStatus(locked=state.active, message=state.message)


@router.get("/lockdowns", response_model=LockdownList)
async def lockdowns(
    who: CurrentReader,
    hk: StateDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LockdownList:
    """Every lockdown, newest first."""
    rows, total = await asyncio.to_thread(service.history, hk.engine, offset=offset, limit=limit)
    return LockdownList(
        items=[LockdownItem.of(r) for r in rows], total=total, offset=offset, limit=limit
    )
