"""The health page: what `GET api/v1/health` says, for a person. The footer's and the
credential warning's "health" links open it; monitors keep the JSON."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from hubkeeper.deps import CurrentReader, StateDep
from hubkeeper.health.routes import health_report
from hubkeeper.web.strict import refuse_unknown
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/health")
async def health_page(request: Request, who: CurrentReader, hk: StateDep) -> Response:
    """Hub, database, how users' servers and changes are reached, and any security warning."""
    refuse_unknown(request.query_params, ())
    report = await health_report(hk)
    # A degraded Hubkeeper still answers 200 here: the page is what someone opens to see why.
    return render(request, "health/health.html", {"active_nav": "health", "report": report})
