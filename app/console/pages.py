"""The users page and its HTMX partials and actions.

Reads come from the user directory (kept in step with the hub in the background), so a page
never waits on the hub and still renders, marked stale, when the hub is down. Every action goes
through `app.console.service`, which audits it; nothing here talks to the hub directly.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from hubkeeper.actions.lockdown_state import current as current_lockdown
from hubkeeper.auth.principal import session_role
from hubkeeper.auth.sessions import SESSION_COOKIE, load_session
from hubkeeper.console import service
from hubkeeper.console.resources import RESOURCE_SORTS, ranked_rows
from hubkeeper.console.views import (
    OLD_STATE_PARAM,
    PAGE_SIZE,
    SORT_CHOICES,
    STATUS_CHOICES,
    UsersView,
)
from hubkeeper.deps import CurrentAdmin, CurrentReader, SpawnsDep, StateDep
from hubkeeper.directory.rows import ServerRow
from hubkeeper.directory.spawns import SpawnWatch
from hubkeeper.errors import HubkeeperError, NotFound
from hubkeeper.resources.board import ResourceBoard
from hubkeeper.state import HubkeeperState
from hubkeeper.web.pager import Pager
from hubkeeper.web.strict import refuse_unknown
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)

# How many names the stop-all dialog lists before saying "and N more".
STOP_ALL_PREVIEW = 8


def _header_context(hk: HubkeeperState) -> dict[str, Any]:
    """What base.html shows on every page: the server counts and whether they are fresh."""
    directory = hk.directory
    return {"counts": directory.counts(), "stale": directory.stale}


def _token(hk: HubkeeperState) -> str:
    """Changes when the rows would render differently: data, staleness, the lockdown (Start
    is greyed out while locked), the servers' memory and CPU, or the minute (so "3 min ago"
    keeps counting)."""
    directory = hk.directory
    locked = current_lockdown(hk)
    lock = f"{locked.id}" if locked.active else "open"
    figures = hk.resources.version if hk.resources is not None else 0
    return f"{directory.version}.{int(directory.stale)}.{lock}.{int(time.time() // 60)}.{figures}"


def _query_rows(hk: HubkeeperState, view: UsersView) -> tuple[list[ServerRow], int]:
    query = hk.directory.query_rows
    if view.sort in RESOURCE_SORTS:  # the figures are not the directory's
        query = functools.partial(ranked_rows, hk.directory, hk.resources or ResourceBoard())
    return query(
        q=view.q,
        status=view.state,
        group=view.group,
        sort=view.sort,
        offset=view.offset,
        limit=PAGE_SIZE,
    )


def _results_context(hk: HubkeeperState, view: UsersView) -> dict[str, Any]:
    directory = hk.directory
    rows, total = _query_rows(hk, view)
    if not rows and total and view.page > 1:
        # The list shrank under this page (servers stopped, filter changed): show the last one.
        view = dataclasses.replace(view, page=max(1, -(-total // PAGE_SIZE)))
        rows, total = _query_rows(hk, view)
    return {
        **_header_context(hk),
        "view": view,
        "rows": rows,
        "pager": Pager(view.page, total),
        "ready": directory.ready,
        "synced_at": directory.synced_at,
        "last_error": directory.last_error,
        "token": _token(hk),
        "resources": hk.resources,
    }


def _wants_results(request: Request) -> bool:
    """An HTMX request aimed at the results region (search, filters, paging) gets the partial;
    history restores and ordinary navigation get the whole page."""
    return (
        bool(request.headers.get("HX-Request"))
        and not request.headers.get("HX-History-Restore-Request")
        and request.headers.get("HX-Target") == "results"
    )


@router.get("/")
async def home(request: Request, hk: StateDep) -> Response:
    """The console's front page is the users list; an ordinary user's (role `user`) is their
    own page."""
    try:
        web_session = await load_session(hk, request.cookies.get(SESSION_COOKIE))
    except HubkeeperError:
        web_session = None
    if web_session is not None and session_role(web_session.role) == "user":
        return RedirectResponse(hk.settings.service_prefix + "me", status_code=302)
    return RedirectResponse(hk.settings.service_prefix + "users", status_code=302)


@router.get("/users")
async def users_page(request: Request, who: CurrentReader, hk: StateDep) -> Response:
    """Every server of every user, with search, filters, sort and paging kept in the URL."""
    refuse_unknown(request.query_params, UsersView.known())
    view = UsersView.from_params(request.query_params)
    if OLD_STATE_PARAM in request.query_params and not request.headers.get("HX-Request"):
        # a link from before `status` became `state`: the address bar learns the new name
        return RedirectResponse(view.url(hk.settings.service_prefix), status_code=302)
    context = _results_context(hk, view)
    if _wants_results(request):
        response = render(request, "console/_results.html", {**context, "partial": True})
        # The address bar shows the view without default values: short links to share.
        response.headers["HX-Push-Url"] = context["view"].url(hk.settings.service_prefix)
        return response
    context.update(
        active_nav="users",
        groups=hk.directory.groups(),
        status_choices=STATUS_CHOICES,
        sort_choices=SORT_CHOICES,
    )
    return render(request, "console/users.html", context)


@router.get("/users/rows")
async def users_rows(request: Request, who: CurrentReader, hk: StateDep) -> Response:
    """The results region alone, for polling: 204 when nothing changed since `since`."""
    refuse_unknown(request.query_params, UsersView.known() | {"since"})
    since = request.query_params.get("since")
    if since and since == _token(hk):
        return Response(status_code=204)
    view = UsersView.from_params(request.query_params)
    return render(request, "console/_results.html", {**_results_context(hk, view), "partial": True})


# --- actions -------------------------------------------------------------------------------


async def _current_row(hk: HubkeeperState, user: str, server: str, expected: str) -> Any:
    """The row after an action (the service has just re-read the user from the hub); if the
    hub could not be re-read, the row we had with the status the action produced."""
    for row in hk.directory.rows_for(user):
        if row.server == server:
            if row.status in ("running", "stopped") and row.status != expected:
                return dataclasses.replace(row, status=expected)
            return row
    return None


def _action_response(
    request: Request,
    row: Any,
    toast: str,
    *,
    kind: str = "ok",
) -> Response:
    if row is None:
        response = render(request, "console/_toast.html", {"message": toast, "kind": kind})
        response.headers["HX-Retarget"] = "#toasts"
        response.headers["HX-Reswap"] = "beforeend"
        return response
    return render(
        request,
        "console/_action.html",
        {
            "row": row,
            "toast": toast,
            "toast_kind": kind,
            "resources": request.app.state.hk.resources,
            **_header_context(request.app.state.hk),
        },
    )


async def _start(
    request: Request,
    hk: HubkeeperState,
    who: Any,
    user: str,
    server: str,
    spawns: SpawnWatch | None,
) -> Response:
    result = await service.start_server(hk, who, user, server, spawns=spawns)
    expected = "running" if result == "running" else "starting"
    row = await _current_row(hk, user, server, expected)
    label = f"{user}'s server" if not server else f"{user}'s server “{server}”"
    message = f"Started {label}." if result == "running" else f"Starting {label}…"
    return _action_response(request, row, message)


async def _stop(request: Request, hk: HubkeeperState, who: Any, user: str, server: str) -> Response:
    result = await service.stop_server(hk, who, user, server)
    expected = "stopped" if result == "stopped" else "stopping"
    row = await _current_row(hk, user, server, expected)
    label = f"{user}'s server" if not server else f"{user}'s server “{server}”"
    message = f"Stopped {label}." if result == "stopped" else f"Stopping {label}…"
    return _action_response(request, row, message)


async def _access(hk: HubkeeperState, who: Any, user: str, server: str) -> Response:
    # A plain form POST into a new tab: audited here, then the browser follows to the server.
    url = await service.access_server(hk, who, user, server)
    return RedirectResponse(url, status_code=303)


@router.post("/users/{name}/server/start")
async def start_default(
    request: Request, name: str, who: CurrentAdmin, hk: StateDep, spawns: SpawnsDep
) -> Response:
    """Start a user's default server; answers the updated row and a toast."""
    return await _start(request, hk, who, name, "", spawns)


