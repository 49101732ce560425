"""The culler as the API, pages, CLI and lifespan use it: settings, preview, one pass now,
the periodic loops, exemptions. Every change is audited with who made it.

`Culler` holds what the passes use (the hub client, the database, the server stopper, the
server gateway for kernels, the settings' defaults, the lock that keeps passes apart); one is
built per process (`create_app`: `hk.culler`, reached by routes as `CullerDep`; the CLI:
`Culler.of(hk)`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from hubkeeper.culler import exemptions, idleness, keeps, records
from hubkeeper.culler import settings as culler_settings
from hubkeeper.culler.decide import Cull
from hubkeeper.culler.kernels_seen import KernelsSeen
from hubkeeper.culler.notices import own_page_url
from hubkeeper.culler.passes import (
    CULLER,
    TOKEN_WAIT,
    KernelGateway,
    PassResult,
    Progress,
    direct_gateway,
    kernels_pass,
    servers_pass,
)
from hubkeeper.culler.quiet import QuietServers
from hubkeeper.culler.settings import CullerSettings
from hubkeeper.db.models import CullExemption
from hubkeeper.errors import Conflict, HubkeeperError, NotFound
from hubkeeper.kit.actors import Actor, server_label, target_of
from hubkeeper.kit.clock import as_utc, iso_utc, utcnow
from hubkeeper.kit.metrics import count_keep, observe_cull_pass
from hubkeeper.kit.window import BadInput
from hubkeeper.loops.retry import retry_pause

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from hubkeeper.actions.stop import ServerStopper
    from hubkeeper.config import Settings
    from hubkeeper.db.activity import ActivityRecorder
    from hubkeeper.hub.client import HubClient
    from hubkeeper.hub.models import HubUser
    from hubkeeper.outbox.record import Outbox
    from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)

WITHIN_MAX = 30 * 86400  # a preview looks at most 30 days ahead
PREVIEW_TOKEN_WAIT = 10.0  # s a preview (a request someone waits on) waits for tokens
LOOP_RETRY_S = 30.0  # after a pass that failed unexpectedly (the database down, say)
SETTINGS_POLL_S = 5.0  # how often a waiting loop reads its settings again


@dataclass(frozen=True)
class Current:
    settings: CullerSettings
    updated_at: datetime | None
    updated_by: str | None


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


async def current_settings(engine: Engine, settings: Settings) -> Current:
    """The culler settings in force (saved in the database, else `settings`' defaults), when
    and by whom saved. Raises the database's errors."""
    cfg, at, by = await asyncio.to_thread(culler_settings.load, engine, settings)
    return Current(cfg, at, by)


def _exemption_target(user: str | None, group: str | None) -> str:
    return f"user:{user}" if user else f"group:{group}"


# The periodic server pass takes its candidates from the directory only while the directory
# has heard from the hub (or, on a follower, from the replica that asks it) within this many
# seconds; otherwise it lists the hub as before. The directory ticks every second with the
# proxy's routes (every HUBKEEPER_ACTIVE_SYNC_INTERVAL without), so a copy older than this
# means its sync is failing: then the hub's own list is the safer source.
COPY_MAX_LAG = 60.0


class RunningList(Protocol):
    """What the culler reads of the user directory (`directory.store.UserDirectory`)."""

    ready: bool

    def running_users(self) -> list[HubUser]: ...

    def all_users(self) -> list[HubUser]: ...

    def lag_seconds(self) -> float | None: ...


class Culler:
    """The culler of one Hubkeeper process.

    `hub`: the hub client; `engine`: the database (culler settings, exemptions, cull records);
    `stopper` stops servers (its audit trail records every culler change); `servers`: the
    server gateway (kernels are culled only when it reaches servers directly, see
    `passes.direct_gateway`); `settings`: the process's settings (the culler's defaults,
    `cull_stop_timeout`); `lock` keeps passes in one process from overlapping (a new one
    unless given)."""

    def __init__(
        self,
        *,
        hub: HubClient,
        engine: Engine,
        stopper: ServerStopper,
        servers: KernelGateway | None,
        settings: Settings,
        lock: asyncio.Lock | None = None,
        directory: RunningList | None = None,
        activity: ActivityRecorder | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.hub = hub
        # where real server passes record cull.warning and cull.done (None: not notified)
        self.outbox = outbox
        # where the periodic kernel pass lists running servers: the directory's copy (a
        # list: copies are for lists), not a walk of the hub; kernels are judged from each
        # server's own answer
        self.directory = directory
        # kernel activity seen by the passes, for the backtest (None: not noted)
        self.activity = activity
        self.engine = engine
        self.stopper = stopper
        self.servers = servers
        self.settings = settings
        self.lock = lock or asyncio.Lock()
        # the periodic kernel pass's last looks: servers where nothing changed are skipped
        self.quiet = QuietServers()
        self.kernels_seen = KernelsSeen()  # kernels gone since: "idle from its last kernel"

    @classmethod
    def of(cls, hk: HubkeeperState) -> Culler:
        """A culler with this state's collaborators (the CLI's; the app keeps `hk.culler`)."""
        return cls(
            hub=hk.hub,
            engine=hk.engine,
            stopper=hk.stopper,
            servers=hk.servers,
            settings=hk.settings,
            outbox=hk.outbox,
        )

    # --- the passes, with this culler's collaborators ---------------------------------------
    async def servers_pass(
        self,
        cfg: CullerSettings,
        *,
        now: datetime | None = None,
        who: Actor = CULLER,
        users: Collection[str] | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
        from_directory: bool = False,
    ) -> PassResult:
        """`passes.servers_pass` (not under the lock: callers that must not overlap take it).
        `from_directory` (the periodic pass): candidates from the directory's copies, only
        they read from the hub (`passes.may_cull`); `POST culler/run`, `hubkeeper cull` and
        the preview walk the hub's list."""

        async def copies() -> list[HubUser] | None:
            return self._copies(with_inactive=cfg.cull_users)

        return await servers_pass(
            cfg,
            hub=self.hub,
            engine=self.engine,
            stopper=self.stopper,
            stop_timeout=self.settings.cull_stop_timeout,
            now=now,
            who=who,
            users=users,
            dry_run=dry_run,
            progress=progress,
            gateway=direct_gateway(self.servers),
            copies=copies if from_directory else None,
            outbox=None if dry_run else self.outbox,
            page_url=own_page_url(self.settings),
            seen=self.kernels_seen,
        )

    def _copies(self, *, with_inactive: bool) -> list[HubUser] | None:
        """The directory's users with a server not stopped (every user `with_inactive`);
        None (list the hub) before its first sweep or when it is more than COPY_MAX_LAG s
        behind the hub."""
        directory = self.directory
        if directory is None or not directory.ready:
            return None
        lag = directory.lag_seconds()
        if lag is None or lag > COPY_MAX_LAG:
            return None
        return directory.all_users() if with_inactive else directory.running_users()

    async def kernels_pass(
        self,
        cfg: CullerSettings,
        *,
        now: datetime | None = None,
        who: Actor = CULLER,
        users: Collection[str] | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
        skip_quiet: bool = False,
        token_wait: float = TOKEN_WAIT,
    ) -> PassResult:
        """`passes.kernels_pass` (not under the lock: callers that must not overlap take it).
        `skip_quiet`: leave alone the servers where nothing could have changed since this
        culler last looked (the periodic pass; culler/quiet.py). `token_wait`: seconds to
        wait for tokens being minted (passes.TOKEN_WAIT)."""
        return await kernels_pass(
            cfg,
            hub=self.hub,
            engine=self.engine,
            gateway=direct_gateway(self.servers),
            now=now,
            who=who,
            users=users,
            dry_run=dry_run,
            progress=progress,
            quiet=self.quiet if skip_quiet else None,
            seen=self.kernels_seen,
            running=self._running_from_directory if skip_quiet else None,
            activity=self.activity,
            token_wait=token_wait,
        )

    async def _running_from_directory(self) -> list[HubUser] | None:
        """Users with a server running, from the directory; None (ask the hub) before its
        first full sweep."""
        directory = self.directory
        if directory is None or not directory.ready:
            return None
        return directory.running_users()

    # --- settings ----------------------------------------------------------------------------
    async def current(self) -> Current:
        """The settings in force (saved, else the defaults), when and by whom saved."""
        return await current_settings(self.engine, self.settings)

    async def last_run(self) -> dict[str, Any] | None:
        return await asyncio.to_thread(records.last_run_dict, self.engine)

    async def update_settings(self, who: Actor, body: object) -> CullerSettings:
        """Validate the whole object (422 `invalid_settings`, nothing changed), save it, and
        audit `culler.settings` with the diff. Applies from the next pass."""
        trail = self.stopper.trail
        old = (await self.current()).settings
        try:
            new = culler_settings.parse_put(body, old)
        except HubkeeperError as exc:
            await trail.write(who, "culler.settings", "culler", outcome="failed", error=exc.detail)
            raise
        await asyncio.to_thread(culler_settings.save, self.engine, new, who.name)
        changes = culler_settings.diff(old, new)
        await trail.write(
            who, "culler.settings", "culler", detail="; ".join(changes) or "no change"
        )
        return new

    # --- passes now and periodically ---------------------------------------------------------
    async def preview(
        self,
        *,
        within: int = 0,
        now: datetime | None = None,
        users: Collection[str] | None = None,
        kernels: bool = True,
        kept: list[dict[str, Any]] | None = None,
    ) -> tuple[list[Cull], list[dict[str, str]]]:
        """Who a pass would cull at now + `within` seconds if nobody becomes active meanwhile
        (servers and kernels), and the servers that could not be looked at. 503 when the hub
        is down; 422 when `within` is out of range (0 to 30 days). `kernels=False` skips
        asking the servers for their kernels. `kept`: servers a rule keeps (a busy kernel)
        are appended to it, each a preview item with `kept` saying why."""
        if within < 0 or within > WITHIN_MAX:
            raise BadInput(f"within must be 0 to {WITHIN_MAX} seconds")
        at = (now or utcnow()) + timedelta(seconds=within)
        cfg = (await self.current()).settings
        servers = await self.servers_pass(cfg, now=at, users=users, dry_run=True)
        if servers.error:
            raise HubkeeperError(servers.error, code="hub_unavailable", status_code=503)
        if kept is not None:
            kept.extend(servers.kept)
        if not kernels:  # the page's default: asking every running server takes a while
            return servers.planned, servers.error_items()
        # someone waits on this answer: servers whose token is still being minted after
        # PREVIEW_TOKEN_WAIT are named as not checked rather than held for the pass's minute
        found = await self.kernels_pass(
            cfg, now=at, users=users, dry_run=True, token_wait=PREVIEW_TOKEN_WAIT
        )
        errors = [*servers.error_items(), *found.error_items()]
        if found.error:
            errors.append({"user": "", "server": "", "error": found.error})
        if found.not_checked:
            errors.append({"user": "", "server": "", "error": found.not_checked})
        return [*servers.planned, *found.planned], errors

    async def idleness(
        self, user: str, server: str = "", *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Why `server` of `user` is idle or active, and what the current policy decides
        (`culler.idleness`; the pass's own decision). 404 unknown user or server not running,
        503 hub down."""
        cfg = (await self.current()).settings
        return await idleness.idleness(
            cfg,
            hub=self.hub,
            engine=self.engine,
            gateway=direct_gateway(self.servers),
            user=user,
            server=server,
            now=now or utcnow(),
            seen=self.kernels_seen,
        )

    # --- one user's own servers: outlook and keeps --------------------------------------------
    async def my_servers(self, user: str, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """`user`'s servers (one read of the hub for that user), each with the outlook the
        pass's own decision gives now: `{"name", "status", "started", "last_activity",
        "cull_at"|None, "cull_reason": "idle"|"max_age"|None, "keeps_left", "keep_until"|None,
        "reason"}` (times ISO UTC). 404 `user_not_found`, 503 hub down."""
        now = now or utcnow()
        cfg = (await self.current()).settings
        model = await self.hub.get_user(user)
        exempt = await asyncio.to_thread(exemptions.in_force, self.engine, now)
        given = await asyncio.to_thread(keeps.for_user, self.engine, user)
        why = exempt.why(model.name, model.groups)
        gateway = direct_gateway(self.servers)
        items: list[dict[str, Any]] = []
        for server in sorted(model.servers.values(), key=lambda s: s.name):
            keep = keeps.of(given, user, server)
            in_force = keep.until if keep and keep.until and keep.until > now else None
            used = keep.count if keep else 0
            running = server.status != "stopped"
            out: dict[str, Any] = {"decision": "keep", "reason": "not running", "cull_at": None}
            out["cull_reason"] = None
            if running:
                signals = await idleness.signals_for(
                    cfg, gateway, model, server, now, in_force, always=False, seen=self.kernels_seen
                )
                out = idleness.decision(
                    cfg, model, server, signals, exempt=why, kept_until=in_force, now=now
                )
            items.append(
                {
                    "name": server.name,
                    "status": server.status,
                    "started": iso_utc(server.started),
                    "last_activity": iso_utc(server.last_activity),
                    "cull_at": out["cull_at"],
                    "cull_reason": out["cull_reason"],
                    "keeps_left": max(0, cfg.max_keeps - used) if running else cfg.max_keeps,
                    "keep_until": iso_utc(in_force),
                    "reason": out["reason"],
                    "enabled": cfg.enabled,
                }
            )
        return items

    async def keep(
        self, who: Actor, user: str, server: str = "", *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Postpone idle culling of `server` of `user` until now + `keep_s` (max age is never
        postponed): `{"keep_until" (ISO UTC), "keeps_left"}`. Raises NotFound
        (`user_not_found`, `server_not_found`), Conflict (`not_running`, `too_many_keeps`
        after `max_keeps` keeps in this server start), HubUnavailable. Audited
        (`culler.keep`, target `user` or `user/server`) either way."""
        trail = self.stopper.trail
        target = target_of(user, server)
        now = now or utcnow()
        try:
            cfg = (await self.current()).settings
            model = await self.hub.get_user(user)
            found = model.servers.get(server)
            if found is None and server:
                raise NotFound(f"{user} has no server named {server!r}", code="server_not_found")
            if found is None or not found.ready or found.pending:
                raise Conflict(f"{server_label(user, server)} is not running", code="not_running")
            until, left = await asyncio.to_thread(
                keeps.add,
                self.engine,
                user=user,
                server=found,
                now=now,
                keep_s=cfg.keep_s,
                max_keeps=cfg.max_keeps,
                actor=who.name,
            )
        except HubkeeperError as exc:
            await trail.write(who, "culler.keep", target, outcome="failed", error=exc.detail)
            raise
        count_keep()
        await trail.write(
            who, "culler.keep", target, detail=f"until {iso_utc(until)}; {left} keep(s) left"
        )
        return {"keep_until": iso_utc(until), "keeps_left": left}

    async def run_once(
        self,
        who: Actor = CULLER,
        *,
        now: datetime | None = None,
        users: Collection[str] | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> RunResult:
        """One pass now, servers then kernels, whatever `enabled` says (POST culler/run, the
        CLI). Passes in one process never overlap."""
        cfg = (await self.current()).settings
        async with self.lock:
            started = time.monotonic()
            servers = await self.servers_pass(
                cfg, now=now, who=who, users=users, dry_run=dry_run, progress=progress
            )
            if not dry_run:
                observe_cull_pass(time.monotonic() - started)
            kernels = await self.kernels_pass(
                cfg, now=now, who=who, users=users, dry_run=dry_run, progress=progress
            )
        if who is not CULLER and not dry_run:
            culled = len(servers.culled) + len(kernels.culled)
            failed = len(servers.error_items()) + len(kernels.error_items())
            await self.stopper.trail.write(
                who,
                "culler.run",
                "culler",
                outcome="failed" if servers.error else "ok",
                detail=f"culled {culled}; errors {failed}",
                error=servers.error,
            )
        return RunResult(servers, kernels)

    async def servers_once(self) -> PassResult | None:
        """The periodic server pass, once: skipped (None) while `enabled` is off."""
        cfg = (await self.current()).settings
        if not cfg.enabled:
            return None
        async with self.lock:
            started = time.monotonic()
            try:
                return await self.servers_pass(cfg, from_directory=True)
            finally:
                observe_cull_pass(time.monotonic() - started)

    async def kernels_once(self) -> PassResult | None:
        """The periodic kernel pass, once: skipped (None) while `kernels.enabled` is off."""
        cfg = (await self.current()).settings
        if not cfg.kernels.enabled:
            return None
        async with self.lock:
            return await self.kernels_pass(cfg, skip_quiet=True)

    async def _forever(
        self,
        once: Callable[[], Awaitable[PassResult | None]],
        interval_of: Callable[[CullerSettings], float],
        name: str,
    ) -> None:
        """Run `once` every `interval_of(settings)` seconds, counted from the last pass. The
        settings are read again every `SETTINGS_POLL_S` seconds while waiting: a PUT on any
        replica (a shorter interval, culling switched on) applies within seconds, not after
        the old interval has run out."""
        last = time.monotonic()
        while True:
            try:
                cfg = (await self.current()).settings
                wait = last + interval_of(cfg) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(min(wait, SETTINGS_POLL_S))
                    continue
                last = time.monotonic()
                result = await once()
                if result is not None and result.error:
                    log.warning("culler %s pass skipped: %s", name, result.error)
            except Exception:
                log.exception("culler %s pass failed; retrying in %.0f s", name, LOOP_RETRY_S)
                await retry_pause(LOOP_RETRY_S)  # cancelled here, the loop ends (issue #13)

    async def run_forever(self) -> None:
        """Lifespan task: a server pass every `interval_s` while `enabled` (the settings are
        re-read before every wait, so a change applies from the next pass). First, as the new
        leader, it settles the culls a killed leader left interrupted."""
        try:
            await self.settle_interrupted()
        except Exception:  # the passes matter more; the records are settled at the next start
            log.exception("could not settle the interrupted culls")
        await self._forever(self.servers_once, lambda cfg: cfg.interval_s, "server")

    async def run_kernels_forever(self) -> None:
        """Lifespan task: a kernel pass every `kernels.interval_s` while `kernels.enabled`."""
        await self._forever(self.kernels_once, lambda cfg: cfg.kernels.interval_s, "kernel")

    async def settle_interrupted(self) -> int:
        """Settle the server culls a previous leader wrote ahead and never finished (it was
        killed between asking the hub and recording the answer): each server is looked up on
        the hub now, and its record says ok when the server is stopped (or gone with its
        user), or that it was not stopped when the hub still runs a server started before the
        cull. A server started again since then proves nothing either way: its record is left
        interrupted. Returns how many were settled; raises what the hub client raises (503
        `hub_unavailable`) and the database's errors."""
        now = utcnow()
        pending = await asyncio.to_thread(records.interrupted_server_culls, self.engine, now)
        settled = 0
        for event in pending:
            try:
                user = await self.hub.bulk.get_user(event.user)
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
                records.settle, self.engine, event.id, stopped=stopped
            ):
                settled += 1
        if settled:
            log.info("settled %d interrupted cull record(s) from the hub's answers", settled)
        return settled

    # --- exemptions --------------------------------------------------------------------------
    async def add_exemption(
        self,
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
        trail = self.stopper.trail
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
                await self.hub.get_user(user)
            else:
                await self.hub.get_group(group or "")
        except HubkeeperError as exc:
            await trail.write(who, "culler.exempt", target, outcome="failed", error=exc.detail)
            raise
        row = await asyncio.to_thread(
            exemptions.create,
            self.engine,
            user=user or None,
            group=group or None,
            reason=reason,
            until=until,
            by=who.name,
        )
        detail = f"reason: {reason}; until {until.isoformat() if until else 'deleted'}"
        await trail.write(who, "culler.exempt", target, detail=detail)
        return row

    async def delete_exemption(self, who: Actor, exemption_id: int) -> CullExemption:
        """End an exemption now; 404 unknown, 409 already deleted (audited either way)."""
        trail = self.stopper.trail
        try:
            row = await asyncio.to_thread(exemptions.delete, self.engine, exemption_id)
        except HubkeeperError as exc:
            await trail.write(
                who,
                "culler.unexempt",
                f"exemption:{exemption_id}",
                outcome="failed",
                error=exc.detail,
            )
            raise
        await trail.write(
            who,
            "culler.unexempt",
            _exemption_target(row.user, row.group),
            detail=f"exemption {exemption_id}: {row.reason}",
        )
        return row
