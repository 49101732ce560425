"""The lockdown's pre-spawn hook, as deployments configured it before the hub plugin:

    from hubkeeper.lockdown.hook import make_pre_spawn_hook
    c.Spawner.pre_spawn_hook = make_pre_spawn_hook(
        "http://127.0.0.1:10101/services/hubkeeper/api/v1/lockdown/status"
    )

Still works; `hubkeeper.hub_plugin.configure` does this and more (server tokens, the
lockdown on the hub's pages) and is what new deployments use. Loaded in the hub's process,
so it imports only `hubkeeper.hub_plugin` (standard library, tornado, jupyterhub).

While locked the hook raises `tornado.web.HTTPError(503, message)` with `.jupyterhub_message`
set. If Hubkeeper cannot be reached the spawn goes ahead with a warning (fail open);
`fail_open=False` refuses spawns instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hubkeeper.hub_plugin import UNREACHABLE_MESSAGE, LockdownStatus
from hubkeeper.hub_plugin import make_pre_spawn_hook as _plugin_hook

__all__ = ["UNREACHABLE_MESSAGE", "make_pre_spawn_hook"]


def make_pre_spawn_hook(
    status_url: str, *, timeout: float = 2.0, fail_open: bool = True
) -> Callable[[Any], Awaitable[None]]:
    """A pre_spawn_hook refusing spawns while Hubkeeper's `lockdown/status` says locked."""
    return _plugin_hook(LockdownStatus(status_url, timeout=timeout), fail_open=fail_open)
