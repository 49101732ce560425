"""An admin's **Keep running** on a user's page (`POST users/{name}/server/keep`,
`users/{name}/servers/{server}/keep`): the same keep as the API's (`culler.keep`: audited,
counted against `max_keeps` for the server's start), answered with a toast; the page's
servers region refreshes itself on the `servers-changed` event it sends.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from hubkeeper.culler.deps import CullerDep
from hubkeeper.culler.service import Culler
from hubkeeper.deps import CurrentAdmin
from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.actors import Actor
from hubkeeper.web.params import ServerName, UserName
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)


async def _keep(request: Request, who: Actor, culler: Culler, name: str, server: str) -> Response:
    label = f"{name}'s server" if not server else f"{name}'s server “{server}”"
    try:
        kept = await culler.keep(who, name, server)
        left = kept["keeps_left"]
        message, kind = f"Kept {label} running: {left} keep(s) left in this start.", "ok"
    except HubkeeperError as exc:
        message, kind = f"Could not keep {label}: {exc.detail}", "error"
    response = render(request, "console/_toast_oob.html", {"message": message, "kind": kind})
    response.headers["HX-Trigger"] = "servers-changed"
    return response


@router.post("/users/{name}/server/keep")
async def keep_default(
    request: Request, name: UserName, who: CurrentAdmin, culler: CullerDep
) -> Response:
    """Keep a user's default server running (admins); answers a toast."""
    return await _keep(request, who, culler, name, "")


@router.post("/users/{name}/servers/{server}/keep")
async def keep_named(
    request: Request, name: UserName, server: ServerName, who: CurrentAdmin, culler: CullerDep
) -> Response:
    """Keep a user's named server running (admins); answers a toast."""
    return await _keep(request, who, culler, name, server)
