"""Reading a user server's log file through the running server, as a tail or followed live.

The log lives in the user's home (`settings.server_log_path`, relative to the server's root),
so it can only be read while the server runs: every read goes to the server's `files/` handler
with a Range header through `hk.servers` (hub/servers.py: directly at the proxy's route target,
with a token that opens only that server, `no_track_activity=1`), so only the bytes wanted
cross the wire and watching a log never keeps a server alive (unless the HUBKEEPER_PROXY_URL
fallback is in use: then the reads pass the proxy and count as activity; the pages say so).
Log files may hold anything: bytes are decoded as UTF-8 with replacement characters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubkeeper.actions.audit import audit, require_recordable
from hubkeeper.errors import Conflict, HubkeeperError, NotFound
from hubkeeper.hub.models import HubServer
from hubkeeper.hub.servers import UNCONFIGURED, FileRange, ServerUnreachable
from hubkeeper.kit.actors import Actor, server_label, target_of
from hubkeeper.kit.sse import reconnect_event, sse

if TYPE_CHECKING:
    from hubkeeper.state import HubkeeperState

DEFAULT_LINES = 200
MAX_LINES = 5000
FIRST_WINDOW = 64 * 1024  # bytes read for a tail; grown ×4 while lines are missing
MAX_WINDOW = 2 * 1024 * 1024  # never read more than this for one tail
FOLLOW_CHUNK = 512 * 1024  # most bytes read per poll while following
MAX_BACKLOG = 2 * 1024 * 1024  # further behind than this: skip ahead to the tail
MAX_PARTIAL = 64 * 1024  # a line without a newline this long is sent as it is
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
LIFETIME_SECONDS = 600.0
RETRY_MS = 3000  # the browser's EventSource waits this long before reconnecting
READ_FAILURES = 3  # consecutive failed reads of a running server before giving up


@dataclass(frozen=True)
class LogTail:
    lines: list[str]
    source: str
    truncated: bool
    end: int  # offset just past the last complete line: where following starts
    partial: bool = False  # the last line has no newline yet


def describe(path: str, user: str, server: str = "") -> str:
    """Where a log comes from, for people: `.jupyter-server-log.txt in alice's server`."""
    return f"{path} in {server_label(user, server)}"


def not_running(user: str, server: str, status: str = "stopped") -> Conflict:
    return Conflict(
        f"{server_label(user, server)} is {status}: its log is read through the running "
        "server, so it can only be shown while the server runs. Start it to see the log.",
        code="server_not_running",
    )


def log_not_found(hk: HubkeeperState, user: str, server: str) -> NotFound:
    path = hk.settings.server_log_path
    return NotFound(
        f"There is no {path} in {server_label(user, server)}'s home (the path tried, relative "
        "to the server's root directory, from HUBKEEPER_SERVER_LOG_PATH). The file is written "
        "by the server's start command redirecting its output there (repo2docker images do, "
        "as does `hubkeeper demo`); set HUBKEEPER_SERVER_LOG_PATH if yours writes elsewhere.",
        code="log_not_found",
    )


def log_hidden(hk: HubkeeperState, user: str, server: str) -> NotFound:
    path = hk.settings.server_log_path
    return NotFound(
        f"{server_label(user, server)} refuses to serve hidden files, and the log {path} is "
        "one (its name starts with '.'). Start the servers with "
        "`--ContentsManager.allow_hidden=True` (c.ContentsManager.allow_hidden = True, e.g. "
        "in Spawner.args), or set HUBKEEPER_SERVER_LOG_PATH to a file that is not hidden.",
        code="log_hidden",
    )


def unreadable(hk: HubkeeperState, user: str, server: str, exc: HubkeeperError) -> HubkeeperError:
    """The logs' own words for what the gateway raised."""
    if isinstance(exc, NotFound) and exc.code == "file_not_found":
        return log_not_found(hk, user, server)
    if isinstance(exc, NotFound) and exc.code == "file_hidden":
        return log_hidden(hk, user, server)
    if isinstance(exc, Conflict) and exc.code == "server_not_running":
        return not_running(user, server)
    return exc