@router.post("/users/{name}/servers/{server}/start")
async def start_named(
    request: Request, name: str, server: str, who: CurrentAdmin, hk: StateDep, spawns: SpawnsDep
) -> Response:
    """Start a named server; answers the updated row and a toast."""
    return await _start(request, hk, who, name, server, spawns)


@router.post("/users/{name}/server/stop")
async def stop_default(request: Request, name: str, who: CurrentAdmin, hk: StateDep) -> Response:
    """Stop a user's default server; answers the updated row and a toast."""
    return await _stop(request, hk, who, name, "")


@router.post("/users/{name}/servers/{server}/stop")
async def stop_named(
    request: Request, name: str, server: str, who: CurrentAdmin, hk: StateDep
) -> Response:
    """Stop a named server; answers the updated row and a toast."""
    return await _stop(request, hk, who, name, server)


@router.post("/users/{name}/server/access")
async def access_default(name: str, who: CurrentAdmin, hk: StateDep) -> Response:
    """Open a user's default server as its admin (audited), in the tab the form opened."""
    return await _access(hk, who, name, "")


@router.post("/users/{name}/servers/{server}/access")
async def access_named(name: str, server: str, who: CurrentAdmin, hk: StateDep) -> Response:
    """Open a user's named server as its admin (audited)."""
    return await _access(hk, who, name, server)


