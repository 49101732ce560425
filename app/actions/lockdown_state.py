"""The lockdown as this Hubkeeper knows it right now, kept in memory on `hk.lockdown`.

Imported by the console (start refuses while locked) and by every page (the banner), so it
depends on nothing but the state object: reading it never touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubkeeper.state import HubkeeperState


@dataclass(frozen=True, slots=True)
class LockdownState:
    active: bool = False
    reason: str | None = None
    since: datetime | None = None
    by: str | None = None
    id: int | None = None
    # False: the servers already running when the lock was set may keep running (nothing
    # new may start, and the enforcement stops whatever does); True: stop them all.
    stop_servers: bool = True

    @property
    def message(self) -> str:
        """What a user trying to start a server sees (empty while the hub is open)."""
        if not self.active:
            return ""
        return (
            f"The hub is locked by an administrator: {self.reason}. "
            "New servers cannot start until it is lifted."
        )


OPEN = LockdownState()


def current(hk: HubkeeperState) -> LockdownState:
    """The last state loaded from the database (open until the first load)."""
    return hk.lockdown or OPEN


def remember(hk: HubkeeperState, state: LockdownState) -> None:
    hk.lockdown = state
