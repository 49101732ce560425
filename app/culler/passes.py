"""The two single passes: servers and kernels. Each takes `now` once (injectable, so tests
move the clock instead of waiting), decides with `decide.py`, then acts, up to
`concurrency` at once across all users (never user after user), recording every cull.

With `dry_run=True` a pass decides and returns the plan without changing anything: that is
the preview, so a preview lists exactly what a pass at the same `now` culls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from hubkeeper.actions.stop import StopReason
from hubkeeper.culler import exemptions, keeps, records
from hubkeeper.culler.activity import note_kernels
from hubkeeper.culler.decide import (
    Cull,
    Signals,
    UserCull,
    decide_kernel,
    decide_user,
    judge_server,
    needs_signals,
)
from hubkeeper.culler.kernels_seen import KernelsSeen
from hubkeeper.culler.notices import Due, done_for, warning_for
from hubkeeper.culler.quiet import QuietServers
from hubkeeper.culler.settings import CullerSettings
from hubkeeper.db.models import AuditEvent, CullEvent, CullRun
from hubkeeper.errors import HubkeeperError, NotFound
from hubkeeper.hub.models import HubServer, HubUser
from hubkeeper.kit.actors import Actor, SystemActor, server_label, target_of
from hubkeeper.kit.clock import as_utc, utcnow
from hubkeeper.kit.metrics import count_busy_protected, count_warning
from hubkeeper.loops.retry import cancel_and_wait

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from hubkeeper.actions.audit import AuditTrail
    from hubkeeper.actions.stop import ServerStopper
    from hubkeeper.db.activity import ActivityRecorder
    from hubkeeper.hub.client import HubClient
    from hubkeeper.outbox.record import Outbox

log = logging.getLogger(__name__)

CULLER = SystemActor(name="culler")
FLUSH_S = 0.5  # seconds between writes of the cull records during a pass
TOKEN_WAIT = 60.0  # seconds a kernel pass waits in all for servers' tokens being minted
Progress = Callable[[int, int], None]  # (done, total)


class KernelGateway(Protocol):
    """What the kernel pass needs from the server gateway (`hk.servers`,
    app/hub/servers.py): direct calls to a user's server that never count as the user's activity."""

    async def list_kernels(self, user: str, server: str) -> list[dict[str, Any]]: ...

    async def list_terminals(self, user: str, server: str) -> list[dict[str, Any]]: ...

    async def delete_kernel(self, user: str, server: str, kernel_id: str) -> None: ...


@dataclass
class Outcome:
    cull: Cull
    ok: bool
    error: str = ""


@dataclass
class PassResult:
    """What one pass decided and did. `errors`: [{"user", "server", "error"}]."""

    kind: str  # servers | kernels
    now: datetime
    dry_run: bool
    waiting_for_token: int = 0  # kernels: servers left to the next pass (token being minted)
    planned: list[Cull] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    deleted_users: list[str] = field(default_factory=list)
    planned_users: list[UserCull] = field(default_factory=list)  # cull_users: to delete
    exempt: list[dict[str, str]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)  # kept by a rule (busy): why
    duration_s: float = 0.0
    listing_s: float = 0.0  # of which reading the hub's users took (seconds)
    error: str = ""  # the whole pass failed (hub down): why

    @property
    def not_checked(self) -> str:
        """Why some servers' kernels were not looked at ("" when all were): said wherever a
        pass is shown, so "nothing to cull" is never taken to cover them."""
        if not self.waiting_for_token:
            return ""
        return (
            f"{self.waiting_for_token} server(s) not checked: their tokens are still being "
            "minted (paced, so the hub stays free); the next pass checks them"
        )

    @property
    def culled(self) -> list[Cull]:
        return [o.cull for o in self.outcomes if o.ok]

    def error_items(self) -> list[dict[str, str]]:
        failed = [
            {"user": o.cull.user, "server": o.cull.server, "error": o.error}
            for o in self.outcomes
            if not o.ok
        ]
        return self.errors + failed


async def _list_users(hub: HubClient, *, with_inactive: bool) -> list[HubUser]:
    """Users with a ready server (`state=ready`, paged to the end), plus users without an
    active server when `cull_users` needs them (`state=inactive`), as idle-culler does."""
    seen: dict[str, HubUser] = {}
    states = ["ready", "inactive"] if with_inactive else ["ready"]
    for state in states:
        async for page, _total in hub.iter_user_pages(state=state, include_stopped_servers=False):
            for user in page:
                seen.setdefault(user.name, user)
    return list(seen.values())


def _active_only(user: HubUser) -> HubUser:
    """The user with only their servers not stopped, as the hub's `state=` lists give them
    (a directory copy and `GET /users/{name}` hold stopped servers too, which would count as
    servers kept and so keep `cull_users` from ever deleting their user)."""
    active = {k: s for k, s in user.servers.items() if s.status != "stopped"}
    if len(active) == len(user.servers):
        return user
    return user.model_copy(update={"servers": active})


def may_cull(
    cfg: CullerSettings, user: HubUser, now: datetime, given: keeps.Keeps | None = None
) -> bool:
    """Whether a pass at `now` could cull one of this user's servers (or, with `cull_users`,
    the user), judging their directory copy: the periodic pass asks the hub afresh only about
    these (`candidates`).

    Why a copy is enough to leave a user alone: under `idle_source: hub` the copy's activity
    is the hub's as last read, moved forward by the proxy's routes (directory/sync.py), so it
    is never older than what the hub's next answer would say except for activity the hub
    learnt from the server itself (jupyterhub-singleuser's reports), which only keeps a
    server longer; a server kept on its copy would be kept on the hub's answer. Under
    `idle_source: kernels` the kernels decide, and every kernel is younger than its server:
    a server younger than the timeout (and than `max_age_s`) cannot be culled. What the
    copy can hold back (a group or admin flag changed at the hub since it was read) is
    caught up by the directory's reconciliation and sweep; it only delays a cull.

    Judged `warn_before_s` ahead of `now`, so a server whose idle cull is due within it is
    read too and gets its `cull.warning` (notices.py) from the hub's answer; `given`: the
    keeps in force (keeps.in_force), so a kept server is not read on every pass."""
    user = _active_only(user)
    now = now + timedelta(seconds=cfg.warn_before_s)
    culls, doomed = plan_user(cfg, user, now, given=given)
    if culls or doomed is not None:
        return True
    if cfg.idle_source != "kernels":
        return False
    limit = cfg.timeout_for(user.groups)
    if cfg.max_age_s:
        limit = min(limit, cfg.max_age_s)
    for server in user.servers.values():
        if server.name and cfg.named_servers == "keep":
            continue
        if not server.ready or server.pending:
            continue
        if server.started is None or (now - as_utc(server.started)).total_seconds() >= limit:
            return True
    return False


async def _fresh_candidates(
    cfg: CullerSettings,
    hub: HubClient,
    copies: list[HubUser],
    exempt: exemptions.Exempt,
    now: datetime,
    only: Collection[str] | None,
    given: keeps.Keeps | None,
) -> list[HubUser]:
    """The hub's answer now for each user whose copy says a pass could cull something
    (`may_cull`), `cfg.concurrency` at once: decide about one server from the hub's answer
    now; copies are for lists. A user the hub no longer has is left out."""
    names = [
        u.name
        for u in copies
        if _wanted(u, only)
        and exempt.why(u.name, u.groups) is None
        and may_cull(cfg, u, now, given)
    ]
    limit = asyncio.Semaphore(cfg.concurrency)

    async def one(name: str) -> HubUser | None:
        async with limit:
            try:
                return _active_only(await hub.get_user(name))
            except NotFound:
                return None

    return [u for u in await asyncio.gather(*(one(n) for n in names)) if u is not None]


def _wanted(user: HubUser, only: Collection[str] | None) -> bool:
    return only is None or user.name in only


async def _record_run(engine: Engine, result: PassResult, started: datetime, who: Actor) -> None:
    if result.dry_run:
        return
    run = CullRun(
        kind=result.kind,
        started_at=started,
        finished_at=utcnow(),
        duration_s=result.duration_s,
        actor=who.name,
        dry_run=False,
        culled=len(result.culled),
        errors=len(result.error_items()),
        error=result.error,
    )
    try:
        await asyncio.to_thread(records.add_run, engine, run)
    except Exception:
        log.exception("could not record the culler's %s pass", result.kind)


class CullLog:
    """Writes each cull's `cull_event` and audit entry, in batches: one transaction every
    `FLUSH_S` seconds (and at the end of the pass) instead of two per cull, so a pass of
    hundreds of stops spends its time on the hub, not on the database. `async with` it."""

    def __init__(self, engine: Engine, who: Actor, settings_json: str) -> None:
        self.engine, self.who, self.settings_json = engine, who, settings_json
        self._pending: list[Outcome] = []
        self._task: asyncio.Task[None] | None = None
        self._ahead: dict[int, int] = {}  # id(cull) → its written-ahead record

    async def begin(self, cull: Cull) -> int | None:
        """Write the cull's record before acting (settled by `flush`); a database error is
        logged and the record is then written with the outcome, as without it. Returns the
        record's id (None when it could not be written ahead)."""
        event = records.event_of(
            cull,
            outcome="error",
            error=records.INTERRUPTED,
            settings_json=self.settings_json,
            actor=self.who.name,
        )
        try:
            self._ahead[id(cull)] = await asyncio.to_thread(records.add_pending, self.engine, event)
        except Exception:
            log.exception("could not record the cull of %s before it", cull.user)
            return None
        return self._ahead[id(cull)]

    def add(self, outcome: Outcome) -> None:
        self._pending.append(outcome)

    async def __aenter__(self) -> CullLog:
        self._task = asyncio.create_task(self._every())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self.flush()

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        rows = [(self._ahead.pop(id(o.cull), None), *self._rows(o)) for o in batch]
        try:
            await asyncio.to_thread(records.settle_batch, self.engine, rows)
        except Exception:
            log.exception("could not record %d culls", len(batch))

    def _rows(self, outcome: Outcome) -> tuple[CullEvent, AuditEvent]:
        cull = outcome.cull
        event = records.event_of(
            cull,
            outcome="ok" if outcome.ok else "error",
            error=outcome.error,
            settings_json=self.settings_json,
            actor=self.who.name,
        )
        inactive = "unknown" if cull.inactive_s is None else f"{cull.inactive_s:.0f} s"
        detail = f"reason: {cull.reason}; inactive {inactive}"
        if cull.note:
            detail += f"; {cull.note}"
        if cull.age_s is not None:
            detail += f"; age {cull.age_s:.0f} s"
        if cull.kind == "kernel":
            action = "kernel.cull"
            target = f"{target_of(cull.user, cull.server)}#{cull.kernel_id}"
        else:
            action, target = "server.cull", target_of(cull.user, cull.server)
            if cull.remove:
                detail += "; removed"
        entry = AuditEvent(
            actor=self.who.name,
            action=action,
            target=target,
            outcome="ok" if outcome.ok else "failed",
            detail=detail,
            error=outcome.error,
            via=self.who.via,
        )
        return event, entry


# --- servers ---------------------------------------------------------------------------------
async def _stop_one(
    stopper: ServerStopper, hub: HubClient, who: Actor, cull: Cull, wait_s: float
) -> Outcome:
    try:
        done = await stopper.stop_and_wait(
            who,
            cull.user,
            cull.server,
            reason=StopReason.CULLED,
            client=hub,
            wait_s=wait_s,
        )  # recorded by the pass's CullLog, not audited here
        if done == "gone":
            label = server_label(cull.user, cull.server)
            return Outcome(cull, ok=False, error=f"{label} was already stopped")
        if cull.remove:
            await hub.stop_server(cull.user, cull.server, remove=True)
        return Outcome(cull, ok=True)
    except HubkeeperError as exc:
        return Outcome(cull, ok=False, error=exc.detail)
    except Exception as exc:  # one failing user never ends the pass
        log.exception("culling %s failed", server_label(cull.user, cull.server))
        return Outcome(cull, ok=False, error=f"{type(exc).__name__}: {exc}")


async def _delete_user(trail: AuditTrail, hub: HubClient, who: Actor, doomed: UserCull) -> str:
    """Delete a user whose servers have all stopped; '' on success, else the error."""
    inactive = "unknown" if doomed.inactive_s is None else f"{doomed.inactive_s:.0f} s"
    try:
        await hub.delete_user(doomed.user)
    except HubkeeperError as exc:
        await trail.write(who, "user.cull", doomed.user, outcome="failed", error=exc.detail)
        return exc.detail
    await trail.write(who, "user.cull", doomed.user, detail=f"reason: {doomed.reason}; {inactive}")
    return ""


NO_DIRECT_ROUTE = "Hubkeeper reaches no server directly (HUBKEEPER_PROXY_API_URL is not set)"


async def read_signals(
    gateway: KernelGateway | None,
    user: str,
    server: str,
    *,
    seen: KernelsSeen | None = None,
    started: datetime | None = None,
) -> Signals:
    """The server's kernels and terminals, read through the gateway (direct, never counted as
    activity); a failure is kept in `error`, never raised (the hub's activity then decides).
    `seen`: where the kernels' activity is remembered, and read back for kernels gone since
    (in the server start `started`)."""
    if gateway is None:
        return Signals(error=NO_DIRECT_ROUTE)
    try:
        kernels = await gateway.list_kernels(user, server)
        terminals = await gateway.list_terminals(user, server)
    except Exception as exc:  # one server's failure: its signals say so
        return Signals(error=_why(exc))
    gone = None
    if seen is not None:
        seen.note(user, server, started, kernels)
        gone = seen.last(user, server, started)
    return Signals(tuple(kernels), tuple(terminals), gone_kernels_at=gone)


def plan_user(
    cfg: CullerSettings,
    user: HubUser,
    now: datetime,
    signals: dict[tuple[str, str], Signals] | None = None,
    kept_out: list[dict[str, Any]] | None = None,
    given: keeps.Keeps | None = None,
    dues: list[Due] | None = None,
) -> tuple[list[Cull], UserCull | None]:
    """The culls for one (non-exempt) user, and whether the user goes once they are done.
    `signals`: what servers said about their kernels and terminals (by (user, server));
    `given`: the keeps in force (keeps.in_force); servers a rule keeps are appended to
    `kept_out`, and every server left running with its verdict to `dues` (warnings)."""
    culls: list[Cull] = []
    kept = 0
    for server in user.servers.values():
        found = (signals or {}).get((user.name, server.name))
        keep = keeps.of(given, user.name, server)
        verdict = judge_server(cfg, user, server, now, found, keep.until if keep else None)
        if verdict.cull is None:
            kept += 1
            if dues is not None:
                dues.append(Due(user.name, server, verdict, keep))
            if verdict.kept is not None and kept_out is not None:
                inactive = None if verdict.last is None else (now - verdict.last).total_seconds()
                age = None if server.started is None else (now - server.started).total_seconds()
                kept_out.append(
                    {
                        "user": user.name,
                        "server": server.name,
                        "kind": "server",
                        "kernel_id": None,
                        "reason": "idle",
                        "inactive_s": None if inactive is None else round(inactive, 3),
                        "age_s": None if age is None else round(age, 3),
                        "kept": verdict.kept,
                    }
                )
        else:
            culls.append(verdict.cull)
    doomed = decide_user(cfg, user, now) if kept == 0 else None
    return culls, doomed


async def gather_signals(
    cfg: CullerSettings,
    users: list[HubUser],
    gateway: KernelGateway | None,
    now: datetime,
    concurrency: int,
    given: keeps.Keeps | None = None,
    seen: KernelsSeen | None = None,
) -> dict[tuple[str, str], Signals]:
    """Ask the servers whose decision depends on them (`decide.needs_signals`) for their
    kernels and terminals, `concurrency` at once (`given`: the keeps in force)."""

    def kept_until(user: HubUser, server: HubServer) -> datetime | None:
        keep = keeps.of(given, user.name, server)
        return keep.until if keep else None

    starts = {(u.name, s.name): s.started for u in users for s in u.servers.values()}
    wanted = [
        (user.name, server.name)
        for user in users
        for server in user.servers.values()
        if server.ready
        and not server.pending
        and needs_signals(
            cfg, judge_server(cfg, user, server, now, kept_until=kept_until(user, server))
        )
    ]
    if not wanted:
        return {}
    limit = asyncio.Semaphore(concurrency)

    async def one(key: tuple[str, str]) -> Signals:
        async with limit:
            return await read_signals(gateway, *key, seen=seen, started=starts.get(key))

    found = await asyncio.gather(*(one(k) for k in wanted))
    return dict(zip(wanted, found, strict=True))


async def servers_pass(
    cfg: CullerSettings,
    *,
    hub: HubClient,
    engine: Engine,
    stopper: ServerStopper,
    stop_timeout: float,
    now: datetime | None = None,
    who: Actor = CULLER,
    users: Collection[str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    gateway: KernelGateway | None = None,
    outbox: Outbox | None = None,
    page_url: str = "",
    copies: Callable[[], Awaitable[list[HubUser] | None]] | None = None,
    seen: KernelsSeen | None = None,
) -> PassResult:
    """One pass over the hub's running servers. `users` limits it to those names (tests,
    scripts). A hub that is down ends the pass at once with `error` set (and recorded).

    `copies` (the periodic pass): where to read the directory's copies of the users instead
    of walking the hub's `state=ready` list; only the users whose copy says a cull is
    possible (`may_cull`) are then read from the hub, one by one, and decided from that
    answer. None from it (no directory, or not current): the hub's list, as without it.

    `hub`: the hub client (the pass takes a budget of its own from it); `engine`: the
    database of exemptions and cull records; `stopper` stops the servers, waiting up to
    `stop_timeout` seconds for each (its audit trail records user deletions); `gateway`:
    where servers are asked for their kernels and terminals (`keep_busy`, `idle_source:
    kernels`; None: none can be, the hub's activity decides). `outbox`: where a real pass
    records `cull.warning` (servers due within `warn_before_s`, `page_url` their owner's
    page) and `cull.done` (None: no notifications). Keeps in force postpone idle culls
    (keeps.py). Never raises for one user's failure (an error entry); a database error
    reading exemptions or keeps raises."""
    started = utcnow()
    clock = time.monotonic()
    now = now or started
    result = PassResult("servers", now, dry_run)
    exempt = await asyncio.to_thread(exemptions.in_force, engine, now)
    given = await asyncio.to_thread(keeps.in_force, engine, now)
    limit = asyncio.Semaphore(cfg.concurrency)
    # Hub calls of this pass have a budget of their own, as wide as `concurrency`: never
    # queued behind (nor delaying) sign-ins and pages, nor capped by other bulk work.
    hub = hub.budget(cfg.concurrency)
    cull_log = CullLog(engine, who, cfg.as_json())
    total = done = 0

    async def cull(one: Cull) -> Outcome:
        nonlocal done
        async with limit:
            event_id = await cull_log.begin(one)
            outcome = await _stop_one(stopper, hub, who, one, stop_timeout)
        result.outcomes.append(outcome)
        cull_log.add(outcome)
        if outcome.ok and outbox is not None:
            await outbox.emit(done_for(one, event_id, now))
        done += 1
        if progress:
            progress(done, total)
        return outcome

    async def one_user(culls: list[Cull], doomed: UserCull | None) -> None:
        outcomes = await asyncio.gather(*(cull(c) for c in culls))
        if doomed is not None and all(o.ok for o in outcomes):
            async with limit:
                error = await _delete_user(stopper.trail, hub, who, doomed)
            if error:
                result.errors.append({"user": doomed.user, "server": "", "error": error})
            else:
                result.deleted_users.append(doomed.user)

    # The whole listing is read first: stopping servers while paging would shift the hub's
    # offsets (a stopped user leaves `state=ready`) and skip users on later pages.
    tasks: list[asyncio.Task[None]] = []
    try:
        copied = await copies() if copies is not None else None
        if copied is None:
            listed = await _list_users(hub, with_inactive=cfg.cull_users)
        else:
            listed = await _fresh_candidates(cfg, hub, copied, exempt, now, users, given)
    except HubkeeperError as exc:
        result.error = exc.detail  # the hub is down: no decisions this pass
        listed = []
    result.listing_s = time.monotonic() - clock
    judged: list[HubUser] = []
    for user in listed:
        if not _wanted(user, users):
            continue
        why = exempt.why(user.name, user.groups)
        if why is not None:
            if any(s.ready for s in user.servers.values()):
                result.exempt.append({"user": user.name, "reason": why})
            continue
        judged.append(user)
    signals = await gather_signals(cfg, judged, gateway, now, cfg.concurrency, given, seen)
    dues: list[Due] = []
    for user in judged:
        culls, doomed = plan_user(cfg, user, now, signals, result.kept, given, dues)
        result.planned.extend(culls)
        if doomed is not None:
            result.planned_users.append(doomed)
        if (culls or doomed) and not dry_run:
            total += len(culls)
            tasks.append(asyncio.create_task(one_user(culls, doomed)))
    if progress and not dry_run:
        progress(done, total)
    if not dry_run:
        count_busy_protected(sum(1 for k in result.kept if str(k["kept"]).startswith("busy")))
        if outbox is not None and cfg.warn_before_s:
            await _warn(outbox, cfg, dues, now, page_url)
    if tasks:
        async with cull_log:
            await asyncio.gather(*tasks)
    result.duration_s = time.monotonic() - clock
    await _record_run(engine, result, started, who)
    return result


async def _warn(
    outbox: Outbox, cfg: CullerSettings, dues: list[Due], now: datetime, page_url: str
) -> None:
    """One `cull.warning` per server whose idle cull is due within `warn_before_s` (recorded
    once per key: see notices.py)."""
    for due in dues:
        event = warning_for(
            due, now=now, warn_before_s=cfg.warn_before_s, max_age_s=cfg.max_age_s, link=page_url
        )
        if event is not None and await outbox.emit(event):
            count_warning()


# --- kernels ---------------------------------------------------------------------------------
def _why(exc: Exception) -> str:
    """A server's failure as its error entry: our own errors say why; anything else is a bug
    or a surprise from that server, logged with its traceback and named by its type."""
    if isinstance(exc, HubkeeperError):
        return exc.detail
    log.exception("kernel pass: unexpected failure on one server")
    return f"unexpected error: {type(exc).__name__}: {exc}"


KERNELS_NEED_PROXY_API = (
    "Kernel culling needs HUBKEEPER_PROXY_API_URL: without it Hubkeeper cannot reach users' "
    "servers directly, and through the proxy (HUBKEEPER_PROXY_URL) its calls would count as "
    "the users' activity and keep every server from being culled"
)


async def _route_activity(gateway: KernelGateway) -> dict[tuple[str, str], datetime]:
    """Each server's last request through the proxy, from its routing table (free for the
    hub); empty when it cannot be read (then nothing is skipped)."""
    read_routes = getattr(gateway, "read_routes", None)
    if read_routes is None:
        return {}
    try:
        routes = await read_routes()
    except HubkeeperError as exc:
        log.info("kernel pass: proxy routes unavailable (%s); looking at every server", exc)
        return {}
    return {key: r.last_activity for key, r in routes.items() if r.last_activity is not None}


def direct_gateway(servers: KernelGateway | None) -> KernelGateway | None:
    """The server gateway, when it reaches servers directly (never through the proxy);
    None otherwise (then the kernel pass refuses to run)."""
    if servers is None or getattr(servers, "mode", "proxy_api") != "proxy_api":
        return None
    return servers


async def kernels_pass(
    cfg: CullerSettings,
    *,
    hub: HubClient,
    engine: Engine,
    gateway: KernelGateway | None,
    now: datetime | None = None,
    who: Actor = CULLER,
    users: Collection[str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    quiet: QuietServers | None = None,
    running: Callable[[], Awaitable[list[HubUser] | None]] | None = None,
    activity: ActivityRecorder | None = None,
    seen: KernelsSeen | None = None,
    token_wait: float = TOKEN_WAIT,
) -> PassResult:
    """One pass over the kernels of every ready server, through the server gateway (direct to
    the server, never counted as activity). A server whose API fails is skipped and noted in
    `errors`; the others go on.

    `hub`: the hub client (its bulk budget lists the users); `engine`: the database of
    exemptions and cull records; `gateway`: `direct_gateway(...)`, None when servers cannot
    be reached directly (the pass then ends with `error` set). `quiet`: the periodic pass's
    memory of its last looks; servers where nothing could have changed are left alone
    (culler/quiet.py says when that is safe). `running`: where to list the users with
    running servers instead of walking the hub (the directory's copy; None from it = ask the
    hub). `activity`: where the kernels' activity is noted for the backtest
    (culler/activity.py). `token_wait`: seconds the pass waits in all for servers' tokens
    being minted (the others are counted in `waiting_for_token`, left to the next pass).
    Never raises for one server's failure."""
    started = utcnow()
    clock = time.monotonic()
    now = now or started
    result = PassResult("kernels", now, dry_run)
    try:
        if gateway is None:
            raise HubkeeperError(KERNELS_NEED_PROXY_API, code="server_unreachable", status_code=503)
        copied = await running() if running is not None else None
        listed = copied if copied is not None else await _list_users(hub.bulk, with_inactive=False)
        exempt = await asyncio.to_thread(exemptions.in_force, engine, now)
    except HubkeeperError as exc:
        result.error = exc.detail
        result.duration_s = time.monotonic() - clock
        await _record_run(engine, result, started, who)
        return result

    targets: list[tuple[HubUser, HubServer]] = []
    for user in listed:
        if not _wanted(user, users):
            continue
        ready = [s for s in user.servers.values() if s.ready and not s.pending]
        why = exempt.why(user.name, user.groups)
        if why is not None:
            if ready:
                result.exempt.append({"user": user.name, "reason": why})
            continue
        targets.extend((user, s) for s in ready)

    total = len(targets)
    done = 0
    if progress:
        progress(0, total)
    limit = asyncio.Semaphore(cfg.concurrency)
    cull_log = CullLog(engine, who, cfg.as_json())
    assert gateway is not None
    skipped: set[tuple[str, str]] = set()
    if quiet is not None and not dry_run:
        quiet.forget_except({(u.name, s.name) for u, s in targets})
        route_activity = await _route_activity(gateway)
        skipped = {
            (u.name, s.name)
            for u, s in targets
            if quiet.may_skip(
                (u.name, s.name),
                started=s.started,
                cfg=cfg.kernels,
                route_activity=route_activity.get((u.name, s.name)),
                now=now,
            )
        }
        quiet.skipped += len(skipped)
        done += len(skipped)
    # The servers' tokens in a few paced requests rather than one per server (the hub
    # plugin), minted while the servers whose batch is in are read.
    tokens = getattr(gateway, "tokens", None)
    minting = None
    if tokens is not None and hasattr(tokens, "start_prefetch"):
        minting = tokens.start_prefetch(
            [(u.name, s.name) for u, s in targets if (u.name, s.name) not in skipped]
        )

    async def one_server(user: HubUser, server: HubServer) -> None:
        nonlocal done
        key = (user.name, server.name)
        if key in skipped:
            return
        if tokens is not None and hasattr(tokens, "ready"):
            # Its token first (this pass's mint, or the resource sampler's), holding no slot
            # meanwhile. A mint of thousands takes minutes (paced): a pass waits at most
            # TOKEN_WAIT s in all, so it never holds the culler (and the server pass) that
            # long nor decides on stale exemptions; the rest are read by the next passes.
            left = token_wait - (time.monotonic() - clock)
            try:
                await asyncio.wait_for(tokens.ready(key), max(left, 0.0))
            except TimeoutError:
                result.waiting_for_token += 1
                done += 1
                if progress:
                    progress(done, total)
                return
        async with limit:
            # One server is one user's code: whatever it does is that server's error entry,
            # never the end of the pass for everyone else.
            try:
                kernels = await gateway.list_kernels(user.name, server.name)
                if activity is not None:
                    note_kernels(activity, user.name, server.name, kernels, utcnow())
                if seen is not None:
                    seen.note(user.name, server.name, server.started, kernels)
                if quiet is not None and not dry_run:
                    quiet.remember(
                        key, started=server.started, cfg=cfg.kernels, kernels=kernels, now=now
                    )
                culls = [
                    c
                    for k in kernels
                    if (c := decide_kernel(cfg.kernels, user.name, server.name, k, now)) is not None
                ]
            except Exception as exc:
                result.errors.append({"user": user.name, "server": server.name, "error": _why(exc)})
                culls = []
            result.planned.extend(culls)
            outcomes: list[Outcome] = []
            if not dry_run:
                for one in culls:
                    await cull_log.begin(one)
                    try:
                        await gateway.delete_kernel(user.name, server.name, one.kernel_id or "")
                        outcomes.append(Outcome(one, ok=True))
                    except Exception as exc:
                        outcomes.append(Outcome(one, ok=False, error=_why(exc)))
        for outcome in outcomes:
            result.outcomes.append(outcome)
            cull_log.add(outcome)
        done += 1
        if progress:
            progress(done, total)

    try:
        async with cull_log:
            await asyncio.gather(*(one_server(u, s) for u, s in targets))
    finally:
        if minting is not None:  # the wait only: renewals still queued are minted still
            minting.cancel()
    result.duration_s = time.monotonic() - clock
    if result.not_checked:
        log.info("kernel pass: %s", result.not_checked)
    await _record_run(engine, result, started, who)
    return result
