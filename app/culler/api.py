"""`api/v1/culler` (settings, preview, run), `api/v1/culls`, `api/v1/exemptions`."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from hubkeeper.culler import exemptions, records, service
from hubkeeper.culler.deps import CullerDep
from hubkeeper.culler.schemas import (
    CulledOut,
    CullList,
    CullOut,
    ErrorItem,
    ExemptionIn,
    ExemptionList,
    ExemptionOut,
    PlannedOut,
    RunOut,
)
from hubkeeper.culler.service import Culler
from hubkeeper.deps import CurrentAdmin, CurrentReader, StateDep
from hubkeeper.kit.clock import utcnow
from hubkeeper.kit.window import BadInput, bounds, parse_when
from hubkeeper.web.openapi import errors
from hubkeeper.web.params import RowId, UserName
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["culler"], dependencies=STRICT_QUERY)


async def _settings_out(culler: Culler) -> dict[str, Any]:
    cur = await culler.current()
    out: dict[str, Any] = cur.settings.model_dump()
    out["last_run"] = await culler.last_run()
    return out


@router.get("/culler")
async def get_culler(who: CurrentReader, culler: CullerDep) -> dict[str, Any]:
    """The culler settings in force (saved, else the HUBKEEPER_CULL_* defaults) and
    `last_run` (read-only)."""
    return await _settings_out(culler)


@router.put("/culler")
async def put_culler(request: Request, who: CurrentAdmin, culler: CullerDep) -> dict[str, Any]:
    """Replace the whole settings object (`last_run` ignored). 422 `invalid_settings` on
    any bad value, nothing changed. Applies from the next pass; audited with the diff."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise BadInput("The body must be JSON", code="invalid_settings") from None
    await culler.update_settings(who, body)
    return await _settings_out(culler)


@router.get("/culler/preview", response_model=list[PlannedOut])
async def preview(
    who: CurrentReader,
    culler: CullerDep,
    within: Annotated[
        int,
        Query(ge=0, le=service.WITHIN_MAX, description="seconds from now (0 to 30 days)"),
    ] = 0,
    include_kept: Annotated[
        bool, Query(description="also list the servers a rule keeps, each with `kept`: why")
    ] = False,
) -> list[PlannedOut]:
    """Who a pass would cull now, or — with `within` (seconds) — by then if they stay idle:
    servers and kernels. `include_kept=1` adds the servers a rule keeps (a busy kernel, a
    terminal in use), each with `kept` saying why. Changes nothing."""
    kept: list[dict[str, Any]] = []
    planned, _errors = await culler.preview(within=within, kept=kept)
    out = [PlannedOut(**c.as_dict()) for c in planned]
    if include_kept:
        out += [PlannedOut(**item) for item in kept]
    return out


ServerQuery = Annotated[
    str, Query(max_length=255, description="a named server; empty for the default server")
]


@router.get("/users/{name}/idleness", responses=errors(404))
async def get_idleness(
    name: UserName, who: CurrentReader, culler: CullerDep, server: ServerQuery = ""
) -> dict[str, Any]:
    """Why a server is idle or active: each signal (hub, proxy, kernels, terminals) with its
    time, and the decision a pass would make now (`keep`|`cull`, `reason`, `cull_at`)."""
    return await culler.idleness(name, server)


@router.post("/culler/run", response_model=RunOut)
async def run(who: CurrentAdmin, culler: CullerDep) -> RunOut:
    """One pass now (servers, then kernels), whatever `enabled` says; audited as the admin."""
    result = await culler.run_once(who)
    return RunOut(
        culled=[
            CulledOut(
                user=c.user, server=c.server, kind=c.kind, kernel_id=c.kernel_id, reason=c.reason
            )
            for c in result.culled()
        ],
        errors=[ErrorItem(**e) for e in result.errors()],
        deleted_users=result.servers.deleted_users,
        duration_s=round(result.servers.duration_s + result.kernels.duration_s, 3),
    )


@router.get("/culls", response_model=CullList)
async def culls(
    who: CurrentReader,
    hk: StateDep,
    user: Annotated[str, Query(max_length=255)] = "",
    kind: Literal["", "server", "kernel"] = "",
    reason: Literal["", "idle", "max_age"] = "",
    outcome: Literal["", "ok", "error"] = "",
    since: str | None = None,
    until: str | None = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CullList:
    """Every cull (server or kernel), newest first, in [since, until)."""
    start, end = bounds(since, until)
    rows, total = await asyncio.to_thread(
        records.search,
        hk.engine,
        user=user or None,
        kind=kind or None,
        reason=reason or None,
        outcome=outcome or None,
        since=start,
        until=end,
        offset=offset,
        limit=limit,
    )
    return CullList(items=[CullOut.of(r) for r in rows], total=total, offset=offset, limit=limit)


@router.get("/exemptions", response_model=ExemptionList)
async def list_exemptions(
    who: CurrentReader,
    hk: StateDep,
    include_deleted: bool = False,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ExemptionList:
    """Exemptions, newest first: active and expired ones (deleted ones on request)."""
    rows, total = await asyncio.to_thread(
        exemptions.listing,
        hk.engine,
        include_deleted=include_deleted,
        offset=offset,
        limit=limit,
    )
    now = utcnow()
    return ExemptionList(
        items=[ExemptionOut.of(r, now) for r in rows], total=total, offset=offset, limit=limit
    )


@router.post("/exemptions", response_model=ExemptionOut, status_code=201, responses=errors(404))
async def add_exemption(body: ExemptionIn, who: CurrentAdmin, culler: CullerDep) -> ExemptionOut:
    """Exempt a user or a group from culling (servers and kernels), with a reason and an
    optional `until`."""
    until = parse_when(body.until, "until", end=True)
    row = await culler.add_exemption(
        who, user=body.user, group=body.group, reason=body.reason, until=until
    )
    return ExemptionOut.of(row, utcnow())


@router.delete("/exemptions/{exemption_id}", status_code=204, responses=errors(409))
async def delete_exemption(exemption_id: RowId, who: CurrentAdmin, culler: CullerDep) -> Response:
    """End an exemption now (404 unknown, 409 already deleted); it stays on record."""
    await culler.delete_exemption(who, exemption_id)
    return Response(status_code=204)
