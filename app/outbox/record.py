"""Recording events: once per key, with one delivery per configured webhook URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from hubkeeper.db.models import Notification, NotificationDelivery
from hubkeeper.outbox.events import Event

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """A webhook URL as shown to people: scheme and host only. Incoming-webhook URLs carry
    their secret in the path (Slack's `/services/T…/B…/<secret>`), so the rest is hidden."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") else url


class Outbox:
    """Where events are recorded (see the package docstring).

    `urls`: the webhook URLs (`HUBKEEPER_WEBHOOK_URLS`). With none, events are still recorded
    (their keys keep them once) but nothing is delivered.
    """

    def __init__(self, engine: Engine, urls: Sequence[str]) -> None:
        self.engine = engine
        self.urls = tuple(urls)
        self.recorded = 0  # events this process recorded (metrics)
        # set by the app to the sender's wake-up, so a new event goes out within moments
        self.on_record: Callable[[], None] | None = None

    def record(self, event: Event) -> bool:
        """Record `event` and its deliveries in one transaction. True if it is new; False if
        its key was already recorded (by this or another replica). Raises the database's
        errors (see `emit` for the caller that must not fail)."""
        key = event.key[:512]
        with Session(self.engine) as session:
            if session.exec(select(Notification.id).where(Notification.key == key)).first():
                return False
            row = Notification(
                key=key,
                event=event.event,
                at=event.at,
                user=event.user,
                server=event.server,
                reason=event.reason,
                text=event.text,
                link=event.link,
            )
            session.add(row)
            try:
                session.flush()  # the unique key decides a race between replicas
            except IntegrityError:
                session.rollback()
                return False
            assert row.id is not None
            for url in self.urls:
                session.add(
                    NotificationDelivery(notification_id=row.id, url=url, next_attempt_at=event.at)
                )
            session.commit()
        self.recorded += 1
        return True

    async def emit(self, event: Event) -> bool:
        """Record `event` off the event loop; never raises. False when it was already
        recorded or could not be (the database is down: logged, and the event is lost)."""
        try:
            new = await asyncio.to_thread(self.record, event)
        except Exception as exc:
            log.warning("notification %s not recorded (%s)", event.key, exc)
            return False
        if new and self.on_record is not None:
            self.on_record()
        return new
