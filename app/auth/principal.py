"""Who is asking, and with which role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "manager"]


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


def role_for(
    *, admin: bool, groups: list[str], admin_groups: list[str], manager_groups: list[str]
) -> Role | None:
    """The contract's roles: hub admins and admin groups → admin; manager groups → manager."""
    if admin or set(groups) & set(admin_groups):
        return "admin"
    if set(groups) & set(manager_groups):
        return "manager"
    return None
