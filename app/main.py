"""The app factory: `create_app(settings)` builds one Hubkeeper; the lifespan runs its loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.audit.routes import router as audit_router
from app.auth.routes import router as auth_router
from app.config import Settings
from app.console.directory import UserDirectory
from app.console.jobs import JobRegistry
from app.console.routes import router as console_router
from app.db.engine import create_db_engine, migrate
from app.health.routes import router as health_router
from app.history.recorder import SessionRecorder
from app.history.routes import router as history_router
from app.hub.client import HubClient
from app.lockdown import service as lockdown
from app.lockdown.routes import router as lockdown_router
from app.logs.routes import router as logs_router
from app.state import HubkeeperState
from app.web.errors import install_error_handlers
from app.web.prefix import ServicePrefixMiddleware
from app.web.security import SecurityHeadersMiddleware
from app.web.templating import ROOT

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
        try:
            yield
        finally:
            for task in (sync, watch, record):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.jobs.shutdown()
            await recorder.flush()  # nothing seen is lost on shutdown
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
    app.mount("/static", StaticFiles(directory=str(ROOT / "static")), name="static")
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(console_router)
    app.include_router(audit_router)
    app.include_router(lockdown_router)
    app.include_router(logs_router)
    app.include_router(history_router)
    app.add_middleware(SecurityHeadersMiddleware, hub_url=settings.browser_hub_url)
    app.add_middleware(ServicePrefixMiddleware, prefix=settings.service_prefix)
    return app
