"""The app factory: `create_app(settings)` builds one Hubkeeper; the lifespan runs its loops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hubkeeper import __version__
from hubkeeper.actions.audit import AuditTrail, keep_spool_flushed
from hubkeeper.actions.lockdown_state import current as current_lockdown
from hubkeeper.actions.spool import spool_at
from hubkeeper.actions.stop import ServerStopper
from hubkeeper.audit.routes import router as audit_router
from hubkeeper.auth.routes import router as auth_router
from hubkeeper.auth.secret import (
    cookie_secret_before_database,
    database_cookie_secret,
    kept_in_database,
)
from hubkeeper.config import Settings
from hubkeeper.console.routes import router as console_router
from hubkeeper.culler.backtest_summary import keep_summary_current
from hubkeeper.culler.routes import router as culler_router
from hubkeeper.culler.service import Culler
from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.directory.shared import SharedDirectory
from hubkeeper.directory.spawns import SpawnWatch
from hubkeeper.directory.store import UserDirectory
from hubkeeper.errors import HubkeeperError
from hubkeeper.health.pages import router as health_page_router
from hubkeeper.health.routes import router as health_router
from hubkeeper.history.recorder import SessionRecorder
from hubkeeper.history.report import keep_rollups_current
from hubkeeper.history.routes import router as history_router
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.saved_tokens import SavedTokens
from hubkeeper.hub.servers import ServerGateway
from hubkeeper.jobs.registry import JobRegistry
from hubkeeper.kit.metrics import observe_hub_request
from hubkeeper.lockdown import service as lockdown
from hubkeeper.lockdown.enforce import Enforcer
from hubkeeper.lockdown.routes import router as lockdown_router
from hubkeeper.logs.routes import router as logs_router
from hubkeeper.loops.leader import Leader
from hubkeeper.loops.supervisor import Loop, Supervisor
from hubkeeper.notify.routes import router as notify_router
from hubkeeper.ops.routes import router as ops_router
from hubkeeper.outbox.record import Outbox
from hubkeeper.outbox.sender import WebhookSender
from hubkeeper.paths import STATIC_DIR
from hubkeeper.quotas.routes import router as quotas_router
from hubkeeper.quotas.watch import QuotaWatch
from hubkeeper.resources.board import ResourceBoard
from hubkeeper.resources.sampler import ResourceSampler
from hubkeeper.state import HubkeeperState
from hubkeeper.userpage.keep import router as admin_keep_router
from hubkeeper.userpage.me import router as my_page_router
from hubkeeper.userpage.page import router as user_page_router
from hubkeeper.web.apidocs import router as apidocs_router
from hubkeeper.web.errors import UnexpectedErrorMiddleware, install_error_handlers
from hubkeeper.web.openapi import install_openapi
from hubkeeper.web.prefix import ServicePrefixMiddleware
from hubkeeper.web.security import SecurityHeadersMiddleware
from hubkeeper.web.timeouts import BodyTimeoutMiddleware, HeaderTimeoutH11Protocol

log = logging.getLogger(__name__)

API_DESCRIPTION = """Operations console for JupyterHub.

