"""Actions on servers, each checked against the hub, done, and written to the audit trail.

Every action is audited with the person who asked (the hub only sees Hubkeeper's token).
A failure is recorded first and then re-raised, so the API still answers with its status.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from hubkeeper.actions.audit import audit, require_recordable
from hubkeeper.actions.lockdown_state import current as current_lockdown
from hubkeeper.actions.stop import StopReason
from hubkeeper.config import Settings
from hubkeeper.directory.spawns import SpawnWatch
from hubkeeper.errors import Conflict, HubError, HubkeeperError, NotFound
from hubkeeper.hub.models import HubUser
from hubkeeper.kit.actors import Actor, server_label, target_of

if TYPE_CHECKING:
    from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)

HUB_SAFE = "@~"  # what jupyterhub.utils.url_escape_path leaves unescaped in a user's URL

__all__ = ["access_server", "server_url", "start_server", "stop_server"]


def server_url(settings: Settings, user: str, server: str = "", hub_path: str = "") -> str:
    """The URL of a user's server as a browser reaches it through the hub.

    `hub_path` is the server's `url` as the hub reports it (base URL included), used as it
    is; without it the path is built the way the hub builds it: names escaped with
    `url_escape_path`, which keeps '@' and '~' (jupyterhub/utils.py), so `ann@example.org`
    opens at `/user/ann@example.org/` — `/user/ann%40example.org/` reaches the server, which
    answers 404.
    """
    base = settings.browser_hub_url.rstrip("/")
    if hub_path:
        parts = urlsplit(base)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
        return origin + "/" + hub_path.lstrip("/")
    path = f"/user/{quote(user, safe=HUB_SAFE)}/"
    if server:
        path += f"{quote(server, safe=HUB_SAFE)}/"
    return base + path


async def _current(hk: HubkeeperState, user: str) -> HubUser:
    """The user as the hub sees it right now (the directory may be seconds behind)."""
    fresh = await hk.directory.refresh_user(user)
    if fresh is None:
        raise NotFound(f"The hub has no user named {user!r}", code="user_not_found")
    return fresh


def _status(user: HubUser, server: str) -> str | None:
    """running | starting | stopping | stopped, or None when the named server does not exist."""
    found = user.servers.get(server)
    if found is None:
        return "stopped" if server == "" else None
    return found.status


async def _refresh_after(hk: HubkeeperState, user: str) -> None:
    try:
        await hk.directory.refresh_user(user)
    except HubkeeperError as exc:
        log.warning("could not refresh %s after an action: %s", user, exc.detail)


async def start_server(
    hk: HubkeeperState,
    who: Actor,
    user: str,
    server: str = "",
    *,
    spawns: SpawnWatch | None = None,
) -> str:
    """Start a server: "running" when it is up, "pending" while the hub is still starting it.

    Refused (409 locked) while the hub is locked down: the hub's spawn hook would refuse it too.
    `spawns`: told when the hub reports the spawn failed (HubError, now or after "pending"),
    for the `spawn.failed` notification.
    """
    target = target_of(user, server)
    await require_recordable(hk, who)  # no audit record, no action (503, nothing done)
    try:
        lockdown = current_lockdown(hk)
        if lockdown.active:
            raise Conflict(lockdown.message, code="locked")
        current = await _current(hk, user)
        status = _status(current, server)
        if status in ("running", "starting"):
            raise Conflict(
                f"{server_label(user, server)} is already {status}", code="already_running"
            )
        if status == "stopping":
            raise Conflict(
                f"{server_label(user, server)} is still stopping; start it once it has stopped",
                code="action_pending",
            )
        result = await _start_accepted(hk, user, server, spawns)
    except HubkeeperError as exc:
        await audit(hk, who, "server.start", target, outcome="failed", error=exc.detail)
        raise
    await audit(hk, who, "server.start", target, detail=f"hub: {result}")
    await _refresh_after(hk, user)
    return "running" if result == "running" else "pending"


# The hub holds a start request until the server is up or its `slow_spawn_timeout` (10 s by
# default) has passed (jupyterhub/apihandlers/users.py UserServerAPIHandler.post). After this
# many seconds without an answer, Hubkeeper looks whether the hub has the spawn under way and,
# if so, answers "pending" then; the request finishes in the background.
ACCEPT_WAIT_S = 1.0
_held_starts: set[asyncio.Future[Any]] = set()  # start requests the hub still holds


async def _start_accepted(
    hk: HubkeeperState, user: str, server: str, spawns: SpawnWatch | None = None
) -> str:
    """The hub's answer to a start ("running" | "starting"), or "starting" as soon as the hub
    shows the spawn pending, whichever comes first. Raises what `HubClient.start_server`
    raises when the hub answers (refusals come within ACCEPT_WAIT_S: a lockdown, a 429).
    A spawn the hub reports failed (HubError: its 500, with its message) is told to `spawns`."""
    request = asyncio.ensure_future(hk.hub.start_server(user, server))
    _held_starts.add(request)
    request.add_done_callback(_finished_start)
    if spawns is not None:
        request.add_done_callback(lambda done: _tell_failure(done, spawns, user, server))
    request.add_done_callback(lambda _done: _refresh_soon(hk, user))
    done, _pending = await asyncio.wait({request}, timeout=ACCEPT_WAIT_S)
    if request in done:
        return request.result()
    try:
        found = (await hk.hub.get_user(user)).servers.get(server)
        accepted = found is not None and found.status == "starting"
    except HubkeeperError:
        accepted = False
    if not accepted:  # not under way yet: wait for the hub's own answer
        return await asyncio.shield(request)
    return "starting"


def _refresh_soon(hk: HubkeeperState, user: str) -> None:
    """The hub answered a start (ready, failed, or still starting after its wait): show it in
    the directory now rather than at the next sync."""

    async def refresh() -> None:
        try:
            await hk.directory.refresh_user(user)
        except HubkeeperError as exc:
            log.info("could not re-read %s after a start: %s", user, exc.detail)

    task = asyncio.ensure_future(refresh())
    _held_starts.add(task)
    task.add_done_callback(_held_starts.discard)


def _tell_failure(request: asyncio.Future[str], spawns: SpawnWatch, user: str, server: str) -> None:
    """A start the hub answered with a failure of the spawn itself (not a refusal: those are
    NotFound, Conflict, BadRequest, HubBusy, HubUnavailable) → `spawn.failed`."""
    if request.cancelled():
        return
    error = request.exception()
    if isinstance(error, HubError):
        # the hub's own message, as the hub plugin reports it (not Hubkeeper's wrapping)
        spawns.failed(user, server, error.hub_message or error.detail)


def _finished_start(request: asyncio.Future[str]) -> None:
    _held_starts.discard(request)
    if not request.cancelled() and request.exception() is not None:
        # Answered "pending" already; the spawn's failure shows in its progress stream and on
        # the hub. Logged so it is not lost.
        log.info("a start the hub accepted ended with: %s", request.exception())


async def stop_server(hk: HubkeeperState, who: Actor, user: str, server: str = "") -> str:
    """Stop a server: "stopped" when it is down, "pending" while the hub is still stopping it."""
    target = target_of(user, server)
    await require_recordable(hk, who)
    try:
        await _check_stoppable(hk, user, server)
    except HubkeeperError as exc:
        await audit(hk, who, "server.stop", target, outcome="failed", error=exc.detail)
        raise
    # audited by stop_and_wait; a server gone since the check is what was asked for
    result = await hk.stopper.stop_and_wait(
        who, user, server, reason=StopReason.ADMIN, client=hk.hub, audit_detail=""
    )
    await _refresh_after(hk, user)
    return "pending" if result == "stopping" else "stopped"


async def _check_stoppable(hk: HubkeeperState, user: str, server: str) -> None:
    """404 server_not_found, 409 already_stopped / action_pending, from the hub's answer now."""
    current = await _current(hk, user)
    status = _status(current, server)
    if status is None:
        raise NotFound(f"{user} has no server named {server!r}", code="server_not_found")
    if status == "stopped":
        raise Conflict(f"{server_label(user, server)} is already stopped", code="already_stopped")
    if status == "stopping":
        raise Conflict(f"{server_label(user, server)} is already stopping", code="action_pending")


async def access_server(hk: HubkeeperState, who: Actor, user: str, server: str = "") -> str:
    """The hub URL of a user's server, for an admin to open (the `url` the hub reports for it
    now); audited as `server.access`. 404 user_not_found / server_not_found."""
    target = target_of(user, server)
    await require_recordable(hk, who)
    try:
        current = await _current(hk, user)  # the hub now, not the directory's copy
        model = current.servers.get(server)
        if server and model is None:
            raise NotFound(f"{user} has no server named {server!r}", code="server_not_found")
    except HubkeeperError as exc:
        await audit(hk, who, "server.access", target, outcome="failed", error=exc.detail)
        raise
    url = server_url(hk.settings, user, server, model.url if model else "")
    await audit(hk, who, "server.access", target, detail=url)
    return url
