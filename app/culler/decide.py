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
from datetime import datetime, timedelta
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
    note: str = ""  # how it was decided when that is not the usual way (server unreachable)

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


@dataclass(frozen=True)
class Signals:
    """What a server says about itself, read by the pass through the server gateway:
    `GET api/kernels` and `GET api/terminals` items. `error` set: it could not be asked
    (then the hub's activity alone decides, and the cull says so)."""

    kernels: tuple[dict[str, Any], ...] = ()
    terminals: tuple[dict[str, Any], ...] = ()
    error: str = ""
    # the latest activity of kernels seen earlier in this server start and gone since
    # (culler/kernels_seen.py): a server whose kernels were all shut down is idle from it
    gone_kernels_at: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    """A server's decision: `cull` (None = kept), `kept` (why a rule keeps a server that
    would otherwise be culled for idleness, e.g. a busy kernel), `last` (the moment its
    inactivity is counted from, UTC; None when nothing tells) and `timeout` (seconds)."""

    cull: Cull | None
    kept: str | None = None
    last: datetime | None = None
    timeout: int = 0
    kept_until: datetime | None = None  # a keep in force postpones idle culling to then (UTC)

    def idle_due(self) -> datetime | None:
        """When idle culling is due if nobody uses the server from now on (UTC): last
        activity + timeout, or the keep's end when later; None when nothing tells, or when
        a busy kernel or terminal keeps it for now."""
        if self.last is None or (self.kept is not None and not self.kept.startswith("keep")):
            return None
        due = self.last + timedelta(seconds=self.timeout)
        if self.kept_until is not None and self.kept_until > due:
            return self.kept_until
        return due


def _busy(cfg: CullerSettings, signals: Signals, now: datetime, timeout: int) -> str | None:
    """Why `keep_busy` keeps the server: a kernel executing, or a terminal used within
    `timeout` seconds; None when neither."""
    for kernel in signals.kernels:
        if kernel.get("execution_state") == "busy":
            return f"busy: kernel {kernel.get('id')} is executing"
    for terminal in signals.terminals:
        used = _seconds(now, _parse_time(terminal.get("last_activity")))
        if used is not None and used < timeout:
            return f"busy: terminal {terminal.get('name')} used {used:.0f} s ago"
    return None


def kernels_last(server: HubServer, signals: Signals) -> datetime | None:
    """Under `idle_source: kernels`: the latest of the kernels' and terminals'
    `last_activity`, of the kernels gone since (`gone_kernels_at`), and the server's start (a
    server with none of them is idle from its start or its last kernel)."""
    times = [
        t
        for item in (*signals.kernels, *signals.terminals)
        if (t := _parse_time(item.get("last_activity"))) is not None
    ]
    if signals.gone_kernels_at is not None:
        times.append(as_utc(signals.gone_kernels_at))
    if server.started is not None:
        times.append(as_utc(server.started))
    return max(times) if times else None


def judge_server(
    cfg: CullerSettings,
    user: HubUser,
    server: HubServer,
    now: datetime,
    signals: Signals | None = None,
    kept_until: datetime | None = None,
) -> Verdict:
    """Whether `server` of `user` is to be culled at `now`, and why not (exemptions are
    checked by the caller). `signals`: the server's kernels and terminals (None: not asked;
    then only the hub's activity counts, as jupyterhub-idle-culler). `kept_until`: the end
    (UTC) of a keep given to this server start (keeps.py): no idle cull before it; max age
    still applies. Never raises on null times: a server with no time at all is left alone."""
    if server.pending or not server.ready:
        return Verdict(None)
    named = server.name != ""
    if named and cfg.named_servers == "keep":
        return Verdict(None)
    age = _seconds(now, server.started)
    asked = signals is not None and not signals.error
    note = ""
    if signals is not None and signals.error:
        note = f"the server could not be asked ({signals.error}): the hub's activity decided"
    if asked and cfg.idle_source == "kernels":
        assert signals is not None
        last = kernels_last(server, signals)
    else:
        last = server.last_activity or server.started or user.last_activity
    last = as_utc(last) if last is not None else None
    inactive = _seconds(now, last)
    remove = named and cfg.named_servers == "cull_and_remove"
    timeout = cfg.timeout_for(user.groups)
    kept = None
    if inactive is not None and inactive >= timeout:
        kept = _busy(cfg, signals, now, timeout) if asked and cfg.keep_busy and signals else None
        if kept is None and kept_until is not None and now < as_utc(kept_until):
            kept = f"keep: kept until {as_utc(kept_until):%Y-%m-%d %H:%M} UTC"
        if kept is None:
            cull = Cull(
                "server", user.name, server.name, "idle", inactive, age, remove=remove, note=note
            )
            return Verdict(cull, None, last, timeout, kept_until)
    if cfg.max_age_s and age is not None and age >= cfg.max_age_s:
        cull = Cull(
            "server", user.name, server.name, "max_age", inactive, age, remove=remove, note=note
        )
        return Verdict(cull, None, last, timeout, kept_until)
    return Verdict(None, kept, last, timeout, kept_until)


def needs_signals(cfg: CullerSettings, verdict: Verdict) -> bool:
    """Whether the pass must ask the server for its kernels and terminals: always under
    `idle_source: kernels`; under `hub` only when `keep_busy` may save a server that the
    hub's activity alone would cull for idleness."""
    if cfg.idle_source == "kernels":
        return True
    return cfg.keep_busy and verdict.cull is not None and verdict.cull.reason == "idle"


def decide_server(
    cfg: CullerSettings,
    user: HubUser,
    server: HubServer,
    now: datetime,
    signals: Signals | None = None,
    kept_until: datetime | None = None,
) -> Cull | None:
    """`judge_server(...).cull`: the cull, or None when the server stays."""
    return judge_server(cfg, user, server, now, signals, kept_until).cull


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
