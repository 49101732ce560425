"""Pure decisions: would this server, user or kernel be culled at `now`? No I/O here.

Servers and users follow jupyterhub-idle-culler 2.0 (`jupyterhub_idle_culler/__init__.py`,
`cull_idle` → `handle_server` / `handle_user`):
- a pending server (spawn or stop in progress) or a not-ready one is never culled;
- inactive = now − server.last_activity, falling back to `started` (and, beyond idle-culler,
  to the user's `last_activity` when the server has neither);
- idle cull when inactive ≥ timeout (`default_cull_arbiter` uses ≥);
- otherwise, with max age set, cull when now − started ≥ max age, however active it is.
Deliberate differences (docs/culler.md): `named_servers="keep"` keeps named servers on the
max-age path too (idle-culler's `cull_named_servers=False` still culls them past max age);
`cull_admin_users=False` never deletes an admin, on the max-age path too (idle-culler deletes
an admin past max age); exemptions and per-group timeouts, which idle-culler lacks.

Kernels follow jupyter_server 2.x (`services/kernels/kernelmanager.py`,
`cull_kernel_if_idle`): a dead kernel is culled; otherwise idle = now − last_activity, culled
when idle > timeout and (cull_busy or not busy) and (cull_connected or no connections).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hubkeeper.culler.settings import CullerSettings, KernelSettings
from hubkeeper.hub.models import HubServer, HubUser
from hubkeeper.kit.clock import as_utc


@dataclass(frozen=True)
class Cull:
    """One thing a pass will stop: a server (kind="server") or a kernel (kind="kernel")."""

    kind: str
    user: str
    server: str
    reason: str  # idle | max_age
    inactive_s: float | None  # seconds; None when nothing tells when it was last active
    age_s: float | None  # seconds since the server started (None for kernels)
    kernel_id: str | None = None
    remove: bool = False  # a named server under cull_and_remove: delete it once stopped

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "server": self.server,
            "kind": self.kind,
            "kernel_id": self.kernel_id,
            "reason": self.reason,
            "inactive_s": _round(self.inactive_s),
            "age_s": _round(self.age_s),
        }


@dataclass(frozen=True)
class UserCull:
    """A user `cull_users` deletes once every server of theirs has stopped."""

    user: str
    reason: str
    inactive_s: float | None
    age_s: float | None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _seconds(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else (now - as_utc(then)).total_seconds()


def decide_server(
    cfg: CullerSettings, user: HubUser, server: HubServer, now: datetime
) -> Cull | None:
    """Whether `server` of `user` is to be culled at `now` (exemptions are checked by the
    caller). Never raises on null times: a server with no time at all is left alone."""
    if server.pending or not server.ready:
        return None
    named = server.name != ""
    if named and cfg.named_servers == "keep":
        return None
    age = _seconds(now, server.started)
    last = server.last_activity or server.started or user.last_activity
    inactive = _seconds(now, last)
    remove = named and cfg.named_servers == "cull_and_remove"
    timeout = cfg.timeout_for(user.groups)
    if inactive is not None and inactive >= timeout:
        return Cull("server", user.name, server.name, "idle", inactive, age, remove=remove)
    if cfg.max_age_s and age is not None and age >= cfg.max_age_s:
        return Cull("server", user.name, server.name, "max_age", inactive, age, remove=remove)
    return None


def decide_user(cfg: CullerSettings, user: HubUser, now: datetime) -> UserCull | None:
    """With `cull_users`: whether the user is to be deleted once their servers have stopped
    (inactive = now − user.last_activity, else `created`). Never an admin when
    `cull_admin_users` is off, whichever path (idle or max age)."""
    if not cfg.cull_users:
        return None
    if user.admin and not cfg.cull_admin_users:
        return None
    age = _seconds(now, user.created)
    inactive = _seconds(now, user.last_activity or user.created)
    if inactive is not None and inactive >= cfg.timeout_for(user.groups):
        return UserCull(user.name, "idle", inactive, age)
    if cfg.max_age_s and age is not None and age >= cfg.max_age_s:
        return UserCull(user.name, "max_age", inactive, age)
    return None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def decide_kernel(
    cfg: KernelSettings, user: str, server: str, kernel: dict[str, Any], now: datetime
) -> Cull | None:
    """Whether a kernel (a `GET api/kernels` item) is to be shut down at `now`."""
    kernel_id = str(kernel.get("id") or "")
    if not kernel_id:
        return None
    state = kernel.get("execution_state")
    inactive = _seconds(now, _parse_time(kernel.get("last_activity")))
    if state == "dead":
        return Cull("kernel", user, server, "idle", inactive, None, kernel_id=kernel_id)
    if inactive is None or inactive <= cfg.timeout_s:
        return None
    if state == "busy" and not cfg.cull_busy:
        return None
    connections = kernel.get("connections") or 0
    if connections and not cfg.cull_connected:
        return None
    return Cull("kernel", user, server, "idle", inactive, None, kernel_id=kernel_id)
