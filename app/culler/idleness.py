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

from hubkeeper.culler import exemptions
from hubkeeper.culler.decide import Signals, judge_server
from hubkeeper.culler.passes import KernelGateway, read_signals
from hubkeeper.culler.settings import CullerSettings
from hubkeeper.errors import HubkeeperError, NotFound
from hubkeeper.hub.client import HubClient
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


async def idleness(
    cfg: CullerSettings,
    *,
    hub: HubClient,
    engine: Engine,
    gateway: KernelGateway | None,
    user: str,
    server: str,
    now: datetime,
) -> dict[str, Any]:
    """`{"decision": "keep"|"cull", "reason", "cull_at"|null, "signals": [...]}` for one
    server at `now` (UTC). Raises NotFound (`user_not_found`, `server_not_found`: the server
    is not running), HubUnavailable."""
    model = await hub.get_user(user)
    found = model.servers.get(server)
    if found is None:
        raise NotFound(f"{server_label(user, server)} is not running", code="server_not_found")
    live = found.ready and not found.pending
    signals = await read_signals(gateway, user, server) if live else None
    proxy = await _proxy_activity(gateway, user, server)
    items = signal_items(found.last_activity, proxy, signals)
    exempt = await asyncio.to_thread(exemptions.in_force, engine, now)
    why = exempt.why(model.name, model.groups)
    if why is not None:
        return {"decision": "keep", "reason": f"exempt: {why}", "cull_at": None, "signals": items}
    if signals is not None and signals.error:
        items.append(
            {"source": "kernel", "id": None, "last_activity": None, "state": signals.error}
        )
    verdict = judge_server(cfg, model, found, now, signals)
    if verdict.cull is not None:
        reason = verdict.cull.reason + (f" ({verdict.cull.note})" if verdict.cull.note else "")
        return {"decision": "cull", "reason": reason, "cull_at": _iso(now), "signals": items}
    if not live:
        reason = "pending" if found.pending else "not ready"
        return {"decision": "keep", "reason": reason, "cull_at": None, "signals": items}
    if server and cfg.named_servers == "keep":
        return {
            "decision": "keep",
            "reason": "named servers are kept",
            "cull_at": None,
            "signals": items,
        }
    due: list[datetime] = []
    if verdict.kept is None and verdict.last is not None:
        due.append(verdict.last + timedelta(seconds=verdict.timeout))
    if cfg.max_age_s and found.started is not None:
        due.append(as_utc(found.started) + timedelta(seconds=cfg.max_age_s))
    reason = verdict.kept or f"active (idle_source {cfg.idle_source})"
    cull_at = _iso(min(due)) if due else None
    return {"decision": "keep", "reason": reason, "cull_at": cull_at, "signals": items}
