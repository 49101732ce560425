"""The culler as the API, pages, CLI and lifespan use it: settings, preview, one pass now,
the periodic loops, exemptions. Every change is audited with who made it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hubkeeper.actions.audit import audit
from hubkeeper.culler import exemptions, records
from hubkeeper.culler import settings as culler_settings
from hubkeeper.culler.decide import Cull
from hubkeeper.culler.passes import CULLER, PassResult, Progress, kernels_pass, servers_pass
from hubkeeper.culler.settings import CullerSettings
from hubkeeper.db.models import CullExemption
from hubkeeper.errors import HubkeeperError, NotFound
from hubkeeper.kit.actors import Actor
from hubkeeper.kit.clock import as_utc, utcnow
from hubkeeper.kit.metrics import observe_cull_pass
from hubkeeper.kit.window import BadInput
from hubkeeper.loops.retry import retry_pause

if TYPE_CHECKING:
    from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)

WITHIN_MAX = 30 * 86400  # a preview looks at most 30 days ahead
LOOP_RETRY_S = 30.0  # after a pass that failed unexpectedly (the database down, say)
SETTINGS_POLL_S = 5.0  # how often a waiting loop reads its settings again


@dataclass(frozen=True)
class Current:
    settings: CullerSettings
    updated_at: datetime | None
    updated_by: str | None


async def current(hk: HubkeeperState) -> Current:
    cfg, at, by = await asyncio.to_thread(culler_settings.load, hk.engine, hk.settings)
    return Current(cfg, at, by)


async def last_run(hk: HubkeeperState) -> dict[str, Any] | None:
    return await asyncio.to_thread(records.last_run_dict, hk.engine)


async def update_settings(hk: HubkeeperState, who: Actor, body: object) -> CullerSettings:
    """Validate the whole object (422 `invalid_settings`, nothing changed), save it, and
    audit `culler.settings` with the diff. Applies from the next pass."""
    try:
        new = culler_settings.parse_put(body)
    except HubkeeperError as exc:
        await audit(hk, who, "culler.settings", "culler", outcome="failed", error=exc.detail)
        raise
    old = (await current(hk)).settings
    await asyncio.to_thread(culler_settings.save, hk.engine, new, who.name)
    changes = culler_settings.diff(old, new)
    await audit(hk, who, "culler.settings", "culler", detail="; ".join(changes) or "no change")
    return new


def _lock(hk: HubkeeperState) -> asyncio.Lock:
    return hk.culler_lock


async def preview(
    hk: HubkeeperState,
    *,
    within: int = 0,
    now: datetime | None = None,
    users: Collection[str] | None = None,
    kernels: bool = True,
) -> tuple[list[Cull], list[dict[str, str]]]:
    """Who a pass would cull at now + `within` seconds if nobody becomes active meanwhile
    (servers and kernels), and the servers that could not be looked at. 503 when the hub is
    down; 422 when `within` is out of range (0 to 30 days). `kernels=False` skips asking the
    servers for their kernels."""
    if within < 0 or within > WITHIN_MAX:
        raise BadInput(f"within must be 0 to {WITHIN_MAX} seconds")
    at = (now or utcnow()) + timedelta(seconds=within)
    cfg = (await current(hk)).settings
    servers = await servers_pass(hk, cfg, now=at, users=users, dry_run=True)
    if servers.error:
        raise HubkeeperError(servers.error, code="hub_unavailable", status_code=503)
    if not kernels:  # the page's default: asking every running server takes a while
        return servers.planned, servers.error_items()
    found = await kernels_pass(hk, cfg, now=at, users=users, dry_run=True)
    errors = [*servers.error_items(), *found.error_items()]
    if found.error:
        errors.append({"user": "", "server": "", "error": found.error})
    return [*servers.planned, *found.planned], errors


@dataclass
class RunResult:
    servers: PassResult
    kernels: PassResult

    def culled(self) -> list[Cull]:
        return [*self.servers.culled, *self.kernels.culled]

    def errors(self) -> list[dict[str, str]]:
        items = [*self.servers.error_items(), *self.kernels.error_items()]
        for result in (self.servers, self.kernels):
            if result.error:
                items.append({"user": "", "server": "", "error": result.error})
        return items


async def run_once(
    hk: HubkeeperState,
    who: Actor = CULLER,
    *,
    now: datetime | None = None,
    users: Collection[str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """One pass now, servers then kernels, whatever `enabled` says (POST culler/run, the
    CLI). Passes in one process never overlap."""
    cfg = (await current(hk)).settings
    async with _lock(hk):
        started = time.monotonic()
        servers = await servers_pass(
            hk, cfg, now=now, who=who, users=users, dry_run=dry_run, progress=progress
        )
        if not dry_run:
            observe_cull_pass(time.monotonic() - started)
        kernels = await kernels_pass(
            hk, cfg, now=now, who=who, users=users, dry_run=dry_run, progress=progress
        )
    if who is not CULLER and not dry_run:
        culled = len(servers.culled) + len(kernels.culled)
        failed = len(servers.error_items()) + len(kernels.error_items())
        await audit(
            hk,
            who,
            "culler.run",
            "culler",
            outcome="failed" if servers.error else "ok",
            detail=f"culled {culled}; errors {failed}",
            error=servers.error,
        )
    return RunResult(servers, kernels)


async def servers_once(hk: HubkeeperState) -> PassResult | None:
    """The periodic server pass, once: skipped (None) while `enabled` is off."""
    cfg = (await current(hk)).settings
    if not cfg.enabled:
        return None
    async with _lock(hk):
        started = time.monotonic()
        try:
            return await servers_pass(hk, cfg)
        finally:
            observe_cull_pass(time.monotonic() - started)


async def kernels_once(hk: HubkeeperState) -> PassResult | None:
    """The periodic kernel pass, once: skipped (None) while `kernels.enabled` is off."""
    cfg = (await current(hk)).settings
    if not cfg.kernels.enabled:
        return None
    async with _lock(hk):
        return await kernels_pass(hk, cfg)


async def _forever(hk: HubkeeperState, once: Any, interval_of: Any, name: str) -> None:
    """Run `once` every `interval_of(settings)` seconds, counted from the last pass. The
    settings are read again every `SETTINGS_POLL_S` seconds while waiting: a PUT on any replica
    (a shorter interval, culling switched on) applies within seconds, not after the old
    interval has run out."""
    last = time.monotonic()
    while True:
        try:
            cfg = (await current(hk)).settings
            wait = last + interval_of(cfg) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, SETTINGS_POLL_S))
                continue
            last = time.monotonic()
            result = await once(hk)
            if result is not None and result.error:
                log.warning("culler %s pass skipped: %s", name, result.error)
        except Exception:
            log.exception("culler %s pass failed; retrying in %.0f s", name, LOOP_RETRY_S)
            await retry_pause(LOOP_RETRY_S)  # cancelled here, the loop ends (issue #13)


async def run_forever(hk: HubkeeperState) -> None:
    """Lifespan task: a server pass every `interval_s` while `enabled` (the settings are
    re-read before every wait, so a change applies from the next pass). First, as the new
    leader, it settles the culls a killed leader left interrupted."""
    try:
        await settle_interrupted(hk)
    except Exception:  # the passes matter more; the records are settled at the next start
        log.exception("could not settle the interrupted culls")
    await _forever(hk, servers_once, lambda cfg: cfg.interval_s, "server")


async def settle_interrupted(hk: HubkeeperState) -> int:
    """Settle the server culls a previous leader wrote ahead and never finished (it was killed
    between asking the hub and recording the answer): each server is looked up on the hub
    now, and its record says ok when the server is stopped (or gone with its user), or that it
    was not stopped when the hub still runs a server started before the cull. A server
    started again since then proves nothing either way: its record is left interrupted.
    Returns how many were settled."""
    now = utcnow()
    pending = await asyncio.to_thread(records.interrupted_server_culls, hk.engine, now)
    settled = 0
    for event in pending:
        try:
            user = await hk.hub.bulk.get_user(event.user)
        except NotFound:
            stopped = True  # the user is gone, and the server with them
        else:
            server = user.servers.get(event.server)
            if server is None or server.status == "stopped":
                stopped = True
            elif server.started is not None and as_utc(server.started) > as_utc(event.at):
                continue  # started again since: cannot tell what the cull did
            else:
                stopped = False
        if event.id is not None and await asyncio.to_thread(
            records.settle, hk.engine, event.id, stopped=stopped
        ):
            settled += 1
    if settled:
        log.info("settled %d interrupted cull record(s) from the hub's answers", settled)
    return settled


async def run_kernels_forever(hk: HubkeeperState) -> None:
    """Lifespan task: a kernel pass every `kernels.interval_s` while `kernels.enabled`."""
    await _forever(hk, kernels_once, lambda cfg: cfg.kernels.interval_s, "kernel")


# --- exemptions ------------------------------------------------------------------------------
def _exemption_target(user: str | None, group: str | None) -> str:
    return f"user:{user}" if user else f"group:{group}"


async def add_exemption(
    hk: HubkeeperState,
    who: Actor,
    *,
    user: str | None,
    group: str | None,
    reason: str,
    until: datetime | None,
) -> CullExemption:
    """Exempt a user or a group (exactly one), with a reason and an optional expiry in the
    future. The hub must know the user or group (404 `user_not_found`/`group_not_found`,
    503 when it is down); bad input → 422."""
    target = _exemption_target(user, group)
    try:
        if bool(user) == bool(group):
            raise BadInput("Give either a user or a group to exempt", code="invalid_exemption")
        reason = reason.strip()
        if not reason or len(reason) > exemptions.REASON_MAX:
            raise BadInput(
                f"Give a reason of 1 to {exemptions.REASON_MAX} characters",
                code="invalid_exemption",
            )
        if until is not None and until <= utcnow():
            raise BadInput("until must be in the future", code="invalid_exemption")
        if user:
            await hk.hub.get_user(user)
        else:
            await hk.hub.get_group(group or "")
    except HubkeeperError as exc:
        await audit(hk, who, "culler.exempt", target, outcome="failed", error=exc.detail)
        raise
    row = await asyncio.to_thread(
        exemptions.create,
        hk.engine,
        user=user or None,
        group=group or None,
        reason=reason,
        until=until,
        by=who.name,
    )
    detail = f"reason: {reason}; until {until.isoformat() if until else 'deleted'}"
    await audit(hk, who, "culler.exempt", target, detail=detail)
    return row


async def delete_exemption(hk: HubkeeperState, who: Actor, exemption_id: int) -> CullExemption:
    try:
        row = await asyncio.to_thread(exemptions.delete, hk.engine, exemption_id)
    except HubkeeperError as exc:
        await audit(
            hk,
            who,
            "culler.unexempt",
            f"exemption:{exemption_id}",
            outcome="failed",
            error=exc.detail,
        )
        raise
    await audit(
        hk,
        who,
        "culler.unexempt",
        _exemption_target(row.user, row.group),
        detail=f"exemption {exemption_id}: {row.reason}",
    )
    return row
