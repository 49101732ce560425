"""The outbox: an event recorded once whatever the number of replicas, delivered to every
webhook, retried with backoff, a dead or slow receiver costing only its own deliveries."""

from __future__ import annotations

import time

from sqlmodel import Session, select

from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.db.models import NotificationDelivery
from hubkeeper.outbox.events import Event
from hubkeeper.outbox.record import Outbox, redact_url
from hubkeeper.outbox.sender import WebhookSender
from tests.webhooks import Receiver, start


def warning(key: str = "cull.warning:ann/:1") -> Event:
    return Event(
        "cull.warning",
        key=key,
        text="ann's server stops at 14:05 for idleness unless it is used",
        user="ann",
        server="",
        reason="idle",
        link="http://hub.example/services/hubkeeper/me",
    )


async def test_one_event_is_recorded_once_and_posted_to_every_webhook(
    db_url: str, receivers: list[Receiver]
) -> None:
    migrate(db_url)
    engine = create_db_engine(db_url)
    first, second = start(receivers), start(receivers)
    replica_a = Outbox(engine, [first.url, second.url])
    replica_b = Outbox(engine, [first.url, second.url])
    assert await replica_a.emit(warning()) is True
    assert await replica_b.emit(warning()) is False  # another replica, the same event
    sender = WebhookSender(engine)
    assert await sender.send_due() == 2
    assert await sender.send_due() == 0
    for receiver in (first, second):
        (got,) = receiver.received
        assert got == {
            "event": "cull.warning",
            "at": got["at"],
            "user": "ann",
            "server": "",
            "reason": "idle",
            "text": "ann's server stops at 14:05 for idleness unless it is used",
            "url": "http://hub.example/services/hubkeeper/me",
        }
        assert got["at"].endswith("+00:00")
    with Session(engine) as session:
        rows = session.exec(select(NotificationDelivery)).all()
    assert {(row.status, row.attempts) for row in rows} == {("sent", 1)}
    engine.dispose()


async def test_a_failing_receiver_is_retried_then_given_up_and_never_holds_up_another(
    db_url: str, receivers: list[Receiver]
) -> None:
    migrate(db_url)
    engine = create_db_engine(db_url)
    broken, slow, fine = (
        start(receivers, status=500),
        start(receivers, delay=3.0),
        start(receivers),
    )
    outbox = Outbox(engine, [broken.url, slow.url, fine.url])
    await outbox.emit(warning())
    sender = WebhookSender(engine, backoff=(0.0, 0.0))
    sender_timeout = 0.5
    import hubkeeper.outbox.sender as sender_module

    original, sender_module.TIMEOUT = sender_module.TIMEOUT, sender_timeout
    try:
        began = time.monotonic()
        await sender.send_due()
        assert time.monotonic() - began < 2.5  # the slow one timed out; nobody waited 3 s
        await sender.send_due()
        await sender.send_due()
        assert await sender.send_due() == 0  # all settled
    finally:
        sender_module.TIMEOUT = original
    with Session(engine) as session:
        rows = {row.url: row for row in session.exec(select(NotificationDelivery)).all()}
    assert (rows[fine.url].status, rows[fine.url].attempts) == ("sent", 1)
    assert (rows[broken.url].status, rows[broken.url].attempts) == ("failed", 3)
    assert rows[broken.url].last_error == "HTTP 500"
    assert rows[slow.url].status == "failed"
    assert "Timeout" in rows[slow.url].last_error
    assert len(broken.received) == 3
    engine.dispose()


def test_webhook_urls_are_shown_without_their_secret_path() -> None:
    assert redact_url("https://hooks.slack.com/services/T0/B0/XyZ") == "https://hooks.slack.com/…"
    assert redact_url("https://example.org") == "https://example.org"
