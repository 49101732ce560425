"""Sessions that ended while Hubkeeper was down are closed at the best time known, never at
the restart time; a server restarted meanwhile is two sessions; a late, older hub answer
never flips a server back; the database holds one open session per server.

Hand-made hub states and a fixed clock on a real database (both kinds); the directory is fed
with `upsert` as the sync loops would, stamped with when each answer was asked for.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.directory.store import UserDirectory
from hubkeeper.history.recorder import Seen, SessionRecorder, apply_ops
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.models import HubServer, HubUser
from tests.history.factories import add_session, at, prepared, sessions_of

RESTART = at("2026-11-20T10:00")  # when Hubkeeper comes back


def running(name: str, started: str, server: str = "") -> HubUser:
    return HubUser(name=name, servers={server: HubServer(ready=True, started=at(started))})


def stopped(name: str, last_activity: str | None, server: str = "") -> HubUser:
    la = at(last_activity) if last_activity else None
    return HubUser(name=name, servers={server: HubServer(stopped=True, last_activity=la)})


def naive(text: str):  # noqa: ANN201
    return at(text).replace(tzinfo=None)


def when(value):  # noqa: ANN001, ANN201
    return None if value is None else value.replace(tzinfo=None)


def setup(db_url: str, make_settings):  # noqa: ANN001, ANN201
    engine = prepared(db_url)
    recorder = SessionRecorder(engine, clock=lambda: RESTART)
    directory = UserDirectory(None, make_settings(db_url))  # type: ignore[arg-type]
    directory.listeners.append(recorder.on_change)
    return engine, recorder, directory


async def reconcile_against(hub, recorder, directory) -> None:  # noqa: ANN001
    """Reconcile with the real hub answering for users the directory does not know."""
    directory.hub = HubClient(hub.api_url, hub.service_token)
    try:
        await recorder.reconcile(directory)
        await recorder.flush()
    finally:
        await directory.hub.aclose()


def test_sessions_ended_while_down_close_at_the_hubs_stop_time(hub, db_url, make_settings):
    engine, recorder, directory = setup(db_url, make_settings)
    try:
        # stopped at 09:10 (the hub sets a server's last_activity to its stop time)
        add_session(engine, "hist-d-stopped", "2026-11-20T08:00")
        directory.upsert(stopped("hist-d-stopped", "2026-11-20T09:10"))
        # a clock ahead of ours on the hub: capped at now
        add_session(engine, "hist-d-future", "2026-11-20T08:00")
        directory.upsert(stopped("hist-d-future", "2026-11-20T11:30"))
        # an activity time from before this run: never before the session's start
        add_session(engine, "hist-d-early", "2026-11-20T08:00")
        directory.upsert(stopped("hist-d-early", "2026-11-19T23:00"))
        # the user is gone from the hub (the real one says 404): the last time Hubkeeper
        # saw it running
        add_session(engine, "hist-d-deleted", "2026-11-20T07:00")
        apply_ops(engine, [Seen(at("2026-11-20T07:45"))])
        # stopped and started again at 09:30: two sessions
        add_session(engine, "hist-d-again", "2026-11-20T06:00")
        directory.upsert(running("hist-d-again", "2026-11-20T09:30"))
        # still the same run: left alone
        kept = add_session(engine, "hist-d-same", "2026-11-20T05:00")
        directory.upsert(running("hist-d-same", "2026-11-20T05:00"))

        asyncio.run(reconcile_against(hub, recorder, directory))
        rows = {
            name: sessions_of(engine, f"hist-d-{name}")
            for name in ("stopped", "future", "early", "deleted", "again", "same")
        }
    finally:
        engine.dispose()

    def closed(name: str):  # noqa: ANN202
        (row,) = rows[name]
        assert row.stop_reason == "unknown"
        return when(row.stopped_at)

    assert closed("stopped") == naive("2026-11-20T09:10")
    assert closed("future") == naive("2026-11-20T10:00")
    assert closed("early") == naive("2026-11-20T08:00")
    assert closed("deleted") == naive("2026-11-20T07:45")
    old, new = rows["again"]
    assert (when(old.started_at), when(old.stopped_at)) == (
        naive("2026-11-20T06:00"),
        naive("2026-11-20T09:30"),
    )
    assert (when(new.started_at), new.stopped_at) == (naive("2026-11-20T09:30"), None)
    assert [(r.id, r.stopped_at) for r in rows["same"]] == [(kept, None)]


def test_a_live_stop_closes_at_the_hubs_stop_time(db_url, make_settings):
    engine, recorder, directory = setup(db_url, make_settings)
    try:
        directory.upsert(running("hist-d-live", "2026-11-20T08:00"))
        recorder.reconcile_with(directory)
        directory.upsert(stopped("hist-d-live", "2026-11-20T09:59:30"))
        asyncio.run(recorder.flush())
        (row,) = sessions_of(engine, "hist-d-live")
    finally:
        engine.dispose()
    assert when(row.stopped_at) == naive("2026-11-20T09:59:30")
    assert row.duration_s == (at("2026-11-20T09:59:30") - at("2026-11-20T08:00")).total_seconds()


def test_an_older_answer_arriving_late_never_flips_a_server_back(db_url, make_settings):
    engine, recorder, directory = setup(db_url, make_settings)
    try:
        directory.upsert(running("hist-d-late", "2026-11-20T08:00"), fetched_at=10.0)
        recorder.reconcile_with(directory)
        # asked at 12 (stopped), answered first; the answer asked at 11 (running) comes later
        assert directory.upsert(stopped("hist-d-late", "2026-11-20T09:00"), fetched_at=12.0)
        assert not directory.upsert(running("hist-d-late", "2026-11-20T08:00"), fetched_at=11.0)
        assert directory.get("hist-d-late").servers[""].status == "stopped"
        # nor can a late "no such user" drop a user a newer answer showed
        assert not directory.remove("hist-d-late", fetched_at=11.5)
        assert directory.get("hist-d-late") is not None
        asyncio.run(recorder.flush())
        rows = sessions_of(engine, "hist-d-late")
    finally:
        engine.dispose()
    assert len(rows) == 1 and when(rows[0].stopped_at) == naive("2026-11-20T09:00")


def test_reconcile_twice_and_transitions_never_double_a_session(db_url, make_settings):
    engine, recorder, directory = setup(db_url, make_settings)
    try:
        directory.upsert(running("hist-d-dup", "2026-11-20T08:00"))
        asyncio.run(recorder.reconcile(directory))
        asyncio.run(recorder.reconcile(directory))  # a second replica, say
        directory.upsert(
            running("hist-d-dup", "2026-11-20T08:00").model_copy(update={"admin": True})
        )
        asyncio.run(recorder.flush())
        rows = sessions_of(engine, "hist-d-dup")
        # the database refuses a second open session whoever writes it
        with pytest.raises(IntegrityError), session_scope(engine) as session:
            session.add(ServerSession(user="hist-d-dup", server="", started_at=RESTART))
    finally:
        engine.dispose()
    assert len(rows) == 1 and rows[0].stopped_at is None


def test_seen_marks_only_open_sessions(db_url, make_settings):
    engine = prepared(db_url)
    try:
        open_id = add_session(engine, "hist-d-seen", "2026-11-20T08:00")
        done_id = add_session(
            engine, "hist-d-seen", "2026-11-19T08:00", "2026-11-19T09:00", server="x"
        )
        apply_ops(engine, [Seen(RESTART - timedelta(minutes=1))])
        rows = {r.id: r for r in sessions_of(engine, "hist-d-seen")}
    finally:
        engine.dispose()
    assert when(rows[open_id].seen_at) == naive("2026-11-20T09:59")
    assert rows[done_id].seen_at is None


def test_two_replicas_opening_the_same_session_at_once_leave_one(db_url):
    """Two recorders (two replicas) write the same open at the same instant: the database
    refuses the second; its batch is retried and then finds the session there."""
    import threading

    from hubkeeper.history.recorder import Open

    engine = prepared(db_url)
    barrier = threading.Barrier(2)
    recorders = [SessionRecorder(engine, clock=lambda: RESTART) for _ in range(2)]

    def replica(recorder: SessionRecorder) -> None:
        recorder._queue.append(Open("hist-d-twin", "", at("2026-11-20T09:00")))

        async def go() -> None:
            barrier.wait()
            await recorder.flush()  # one of the two fails and queues its batch again
            await recorder.flush()

        asyncio.run(go())

    try:
        threads = [threading.Thread(target=replica, args=(r,)) for r in recorders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        rows = sessions_of(engine, "hist-d-twin")
    finally:
        engine.dispose()
    assert len(rows) == 1 and rows[0].stopped_at is None
    assert all(r._queue == [] for r in recorders)
