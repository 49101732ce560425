"""Delivering recorded notifications to the webhooks: one replica (the leader of
`notify-sender`), each delivery with its own timeout, retried with backoff, recorded."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from contextlib import suppress
from datetime import timedelta

import httpx
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hubkeeper.db.models import Notification, NotificationDelivery
from hubkeeper.kit.clock import utcnow
from hubkeeper.loops.retry import retry_pause
from hubkeeper.outbox.events import payload

log = logging.getLogger(__name__)

# seconds to wait before attempt n+1 after n failures; after the last, the delivery `failed`
BACKOFF: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600)
TIMEOUT = 5.0  # seconds for one POST: a receiver slower than this has failed this attempt
BATCH = 50  # deliveries taken per round
CONCURRENCY = 8


class WebhookSender:
    """Sends what is due. `send_due()` is one round (tests call it); `run()` loops."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = 1.0,
        backoff: Sequence[float] = BACKOFF,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.backoff = tuple(backoff)
        self.transport = transport
        self.sent = 0
        self.failed = 0
        self.wake = asyncio.Event()

    def _due(self) -> list[tuple[NotificationDelivery, Notification]]:
        now = utcnow()
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(NotificationDelivery, Notification)
                .join(Notification, col(Notification.id) == NotificationDelivery.notification_id)
                .where(NotificationDelivery.status == "retrying")
                .where(col(NotificationDelivery.next_attempt_at) <= now)
                .order_by(col(NotificationDelivery.next_attempt_at))
                .limit(BATCH)
            ).all()
            return [(delivery, note) for delivery, note in rows]

    def _save(self, delivery: NotificationDelivery, error: str | None) -> None:
        now = utcnow()
        with Session(self.engine) as session:
            row = session.get(NotificationDelivery, delivery.id)
            if row is None:
                return
            row.attempts += 1
            row.last_attempt_at = now
            if error is None:
                row.status, row.last_error = "sent", ""
            else:
                row.last_error = error[:1000]
                if row.attempts > len(self.backoff):
                    row.status = "failed"
                else:
                    row.next_attempt_at = now + timedelta(seconds=self.backoff[row.attempts - 1])
            session.add(row)
            session.commit()

    async def _post(
        self, client: httpx.AsyncClient, delivery: NotificationDelivery, note: Notification
    ) -> str | None:
        body = payload(note)
        try:
            response = await client.post(
                delivery.url,
                content=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if response.status_code >= 300:
            return f"HTTP {response.status_code}"
        return None

    async def send_due(self) -> int:
        """Attempt every due delivery once (at most `BATCH`); the number attempted."""
        due = await asyncio.to_thread(self._due)
        if not due:
            return 0
        limit = asyncio.Semaphore(CONCURRENCY)
        async with httpx.AsyncClient(
            timeout=TIMEOUT, transport=self.transport, follow_redirects=False
        ) as client:

            async def one(delivery: NotificationDelivery, note: Notification) -> None:
                async with limit:
                    error = await self._post(client, delivery, note)
                if error is None:
                    self.sent += 1
                else:
                    log.info("webhook delivery %s: %s", delivery.id, error)
                    if delivery.attempts + 1 > len(self.backoff):
                        self.failed += 1
                await asyncio.to_thread(self._save, delivery, error)

            await asyncio.gather(*(one(delivery, note) for delivery, note in due))
        return len(due)

    async def run(self) -> None:
        """The `notify-sender` loop: a round every `interval` s, sooner when woken. A round
        whose database read fails pauses and tries again. Never returns; cancel to stop."""
        while True:
            try:
                attempted = await self.send_due()
            except Exception as exc:
                log.warning("webhook deliveries not read (%s)", exc)
                await retry_pause(max(self.interval, 5.0))
                continue
            if attempted >= BATCH:
                continue  # more are due
            self.wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.interval)
