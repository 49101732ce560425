"""What one running Hubkeeper holds: settings, the database, the hub client, the user directory.

Kept on `app.state.hk`; routes reach it through the dependencies in `app/deps.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from hubkeeper.config import Settings
from hubkeeper.hub.client import HubClient

if TYPE_CHECKING:
    from hubkeeper.console.directory import UserDirectory
    from hubkeeper.history.recorder import SessionRecorder
    from hubkeeper.jobs.registry import JobRegistry
    from hubkeeper.ops.leader import Leader


@dataclass
class HubkeeperState:
    settings: Settings
    engine: Engine
    hub: HubClient
    directory: UserDirectory
    jobs: JobRegistry
    cookie_secret: str
    extras: dict[str, object] = field(default_factory=dict)
    history: SessionRecorder | None = None  # records server sessions (None in the CLI)
    leader: Leader | None = None  # which loops this replica runs (None in the CLI)


def cli_state(settings: Settings) -> HubkeeperState:
    """A state for one command-line action: no loops, no session recorder."""
    from hubkeeper.console.directory import UserDirectory
    from hubkeeper.db.engine import create_db_engine
    from hubkeeper.jobs.registry import JobRegistry

    hub = HubClient(settings.hub_api_url, settings.hub_api_token, timeout=settings.hub_timeout)
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
    )