async def running_server(hk: HubkeeperState, user: str, server: str = "") -> HubServer:
    """The server as the hub sees it now; 404 unknown user/server, 409 not running; 503
    server_unreachable first when Hubkeeper has no way to reach servers at all."""
    if not hk.servers.mode:
        raise ServerUnreachable(UNCONFIGURED)
    found = await hk.directory.refresh_user(user)  # HubUnavailable → 503
    if found is None:
        raise NotFound(f"The hub has no user named {user!r}", code="user_not_found")
    model = found.servers.get(server)
    if model is None:
        if server:
            raise NotFound(f"{user} has no server named {server!r}", code="server_not_found")
        raise not_running(user, server)
    if model.status != "running" or not model.url:
        raise not_running(user, server, model.status)
    return model


def split_lines(data: bytes, *, at_start: bool) -> tuple[list[str], int]:
    """Complete lines of `data` and how many bytes they used. Unless the data begins the file,
    its first line is partial (the read began mid-line) and is dropped."""
    begin = 0
    if not at_start:
        newline = data.find(b"\n")
        if newline < 0:
            return [], 0
        begin = newline + 1
    last = data.rfind(b"\n")
    if last < begin:
        return [], begin
    body = data[begin:last]
    lines = [raw.rstrip(b"\r").decode("utf-8", errors="replace") for raw in body.split(b"\n")]
    return lines, last + 1


async def read_tail(
    hk: HubkeeperState, model: HubServer, user: str, server: str, lines: int
) -> LogTail:
    """The last `lines` lines. Reads the end of the file and reads further back, up to
    MAX_WINDOW, while it holds fewer lines than asked and the file has more."""
    path = hk.settings.server_log_path
    window = FIRST_WINDOW
    while True:
        try:
            chunk = await hk.servers.read_file_range(user, server, path, last=window)
        except HubkeeperError as exc:
            raise unreadable(hk, user, server, exc) from exc
        found, used = split_lines(chunk.data, at_start=chunk.start == 0)
        end = chunk.start + used
        tail = chunk.data[used:]
        if tail:  # the last line has no newline yet: show it, follow from its start
            found.append(tail.rstrip(b"\r").decode("utf-8", errors="replace"))
        if len(found) > lines or chunk.start == 0 or window >= MAX_WINDOW:
            truncated = chunk.start > 0 or len(found) > lines
            source = describe(path, user, server)
            return LogTail(found[-lines:], source, truncated, end, partial=bool(tail))
        window = min(window * 4, MAX_WINDOW)


async def view_log(
    hk: HubkeeperState, who: Actor, user: str, server: str = "", lines: int = DEFAULT_LINES
) -> LogTail:
    """The tail of a server's log, audited as `logs.view` whatever the outcome."""
    target = target_of(user, server)
    await require_recordable(hk, who)  # reading a log is audited: no record, no reading
    try:
        model = await running_server(hk, user, server)
        tail = await read_tail(hk, model, user, server, lines)
    except HubkeeperError as exc:
        await audit(hk, who, "logs.view", target, outcome="failed", error=exc.code)
        raise
    await audit(hk, who, "logs.view", target, detail=f"last {lines} lines")
    return tail


# --- following ---------------------------------------------------------------------------------
def error_event(exc: HubkeeperError) -> str:
    return sse({"error": exc.code, "detail": exc.detail}, event="error")


async def open_stream(
    hk: HubkeeperState, who: Actor, user: str, server: str, resume_at: int | None
) -> tuple[HubServer, LogTail | None]:
    """Checks before the stream starts, so a client gets a plain 404/409/503; audited once
    as `logs.stream`. Returns the server and the initial tail (None when resuming)."""
    target = target_of(user, server)
    await require_recordable(hk, who)
    try:
        model = await running_server(hk, user, server)
        tail = (
            None
            if resume_at is not None
            else await read_tail(hk, model, user, server, DEFAULT_LINES)
        )
        if resume_at is not None:  # still there?
            try:
                await hk.servers.read_file_range(user, server, hk.settings.server_log_path, last=1)
            except HubkeeperError as exc:
                raise unreadable(hk, user, server, exc) from exc
    except HubkeeperError as exc:
        await audit(hk, who, "logs.stream", target, outcome="failed", error=exc.code)
        raise
    detail = f"initial {DEFAULT_LINES} lines" if tail else f"resumed at byte {resume_at}"
    await audit(hk, who, "logs.stream", target, detail=detail)
    return model, tail


async def _why_unreadable(hk: HubkeeperState, user: str, server: str) -> HubkeeperError | None:
    """After a failed read: the reason to end the stream, or None if the server still runs."""
    try:
        await running_server(hk, user, server)
    except HubkeeperError as exc:
        return exc
    return None


