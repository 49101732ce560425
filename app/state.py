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
    from prometheus_client import CollectorRegistry

    from hubkeeper.actions.lockdown_state import LockdownState
    from hubkeeper.actions.stop import ServerStopper
    from hubkeeper.auth.tokens import TokenCache
    from hubkeeper.culler.service import Culler
    from hubkeeper.directory.spawns import SpawnWatch
    from hubkeeper.directory.store import UserDirectory
    from hubkeeper.health.routes import HubCheck
    from hubkeeper.history.recorder import SessionRecorder
    from hubkeeper.jobs.registry import JobRegistry
    from hubkeeper.lockdown.enforce import Enforcer
    from hubkeeper.loops.leader import Leader
    from hubkeeper.loops.supervisor import Supervisor
    from hubkeeper.outbox.record import Outbox
    from hubkeeper.resources.board import ResourceBoard
    from hubkeeper.resources.sampler import ResourceSampler


@dataclass
class HubkeeperState:
    settings: Settings
    engine: Engine
    hub: HubClient
    directory: UserDirectory
    jobs: JobRegistry
    cookie_secret: str
    servers: ServerGateway  # single-user servers: direct at the route target, own tokens
    stopper: ServerStopper  # stops servers: intents, the session recorder, the audit record
    # What the capabilities keep per process, typed (was a dict of string keys): created by
    # create_app or on first use by the module named.
    lockdown: LockdownState | None = None  # actions/lockdown_state.py: the last one loaded
    enforcer: Enforcer | None = None  # lockdown/enforce.py (None in the CLI)
    token_cache: TokenCache | None = None  # auth/dependencies.py: API tokens checked at the hub
    metrics_token_cache: TokenCache | None = None  # ops/routes.py: tokens for GET metrics
    metrics_registry: CollectorRegistry | None = None  # ops/routes.py
    health_hub_check: HubCheck | None = None  # health/routes.py
    culler: Culler | None = None  # culler/service.py: routes' CullerDep (None in the CLI)
    history: SessionRecorder | None = None  # records server sessions (None in the CLI)
    outbox: Outbox | None = None  # outbox/record.py: notifications for the webhooks
    spawns: SpawnWatch | None = None  # directory/spawns.py: spawn.failed (None in the CLI)
    resources: ResourceBoard | None = None  # resources/board.py: memory and CPU per server
    resource_sampler: ResourceSampler | None = None  # resources/sampler.py (None in the CLI)
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
    from hubkeeper.actions.audit import AuditTrail
    from hubkeeper.actions.spool import spool_at
    from hubkeeper.actions.stop import ServerStopper
    from hubkeeper.db.engine import create_db_engine
    from hubkeeper.directory.store import UserDirectory
    from hubkeeper.jobs.registry import JobRegistry
    from hubkeeper.kit.metrics import observe_hub_request
    from hubkeeper.outbox.record import Outbox

    hub = HubClient(
        settings.hub_api_url,
        settings.hub_api_token,
        timeout=settings.hub_timeout,
        concurrency=settings.hub_concurrency,
        bulk_concurrency=settings.hub_bulk_concurrency,
        on_request=observe_hub_request,
    )
    engine = create_db_engine(settings.database_url)
    directory = UserDirectory(hub, settings)
    stopper = ServerStopper(hub, engine, AuditTrail(engine, spool_at(settings.audit_spool_path)))
    # the serving replica that leads `notify-sender` delivers what the CLI records
    outbox = Outbox(engine, settings.webhook_urls)
    return HubkeeperState(
        settings=settings,
        engine=engine,
        hub=hub,
        directory=directory,
        jobs=JobRegistry(
            engine,
            stopper=stopper,
            directory=directory,
            outbox=outbox,
            replica=f"cli:{settings.replica}",
            lost_after=settings.job_lost_after,
        ),
        cookie_secret="",
        servers=ServerGateway.from_settings(hub, settings),
        stopper=stopper,
        outbox=outbox,
    )
