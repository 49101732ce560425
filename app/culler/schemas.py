"""JSON shapes of the culler API, per the contract (culler settings, preview, run, culls,
exemptions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from hubkeeper.culler.exemptions import REASON_MAX, state_of
from hubkeeper.db.models import CullEvent, CullExemption
from hubkeeper.kit.schemas import UtcTimes


class PlannedOut(BaseModel):
    user: str
    server: str
    kind: str = Field(description="server | kernel")
    kernel_id: str | None
    reason: str = Field(description="idle | max_age")
    inactive_s: float | None = Field(description="seconds idle at the pass's time")
    age_s: float | None = Field(description="seconds since the server started")
    kept: str | None = Field(
        default=None, description="why a rule keeps it (include_kept=1 only; busy, keep)"
    )


class CulledOut(BaseModel):
    user: str
    server: str
    kind: str
    kernel_id: str | None
    reason: str


class ErrorItem(BaseModel):
    user: str
    server: str
    error: str


class RunOut(BaseModel):
    culled: list[CulledOut]
    errors: list[ErrorItem]
    deleted_users: list[str] = Field(default_factory=list, description="with cull_users")
    duration_s: float = Field(description="seconds the servers and kernel passes took")


class CullOut(UtcTimes):
    id: int
    at: datetime
    kind: str
    user: str
    server: str
    kernel_id: str | None
    reason: str
    inactive_s: float | None
    age_s: float | None
    outcome: str
    error: str | None
    actor: str
    note: str | None = Field(
        None,
        description="how it was decided when not the usual way (e.g. the server could not "
        "be asked, so the hub's activity alone decided)",
    )
    settings: dict[str, Any] = Field(description="the culler settings in force")

    @classmethod
    def of(cls, row: CullEvent) -> CullOut:
        import json

        try:
            settings = json.loads(row.settings or "{}")
        except ValueError:
            settings = {}
        return cls(
            id=row.id or 0,
            at=row.at,
            kind=row.kind,
            user=row.user,
            server=row.server,
            kernel_id=row.kernel_id,
            reason=row.reason,
            inactive_s=row.inactive_s,
            age_s=row.age_s,
            outcome=row.outcome,
            error=row.error or None,
            actor=row.actor,
            note=row.note or None,
            settings=settings,
        )


class CullList(BaseModel):
    items: list[CullOut]
    total: int
    offset: int
    limit: int


class ExemptionIn(BaseModel):
    user: str | None = Field(default=None, max_length=255)
    group: str | None = Field(default=None, max_length=255)
    until: str | None = Field(
        default=None,
        description="ISO date or date-time (UTC unless an offset is given); a bare date "
        "keeps the exemption through that day",
        max_length=64,
    )
    reason: str = Field(max_length=REASON_MAX)


class ExemptionOut(UtcTimes):
    id: int
    user: str | None
    group: str | None
    reason: str
    until: datetime | None
    created_at: datetime
    created_by: str
    deleted_at: datetime | None
    state: str = Field(description="active | expired | deleted")

    @classmethod
    def of(cls, row: CullExemption, now: datetime) -> ExemptionOut:
        return cls(
            id=row.id or 0,
            user=row.user,
            group=row.group,
            reason=row.reason,
            until=row.until,
            created_at=row.created_at,
            created_by=row.created_by,
            deleted_at=row.deleted_at,
            state=state_of(row, now),
        )


class ExemptionList(BaseModel):
    items: list[ExemptionOut]
    total: int
    offset: int
    limit: int


class MyServer(BaseModel):
    """One of the caller's own servers with the culler's outlook (`GET me/servers`)."""

    name: str = Field(description='"" = the default server')
    status: str = Field(description="running | pending | stopped")
    started: str | None
    last_activity: str | None
    cull_at: str | None = Field(
        description="when the culler stops it if nobody uses it (UTC; null: not planned)"
    )
    cull_reason: str | None = Field(description="idle | max_age (null: not planned)")
    keeps_left: int = Field(description="keeps left in this server start (max_keeps)")
    keep_until: str | None = Field(description="a keep in force postpones idle culling to then")
    reason: str = Field(description="the decision's reason, as `idleness` gives it")


class MyServers(BaseModel):
    items: list[MyServer]


class KeepOut(BaseModel):
    keep_until: str = Field(description="idle culling is postponed until then (UTC)")
    keeps_left: int = Field(description="keeps left in this server start")