Authenticate with a JupyterHub API token: `Authorization: token <token>` (or `Bearer
<token>`); Authorize below takes either. The token needs the scope to reach this service, and
its owner must be a hub admin (everything) or in a manager group (reads). Every error is JSON
`{"error": "<code>", "detail": "<sentence>"}`; a query parameter a route does not take is 422
`unknown_parameter`. Lists page with `offset`/`limit` and report `total`.
"""

# SIGTERM must end the process within 5 s: open responses get SHUTDOWN_GRACE s (streams end
# within about a second, told by `hk.shutting_down`), then stops under way STOP_GRACE s.
SHUTDOWN_GRACE = 3.0
STOP_GRACE = 1.0
# leader loop names (metrics label `loop`)
DIRECTORY_SYNC = "directory-sync"
RECORDER = "session-recorder"
ENFORCER = "lockdown-enforcer"
CULLER = "culler"
KERNEL_CULLER = "kernel-culler"
USAGE_ROLLUP = "usage-rollup"
BACKTEST_SUMMARY = "backtest-summary"
NOTIFY_SENDER = "notify-sender"
QUOTA_WATCH = "quota-watch"
RESOURCES = "resources"


def create_app(settings: Settings | None = None, *, run_migrations: bool = True) -> FastAPI:
    settings = settings or Settings()
    settings.require_hub()

    engine = create_db_engine(settings.database_url)
    hub = HubClient(
        settings.hub_api_url,
        settings.hub_api_token,
        timeout=settings.hub_timeout,
        concurrency=settings.hub_concurrency,
        bulk_concurrency=settings.hub_bulk_concurrency,
        on_request=observe_hub_request,
    )
    servers = ServerGateway.from_settings(hub, settings)
    # the proxy's routing table is the directory's change signal when there is a proxy API
    directory = UserDirectory(
        hub, settings, routes=servers if servers.mode == "proxy_api" else None
    )
    recorder = SessionRecorder(engine)
    outbox = Outbox(engine, settings.webhook_urls)
    sender = WebhookSender(engine)
    outbox.on_record = sender.wake.set
    directory.listeners.append(recorder.on_change)
    spawns = SpawnWatch(outbox)  # spawn.failed: starting → stopped, never running
    directory.listeners.append(spawns.on_change)
    trail = AuditTrail(engine, spool_at(settings.audit_spool_path))
    stopper = ServerStopper(hub, engine, trail, recorder)
    jobs = JobRegistry(
        engine,
        stopper=stopper,
        directory=directory,
        outbox=outbox,
        replica=settings.replica,
        lost_after=settings.job_lost_after,
    )
    state = HubkeeperState(
        settings=settings,
        engine=engine,
        hub=hub,
        directory=directory,
        jobs=jobs,
        cookie_secret=cookie_secret_before_database(settings),  # PostgreSQL: see lifespan
        servers=servers,
        stopper=stopper,
        history=recorder,
        outbox=outbox,
        spawns=spawns,
    )
    enforcer = Enforcer(
        stopper,
        directory,
        lockdown=lambda: current_lockdown(state),
        stopping=jobs.stopping,
        history=recorder,
    )
    state.enforcer = enforcer
    culler = state.culler = Culler(
        hub=hub,
        engine=engine,
        stopper=stopper,
        servers=state.servers,
        settings=settings,
        directory=directory,
        activity=recorder.activity,
        outbox=outbox,
    )

    def groups_of(name: str) -> list[str] | None:
        user = directory.get(name)
        return list(user.groups) if user is not None else None

    quota_watch = QuotaWatch(engine, outbox, groups_of=groups_of)
    board = state.resources = ResourceBoard()

    def running_servers() -> list[tuple[str, str, datetime | None]] | None:
        """Running servers from the directory (never a walk of the hub); None before its first
        sweep."""
        if not directory.ready:
            return None
        return [
            (user.name, server.name, server.started)
            for user in directory.running_users()
            for server in user.servers.values()
            if server.ready and not server.pending
        ]

    sampler = ResourceSampler(
        gateway=servers,
        engine=engine,
        board=board,
        running=running_servers,
        interval=settings.resources_interval,
    )
    state.resource_sampler = sampler
    leader = state.leader = Leader(
        engine, replica=settings.replica, interval=settings.leader_interval
    )

    async def record_sessions() -> None:
        """The session recorder, while this replica leads it (see hubkeeper.loops.leader)."""
        try:
            await recorder.run(state.directory)
        except asyncio.CancelledError:
            if leader.is_leader(RECORDER):  # shutting down, still leading: keep what was seen
                await recorder.flush()
            raise
        finally:
            recorder.stop_recording()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a fresh event per run (the same app may be started again, e.g. in tests)
        state.shutting_down = asyncio.Event()
        state.loop = asyncio.get_running_loop()
        if run_migrations:
            await asyncio.to_thread(migrate, settings.database_url)
        if kept_in_database(settings):  # one generated secret shared by every replica
            state.cookie_secret = await asyncio.to_thread(database_cookie_secret, engine, settings)
        leader.check_sqlite()  # says so when a second process shares the SQLite file
        await lockdown.refresh(state)  # a lockdown survives restarts
        # Which way server tokens come, and a warning in the log and on admins' pages when
        # Hubkeeper's token may do more than it needs; a hub that is down is asked later.
        with suppress(HubkeeperError, TimeoutError):
            await asyncio.wait_for(state.servers.tokens.credentials(), timeout=5.0)
        # the server tokens minted before (by this replica or another): not minted again
        await state.servers.tokens.keep_in(SavedTokens(engine, state.cookie_secret))
        shared_directory = SharedDirectory(state.directory, engine, settings.replica)

        async def kernel_culler() -> None:
            try:
                # the tokens the replica that led before minted (saved_tokens.py)
                await state.servers.tokens.load_saved()
                await culler.run_kernels_forever()
            finally:
                # Leadership lost (or shutting down): the new leader mints its own tokens.
                # The sampler shares this loop's lock, so it stops leading too.
                state.servers.tokens.drop_queue()

        loops = Supervisor(
            [
                # the directory: one replica syncs with the hub and publishes what it sees,
                # the others follow it through the database (directory/shared.py)
                Loop(
                    DIRECTORY_SYNC,
                    shared_directory.lead,
                    runs="leader",
                    otherwise=shared_directory.follow,
                ),
                # every replica: its copy of the lockdown state, and the audit events its
                # spool kept while the database was down
                Loop("lockdown-watch", lambda: lockdown.watch(state)),
                Loop("audit-spool", lambda: keep_spool_flushed(state)),
                # one replica at a time: loops that record or change things
                Loop(RECORDER, record_sessions, runs="leader"),
                Loop(ENFORCER, enforcer.run, runs="leader"),
                # the culler's periodic passes (each loop calls a single-pass function)
                Loop(CULLER, culler.run_forever, runs="leader"),
                Loop(KERNEL_CULLER, kernel_culler, runs="leader"),
                Loop(USAGE_ROLLUP, lambda: keep_rollups_current(engine), runs="leader"),
                # the culler backtest's record gaps of closed sessions (backtest_summary.py)
                Loop(BACKTEST_SUMMARY, lambda: keep_summary_current(engine), runs="leader"),
                # webhook deliveries, each event once (outbox/sender.py)
                Loop(NOTIFY_SENDER, sender.run, runs="leader"),
                # quota.warning / quota.exceeded, once per user, month and level
                Loop(QUOTA_WATCH, quota_watch.run, runs="leader"),
                # memory and CPU of running servers: one replica samples, the others
                # load its figures (resources/sampler.py); 0 = off. Under the kernel
                # culler's lock: both read every running server with a token the replica
                # mints and keeps in memory, so on two replicas they would mint each server's
                # token twice (load on the hub must not grow with replicas, issue #14)
                *(
                    [
                        Loop(
                            RESOURCES,
                            sampler.lead,
                            runs="leader",
                            otherwise=sampler.follow,
                            lock=KERNEL_CULLER,
                        )
                    ]
                    if settings.resources_interval > 0
                    else []
                ),
            ],
            leader,
        )
        state.loops = loops
        loops.start()
        try:
            yield
        finally:
            # Shutdown order: streams first (already told by the signal, see `serve`), then
            # the loops; the stops already asked of the hub finish their step (their
            # sessions and audit records are written), what is left is cancelled; the
            # history is written; only then the hub client and the database close.
            state.shutting_down.set()
            await loops.stop()
            await asyncio.gather(enforcer.drain(STOP_GRACE), state.jobs.shutdown(grace=STOP_GRACE))
            await spawns.aclose()  # the spawn failures seen, not yet recorded
            recorder.mark_seen(state.directory)
            await recorder.flush()  # nothing seen is lost on shutdown
            await state.servers.tokens.saved_all()
            await state.servers.aclose()
            await leader.close()  # another replica takes over at once
            await hub.aclose()
            engine.dispose()

    app = FastAPI(
        title="Hubkeeper",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # web/apidocs.py serves it without a CDN
        swagger_ui_oauth2_redirect_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.hk = state
    # every page: the lockdown banner, from memory (actions/lockdown_state.py), never a query
    # and, for admins, what Hubkeeper's hub token may do beyond its needs (the last answer)
    app.state.page_context = lambda request: {
        "lockdown": current_lockdown(state),
        "credential_warnings": (
            state.servers.tokens.known.warnings if state.servers.tokens.known else []
        ),
        # the footer: how server tokens are had, how changes are seen
        "server_token_mode": (
            str(state.servers.tokens.known.mode) if state.servers.tokens.known else None
        ),
        "change_source": (
            "hub" if state.directory.routes_error is not None else state.directory.change_source
        ),
    }

    install_error_handlers(app)
    install_openapi(app)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(health_router)
    app.include_router(health_page_router)
    app.include_router(apidocs_router)
    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(console_router)
    # after the console: its `users/rows` and `users/stop-all` match before `users/{name}`
    app.include_router(user_page_router)
    app.include_router(admin_keep_router)
    app.include_router(my_page_router)
    app.include_router(audit_router)
    app.include_router(lockdown_router)
    app.include_router(logs_router)
    app.include_router(history_router)
    app.include_router(culler_router)
    app.include_router(quotas_router)
    app.include_router(notify_router)
    # Middleware order, innermost first: a request body has BODY_TIMEOUT s to arrive;
    # unexpected errors become the contract's answer, then every answer (errors too) gets
    # the security headers, then the prefix is set outermost.
    app.add_middleware(BodyTimeoutMiddleware)
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, hub_url=settings.browser_hub_url)
    app.add_middleware(ServicePrefixMiddleware, prefix=settings.service_prefix)
    return app


class _Server(uvicorn.Server):
    """uvicorn, telling Hubkeeper the moment a stop signal arrives: uvicorn then waits for
    open responses before the lifespan's shutdown, so the streams must know sooner."""

    def __init__(self, config: uvicorn.Config, hk: HubkeeperState) -> None:
        super().__init__(config)
        self.hk = hk

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.hk.begin_shutdown()


def serve(
    app: FastAPI, *, host: str, port: int, log_level: str = "info", json_logs: bool = False
) -> None:
    """Run `app` under uvicorn until SIGTERM/SIGINT; open responses get `SHUTDOWN_GRACE` s.

    With `json_logs`, uvicorn's loggers propagate to the root handler (one JSON object per
    line) instead of installing their own format.
    """
    extra: dict[str, Any] = {"log_config": None} if json_logs else {}
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        **extra,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
        http=HeaderTimeoutH11Protocol,  # request headers within HEADER_TIMEOUT s
    )
    # uvicorn raises the signal again once it has shut down (uvicorn/server.py
    # `capture_signals`); SIGINT then becomes a KeyboardInterrupt traceback in the hub's log
    # at every stop of a managed service (the hub stops it with SIGINT). It has already been
    # handled, so it ends the process quietly.
    with suppress(KeyboardInterrupt):
        _Server(config, app.state.hk).run()
