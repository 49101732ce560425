"""The log pages: a picker of running servers, and one server's log followed live.

The page only frames the log: static/logs.js fills the pane from the stream endpoint and sets
every line with textContent (log lines are untrusted). Admins only, like the API.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from hubkeeper.deps import CurrentAdmin, StateDep
from hubkeeper.errors import HubUnavailable, NotFound
from hubkeeper.logs.service import describe
from hubkeeper.state import HubkeeperState
from hubkeeper.web.params import ServerName, UserName
from hubkeeper.web.strict import refuse_unknown
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)

PICKER_LIMIT = 100


def _header(hk: HubkeeperState) -> dict[str, Any]:
    return {
        "counts": hk.directory.counts(),
        "stale": hk.directory.stale,
        "active_nav": "logs",
        # "" (servers unreachable: no proxy setting), "proxy" (reads count as activity) or
        # "proxy_api" (direct, no notice): said on both log pages.
        "servers_mode": hk.servers.mode,
        "servers_notice": hk.servers.notice,
    }


@router.get("/logs")
async def logs_picker(
    request: Request,
    who: CurrentAdmin,
    hk: StateDep,
    q: Annotated[str, Query(max_length=255)] = "",
) -> Response:
    """Running servers whose log can be viewed."""
    refuse_unknown(request.query_params, {"q"})
    q = q.strip()
    rows, total = hk.directory.query_rows(q=q, status="running", limit=PICKER_LIMIT)
    context = {**_header(hk), "rows": rows, "total": total, "q": q, "ready": hk.directory.ready}
    return render(request, "logs/picker.html", context)


async def _status(hk: HubkeeperState, name: str, server: str) -> tuple[str, bool]:
    """The server's status, read from the hub now (from the directory if the hub is down)."""
    try:
        user = await hk.directory.refresh_user(name)
    except HubUnavailable:
        user, stale = hk.directory.get(name), True
    else:
        stale = False
        if user is None:
            raise NotFound(f"The hub has no user named {name!r}", code="user_not_found")
    if user is None:
        raise NotFound(f"Hubkeeper does not know a user named {name!r}", code="user_not_found")
    model = user.servers.get(server)
    if model is None and server:
        raise NotFound(f"{name} has no server named {server!r}", code="server_not_found")
    return (model.status if model else "stopped"), stale


async def _log_page(request: Request, hk: HubkeeperState, name: str, server: str) -> Response:
    status, stale = await _status(hk, name, server)
    api = f"api/v1/users/{quote(name, safe='')}/logs"
    query = f"?server={quote(server, safe='')}" if server else ""
    download = api + (query + "&" if query else "?") + "lines=5000&format=text"
    page = f"logs/{quote(name, safe='')}" + (f"/{quote(server, safe='')}" if server else "")
    context = {
        **_header(hk),
        "user": name,
        "server": server,
        "status": status,
        "hub_stale": stale,
        "source": describe(hk.settings.server_log_path, name, server),
        "stream_url": api + "/stream" + query,
        "download_url": download,
        "page_url": page,
    }
    return render(request, "logs/log.html", context)


@router.get("/logs/{name}")
async def log_default(
    name: UserName, request: Request, who: CurrentAdmin, hk: StateDep
) -> Response:
    """The log of a user's default server, followed live."""
    return await _log_page(request, hk, name, "")


@router.get("/logs/{name}/{server}")
async def log_named(
    name: UserName, server: ServerName, request: Request, who: CurrentAdmin, hk: StateDep
) -> Response:
    """The log of a user's named server, followed live."""
    return await _log_page(request, hk, name, server)
