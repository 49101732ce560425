"""`metrics` (Prometheus, beside `api/`), `api/v1/health/live` and `api/v1/health/ready`.

The contract's "Operations": metrics need a hub token whose scopes (as the hub reports them
at /hub/api/user) include `read:metrics` — the scope guarding the hub's own /hub/metrics
(jupyterhub/scopes.py, held by the built-in admin role in jupyterhub/roles.py) — unless
HUBKEEPER_METRICS_PUBLIC is set. No token → 401, a token without the scope → 403.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.responses import JSONResponse, Response

from hubkeeper.auth.tokens import TokenCache, token_from_header
from hubkeeper.db.engine import database_ok
from hubkeeper.errors import Forbidden, HubkeeperError, Unauthenticated
from hubkeeper.ops.metrics import build_registry
from hubkeeper.state import HubkeeperState
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter()

READY_HUB_TIMEOUT = 3.0  # s


def _registry(hk: HubkeeperState) -> CollectorRegistry:
    if hk.metrics_registry is None:
        hk.metrics_registry = build_registry(hk)
    return hk.metrics_registry


async def _require_metrics_scope(request: Request, hk: HubkeeperState) -> None:
    token = token_from_header(request.headers.get("authorization"))
    if token is None:
        raise Unauthenticated(
            "metrics need a hub token with the read:metrics scope", code="login_required"
        )
    cache = hk.metrics_token_cache
    if cache is None:
        cache = hk.metrics_token_cache = TokenCache(hk.settings.token_cache_seconds)
    identity = await cache.identify(hk.hub, token)
    if "read:metrics" not in identity.scopes:
        raise Forbidden("this token lacks the read:metrics scope", code="missing_scope")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format; read:metrics token unless HUBKEEPER_METRICS_PUBLIC."""
    hk: HubkeeperState = request.app.state.hk
    if not hk.settings.metrics_public:
        try:
            await _require_metrics_scope(request, hk)
        except HubkeeperError as exc:  # a scraper gets JSON, never the HTML error page
            return JSONResponse(
                {"error": exc.code, "detail": exc.detail},
                status_code=exc.status_code,
                headers={"WWW-Authenticate": "token"} if exc.status_code == 401 else None,
            )
    body = await asyncio.to_thread(generate_latest, _registry(hk))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/health/live", tags=["health"], dependencies=STRICT_QUERY)
async def live() -> dict[str, str]:
    """The process answers (no auth; for a liveness probe: checks nothing else)."""
    return {"status": "ok"}


@router.get(
    "/api/v1/health/ready",
    tags=["health"],
    dependencies=STRICT_QUERY,
    responses={
        503: {"description": 'Not ready: the same body with "status": "unavailable"'},
    },
)
async def ready(request: Request) -> Response:
    """The database and the hub answer (no auth); 503 when either does not."""
    hk: HubkeeperState = request.app.state.hk
    db_ok = await asyncio.to_thread(database_ok, hk.engine)
    try:
        await asyncio.wait_for(hk.hub.info(), timeout=READY_HUB_TIMEOUT)
        hub_ok = True
    except (HubkeeperError, TimeoutError):
        hub_ok = False
    body = {
        "status": "ok" if db_ok and hub_ok else "unavailable",
        "database": "ok" if db_ok else "error",
        "hub": "ok" if hub_ok else "unreachable",
    }
    return JSONResponse(body, status_code=200 if db_ok and hub_ok else 503)
