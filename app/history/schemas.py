"""JSON shapes of `api/v1/sessions` and `api/v1/usage`, per the contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from hubkeeper.db.models import ServerSession
from hubkeeper.history.recorder import aware
from hubkeeper.kit.schemas import UtcTimes


class SessionOut(UtcTimes):
    id: int
    user: str
    server: str = Field(description='"" is the default server')
    started_at: datetime
    stopped_at: datetime | None
    duration_s: float = Field(description="seconds; an open session counts up to now")
    stop_reason: str | None = Field(description="admin|culled|lockdown|unknown; null while open")
    stopped_by: str | None
    profile: str | None = Field(
        description='the server\'s user_options["profile"] at its start; null: the default'
    )
    peak_memory_bytes: int | None = Field(
        None, description="the highest memory (rss, bytes) sampled while it ran; null: none"
    )
    mean_cpu_percent: float | None = Field(
        None, description="the mean of its CPU samples, % of one core; null: none"
    )
    memory_limit_bytes: int | None = Field(
        None, description="the memory limit its server reported (bytes); null: none"
    )

    @classmethod
    def of(cls, row: ServerSession, now: datetime) -> SessionOut:
        started = aware(row.started_at)
        stopped = aware(row.stopped_at) if row.stopped_at else None
        duration = row.duration_s
        if duration is None:
            duration = max(0.0, ((stopped or now) - started).total_seconds())
        return cls(
            id=row.id or 0,
            user=row.user,
            server=row.server,
            started_at=started,
            stopped_at=stopped,
            duration_s=round(duration, 3),
            stop_reason=row.stop_reason,
            stopped_by=row.stopped_by,
            profile=row.profile or None,
            peak_memory_bytes=row.peak_memory_bytes,
            mean_cpu_percent=(
                None if row.mean_cpu_percent is None else round(row.mean_cpu_percent, 1)
            ),
            memory_limit_bytes=row.memory_limit_bytes,
        )


class SessionList(BaseModel):
    items: list[SessionOut]
    total: int
    offset: int
    limit: int


class UsageRowOut(BaseModel):
    key: str = Field(
        description='YYYY-MM-DD (UTC day), a user, a group or a profile ("(default)": none)'
    )
    sessions: int
    server_hours: float
    users: int = Field(description="distinct users")
    cost: float | None = Field(
        description="server-hours × HUBKEEPER_PRICES's price of their profile; null: no prices"
    )


class UsageOut(UtcTimes):
    since: datetime
    until: datetime
    by: str
    rows: list[UsageRowOut]
