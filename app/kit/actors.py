"""Who asked for an action, and how actions name their targets in the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Actor(Protocol):
    """Who asked: a signed-in Principal, or the system (CLI, culler, lockdown) alike."""

    @property
    def name(self) -> str: ...

    @property
    def via(self) -> str: ...


@dataclass(frozen=True)
class SystemActor:
    """An actor that is not a signed-in person: `cli:<unix user>`, `culler`, `lockdown`."""

    name: str
    via: str = "system"


def target_of(user: str, server: str = "") -> str:
    """The audit target: `user` for the default server, `user/server` for a named one."""
    return f"{user}/{server}" if server else user


def server_label(user: str, server: str = "") -> str:
    """For people: `alice's server` or `alice's server 'gpu'`."""
    return f"{user}'s server {server!r}" if server else f"{user}'s server"