# --- stop all ------------------------------------------------------------------------------


def _stop_all_form(
    request: Request, hk: HubkeeperState, *, reason: str = "", error: str = "", page: bool = False
) -> Response:
    counts = hk.directory.counts()
    total = counts.get("running", 0) + counts.get("starting", 0)
    preview, _ = hk.directory.query_rows(status="active", sort="name", limit=STOP_ALL_PREVIEW)
    return render(
        request,
        "console/stop_all.html" if page else "console/_stop_all.html",
        {
            "active_nav": "users",
            "counts": counts,
            "as_page": page,
            "total": total,
            "preview": preview,
            "reason": reason,
            "error": error,
            "stale": hk.directory.stale,
        },
    )


@router.get("/users/stop-all")
async def stop_all_dialog(request: Request, who: CurrentAdmin, hk: StateDep) -> Response:
    """The stop-all confirmation: how many servers, and a reason for the audit log (the
    dialog's body for HTMX; a page of its own when the address is opened directly)."""
    if not request.headers.get("HX-Request"):
        return _stop_all_form(request, hk, page=True)
    return _stop_all_form(request, hk)


@router.post("/users/stop-all")
async def stop_all(
    request: Request, who: CurrentAdmin, hk: StateDep, reason: str = Form("")
) -> Response:
    """Start stopping every server; answers the job's progress, which polls itself."""
    reason = reason.strip()
    if not reason:
        return _stop_all_form(
            request, hk, error="Give a reason: it is kept in the audit log with your name."
        )
    job = await hk.jobs.start_stop_all(who, reason[:1000])
    return render(request, "console/_job.html", {"job": job})


@router.get("/users/jobs/{job_id}")
async def job_progress(request: Request, job_id: str, who: CurrentAdmin, hk: StateDep) -> Response:
    """A stop-all job's progress; once done, the summary with every failure."""
    job = hk.jobs.get(job_id)
    if job is None:
        raise NotFound(f"No job {job_id}; it may have finished before a restart")
    return render(request, "console/_job.html", {"job": job})
