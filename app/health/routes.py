"""`GET api/v1/health`: no auth, says whether the hub and the database answer, and how users'
servers are reached (`servers`: reachable, via proxy_api|proxy|null, counts_as_activity,
detail) and how tokens for them are had (`server_tokens`: mode, warnings)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from hubkeeper.db.engine import database_ok
from hubkeeper.errors import HubkeeperError
from hubkeeper.state import HubkeeperState
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter()

HEALTH_HUB_TIMEOUT = 3.0
# The hub's answer is reused this long (seconds): health is unauthenticated and polled by
# load balancers and monitors, and must not turn each poll into a hub request.
HUB_CHECK_CACHE_SECONDS = 5.0


@dataclass
class HubCheck:
    """The last hub check, shared by every health request; one check in flight at a time."""

    reachable: bool = False
    version: str | None = None
    checked_at: float = float("-inf")  # time.monotonic()
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    hub_requests: int = 0  # for tests and curiosity

    async def current(self, hk: HubkeeperState) -> tuple[bool, str | None]:
        if time.monotonic() - self.checked_at < HUB_CHECK_CACHE_SECONDS:
            return self.reachable, self.version
        async with self.lock:
            # Whoever waited on the lock reuses the answer the holder just fetched.
            if time.monotonic() - self.checked_at < HUB_CHECK_CACHE_SECONDS:
                return self.reachable, self.version
            self.hub_requests += 1
            try:
                info = await asyncio.wait_for(hk.hub.info(), timeout=HEALTH_HUB_TIMEOUT)
                self.version = str(info.get("version")) if info.get("version") else None
                self.reachable = True
            except (HubkeeperError, TimeoutError):
                self.reachable, self.version = False, None
            self.checked_at = time.monotonic()
            return self.reachable, self.version


def hub_check(hk: HubkeeperState) -> HubCheck:
    if hk.health_hub_check is None:
        hk.health_hub_check = HubCheck()
    return hk.health_hub_check


async def health_report(hk: HubkeeperState) -> dict[str, object]:
    """What `GET api/v1/health` answers and the health page shows; the hub is asked at most
    every HUB_CHECK_CACHE_SECONDS (5 s), whoever asks."""
    reachable, version = await hub_check(hk).current(hk)
    db_ok = await run_in_threadpool(database_ok, hk.engine)
    return {
        "status": "ok" if reachable and db_ok else "degraded",
        "hub": {"reachable": reachable, "version": version},
        "database": "ok" if db_ok else "error",
        # Beyond the contract's keys: can users' servers be reached (logs, kernels), and do
        # those reads count as the users' activity (the HUBKEEPER_PROXY_URL fallback)?
        "servers": await hk.servers.report(),
        # How Hubkeeper gets tokens for users' servers: "plugin" (the hub plugin's one-server
        # tokens), "tokens" (the fallback that makes its token hub admin in disguise), "none";
        # with a warning for every scope that gives it more power than it uses.
        "server_tokens": await hk.servers.tokens.report(),
        # How the directory sees changes: the proxy's routes (free for the hub) or, without a
        # proxy API or while it fails, the hub's state=active list.
        "changes": {
            "source": (
                "hub" if hk.directory.routes_error is not None else hk.directory.change_source
            ),
            "detail": hk.directory.routes_error,
        },
    }


@router.get("/api/v1/health", tags=["health"], dependencies=STRICT_QUERY)
async def health(request: Request) -> dict[str, object]:
    """Is Hubkeeper healthy? Reports hub reachability (checked at most every 5 s) and the
    database."""
    return await health_report(request.app.state.hk)
