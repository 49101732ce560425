"""`api/v1/users`, server start/stop, stop-all jobs, spawn progress and the directory status.

Reads come from the in-memory directory (never a walk of the hub); actions go to the hub and
are audited in `app/console/service.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from hubkeeper.console import service
from hubkeeper.console.filters import (
    SORT_HELP,
    STATE_HELP,
    STATUS_HELP,
    OldStatus,
    Sort,
    State,
    resolve_state,
)
from hubkeeper.console.resources import RESOURCE_SORTS, ranked_users
from hubkeeper.console.schemas import (
    DirectoryStatus,
    JobOut,
    StartResult,
    StopAllAccepted,
    StopAllRequest,
    StopResult,
    UserList,
    UserOut,
)
from hubkeeper.deps import CurrentAdmin, CurrentReader, SpawnsDep, StateDep
from hubkeeper.errors import HubkeeperError, NotFound
from hubkeeper.hub.models import HubUser
from hubkeeper.kit.sse import SSE_HEADERS, reconnect_event, sse
from hubkeeper.resources.board import ResourceBoard
from hubkeeper.state import HubkeeperState
from hubkeeper.web.openapi import errors
from hubkeeper.web.params import NAME_MAX, ServerName, UserName
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["console"], dependencies=STRICT_QUERY)

SSE_KEEPALIVE = 8.0  # s, like the hub's own progress stream
SSE_MAX_LIFETIME = 600.0  # s; the browser's EventSource reconnects if it still cares


async def find_user(hk: HubkeeperState, name: str) -> HubUser:
    """From the directory; a user it does not know yet is read from the hub (404 if none)."""
    user = hk.directory.get(name)
    if user is None:
        user = await hk.directory.refresh_user(name)
    if user is None:
        raise NotFound(f"The hub has no user named {name!r}", code="user_not_found")
    return user


@router.get("/users", response_model=UserList, responses={204: {"description": "unchanged"}})
async def list_users(
    who: CurrentReader,
    hk: StateDep,
    q: Annotated[str, Query(max_length=NAME_MAX, description="substring of the name")] = "",
    state: Annotated[State | None, Query(description=STATE_HELP)] = None,
    group: Annotated[
        str, Query(max_length=NAME_MAX, description="only members of this hub group")
    ] = "",
    sort: Annotated[Sort, Query(description=SORT_HELP)] = "name",
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    since: Annotated[
        int | None, Query(description="the directory version you have: 204 if unchanged")
    ] = None,
    status: Annotated[OldStatus | None, Query(deprecated=True, description=STATUS_HELP)] = None,
) -> Any:
    """Users with their servers, from Hubkeeper's copy of the hub (see GET directory).

    q, state, group and sort are the users page's own names and values (the page counts
    pages with `page`, the API with offset/limit). Each server carries `resources` (memory
    and CPU at the last sample, or null); `since` follows the directory only, not those
    figures."""
    wanted = resolve_state(state, status)
    if since is not None and since == hk.directory.version:
        return Response(status_code=204)
    board = hk.resources
    if sort in RESOURCE_SORTS:
        users, total = ranked_users(
            hk.directory,
            board or ResourceBoard(),
            q=q,
            state=wanted,
            group=group,
            sort=sort,
            offset=offset,
            limit=limit,
        )
    else:
        users, total = hk.directory.query_users(
            q=q, state=wanted, group=group, sort=sort, offset=offset, limit=limit
        )
    return UserList(
        items=[UserOut.of(u, hk.directory.rows_for(u.name), board) for u in users],
        total=total,
        offset=offset,
        limit=limit,
    )


@router.get("/users/{name}", response_model=UserOut)
async def get_user(name: UserName, who: CurrentReader, hk: StateDep) -> UserOut:
    """One user and their servers; 404 if the hub has no such user."""
    user = await find_user(hk, name)
    return UserOut.of(user, hk.directory.rows_for(user.name), hk.resources)


@router.post("/users/{name}/server/start", response_model=StartResult, responses=errors(400, 409))
async def start_default(
    name: UserName, who: CurrentAdmin, hk: StateDep, spawns: SpawnsDep
) -> StartResult:
    """Start the user's default server (409 already_running). Answers as soon as the hub has
    the spawn under way: `pending` with the URL of its progress stream."""
    status = await service.start_server(hk, who, name, spawns=spawns)
    return _started(hk, status, name, "")


@router.post(
    "/users/{name}/servers/{server}/start", response_model=StartResult, responses=errors(400, 409)
)
async def start_named(
    name: UserName, server: ServerName, who: CurrentAdmin, hk: StateDep, spawns: SpawnsDep
) -> StartResult:
    """Start one of the user's named servers (409 already_running); `pending` as for the
    default server."""
    status = await service.start_server(hk, who, name, server, spawns=spawns)
    return _started(hk, status, name, server)


def _started(hk: HubkeeperState, status: str, name: str, server: str) -> StartResult:
    if status != "pending":
        return StartResult(status="running")
    path = f"users/{quote(name, safe='')}/server/progress"
    if server:
        path = f"users/{quote(name, safe='')}/servers/{quote(server, safe='')}/progress"
    return StartResult(status="pending", progress_url=f"{hk.settings.service_prefix}api/v1/{path}")


@router.post("/users/{name}/server/stop", response_model=StopResult, responses=errors(409))
async def stop_default(name: UserName, who: CurrentAdmin, hk: StateDep) -> StopResult:
    """Stop the user's default server (409 already_stopped)."""
    return StopResult(status=await service.stop_server(hk, who, name))


