"""`GET api/v1/notifications`: webhook deliveries, newest first (admins only: the URLs, even
redacted, and the errors are an admin matter)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from hubkeeper.deps import CurrentAdmin, StateDep
from hubkeeper.kit.schemas import UtcTimes
from hubkeeper.kit.window import parse_when
from hubkeeper.notify.service import deliveries
from hubkeeper.outbox.events import EventName
from hubkeeper.web.openapi import errors
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["notifications"], dependencies=STRICT_QUERY)


class DeliveryOut(UtcTimes):
    id: int  # the delivery's id (one per event and webhook URL)
    at: datetime
    event: str
    user: str | None
    server: str | None
    reason: str | None
    text: str
    url: str  # scheme and host only: webhook URLs carry their secret in the path
    status: Literal["sent", "retrying", "failed"]
    attempts: int
    last_error: str
    next_attempt_at: datetime | None


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    total: int
    offset: int
    limit: int


@router.get("/notifications", response_model=DeliveryList, responses=errors(422))
async def list_notifications(
    who: CurrentAdmin,
    hk: StateDep,
    event: Annotated[
        EventName | None, Query(description="only this event (422 if unknown)")
    ] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="ISO 8601, UTC if no offset")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryList:
    """Webhook deliveries of the events (one per event and webhook URL), newest first:
    `retrying` until sent or given up (`failed`). 422 for an unknown event or a bad date."""
    start = parse_when(since, "since")
    rows, total = await asyncio.to_thread(
        deliveries, hk.engine, event=event, since=start, offset=offset, limit=limit
    )
    return DeliveryList(
        items=[DeliveryOut.model_validate(row, from_attributes=True) for row in rows],
        total=total,
        offset=offset,
        limit=limit,
    )
