"""The recorder's rules on a real database, driven by hand-made hub states and a fixed clock
(no hub needed: the directory is fed with `upsert` as the sync loops would)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hubkeeper.console.directory import UserDirectory
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
