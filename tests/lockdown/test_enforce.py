"""Lockdown that holds: no server runs while the hub is locked, whatever let it start.

Each case on a real hub other than the session hub (its spawn hook reaches the shared
Hubkeeper, and an enforcing Hubkeeper would stop other tests' servers):
- a hub WITHOUT the spawn hook (`LocalHub(spawn_hook=False)`) starts a server while locked;
- a hub WITH the hook lets a spawn through while Hubkeeper is down (the hook fails open:
  the apps here run in a TestClient, so nothing listens where the hook asks);
- a spawn already past the hook (slow to start) is pending when the lock is set.
Each time the enforcement loop stops the server within seconds, records the session's
stop reason `lockdown` and audits the stop as the system (actor `lockdown`, via `system`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hubkeeper.demo.localhub import LocalHub
from hubkeeper.main import create_app
from tests.conftest import build_settings
from tests.history.factories import prepared, sessions_of
from tests.waiting import wait_for

ENFORCED_WITHIN = 10.0  # s, generous for a loaded machine (a pass every 2 s, a stop ~1 s)

# Spawns of users named enf-slow* wait 30 s in the hook (past the hub's 10 s grace: the
# hub answers 202 and the spawn stays pending), as a slow spawner would.
SLOW_SPAWNS = """
import asyncio as _asyncio

async def _slow_for_some(spawner):
    if spawner.user.name.startswith("enf-slow"):
        await _asyncio.sleep(30)

