"""`api/v1/users/{name}/logs` (a tail, JSON or a text download) and `.../logs/stream` (SSE).

Admins only: a server's log can hold anything the user's code printed. Every read is audited.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from hubkeeper.deps import CurrentAdmin, StateDep
from hubkeeper.kit.sse import SSE_HEADERS
from hubkeeper.logs import service
from hubkeeper.logs.schemas import LogOut
from hubkeeper.web.openapi import errors
from hubkeeper.web.params import UserName
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["logs"], dependencies=STRICT_QUERY)

ServerQuery = Annotated[
    str, Query(max_length=255, description="a named server; empty for the default server")
]


def download_name(user: str, server: str) -> str:
    return f"{user}-{server}-server-log.txt" if server else f"{user}-server-log.txt"


def content_disposition(filename: str) -> str:
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/users/{name}/logs",
    response_model=LogOut,
    responses={
        200: {"content": {"text/plain": {}}, "description": "JSON, or text with format=text"},
        **errors(409),
    },
)
async def get_log(
    name: UserName,
    who: CurrentAdmin,
    hk: StateDep,
    server: ServerQuery = "",
    lines: Annotated[int, Query(ge=1, le=service.MAX_LINES)] = service.DEFAULT_LINES,
    format: Literal["json", "text"] = "json",
) -> LogOut | PlainTextResponse:
    """The last `lines` lines of a running server's log (409 when it is not running)."""
    tail = await service.view_log(hk, who, name, server, lines)
    if format == "text":
        body = "\n".join(tail.lines) + ("\n" if tail.lines else "")
        return PlainTextResponse(
            body,
            headers={
                "Content-Disposition": content_disposition(download_name(name, server)),
                "Cache-Control": "no-store",
            },
        )
    return LogOut(lines=tail.lines, source=tail.source, truncated=tail.truncated)


# A byte offset never has more digits than this (int64); a longer Last-Event-ID is treated as
# absent, before int() (which refuses more than 4,300 digits with a ValueError, a 500).
MAX_EVENT_ID_DIGITS = 19


def resume_offset(last_event_id: str | None) -> int | None:
    """The byte offset a reconnecting client resumes at, or None when absent or invalid."""
    if not last_event_id or len(last_event_id) > MAX_EVENT_ID_DIGITS:
        return None
    # ASCII digits only: str.isdigit() also accepts '²' or '١٢', which int() refuses.
    return int(last_event_id) if last_event_id.isascii() and last_event_id.isdigit() else None


@router.get("/users/{name}/logs/stream", response_class=StreamingResponse, responses=errors(409))
async def stream_log(
    name: UserName,
    who: CurrentAdmin,
    hk: StateDep,
    request: Request,
    server: ServerQuery = "",
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            max_length=64,
            description="the byte offset to resume at, for clients that cannot send the "
            "Last-Event-ID header (a new EventSource cannot)",
        ),
    ] = None,
) -> StreamingResponse:
    """Server-sent events: the last 200 lines, then new lines as they are written.

    `data: {"lines": [...]}` with `id:` = byte offset (a reconnecting EventSource resumes
    there); `event: notice` (file shrank, skipped ahead), `event: timeout` after 10 min
    (reconnect), `event: reconnect` when the hub, the proxy or the server stops answering
    for a while (transient: reconnect with backoff), `event: error` with the error JSON when
    the server stops or the file is gone. `last_event_id` in the query stands in for the
    Last-Event-ID header for a page that opens a new EventSource itself.
    """
    resume_at = resume_offset(last_event_id or last_event_id_query)
    model, tail = await service.open_stream(hk, who, name, server, resume_at)
    events = service.follow_log(
        hk,
        name,
        server,
        model,
        tail=tail,
        resume_at=resume_at,
        is_disconnected=request.is_disconnected,
    )
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
