"""The recorder's rules on a real database, driven by hand-made hub states and a fixed clock
(no hub needed: the directory is fed with `upsert` as the sync loops would)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hubkeeper.directory.store import UserDirectory
from hubkeeper.history.recorder import SessionRecorder
from hubkeeper.hub.models import HubServer, HubUser
from tests.history.factories import add_session, at, prepared, sessions_of

T0 = at("2026-11-20T10:00")


def user(name: str, status: str = "stopped", started: str = "2026-11-20T10:00") -> HubUser:
    server = {
        "running": HubServer(ready=True, started=at(started)),
        "stopping": HubServer(ready=True, pending="stop", started=at(started)),
        "stopped": HubServer(stopped=True),
    }[status]
    return HubUser(name=name, servers={"": server})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):  # noqa: ANN204
        return self.now


def setup(db_url: str, make_settings):  # noqa: ANN001, ANN201
    engine = prepared(db_url)
    clock = Clock()
    recorder = SessionRecorder(engine, clock=clock)
    directory = UserDirectory(None, make_settings(db_url))  # type: ignore[arg-type]
    directory.listeners.append(recorder.on_change)
    return engine, clock, recorder, directory


def test_transitions_open_and_close_sessions_with_the_reason_announced(db_url, make_settings):
    engine, clock, recorder, directory = setup(db_url, make_settings)
    try:
        directory.upsert(user("hist-r-ann", "running"))  # before the reconcile: ignored...
        assert recorder._queue == []
        recorder.reconcile_with(directory)  # ...the reconcile opens it from the state
        directory.upsert(user("hist-r-ann", "running"))  # unchanged: nothing
        clock.now = T0 + timedelta(hours=2)
        recorder.expect_stop("hist-r-ann", "", reason="admin", by="boss")
        directory.upsert(user("hist-r-ann", "stopping"))  # still open while stopping
        directory.upsert(user("hist-r-ann", "stopped"))
        directory.upsert(user("hist-r-ann", "running", started="2026-11-20T13:00"))
        clock.now = T0 + timedelta(hours=4)
        directory.remove("hist-r-ann")  # deleted on the hub: stopped, nobody said why
        asyncio.run(recorder.flush())
        first, second = sessions_of(engine, "hist-r-ann")
    finally:
        engine.dispose()
    assert first.started_at.replace(tzinfo=None) == T0.replace(tzinfo=None)
    assert (first.stop_reason, first.stopped_by, first.duration_s) == ("admin", "boss", 7200.0)
    assert second.started_at.hour == 13 and second.duration_s == 3600.0
    assert (second.stop_reason, second.stopped_by) == ("unknown", None)


def test_reconcile_closes_stale_opens_missing_and_never_doubles(db_url, make_settings):
    engine, clock, recorder, directory = setup(db_url, make_settings)
    try:
        stale = add_session(engine, "hist-r-gone", "2026-11-19T08:00")
        kept = add_session(engine, "hist-r-kept", "2026-11-19T09:00")
        directory.upsert(user("hist-r-kept", "running", started="2026-11-19T09:00"))
        directory.upsert(user("hist-r-new", "running", started="2026-11-20T09:30"))
        recorder.reconcile_with(directory)
        # a change seen right after the reconcile cannot open a second session
        directory.upsert(
            user("hist-r-new", "running", started="2026-11-20T09:30").model_copy(
                update={"admin": True}
            )
        )
        asyncio.run(recorder.flush())
        gone, kept_rows, new = (
            sessions_of(engine, n) for n in ("hist-r-gone", "hist-r-kept", "hist-r-new")
        )
    finally:
        engine.dispose()
    assert [g.id for g in gone] == [stale] and gone[0].stop_reason == "unknown"
    # Nothing is known of when it ended (no such user on the hub, never seen running): closed
    # at its start rather than at the restart time (tests/history/test_recorder_downtime.py).
    assert gone[0].stopped_at.replace(tzinfo=None) == at("2026-11-19T08:00").replace(tzinfo=None)
    assert [(k.id, k.stopped_at) for k in kept_rows] == [(kept, None)]
    assert len(new) == 1 and new[0].started_at.minute == 30 and new[0].stopped_at is None


def test_a_server_gone_across_a_hub_outage_closes_at_its_last_sign_of_life(db_url, make_settings):
    """The hub restarts at 12:00 and stamps the dead server's stop with its restart time;
    the session ends at its last activity seen (11:20), not at 12:00."""
    engine, clock, recorder, directory = setup(db_url, make_settings)
    name = "hist-r-outage"
    try:
        recorder.reconcile_with(directory)
        directory.upsert(user(name, "running"))
        alive = HubServer(ready=True, started=T0, last_activity=at("2026-11-20T11:20"))
        directory.upsert(HubUser(name=name, servers={"": alive}))
        recorder.synced_at = at("2026-11-20T11:00")  # the last sync before the outage
        clock.now = at("2026-11-20T12:01")
        restart = HubServer(stopped=True, last_activity=at("2026-11-20T12:00"))
        directory.upsert(HubUser(name=name, servers={"": restart}))
        # Without an outage the hub's stop time stands.
        directory.upsert(user(name, "running", started="2026-11-20T12:05"))
        recorder.synced_at = at("2026-11-20T12:30")
        clock.now = at("2026-11-20T12:31")
        stopped = HubServer(stopped=True, last_activity=at("2026-11-20T12:30"))
        directory.upsert(HubUser(name=name, servers={"": stopped}))
        asyncio.run(recorder.flush())
        first, second = sessions_of(engine, name)
    finally:
        engine.dispose()
    assert first.stopped_at.replace(tzinfo=None) == at("2026-11-20T11:20").replace(tzinfo=None)
    assert second.stopped_at.replace(tzinfo=None) == at("2026-11-20T12:30").replace(tzinfo=None)
