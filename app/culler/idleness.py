"""Why a server is idle or active: every signal the culler reads, and the decision the
current policy makes with them (`GET api/v1/users/{name}/idleness`).

The decision is the pass's own: the same `decide.judge_server` on the same signals
(`passes.read_signals`), so what this says is what a pass at `now` does.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from hubkeeper.culler import exemptions, keeps
from hubkeeper.culler.decide import Signals, judge_server, needs_signals
from hubkeeper.culler.kernels_seen import KernelsSeen
from hubkeeper.culler.passes import KernelGateway, read_signals
from hubkeeper.culler.settings import CullerSettings
from hubkeeper.errors import HubkeeperError, NotFound
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.models import HubServer, HubUser
from hubkeeper.kit.actors import server_label
from hubkeeper.kit.clock import as_utc, iso_utc


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return iso_utc(as_utc(value))


def signal_items(
    server_activity: datetime | None, proxy: datetime | None, signals: Signals | None
) -> list[dict[str, Any]]:
    """The signals as the API lists them: hub, proxy (when read), each kernel and terminal."""
    items: list[dict[str, Any]] = [
        {"source": "hub", "id": None, "last_activity": _iso(server_activity), "state": None}
    ]
    if proxy is not None:
        items.append({"source": "proxy", "id": None, "last_activity": _iso(proxy), "state": None})
    for kernel in signals.kernels if signals else ():
        items.append(
            {
                "source": "kernel",
                "id": kernel.get("id"),
                "last_activity": kernel.get("last_activity"),
                "state": kernel.get("execution_state"),
                "connections": kernel.get("connections"),
            }
        )
    for terminal in signals.terminals if signals else ():
        items.append(
            {
                "source": "terminal",
                "id": terminal.get("name"),
                "last_activity": terminal.get("last_activity"),
                "state": None,
            }
        )
    return items


async def _proxy_activity(gateway: KernelGateway | None, user: str, server: str) -> datetime | None:
    read_routes = getattr(gateway, "read_routes", None)
    if read_routes is None:
        return None
    try:
        routes = await read_routes()
    except HubkeeperError:
        return None
    route = routes.get((user, server))
    return None if route is None else route.last_activity


def decision(
    cfg: CullerSettings,
    model: HubUser,
    found: HubServer,
    signals: Signals | None,
    *,
    exempt: str | None,
    kept_until: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    """The pass's decision for one server at `now` (UTC), as `{"decision": "keep"|"cull",
    "reason", "cull_at"|None (ISO UTC), "cull_reason": "idle"|"max_age"|None}`: `decide.
    judge_server` on the same signals and keep, with the exemption that applies (`exempt`)."""
    if exempt is not None:
        return {
            "decision": "keep",
            "reason": f"exempt: {exempt}",
            "cull_at": None,
            "cull_reason": None,
        }
    live = found.ready and not found.pending
    verdict = judge_server(cfg, model, found, now, signals, kept_until)
    if verdict.cull is not None:
        reason = verdict.cull.reason + (f" ({verdict.cull.note})" if verdict.cull.note else "")
        return {
            "decision": "cull",
            "reason": reason,
            "cull_at": _iso(now),
            "cull_reason": verdict.cull.reason,
        }
    if not live:
        reason = "pending" if found.pending else "not ready"
        return {"decision": "keep", "reason": reason, "cull_at": None, "cull_reason": None}
    if found.name and cfg.named_servers == "keep":
        return {
            "decision": "keep",
            "reason": "named servers are kept",
            "cull_at": None,
            "cull_reason": None,
        }
    due: list[tuple[datetime, str]] = []
    idle_at = verdict.idle_due()
    if idle_at is not None:
        due.append((idle_at, "idle"))
    if cfg.max_age_s and found.started is not None:
        due.append((as_utc(found.started) + timedelta(seconds=cfg.max_age_s), "max_age"))
    reason = verdict.kept or f"active (idle_source {cfg.idle_source})"
    at, why = min(due) if due else (None, None)
    return {"decision": "keep", "reason": reason, "cull_at": _iso(at), "cull_reason": why}


async def signals_for(
    cfg: CullerSettings,
    gateway: KernelGateway | None,
    model: HubUser,
    found: HubServer,
    now: datetime,
    kept_until: datetime | None,
    *,
    always: bool,
    seen: KernelsSeen | None = None,
) -> Signals | None:
    """The server's kernels and terminals when it is live and (unless `always`) its decision
    depends on them, as the pass asks (`decide.needs_signals`); None otherwise."""
    if not (found.ready and not found.pending):
        return None
    if not always and not needs_signals(
        cfg, judge_server(cfg, model, found, now, kept_until=kept_until)
    ):
        return None
    return await read_signals(gateway, model.name, found.name, seen=seen, started=found.started)


async def idleness(
    cfg: CullerSettings,
    *,
    hub: HubClient,
    engine: Engine,
    gateway: KernelGateway | None,
    user: str,
    server: str,
    now: datetime,
    seen: KernelsSeen | None = None,
) -> dict[str, Any]:
    """`{"decision": "keep"|"cull", "reason", "cull_at"|null, "signals": [...]}` for one
    server at `now` (UTC). Raises NotFound (`user_not_found`, `server_not_found`: the server
    is not running), HubUnavailable."""
    model = await hub.get_user(user)
    found = model.servers.get(server)
    if found is None:
        raise NotFound(f"{server_label(user, server)} is not running", code="server_not_found")
    given = await asyncio.to_thread(keeps.in_force, engine, now)
    keep = keeps.of(given, user, found)
    kept_until = keep.until if keep else None
    signals = await signals_for(cfg, gateway, model, found, now, kept_until, always=True, seen=seen)
    proxy = await _proxy_activity(gateway, user, server)
    items = signal_items(found.last_activity, proxy, signals)
    exempt = await asyncio.to_thread(exemptions.in_force, engine, now)
    why = exempt.why(model.name, model.groups)
    if why is None and signals is not None and signals.error:
        items.append(
            {"source": "kernel", "id": None, "last_activity": None, "state": signals.error}
        )
    out = decision(cfg, model, found, signals, exempt=why, kept_until=kept_until, now=now)
    out.pop("cull_reason")
    out["signals"] = items
    return out