@router.post(
    "/users/{name}/servers/{server}/stop", response_model=StopResult, responses=errors(409)
)
async def stop_named(
    name: UserName, server: ServerName, who: CurrentAdmin, hk: StateDep
) -> StopResult:
    """Stop one of the user's named servers (409 already_stopped, 404 server_not_found)."""
    status = await service.stop_server(hk, who, name, server)
    return StopResult(status=status)


@router.post("/servers/stop-all", response_model=StopAllAccepted, status_code=202)
async def stop_all(body: StopAllRequest, who: CurrentAdmin, hk: StateDep) -> StopAllAccepted:
    """Stop every running or starting server as a job; poll GET jobs/{job}."""
    job = await hk.jobs.start_stop_all(who, body.reason)
    return StopAllAccepted(job=job.id, total=job.total)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(
    job_id: Annotated[str, Path(max_length=64)], who: CurrentReader, hk: StateDep
) -> JobOut:
    """A job's progress: state, total, done and what failed."""
    job = hk.jobs.get(job_id)
    if job is None:
        raise NotFound(
            f"No job {job_id!r} (finished jobs are kept for an hour)", code="job_not_found"
        )
    return JobOut.model_validate(job.as_dict())


@router.get("/directory", response_model=DirectoryStatus)
async def directory_status(who: CurrentReader, hk: StateDep) -> DirectoryStatus:
    """How fresh Hubkeeper's copy of the hub's users is, and server counts."""
    return DirectoryStatus.of(hk.directory)


# --- spawn progress --------------------------------------------------------------------------


@router.get("/users/{name}/server/progress", response_class=StreamingResponse)
async def progress_default(name: UserName, who: CurrentAdmin, hk: StateDep) -> StreamingResponse:
    """The hub's spawn progress of the default server, relayed as server-sent events."""
    return await _progress(hk, name, "")


@router.get("/users/{name}/servers/{server}/progress", response_class=StreamingResponse)
async def progress_named(
    name: UserName, server: ServerName, who: CurrentAdmin, hk: StateDep
) -> StreamingResponse:
    """The hub's spawn progress of a named server, relayed as server-sent events."""
    return await _progress(hk, name, server)


async def _progress(hk: HubkeeperState, name: str, server: str) -> StreamingResponse:
    user = await find_user(hk, name)  # 404 before the stream starts
    if server and server not in user.servers:
        raise NotFound(f"{name} has no server named {server!r}", code="server_not_found")
    return StreamingResponse(
        relay_progress(hk, name, server), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def relay_progress(
    hk: HubkeeperState,
    name: str,
    server: str,
    *,
    keepalive: float = SSE_KEEPALIVE,
    lifetime: float = SSE_MAX_LIFETIME,
) -> AsyncIterator[str]:
    """Events from the hub as they come, a comment every `keepalive` s, ended at `lifetime`.

    A client that goes away ends the stream: Starlette cancels this generator, and the
    `finally` closes the hub's stream with it.
    """
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in hk.hub.progress(name, server):
                await queue.put(sse(event.model_dump(mode="json", exclude_none=True)))
        except HubkeeperError as exc:
            await queue.put(sse({"error": exc.code, "detail": exc.detail}, event="error"))
        finally:
            await queue.put(None)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime
    task = asyncio.create_task(pump(), name=f"hubkeeper-progress-{name}")
    # SIGTERM sets hk.shutting_down: wait for it beside the next event, end with reconnect
    stopping = asyncio.ensure_future(hk.shutting_down.wait())
    try:
        yield ": progress of " + service.target_of(name, server).replace("\n", " ") + "\n\n"
        while True:
            if stopping.done():
                yield reconnect_event()
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                yield sse({"message": "stream lifetime reached; reconnect"}, event="timeout")
                return
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait(
                (getter, stopping),
                timeout=min(keepalive, remaining),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not getter.done():
                getter.cancel()  # a cancelled get() takes nothing off the queue
                if not stopping.done():
                    yield ": keepalive\n\n"
                continue
            item = getter.result()
            if item is None:
                return
            yield item
    finally:
        stopping.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
