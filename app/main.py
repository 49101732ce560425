"""The app factory: `create_app(settings)` builds one Hubkeeper; the lifespan runs its loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hubkeeper import __version__
from hubkeeper.audit.routes import router as audit_router
from hubkeeper.auth.routes import router as auth_router
from hubkeeper.config import Settings
from hubkeeper.console.directory import UserDirectory
from hubkeeper.console.jobs import JobRegistry
from hubkeeper.console.routes import router as console_router
from hubkeeper.culler import service as culler
from hubkeeper.culler.routes import router as culler_router
from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.health.routes import router as health_router
from hubkeeper.history.recorder import SessionRecorder
from hubkeeper.history.routes import router as history_router
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.servers import ServerGateway
from hubkeeper.lockdown import service as lockdown
from hubkeeper.lockdown.routes import router as lockdown_router
from hubkeeper.logs.routes import router as logs_router
from hubkeeper.paths import STATIC_DIR
from hubkeeper.state import HubkeeperState
from hubkeeper.web.errors import install_error_handlers
from hubkeeper.web.prefix import ServicePrefixMiddleware
from hubkeeper.web.security import SecurityHeadersMiddleware

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, run_migrations: bool = True) -> FastAPI:
    settings = settings or Settings()
    settings.require_hub()

    engine = create_db_engine(settings.database_url)
    hub = HubClient(
        settings.hub_api_url,
        settings.hub_api_token,
        timeout=settings.hub_timeout,
        concurrency=settings.hub_concurrency,
    )
    state = HubkeeperState(
        settings=settings,
        engine=engine,
        hub=hub,
        directory=UserDirectory(hub, settings),
        jobs=JobRegistry(),
        cookie_secret=settings.resolved_cookie_secret(),
        servers=ServerGateway.from_settings(hub, settings),
    )
    recorder = state.history = SessionRecorder(engine)
    state.directory.listeners.append(recorder.on_change)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            await asyncio.to_thread(migrate, settings.database_url)
        await lockdown.refresh(state)  # a lockdown survives restarts
        sync = asyncio.create_task(state.directory.run(), name="hubkeeper-directory-sync")
        watch = asyncio.create_task(lockdown.watch(state), name="hubkeeper-lockdown-watch")
        record = asyncio.create_task(
            recorder.run(state.directory), name="hubkeeper-history-recorder"
        )
        # The culler's periodic passes (each loop calls a single-pass function).
        cull_servers = asyncio.create_task(culler.run_forever(state), name="hubkeeper-culler")
        cull_kernels = asyncio.create_task(
            culler.run_kernels_forever(state), name="hubkeeper-kernel-culler"
        )
        try:
            yield
        finally:
            for task in (sync, watch, record, cull_servers, cull_kernels):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.jobs.shutdown()
            await recorder.flush()  # nothing seen is lost on shutdown
            await state.servers.aclose()
            await hub.aclose()
            engine.dispose()

    app = FastAPI(
        title="Hubkeeper",
        version=__version__,
        description="Operations console for JupyterHub.",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.hk = state

    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(console_router)
    app.include_router(audit_router)
    app.include_router(lockdown_router)
    app.include_router(logs_router)
    app.include_router(history_router)
    app.include_router(culler_router)
    app.add_middleware(SecurityHeadersMiddleware, hub_url=settings.browser_hub_url)
    app.add_middleware(ServicePrefixMiddleware, prefix=settings.service_prefix)
    return app
