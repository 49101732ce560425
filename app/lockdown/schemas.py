"""JSON shapes of the lockdown API, per the contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from hubkeeper.actions.lockdown_state import LockdownState
from hubkeeper.db.models import Lockdown
from hubkeeper.kit.schemas import UtcTimes
from hubkeeper.lockdown.service import REASON_MAX


class LockdownOut(UtcTimes):
    active: bool
    reason: str | None
    since: datetime | None
    by: str | None

    @classmethod
    def of(cls, state: LockdownState) -> LockdownOut:
        return cls(active=state.active, reason=state.reason, since=state.since, by=state.by)


class LockRequest(BaseModel):
    reason: str = Field(
        min_length=1, max_length=REASON_MAX, description="shown to users and kept in the audit"
    )
    stop_servers: bool = Field(
        default=True,
        description=(
            "also stop every running server; false keeps the servers running now (servers "
            "that start or were starting during the lockdown are stopped either way)"
        ),
    )

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the reason must not be blank")
        return value.strip()


class LockOut(LockdownOut):
    job: str | None = Field(description="the stop-all job (GET jobs/{job}), when one started")
    stop_error: str | None = Field(
        default=None, description="why the servers could not be stopped (the lock holds)"
    )


class LockStatus(BaseModel):
    locked: bool
    message: str = Field(description="what users see when a start is refused")


class LockdownItem(UtcTimes):
    id: int
    reason: str
    started_at: datetime
    started_by: str
    ended_at: datetime | None
    ended_by: str | None
    stop_servers: bool

    @classmethod
    def of(cls, row: Lockdown) -> LockdownItem:
        return cls.model_validate(row, from_attributes=True)


class LockdownList(BaseModel):
    items: list[LockdownItem]
    total: int
    offset: int
    limit: int
