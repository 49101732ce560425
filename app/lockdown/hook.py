"""The hub side of the lockdown: a `Spawner.pre_spawn_hook` that asks Hubkeeper first.

Loaded by JupyterHub in its own process, so it imports nothing from the rest of `app`
(only the standard library and tornado, which the hub always has):

    from hubkeeper.lockdown.hook import make_pre_spawn_hook
    c.Spawner.pre_spawn_hook = make_pre_spawn_hook(
        "http://127.0.0.1:10101/services/hubkeeper/api/v1/lockdown/status"
    )

While locked, the hook raises `tornado.web.HTTPError(503, message)` with `.jupyterhub_message`
set: the hub's API answers 503 with that message and its spawn page shows it.

If Hubkeeper cannot be reached (or answers nonsense) the spawn goes ahead and a warning is
logged: fail open, so an outage of the console never stops people from working. Pass
`fail_open=False` to refuse spawns instead while Hubkeeper is down.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("hubkeeper.lockdown")

UNREACHABLE_MESSAGE = (
    "Servers cannot start right now: the hub could not check whether it is locked. "
    "Try again in a minute."
)


def make_pre_spawn_hook(
    status_url: str, *, timeout: float = 2.0, fail_open: bool = True
) -> Callable[[Any], Awaitable[None]]:
    """A pre_spawn_hook refusing spawns while Hubkeeper's `lockdown/status` says locked."""

    async def pre_spawn_hook(spawner: Any) -> None:
        from tornado.httpclient import AsyncHTTPClient
        from tornado.web import HTTPError

        def refuse(message: str) -> HTTPError:
            error = HTTPError(503, message)
            error.jupyterhub_message = message  # type: ignore[attr-defined]
            return error

        try:
            response = await AsyncHTTPClient().fetch(
                status_url, request_timeout=timeout, connect_timeout=timeout
            )
            status = json.loads(response.body)
            locked = status["locked"] is True
            message = str(status.get("message") or "The hub is locked by an administrator.")
        except Exception as exc:
            user = getattr(getattr(spawner, "user", None), "name", "?")
            if fail_open:
                log.warning("lockdown check failed (%s); letting %s's server start", exc, user)
                return
            log.warning("lockdown check failed (%s); refusing %s's server", exc, user)
            raise refuse(UNREACHABLE_MESSAGE) from None
        if locked:
            raise refuse(message)

    return pre_spawn_hook
