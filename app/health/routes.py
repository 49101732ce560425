"""`GET api/v1/health`: no auth, says whether the hub and the database answer, and how users'
servers are reached (`servers`: reachable, via proxy_api|proxy|null, counts_as_activity,
detail)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from hubkeeper.db.engine import database_ok
from hubkeeper.errors import HubkeeperError

router = APIRouter()

HEALTH_HUB_TIMEOUT = 3.0


@router.get("/api/v1/health", tags=["health"])
async def health(request: Request) -> dict[str, object]:
    """Is Hubkeeper healthy? Reports hub reachability and the database."""
    hk = request.app.state.hk
    version: str | None = None
    reachable = False
    try:
        info = await asyncio.wait_for(hk.hub.info(), timeout=HEALTH_HUB_TIMEOUT)
        version = str(info.get("version")) if info.get("version") else None
        reachable = True
    except (HubkeeperError, TimeoutError):
        reachable = False
    db_ok = await run_in_threadpool(database_ok, hk.engine)
    return {
        "status": "ok" if reachable and db_ok else "degraded",
        "hub": {"reachable": reachable, "version": version},
        "database": "ok" if db_ok else "error",
        # Beyond the contract's keys: can users' servers be reached (logs, kernels), and do
        # those reads count as the users' activity (the HUBKEEPER_PROXY_URL fallback)?
        "servers": await hk.servers.report(),
    }
