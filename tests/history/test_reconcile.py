"""A fresh Hubkeeper reconciles the sessions in its database with what runs on the hub."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from hubkeeper.main import create_app
from tests.history.factories import add_session, prepared, sessions_of
from tests.waiting import wait_for

GONE = "hist-gone"  # an open session in the database, no server on the hub
RUNNING = "hist-running"  # a server started while Hubkeeper was down


def test_reconcile_closes_stale_sessions_and_opens_missing_ones(hub, make_settings, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'reconcile.sqlite'}"
    hub.create_users([GONE, RUNNING])
    engine = prepared(db_url)
    stale = add_session(engine, GONE, "2026-11-01T08:00")
    hub.start_server(RUNNING)
    try:
        with TestClient(create_app(make_settings(db_url))):
            closed = wait_for(
                lambda: [r for r in sessions_of(engine, GONE) if r.stopped_at is not None],
                30,
                "the stale session closed",
            )
            opened = wait_for(lambda: sessions_of(engine, RUNNING), 30, "a session opened")
            model = hub.server_model(RUNNING)
    finally:
        hub.stop_server(RUNNING)
        engine.dispose()
    assert [r.id for r in closed] == [stale]
    assert closed[0].stop_reason == "unknown" and closed[0].stopped_by is None
    assert closed[0].duration_s > 0
    assert len(opened) == 1 and opened[0].stopped_at is None
    # counted from when the hub started it, not from when Hubkeeper noticed
    hub_started = datetime.fromisoformat(model["started"].replace("Z", "+00:00"))
    assert opened[0].started_at.replace(tzinfo=UTC) == hub_started.astimezone(UTC)
