"""Reading webhook deliveries: one row per (notification, webhook URL), newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func
from sqlmodel import col, select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import Notification, NotificationDelivery
from hubkeeper.kit.clock import as_utc
from hubkeeper.outbox.record import redact_url


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery as shown to admins; `url` is redacted (webhook URLs carry secrets)."""

    id: int
    at: datetime  # when the event happened, UTC
    event: str
    user: str | None
    server: str | None
    reason: str | None
    text: str
    url: str
    status: str  # sent | retrying | failed
    attempts: int
    last_error: str
    next_attempt_at: datetime | None  # UTC; None once sent or failed


def deliveries(
    engine: Engine,
    *,
    event: str | None = None,
    since: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[DeliveryRow], int]:
    """Deliveries of events at or after `since` (UTC), of one `event` if given, newest first
    (ties by id, newest first), and how many match (blocking: call it in a thread)."""
    query = select(NotificationDelivery, Notification).join(
        Notification, col(Notification.id) == NotificationDelivery.notification_id
    )
    counted = (
        select(func.count())
        .select_from(NotificationDelivery)
        .join(Notification, col(Notification.id) == NotificationDelivery.notification_id)
    )
    if event:
        query = query.where(Notification.event == event)
        counted = counted.where(Notification.event == event)
    if since is not None:
        query = query.where(col(Notification.at) >= since)
        counted = counted.where(col(Notification.at) >= since)
    query = (
        query.order_by(col(Notification.at).desc(), col(NotificationDelivery.id).desc())
        .offset(offset)
        .limit(limit)
    )
    with session_scope(engine) as session:
        total = int(session.exec(counted).one())
        rows = [
            DeliveryRow(
                id=int(delivery.id or 0),
                at=as_utc(note.at),
                event=note.event,
                user=note.user,
                server=note.server,
                reason=note.reason,
                text=note.text,
                url=redact_url(delivery.url),
                status=delivery.status,
                attempts=delivery.attempts,
                last_error=delivery.last_error,
                next_attempt_at=(
                    as_utc(delivery.next_attempt_at) if delivery.status == "retrying" else None
                ),
            )
            for delivery, note in session.exec(query).all()
        ]
    return rows, total
