"""What one running Hubkeeper holds: settings, the database, the hub client, the gateway to
users' servers, the user directory.

Kept on `app.state.hk`; routes reach it through the dependencies in `app/deps.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from hubkeeper.config import Settings
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.servers import ServerGateway

if TYPE_CHECKING:
    from hubkeeper.console.directory import UserDirectory
    from hubkeeper.console.jobs import JobRegistry
    from hubkeeper.history.recorder import SessionRecorder


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


def cli_state(settings: Settings) -> HubkeeperState:
    """A state for one command-line action: no loops, no session recorder."""
    from hubkeeper.console.directory import UserDirectory
    from hubkeeper.console.jobs import JobRegistry
    from hubkeeper.db.engine import create_db_engine

    hub = HubClient(settings.hub_api_url, settings.hub_api_token, timeout=settings.hub_timeout)
    return HubkeeperState(
        settings=settings,
        engine=create_db_engine(settings.database_url),
        hub=hub,
        directory=UserDirectory(hub, settings),
        jobs=JobRegistry(),
        cookie_secret="",
        servers=ServerGateway.from_settings(hub, settings),
    )
