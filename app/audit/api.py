"""`GET api/v1/audit`: every action a person or the system took, newest first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, field_serializer

from hubkeeper.actions.audit import search
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import AuditEvent
from hubkeeper.deps import CurrentReader, StateDep
from hubkeeper.kit.window import parse_when
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["audit"], dependencies=STRICT_QUERY)


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: str
    error: str
    via: str

    @field_serializer("at", when_used="json")
    def _utc(self, value: datetime) -> str:
        if value.tzinfo is None:  # SQLite hands back naive UTC
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls.model_validate(event, from_attributes=True)


class AuditList(BaseModel):
    items: list[AuditEventOut]
    total: int
    offset: int
    limit: int


@router.get("/audit", response_model=AuditList)
async def list_audit(
    who: CurrentReader,
    hk: StateDep,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=512, description="substring")] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="ISO 8601, UTC if no offset")
    ] = None,
    until: Annotated[
        str | None, Query(max_length=64, description="ISO 8601; a bare date includes that day")
    ] = None,
    outcome: Literal["ok", "failed", "pending"] | None = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditList:
    """Audit events, newest first, filtered by actor, action, target, time and outcome."""
    # The kit's one reading of since/until: 422 for what cannot be used, never an overflow.
    start = parse_when(since, "since")
    stop = parse_when(until, "until", end=True)

    def run() -> AuditList:
        with session_scope(hk.engine) as session:
            events, total = search(
                session,
                actor=actor or None,
                action=action or None,
                target=target or None,
                since=start,
                until=stop,
                outcome=outcome,
                offset=offset,
                limit=limit,
            )
            return AuditList(
                items=[AuditEventOut.of(e) for e in events],
                total=total,
                offset=offset,
                limit=limit,
            )

    return await asyncio.to_thread(run)
