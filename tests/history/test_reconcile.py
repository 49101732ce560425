"""A fresh Hubkeeper reconciles the sessions in its database with what runs on the real hub:
sessions that ended while it was down close at the hub's stop time (never the restart time),
a server restarted meanwhile is two sessions, a server started meanwhile gets one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from hubkeeper.kit.clock import utcnow
from hubkeeper.main import create_app
from tests.history.factories import add_session, prepared, sessions_of
from tests.waiting import wait_for

GONE = "hist-gone"  # ran and stopped while Hubkeeper was down
RUNNING = "hist-running"  # started while Hubkeeper was down
AGAIN = "hist-again"  # stopped and started again while Hubkeeper was down


def hub_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stopped_model(hub, name: str) -> dict:  # noqa: ANN001
    """The hub's model of a stopped default server (only listed when asked for)."""
    response = hub.api("GET", f"/users/{name}", params={"include_stopped_servers": "1"})
    response.raise_for_status()
    return dict(response.json()["servers"][""])


def test_reconcile_closes_at_the_hubs_stop_time_and_opens_missing_ones(
    hub, make_settings, tmp_path
):
    db_url = f"sqlite:///{tmp_path / 'reconcile.sqlite'}"
    hub.create_users([GONE, RUNNING, AGAIN])
    engine = prepared(db_url)
    try:
        # AGAIN: an open session from an earlier run; the server now runs a new one.
        old_run = add_session(engine, AGAIN, "2026-11-01T08:00")

        def gone() -> tuple[int, datetime, datetime]:
            # GONE: its session was open when Hubkeeper went down; then the server stopped.
            hub.start_server(GONE)
            started = hub_time(hub.server_model(GONE)["started"])
            stale = add_session(engine, GONE, started.strftime("%Y-%m-%dT%H:%M:%S.%f"))
            hub.stop_server(GONE)
            return stale, started, hub_time(stopped_model(hub, GONE)["last_activity"])

        def started(name: str) -> datetime:
            hub.start_server(name)
            return hub_time(hub.server_model(name)["started"])

        # The three servers' histories are independent: played at once (starts take seconds).
        with ThreadPoolExecutor(3) as pool:
            gone_run = pool.submit(gone)
            again_run, running_run = pool.submit(started, AGAIN), pool.submit(started, RUNNING)
            stale, gone_started, gone_stopped = gone_run.result()
            again_started, running_started = again_run.result(), running_run.result()

        restarted_at = utcnow()
        with TestClient(create_app(make_settings(db_url))):
            closed = wait_for(
                lambda: [r for r in sessions_of(engine, GONE) if r.stopped_at is not None],
                30,
                "the stale session closed",
            )
            opened = wait_for(lambda: sessions_of(engine, RUNNING), 30, "a session opened")
            again = wait_for(
                lambda: len(rows := sessions_of(engine, AGAIN)) == 2 and rows,
                30,
                "the restarted server's two sessions",
            )
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(hub.stop_server, [RUNNING, AGAIN]))
        engine.dispose()
    assert [r.id for r in closed] == [stale]
    assert closed[0].stop_reason == "unknown" and closed[0].stopped_by is None
    # when the hub stopped it (its last_activity), not when Hubkeeper came back
    assert utc(closed[0].stopped_at) == gone_stopped < restarted_at
    assert closed[0].duration_s == (gone_stopped - gone_started).total_seconds()
    # counted from when the hub started it, not from when Hubkeeper noticed
    assert len(opened) == 1 and opened[0].stopped_at is None
    assert utc(opened[0].started_at) == running_started
    old, new = again
    assert old.id == old_run and utc(old.stopped_at) <= again_started
    assert old.stop_reason == "unknown"
    assert utc(new.started_at) == again_started and new.stopped_at is None
