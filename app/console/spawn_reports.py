"""`POST api/v1/spawns/failed`: the hub plugin's report of a spawn that failed
(hubkeeper.hub_plugin `make_post_stop_hook`), notified as `spawn.failed` once.

Only the hub plugin may call it (Hubkeeper's own service token): the report is trusted as the
hub's word. A spawn started from the hub's own pages that fails within seconds is never seen
pending by the directory (it reads the hub every few seconds at most); the hub itself knows.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hubkeeper.deps import HubPluginCaller, SpawnsDep
from hubkeeper.web.openapi import errors
from hubkeeper.web.params import NAME_MAX
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["console"], dependencies=STRICT_QUERY)


class SpawnFailure(BaseModel):
    """One failed spawn as the hub saw it."""

    user: str = Field(min_length=1, max_length=NAME_MAX)
    server: str = Field("", max_length=NAME_MAX, description='"" for the default server')
    started: datetime | None = Field(None, description="the spawn's `started` (UTC)")
    message: str = Field("", max_length=2000, description="the hub's message for the failure")


class SpawnFailureTaken(BaseModel):
    taken: bool = True


@router.post(
    "/spawns/failed",
    response_model=SpawnFailureTaken,
    status_code=202,
    responses=errors(422),
)
async def spawn_failed(
    report: SpawnFailure, _plugin: HubPluginCaller, spawns: SpawnsDep
) -> SpawnFailureTaken:
    """For the hub plugin's post-stop hook only (Hubkeeper's service token: 401/403
    otherwise): a spawn failed. Notified as `spawn.failed` with the message, once per spawn
    (keyed by its `started`), also when this replica or another saw it fail."""
    if spawns is not None:
        spawns.plugin_heard()
        spawns.failed(report.user, report.server, report.message, since=report.started)
    return SpawnFailureTaken()
