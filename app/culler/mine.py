"""A user's own servers: `api/v1/me/servers` (the outlook) and the keeps, `me/server/keep`,
`me/servers/{server}/keep` (the owner: any signed-in hub user) and `users/{name}/server/keep`,
`users/{name}/servers/{server}/keep` (admins). Nobody but an admin names another user here:
the `me/...` routes act on the caller's own servers only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hubkeeper.culler.deps import CullerDep
from hubkeeper.culler.schemas import KeepOut, MyServer, MyServers
from hubkeeper.deps import CurrentAdmin, CurrentUser
from hubkeeper.web.openapi import errors
from hubkeeper.web.params import ServerName, UserName
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["culler"], dependencies=STRICT_QUERY)
KEEP_ERRORS = errors(404, 409)


def _mine(item: dict[str, Any]) -> MyServer:
    return MyServer(**{k: v for k, v in item.items() if k in MyServer.model_fields})


@router.get("/me/servers", response_model=MyServers, responses=errors(404))
async def my_servers(who: CurrentUser, culler: CullerDep) -> MyServers:
    """The caller's own servers with the culler's outlook now (`cull_at` UTC, `cull_reason`
    idle | max_age, `keeps_left`, `keep_until`): the pass's own decision."""
    return MyServers(items=[_mine(i) for i in await culler.my_servers(who.name)])


@router.post("/me/server/keep", response_model=KeepOut, responses=KEEP_ERRORS)
async def keep_my_default(who: CurrentUser, culler: CullerDep) -> KeepOut:
    """Keep the caller's default server running: idle culling waits `keep_s` seconds more.
    409 `not_running`, 409 `too_many_keeps` after `max_keeps` keeps in this start."""
    return KeepOut(**await culler.keep(who, who.name, ""))


@router.post("/me/servers/{server}/keep", response_model=KeepOut, responses=KEEP_ERRORS)
async def keep_my_named(server: ServerName, who: CurrentUser, culler: CullerDep) -> KeepOut:
    """Keep one of the caller's named servers running (as `me/server/keep`); 404 unknown."""
    return KeepOut(**await culler.keep(who, who.name, server))


@router.post("/users/{name}/server/keep", response_model=KeepOut, responses=KEEP_ERRORS)
async def keep_default(name: UserName, who: CurrentAdmin, culler: CullerDep) -> KeepOut:
    """Keep a user's default server running (admins); audited with both names."""
    return KeepOut(**await culler.keep(who, name, ""))


@router.post("/users/{name}/servers/{server}/keep", response_model=KeepOut, responses=KEEP_ERRORS)
async def keep_named(
    name: UserName, server: ServerName, who: CurrentAdmin, culler: CullerDep
) -> KeepOut:
    """Keep a user's named server running (admins)."""
    return KeepOut(**await culler.keep(who, name, server))
