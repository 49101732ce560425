"""The events' sources without a hub: the directory's view of a spawn that never ran, and the
quota watch over made sessions. Each is recorded once, however often it is seen."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from hubkeeper.db.engine import create_db_engine, migrate, session_scope
from hubkeeper.db.models import Notification, ServerSession
from hubkeeper.directory.spawns import SpawnWatch
from hubkeeper.hub.models import HubUser
from hubkeeper.outbox.events import Event
from hubkeeper.outbox.record import Outbox
from hubkeeper.quotas import settings as quota_settings
from hubkeeper.quotas.watch import QuotaWatch

STARTED = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Any:
    migrate(db_url)
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def notes(engine: Any) -> list[Notification]:
    with Session(engine) as session:
        return list(session.exec(select(Notification).order_by(Notification.id)).all())  # type: ignore[arg-type]


def user(name: str, **servers: dict[str, Any]) -> HubUser:
    return HubUser.from_api({"name": name, "servers": servers})


STARTING = {"pending": "spawn", "ready": False, "started": STARTED.isoformat()}
STOPPING = {"pending": "stop", "ready": False, "started": STARTED.isoformat()}
RUNNING = {"pending": None, "ready": True, "started": STARTED.isoformat()}


async def test_a_server_that_stops_without_ever_running_is_a_failed_spawn_once(engine):
    # two replicas' watches, each seeing the same transitions through its directory
    watches = [SpawnWatch(Outbox(engine, [])) for _ in range(2)]
    for watch in watches:
        watch.settle = 0.0
        watch.on_change(None, user("sw-ann", **{"": STARTING}))
        watch.on_change(user("sw-ann", **{"": STARTING}), user("sw-ann", **{"": STOPPING}))
        watch.on_change(user("sw-ann", **{"": STOPPING}), user("sw-ann"))
        # a server that did run, then stopped: no failure
        watch.on_change(None, user("sw-ben", gpu=STARTING))
        watch.on_change(user("sw-ben", gpu=STARTING), user("sw-ben", gpu=RUNNING))
        watch.on_change(user("sw-ben", gpu=RUNNING), user("sw-ben"))
        await watch.drain()
    (note,) = notes(engine)
    assert (note.event, note.user, note.server) == ("spawn.failed", "sw-ann", "")
    assert note.key == f"spawn.failed:sw-ann/:{STARTED.isoformat()}"
    assert note.text == "sw-ann's server failed to start"


async def test_the_hub_s_message_from_a_console_start_joins_the_directory_s_notification(engine):
    watch = SpawnWatch(Outbox(engine, []))
    watch.settle = 5.0
    watch.on_change(None, user("sw-cy", **{"": STARTING}))
    watch.on_change(user("sw-cy", **{"": STARTING}), user("sw-cy"))  # seen: waits for a message
    watch.failed("sw-cy", "", "the hub answered 500: no room")
    await watch.drain()
    (note,) = notes(engine)
    assert note.reason == "the hub answered 500: no room"
    assert note.key == f"spawn.failed:sw-cy/:{STARTED.isoformat()}"
    # a late, older answer showing the spawn again does not make a second one
    watch.on_change(None, user("sw-cy", **{"": STARTING}))
    watch.on_change(user("sw-cy", **{"": STARTING}), user("sw-cy"))
    await watch.drain()
    assert len(notes(engine)) == 1


def add_session(engine: Any, name: str, start: datetime, hours: float, groups: list[str]) -> None:
    with session_scope(engine) as session:
        session.add(
            ServerSession(
                user=name,
                started_at=start,
                stopped_at=start + timedelta(hours=hours),
                duration_s=hours * 3600,
                groups=json.dumps(groups),
            )
        )


async def test_quota_warning_at_80_and_exceeded_at_100_percent_once_per_month(engine):
    quota_settings.save(
        engine,
        quota_settings.Quotas(users={"qw-ann": 10.0}, groups={"qw-course": 20.0}),
        "admin",
    )
    month = datetime(2026, 12, 1, tzinfo=UTC)
    add_session(engine, "qw-ann", month + timedelta(days=1), 8.5, [])
    add_session(engine, "qw-ben", month + timedelta(days=1), 17.0, ["qw-course"])  # group's
    add_session(engine, "qw-cy", month + timedelta(days=1), 100.0, [])  # no quota
    add_session(engine, "qw-ann", month - timedelta(days=3), 50.0, [])  # last month's
    watch = QuotaWatch(engine, Outbox(engine, []))
    now = month + timedelta(days=10)

    first = await watch.check(now)
    assert sorted((e.event, e.user) for e in first) == [
        ("quota.warning", "qw-ann"),
        ("quota.warning", "qw-ben"),
    ]
    ann = next(e for e in first if e.user == "qw-ann")
    assert ann.key == "quota.warning:qw-ann:2026-12"
    assert ann.text == (
        "qw-ann has used 85% of their server-hours for 2026-12: 8.5 of 10 hours "
        "(resets 2027-01-01 00:00 UTC)"
    )
    assert await watch.check(now) == []  # once per month and level

    add_session(engine, "qw-ann", month + timedelta(days=11), 2.0, [])
    (over,) = await watch.check(now + timedelta(days=2))
    assert (over.event, over.key) == ("quota.exceeded", "quota.exceeded:qw-ann:2026-12")
    assert over.text.startswith("qw-ann has used up their server-hours for 2026-12: 10.5 of 10")

    # a new month starts from nothing; the groups the directory knows now win
    january = datetime(2027, 1, 2, tzinfo=UTC)
    add_session(engine, "qw-ben", january, 9.0, [])
    groups_watch = QuotaWatch(
        engine,
        Outbox(engine, []),
        groups_of=lambda name: ["qw-course"] if name == "qw-ben" else None,
    )
    assert await groups_watch.check(january + timedelta(hours=10)) == []  # 9 of 20
    assert len(notes(engine)) == 3


def test_deliveries_are_read_newest_first_filtered_and_redacted(engine):
    from hubkeeper.notify.service import deliveries

    outbox = Outbox(engine, ["https://hooks.example.org/services/T0/B0/secret", "http://h2"])
    at = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    for i, event in enumerate(("lockdown.on", "spawn.failed", "lockdown.off")):
        outbox.record(Event(event, key=f"d:{i}", text=f"t{i}", at=at + timedelta(minutes=i)))  # type: ignore[arg-type]
    rows, total = deliveries(engine, limit=10)
    assert total == 6
    assert [r.text for r in rows] == ["t2", "t2", "t1", "t1", "t0", "t0"]
    assert {r.url for r in rows} == {"https://hooks.example.org/…", "http://h2"}
    assert all(r.status == "retrying" and r.attempts == 0 and r.next_attempt_at for r in rows)
    rows, total = deliveries(engine, event="lockdown.on")
    assert total == 2 and {r.event for r in rows} == {"lockdown.on"}
    rows, total = deliveries(engine, since=at + timedelta(minutes=1), offset=1, limit=1)
    assert total == 4 and len(rows) == 1 and rows[0].text == "t2"