c.Spawner.pre_spawn_hook = _slow_for_some
"""


@pytest.fixture(scope="module")
def bare_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    hub = LocalHub(tmp_path_factory.mktemp("bare"), spawn_hook=False, extra_config=SLOW_SPAWNS)
    try:
        hub.start()
        hub.create_users(["enf-ann", "enf-slow-ben"])
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def hooked_hub(activity_hub: LocalHub) -> LocalHub:
    """A hub WITH the hook where nothing listens on the service port: the session's spare
    `activity_hub` (tests/conftest.py; its Hubkeeper-s are TestClients), not one of its own."""
    activity_hub.create_users(["enf-cy"])
    return activity_hub


def app_for(hub: LocalHub, tmp_path: Path) -> Any:
    return create_app(build_settings(hub, f"sqlite:///{tmp_path / 'hk.sqlite'}", tmp_path))


def admin_headers(hub: LocalHub) -> dict[str, str]:
    return {"Authorization": f"token {hub.user_token('admin')}"}


def is_down(hub: LocalHub, name: str) -> bool:
    model = hub.server_model(name)
    return model is None or (not model.get("ready") and not model.get("pending"))


def lock(client: TestClient, headers: dict[str, str], reason: str) -> None:
    # stop_servers=false: no stop-all job; whatever is stopped, the loop stopped
    response = client.post(
        "/api/v1/lockdown", json={"reason": reason, "stop_servers": False}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["job"] is None


def lockdown_stops(client: TestClient, headers: dict[str, str], user: str) -> list[Any]:
    response = client.get(
        "/api/v1/audit", params={"action": "server.stop", "target": user}, headers=headers
    )
    return [e for e in response.json()["items"] if e["actor"] == "lockdown"]


def assert_recorded_as_lockdown(client, headers, engine, user: str) -> None:  # noqa: ANN001
    (stop,) = wait_for(lambda: lockdown_stops(client, headers, user), 10, "the audited stop")
    assert (stop["via"], stop["outcome"]) == ("system", "ok")
    assert "lockdown enforcement" in stop["detail"]
    closed = wait_for(
        lambda: [s for s in sessions_of(engine, user) if s.stopped_at is not None],
        10,
        "the closed session",
    )
    assert [(s.stop_reason, s.stopped_by) for s in closed] == [("lockdown", "lockdown")]


def ready_directory(client: TestClient, headers: dict[str, str]) -> None:
    wait_for(
        lambda: client.get("/api/v1/directory", headers=headers).json()["ready"],
        30,
        "the first sweep",
    )


def test_a_hub_without_the_spawn_hook_is_held_locked(bare_hub: LocalHub, tmp_path: Path) -> None:
    headers = admin_headers(bare_hub)
    engine = prepared(f"sqlite:///{tmp_path / 'hk.sqlite'}")
    try:
        with TestClient(app_for(bare_hub, tmp_path)) as client:
            ready_directory(client, headers)
            lock(client, headers, "enf-test: no hook")
            # Nothing at the hub's door: it starts the server. 201 = it came up; a 500 =
            # the enforcement interrupted it while it was still starting.
            started = bare_hub.api("POST", "/users/enf-ann/server", json={})
            assert started.status_code in (201, 500), started.text
            wait_for(lambda: is_down(bare_hub, "enf-ann"), ENFORCED_WITHIN, "the stop")
            if started.status_code == 201:
                assert_recorded_as_lockdown(client, headers, engine, "enf-ann")
            else:
                (stop,) = wait_for(
                    lambda: lockdown_stops(client, headers, "enf-ann"), 10, "the audit"
                )
                assert (stop["via"], stop["outcome"]) == ("system", "ok")
            assert client.delete("/api/v1/lockdown", headers=headers).status_code == 200
    finally:
        bare_hub.stop_server("enf-ann")
        engine.dispose()


def test_a_spawn_pending_when_the_lock_is_set_never_comes_up(
    bare_hub: LocalHub, tmp_path: Path
) -> None:
    user = "enf-slow-ben"
    headers = admin_headers(bare_hub)
    try:
        with TestClient(app_for(bare_hub, tmp_path)) as client:
            ready_directory(client, headers)
            # The hub holds the request up to 10 s, then answers 202: ask in a thread.
            asking = threading.Thread(
                target=bare_hub.api, args=("POST", f"/users/{user}/server"), kwargs={"json": {}}
            )
            asking.start()
            wait_for(
                lambda: (bare_hub.server_model(user) or {}).get("pending") == "spawn",
                30,
                "the pending spawn",
            )
            lock(client, headers, "enf-test: pending spawn")
            wait_for(lambda: is_down(bare_hub, user), ENFORCED_WITHIN, "the interrupted spawn")
            asking.join(30)
            time.sleep(3)  # the interrupted spawn does not finish later
            assert is_down(bare_hub, user)
            (stop,) = wait_for(lambda: lockdown_stops(client, headers, user), 10, "the audit")
            assert (stop["via"], stop["outcome"]) == ("system", "ok")
            # it never ran: no session, and its next run's stop is not taken for a lockdown's
            history = client.app.state.hk.history  # type: ignore[attr-defined]
            wait_for(lambda: (user, "") not in history._expected, 10, "the stop forgotten")
            assert client.delete("/api/v1/lockdown", headers=headers).status_code == 200
    finally:
        bare_hub.stop_server(user)


def test_a_spawn_let_through_while_hubkeeper_was_down_is_stopped_when_it_returns(
    hooked_hub: LocalHub, tmp_path: Path
) -> None:
    user = "enf-cy"
    headers = admin_headers(hooked_hub)
    engine = prepared(f"sqlite:///{tmp_path / 'hk.sqlite'}")
    try:
        with TestClient(app_for(hooked_hub, tmp_path)) as client:
            lock(client, headers, "enf-test: while down")
        # Hubkeeper is down: the hub's hook cannot ask it and lets the spawn through.
        hooked_hub.start_server(user)
        with TestClient(app_for(hooked_hub, tmp_path)) as client:
            wait_for(lambda: is_down(hooked_hub, user), ENFORCED_WITHIN, "the stop")
            # the session it ran (opened at the hub's start) is closed as a lockdown stop
            assert_recorded_as_lockdown(client, headers, engine, user)
            assert client.delete("/api/v1/lockdown", headers=headers).status_code == 200
    finally:
        hooked_hub.stop_server(user)
        engine.dispose()
