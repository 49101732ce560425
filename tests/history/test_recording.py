"""Sessions recorded from what the shared Hubkeeper's directory sees, against the real hub.

Each test stops the servers it starts, in a `finally`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hubkeeper.db.engine import create_db_engine
from tests.history.factories import sessions_of
from tests.waiting import wait_for

ADMIN_STOPPED = "hist-ann"
HUB_STOPPED = "hist-ben"


@pytest.fixture(scope="module")
def admin(hub, hubkeeper_server) -> Iterator[httpx.Client]:
    hub.create_users([ADMIN_STOPPED, HUB_STOPPED])
    with httpx.Client(
        base_url=hubkeeper_server.direct_url,
        headers={"Authorization": f"token {hub.user_token('admin')}"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture(scope="module")
def engine(hubkeeper_server) -> Iterator[Any]:
    engine = create_db_engine(hubkeeper_server.settings.database_url)
    yield engine
    engine.dispose()


def open_session(engine: Any, user: str) -> Any:
    rows = [r for r in sessions_of(engine, user) if r.stopped_at is None]
    return rows[-1] if rows else None


def closed_sessions(engine: Any, user: str) -> list[Any]:
    return [r for r in sessions_of(engine, user) if r.stopped_at is not None]


def stop_quietly(hub: Any, user: str) -> None:
    if (hub.server_model(user) or {}).get("ready"):
        hub.stop_server(user)


def test_a_server_stopped_through_hubkeeper_is_an_admin_stop(hub, admin, engine):
    before = len(closed_sessions(engine, ADMIN_STOPPED))
    try:
        started = admin.post(f"api/v1/users/{ADMIN_STOPPED}/server/start")
        assert started.status_code == 200, started.text
        wait_for(lambda: (hub.server_model(ADMIN_STOPPED) or {}).get("ready"), 60, "the server")
        opened = wait_for(lambda: open_session(engine, ADMIN_STOPPED), 20, "an open session")
        assert opened.stop_reason is None

        listed = admin.get("api/v1/sessions", params={"user": ADMIN_STOPPED}).json()
        assert listed["items"][0]["stopped_at"] is None
        assert listed["items"][0]["duration_s"] >= 0

        stopped = admin.post(f"api/v1/users/{ADMIN_STOPPED}/server/stop")
        assert stopped.status_code == 200, stopped.text
        wait_for(
            lambda: len(closed_sessions(engine, ADMIN_STOPPED)) > before, 30, "a closed session"
        )
    finally:
        stop_quietly(hub, ADMIN_STOPPED)
    session = closed_sessions(engine, ADMIN_STOPPED)[-1]
    assert session.id == opened.id
    assert (session.stop_reason, session.stopped_by) == ("admin", "admin")
    assert session.duration_s > 0
    assert open_session(engine, ADMIN_STOPPED) is None

    item = admin.get("api/v1/sessions", params={"user": ADMIN_STOPPED}).json()["items"][0]
    assert item["id"] == session.id and item["stop_reason"] == "admin"
    assert item["stopped_by"] == "admin" and item["server"] == ""
    assert item["started_at"].endswith("+00:00") and item["stopped_at"].endswith("+00:00")
    assert item["duration_s"] > 0


def test_a_server_stopped_on_the_hub_is_an_unknown_stop(hub, admin, engine):
    before = len(closed_sessions(engine, HUB_STOPPED))
    try:
        hub.start_server(HUB_STOPPED)
        opened = wait_for(lambda: open_session(engine, HUB_STOPPED), 20, "an open session")
        model = hub.server_model(HUB_STOPPED)
        assert opened.started_at.replace(tzinfo=None) == _naive(model["started"])
        hub.stop_server(HUB_STOPPED)
        wait_for(lambda: len(closed_sessions(engine, HUB_STOPPED)) > before, 30, "a closed session")
    finally:
        stop_quietly(hub, HUB_STOPPED)
    session = closed_sessions(engine, HUB_STOPPED)[-1]
    assert (session.stop_reason, session.stopped_by) == ("unknown", None)
    assert session.duration_s > 0
    unknown = admin.get("api/v1/sessions", params={"stop_reason": "unknown"}).json()
    assert session.id in [i["id"] for i in unknown["items"]]


def _naive(text: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


def test_a_server_stopped_by_a_lockdown_is_a_lockdown_stop(hub, admin, engine):
    user = "hist-cy"
    hub.create_users([user])
    before = len(closed_sessions(engine, user))
    try:
        hub.start_server(user)
        wait_for(lambda: open_session(engine, user), 20, "an open session")
        locked = admin.post("api/v1/lockdown", json={"reason": "hist-test: sessions"})
        assert locked.status_code == 200, locked.text
        job = locked.json()["job"]
        wait_for(lambda: admin.get(f"api/v1/jobs/{job}").json()["state"] == "done", 60, "the job")
        wait_for(lambda: len(closed_sessions(engine, user)) > before, 30, "a closed session")
    finally:
        assert admin.delete("api/v1/lockdown").status_code in (200, 409)
        stop_quietly(hub, user)
    session = closed_sessions(engine, user)[-1]
    assert (session.stop_reason, session.stopped_by) == ("lockdown", "admin")


def test_a_server_started_with_a_profile_records_it(hub, admin, engine):
    """POST /users/{name}/server with a JSON body: the body is the server's user_options."""
    user = "hist-gpu"
    hub.create_users([user])
    try:
        response = hub.api("POST", f"/users/{user}/server", json={"profile": "gpu", "cpus": 2})
        assert response.status_code in (201, 202), response.text
        wait_for(lambda: (hub.server_model(user) or {}).get("ready"), 60, "the server")
        assert hub.server_model(user)["user_options"]["profile"] == "gpu"
        opened = wait_for(lambda: open_session(engine, user), 20, "an open session")
        assert opened.profile == "gpu"
        item = admin.get("api/v1/sessions", params={"user": user}).json()["items"][0]
        assert (item["id"], item["profile"]) == (opened.id, "gpu")
    finally:
        stop_quietly(hub, user)
    plain = admin.get("api/v1/sessions", params={"user": ADMIN_STOPPED}).json()["items"]
    assert all(i["profile"] is None for i in plain), "started without user_options: default"