async def follow_log(
    hk: HubkeeperState,
    user: str,
    server: str,
    model: HubServer,
    *,
    tail: LogTail | None,
    resume_at: int | None = None,
    poll: float = POLL_SECONDS,
    keepalive: float = KEEPALIVE_SECONDS,
    lifetime: float = LIFETIME_SECONDS,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[str]:
    """Server-sent events: the initial tail, then new complete lines as they are appended.

    Each `data:` is `{"lines": [...]}` with `id:` = the byte offset after its last line, so
    an EventSource that reconnects (after `event: timeout` at `lifetime`, or a network
    error) sends it back as Last-Event-ID and resumes without repeating lines. A file that
    got shorter is followed from its new end (`event: notice`). A stopped server or a vanished
    file ends the stream with `event: error` and the API's error JSON; an unreachable hub,
    proxy or server (503, transient) with `event: reconnect`.
    """
    path = hk.settings.server_log_path
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime
    last_sent = time.monotonic()
    failures = 0
    yield f"retry: {RETRY_MS}\n: log of {target_of(user, server).replace(chr(10), ' ')}\n\n"
    mid_line = False  # the next read starts inside a line: drop up to its first newline
    if tail is not None:
        offset = tail.end
        # A last line still being written comes again, whole, once its newline arrives.
        yield sse({"lines": tail.lines[:-1] if tail.partial else tail.lines}, event_id=offset)
    else:
        offset = resume_at or 0
    while True:
        if hk.shutting_down.is_set():  # SIGTERM: end now, the page reconnects elsewhere
            yield reconnect_event()
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            yield sse({"message": "stream lifetime reached; reconnect"}, event="timeout")
            return
        await asyncio.sleep(min(poll, remaining))
        if is_disconnected is not None and await is_disconnected():
            return
        # Ask from one byte before the offset (the newline already sent): a Range starting at
        # the end of the file is answered 416, which the server logs as a warning into this
        # very file, so a watched log would fill with the watcher's own requests.
        back = 1 if offset > 0 else 0
        try:
            chunk = await hk.servers.read_file_range(
                user, server, path, offset - back, end=offset + FOLLOW_CHUNK - 1
            )
        except HubkeeperError as exc:
            if isinstance(exc, NotFound) and exc.code in ("file_not_found", "file_hidden"):
                yield error_event(unreadable(hk, user, server, exc))
                return
            reason = await _why_unreadable(hk, user, server)
            failures += 1
            if reason is not None or failures >= READ_FAILURES:
                final = reason or exc
                if final.status_code == 503:
                    # The hub, the proxy or the server not answering (a hub restart replaces
                    # the proxy) passes: the page reconnects with Last-Event-ID and loses
                    # no line. Only a stopped server or a missing file is final.
                    yield sse(
                        {"message": f"{final.detail}; reconnect", "error": final.code},
                        event="reconnect",
                    )
                else:
                    yield error_event(final)
                return
            continue
        failures = 0
        if back and chunk.data and chunk.start == offset - 1:
            chunk = FileRange(chunk.data[1:], offset, chunk.size)
        events, offset, mid_line = _advance(chunk, offset, mid_line)
        for event in events:
            yield event
            last_sent = time.monotonic()
        if time.monotonic() - last_sent >= keepalive:
            yield ": keepalive\n\n"
            last_sent = time.monotonic()


def _advance(chunk: FileRange, offset: int, mid_line: bool) -> tuple[list[str], int, bool]:
    """Events for what was read at `offset`, the next offset, and whether it is mid-line."""
    size = chunk.size
    if size is not None and size < offset:
        message = (
            f"The log file got shorter ({offset} → {size} bytes): it was truncated or "
            "replaced. Following it from its new end."
        )
        return [sse({"message": message}, event="notice", event_id=size)], size, False
    if size is not None and size - offset > MAX_BACKLOG:
        skip_to = size - MAX_BACKLOG // 4
        message = f"{size - offset} bytes were written since the last read: skipping ahead."
        return [sse({"message": message}, event="notice")], skip_to, True
    data = chunk.data
    if not data:
        return [], offset, mid_line
    lines, used = split_lines(data, at_start=not mid_line)
    if used == 0 and len(data) >= MAX_PARTIAL:  # a huge line with no newline: send it
        lines, used = [data.decode("utf-8", errors="replace")], len(data)
    if used == 0:
        return [], offset, mid_line
    events = [sse({"lines": lines}, event_id=offset + used)] if lines else []
    return events, offset + used, False
