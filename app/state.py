"""What one running Hubkeeper holds: settings, the database, the hub client, the user directory.

Kept on `app.state.hk`; routes reach it through the dependencies in `app/deps.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from app.config import Settings
from app.hub.client import HubClient

if TYPE_CHECKING:
    from app.console.directory import UserDirectory
    from app.console.jobs import JobRegistry
    from app.history.recorder import SessionRecorder


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
