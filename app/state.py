"""What one running Hubkeeper holds: settings, the database, the hub client, the user directory.

Kept on `app.state.hk`; routes reach it through the dependencies in `app/deps.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hubkeeper.config import Settings
from hubkeeper.hub.client import HubClient
from sqlalchemy import Engine

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
    extras: dict[str, object] = field(default_factory=dict)
    history: SessionRecorder | None = None  # records server sessions (None in the CLI)
