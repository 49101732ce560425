"""One row per server, as the console lists them, and a user's state word."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from hubkeeper.hub.models import HubUser


@dataclass(frozen=True, slots=True)
class ServerRow:
    """One server (default or named, stopped too) of one user, as the console lists it."""

    user: str
    server: str  # "" = the default server
    status: str  # running | starting | stopping | stopped
    started: datetime | None
    last_activity: datetime | None  # the server's, else the user's
    url: str  # hub path, e.g. /user/ann/ or /user/ann/lab/
    admin: bool
    groups: tuple[str, ...]
    user_last_activity: datetime | None
    pending: str | None  # the hub's "spawn" | "stop" | None


def rows_of(user: HubUser, base_url: str = "/") -> tuple[ServerRow, ...]:
    """The rows of one user: its servers by name; a user with none gets a stopped default."""
    groups = tuple(sorted(user.groups))
    if not user.servers:
        url = f"{base_url.rstrip('/')}/user/{quote(user.name, safe='')}/"
        return (
            ServerRow(
                user=user.name,
                server="",
                status="stopped",
                started=None,
                last_activity=user.last_activity,
                url=url,
                admin=user.admin,
                groups=groups,
                user_last_activity=user.last_activity,
                pending=None,
            ),
        )
    return tuple(
        ServerRow(
            user=user.name,
            server=name,
            status=server.status,
            started=server.started,
            last_activity=server.last_activity or user.last_activity,
            url=server.url,
            admin=user.admin,
            groups=groups,
            user_last_activity=user.last_activity,
            pending=server.pending,
        )
        for name, server in sorted(user.servers.items())
    )


# A user's state word: which of the contract's `state` filters it passes.
RUNNING, PENDING, BOTH, STOPPED = "running", "pending", "running+pending", "stopped"


def user_state(rows: Iterable[ServerRow]) -> str:
    statuses = {r.status for r in rows}
    running = "running" in statuses
    pending = bool(statuses & {"starting", "stopping"})
    if running and pending:
        return BOTH
    return RUNNING if running else PENDING if pending else STOPPED
