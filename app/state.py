"""What one running Hubkeeper holds: settings, the database, the hub client, the gateway to
users' servers, the user directory.

Kept on `app.state.hk`; routes reach it through the dependencies in `app/deps.py`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from hubkeeper.config import Settings
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.servers import ServerGateway

if TYPE_CHECKING:
    from hubkeeper.directory.store import UserDirectory
    from hubkeeper.history.recorder import SessionRecorder
    from hubkeeper.jobs.registry import JobRegistry
    from hubkeeper.loops.leader import Leader
    from hubkeeper.loops.supervisor import Supervisor


@dataclass
class HubkeeperState:
    settings: Settings
    engine: Engine
    hub: HubClient
    directory: UserDirectory
    jobs: JobRegistry
    cookie_secret: str
    servers: ServerGateway  # single-user servers: direct at the route target, own tokens
    extras: dict[str, object] = field(default_factory=dict)
    history: SessionRecorder | None = None  # records server sessions (None in the CLI)
    # Set when the process is asked to stop (SIGTERM, before uvicorn waits for open
    # responses): server-sent event streams check it every loop and end with
    # `event: reconnect`, so the page's EventSource reconnects to the next process.
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)
    loop: asyncio.AbstractEventLoop | None = None  # the serving loop (set by the lifespan)

    def begin_shutdown(self) -> None:
        """Set `shutting_down`; safe from a signal handler or another thread."""
        loop = self.loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self.shutting_down.set)
        else:
            self.shutting_down.set()

    leader: Leader | None = None  # which loops this replica runs (None in the CLI)
    loops: Supervisor | None = None  # the background loops (set by the lifespan)


def cli_state(settings: Settings) -> HubkeeperState:
    """A state for one command-line action: no loops, no session recorder."""
    from hubkeeper.directory.store import UserDirectory
    from hubkeeper.db.engine import create_db_engine
    from hubkeeper.jobs.registry import JobRegistry

    hub = HubClient(
        settings.hub_api_url,
        settings.hub_api_token,
        timeout=settings.hub_timeout,
        concurrency=settings.hub_concurrency,
        bulk_concurrency=settings.hub_bulk_concurrency,
    )
    engine = create_db_engine(settings.database_url)
    return HubkeeperState(
        settings=settings,
        engine=engine,
        hub=hub,
        directory=UserDirectory(hub, settings),
        jobs=JobRegistry(
            engine, replica=f"cli:{settings.replica}", lost_after=settings.job_lost_after
        ),
        cookie_secret="",
        servers=ServerGateway.from_settings(hub, settings),
    )
