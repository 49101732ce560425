"""Culling exemptions: a user or a group the culler leaves alone, with a reason and an
optional expiry ("keep alive until Friday"). Expired ones stop applying and stay listed;
deleted ones stop applying and are kept (with `deleted_at`) for the record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, or_
from sqlmodel import col, select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import CullExemption
from hubkeeper.db.paging import fetch_page
from hubkeeper.errors import Conflict, NotFound
from hubkeeper.kit.clock import as_utc, utcnow

REASON_MAX = 500


@dataclass(frozen=True)
class Exempt:
    """The exemptions in force at one moment: user name → reason, group name → reason."""

    users: dict[str, str]
    groups: dict[str, str]

    def why(self, user: str, groups: list[str] | tuple[str, ...]) -> str | None:
        """The reason `user` is exempt (directly, or through one of `groups`), else None."""
        if user in self.users:
            return self.users[user]
        for group in groups:
            if group in self.groups:
                return self.groups[group]
        return None


def in_force(engine: Engine, at: datetime) -> Exempt:
    """Exemptions not deleted and not expired at `at` (an exemption ends at its `until`)."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(CullExemption).where(
                col(CullExemption.deleted_at).is_(None),
                or_(col(CullExemption.until).is_(None), col(CullExemption.until) > at),
            )
        ).all()
    users: dict[str, str] = {}
    groups: dict[str, str] = {}
    for row in rows:
        if row.user:
            users.setdefault(row.user, row.reason)
        if row.group:
            groups.setdefault(row.group, row.reason)
    return Exempt(users, groups)


def create(
    engine: Engine,
    *,
    user: str | None,
    group: str | None,
    reason: str,
    until: datetime | None,
    by: str,
) -> CullExemption:
    row = CullExemption(
        user=user,
        group=group,
        reason=reason,
        until=None if until is None else as_utc(until),
        created_by=by,
    )
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
        session.refresh(row)
    return row


def delete(engine: Engine, exemption_id: int) -> CullExemption:
    """Mark an exemption deleted. 404 `exemption_not_found`, 409 `already_deleted`."""
    with session_scope(engine) as session:
        row = session.get(CullExemption, exemption_id)
        if row is None:
            raise NotFound(f"No exemption {exemption_id}", code="exemption_not_found")
        if row.deleted_at is not None:
            raise Conflict(f"Exemption {exemption_id} is already deleted", code="already_deleted")
        row.deleted_at = utcnow()
        session.add(row)
        session.flush()
        session.refresh(row)
    return row


def listing(
    engine: Engine, *, include_deleted: bool = False, offset: int = 0, limit: int = 50
) -> tuple[list[CullExemption], int]:
    """Newest first; deleted ones only when asked."""
    query = select(CullExemption)
    if not include_deleted:
        query = query.where(col(CullExemption.deleted_at).is_(None))
    with session_scope(engine) as session:
        return fetch_page(
            session,
            query,
            col(CullExemption.created_at).desc(),
            col(CullExemption.id).desc(),
            offset=offset,
            limit=limit,
        )


def state_of(row: CullExemption, now: datetime) -> str:
    """active | expired | deleted."""
    if row.deleted_at is not None:
        return "deleted"
    if row.until is not None and as_utc(row.until) <= now:
        return "expired"
    return "active"
