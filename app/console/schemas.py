"""JSON shapes of the console API (`api/v1/users`, servers, jobs, directory), per the contract."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from hubkeeper.console.resources import figures_of
from hubkeeper.directory.rows import ServerRow, rows_of
from hubkeeper.directory.store import UserDirectory
from hubkeeper.hub.models import HubUser
from hubkeeper.kit.schemas import UtcTimes
from hubkeeper.resources.board import ResourceBoard
from hubkeeper.resources.figures import Figures

ServerStatus = Literal["running", "pending", "stopped"]

API_STATUS = {
    "running": "running",
    "starting": "pending",
    "stopping": "pending",
    "stopped": "stopped",
}


class ResourcesOut(UtcTimes):
    memory_bytes: int = Field(description="memory of the server and its kernels (rss), bytes")
    memory_limit_bytes: int | None = Field(
        description="the limit it reports (MEM_LIMIT); null: none"
    )
    cpu_percent: float | None = Field(
        description="% of one core, summed over its processes; null unless the server runs "
        "with ResourceUseDisplay.track_cpu_percent"
    )
    at: datetime = Field(description="when it was sampled")

    @classmethod
    def of(cls, figures: Figures | None) -> ResourcesOut | None:
        return None if figures is None else cls(**figures.as_dict())


class ServerOut(UtcTimes):
    name: str = Field(description='"" is the default server')
    status: ServerStatus
    started: datetime | None
    last_activity: datetime | None
    url: str = Field(description="the server's path on the hub, e.g. /user/ann/")
    resources: ResourcesOut | None = Field(
        default=None,
        description="memory and CPU from jupyter-resource-usage at the last sample; null when "
        "the server is not running or has no such figures (n/a)",
    )


class UserOut(UtcTimes):
    name: str
    admin: bool
    groups: list[str]
    last_activity: datetime | None
    servers: list[ServerOut]

    @classmethod
    def of(
        cls,
        user: HubUser,
        rows: tuple[ServerRow, ...] | None = None,
        board: ResourceBoard | None = None,
    ) -> UserOut:
        rows = rows if rows else rows_of(user)
        return cls(
            name=user.name,
            admin=user.admin,
            groups=sorted(user.groups),
            last_activity=user.last_activity,
            servers=[
                ServerOut(
                    name=r.server,
                    status=API_STATUS[r.status],
                    started=r.started,
                    # the server's own activity; the row falls back to the user's
                    last_activity=(
                        user.servers[r.server].last_activity if r.server in user.servers else None
                    ),
                    url=r.url,
                    resources=ResourcesOut.of(figures_of(board, r)),
                )
                for r in rows
            ],
        )


class UserList(BaseModel):
    items: list[UserOut]
    total: int
    offset: int
    limit: int


class StartResult(BaseModel):
    status: Literal["running", "pending"] = Field(
        description="running: the server is up; pending: the hub is still starting it"
    )
    progress_url: str | None = Field(
        None,
        description="while pending: the spawn's progress as server-sent events "
        "(GET users/{name}/server/progress), an absolute path",
    )


class StopResult(BaseModel):
    status: Literal["stopped", "pending"] = Field(
        description="stopped: the server is down; pending: the hub is still stopping it"
    )


class StopAllRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=1000, description="why, for the audit trail")


class StopAllAccepted(BaseModel):
    job: str = Field(description="poll GET api/v1/jobs/{job}")
    total: int = Field(description="servers that will be stopped")


class JobFailure(BaseModel):
    user: str
    server: str
    error: str


class JobOut(BaseModel):
    state: Literal["running", "done"]
    total: int
    done: int = Field(description="servers handled so far, failures included")
    failed: list[JobFailure]


class DirectoryCounts(BaseModel):
    running: int
    starting: int
    stopping: int
    stopped: int
    users: int


class DirectoryStatus(UtcTimes):
    ready: bool = Field(description="the first full sweep of the hub's users has finished")
    synced_at: datetime | None
    full_synced_at: datetime | None
    lag_seconds: float | None
    stale: bool
    last_error: str | None
    version: int
    counts: DirectoryCounts
    change_source: str = Field(
        description="how changes are seen: proxy_routes (the proxy's routing table; the hub "
        "is asked only about what changed) or hub (its state=active list)"
    )
    routes_error: str | None = Field(
        description="why the proxy's routes could not be read (the hub is asked meanwhile)"
    )

    @classmethod
    def of(cls, directory: UserDirectory) -> DirectoryStatus:
        return cls(
            ready=directory.ready,
            synced_at=directory.synced_at,
            full_synced_at=directory.full_synced_at,
            lag_seconds=directory.lag_seconds(),
            stale=directory.stale,
            last_error=directory.last_error,
            version=directory.version,
            counts=DirectoryCounts(**directory.counts()),
            change_source=directory.change_source,
            routes_error=directory.routes_error,
        )
