"""Who is asking, and with which role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "manager", "user"]


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    via: Literal["web", "api"]
    # Set for browser sessions; writes made with the session cookie must echo it.
    csrf_token: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_reader(self) -> bool:
        """Admins and managers: the console's readers (role `user` sees only their own)."""
        return self.role in ("admin", "manager")


def role_for(
    *, admin: bool, groups: list[str], admin_groups: list[str], manager_groups: list[str]
) -> Role:
    """The contract's roles: hub admins and admin groups → admin; manager groups → manager;
    every other signed-in hub user → user (their own servers only)."""
    if admin or set(groups) & set(admin_groups):
        return "admin"
    if set(groups) & set(manager_groups):
        return "manager"
    return "user"


def session_role(stored: str) -> Role:
    """A browser session's stored role; "" (sessions from before role `user`) → user."""
    if stored in ("admin", "manager"):
        return stored  # type: ignore[return-value]
    return "user"
