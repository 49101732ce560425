"""The lockdown page: the hub's state, lock and lift (admins), and the history.

Lock posts with HTMX after the shared confirm dialog; when servers are to be stopped the answer
is the console's stop-all job progress, shown in a dialog, plus the refreshed panel and banner.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from hubkeeper.deps import CurrentAdmin, CurrentReader, OutboxDep, StateDep
from hubkeeper.lockdown import service
from hubkeeper.state import HubkeeperState
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)

HISTORY_SIZE = 20


async def _context(hk: HubkeeperState, **extra: Any) -> dict[str, Any]:
    state = await service.refresh(hk)
    rows, total = await asyncio.to_thread(service.history, hk.engine, limit=HISTORY_SIZE)
    counts = hk.directory.counts()
    return {
        "active_nav": "lockdown",
        "lockdown": state,
        "history": rows,
        "history_total": total,
        "counts": counts,
        "running": counts.get("running", 0) + counts.get("starting", 0),
        "reason_max": service.REASON_MAX,
        "reason": "",
        "error": "",
        **extra,
    }


def _page_url(hk: HubkeeperState) -> str:
    return hk.settings.service_prefix + "lockdown"


@router.get("/lockdown")
async def lockdown_page(request: Request, who: CurrentReader, hk: StateDep) -> Response:
    """Whether the hub is locked, the lock and lift controls (admins), and the history."""
    return render(request, "lockdown/lockdown.html", await _context(hk))


@router.post("/lockdown")
async def lock(
    request: Request,
    who: CurrentAdmin,
    hk: StateDep,
    outbox: OutboxDep,
    reason: str = Form(""),
    stop_servers: str = Form(""),
) -> Response:
    """Lock the hub; answers the stop-all progress (in the dialog) or reloads the page."""
    reason = reason.strip()
    if not reason or len(reason) > service.REASON_MAX:
        error = (
            "Give a reason: users see it when their server cannot start."
            if not reason
            else f"Keep the reason under {service.REASON_MAX} characters."
        )
        # 422: HTMX swaps it (as an error) without opening the progress dialog.
        response = render(
            request,
            "lockdown/_panel.html",
            await _context(hk, reason=reason, error=error),
            status_code=422,
        )
        response.headers["HX-Retarget"] = "#lockdown-panel"
        response.headers["HX-Reswap"] = "outerHTML"
        return response
    result = await service.lock(hk, who, reason, stop_servers=bool(stop_servers), outbox=outbox)
    if result.job is None:
        return _reload(request, hk)
    context = await _context(hk, job=result.job)
    return render(request, "lockdown/_locked.html", context)


@router.post("/lockdown/lift")
async def lift(request: Request, who: CurrentAdmin, hk: StateDep, outbox: OutboxDep) -> Response:
    """Lift the lockdown and reload the page."""
    await service.unlock(hk, who, outbox=outbox)
    return _reload(request, hk)


def _reload(request: Request, hk: HubkeeperState) -> Response:
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": _page_url(hk)})
    return RedirectResponse(_page_url(hk), status_code=303)
