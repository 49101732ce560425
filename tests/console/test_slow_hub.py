"""A hub that answers 202 ("still going") to every start and stop.

The session hub starts and stops local servers within its 10 s grace, so it always answers
201/204. This hub has its grace set to zero (`slow_spawn_timeout`, `slow_stop_timeout` are
real hub settings), which is what a busy production hub with slow spawners looks like: the
API must say "pending", and stop-all must wait for each stop to finish before counting it.
The hub is the session's `slow_hub` (tests/conftest.py, shared with culler/test_slow_hub.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hubkeeper.demo.localhub import LocalHub
from hubkeeper.main import create_app
from tests.conftest import build_settings
from tests.waiting import wait_for

USERS = ["slow-ann", "slow-ben", "slow-cy"]


@pytest.fixture
def api(slow_hub: LocalHub, tmp_path: Any) -> Iterator[TestClient]:
    settings = build_settings(
        slow_hub,
        f"sqlite:///{tmp_path / 'hk.sqlite'}",
        tmp_path,
        HUBKEEPER_ACTIVE_SYNC_INTERVAL="0.5",
    )
    slow_hub.create_users(USERS)  # existing ones are fine
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"token {slow_hub.user_token('admin')}"
        yield client


def server_status(client: TestClient, user: str) -> str:
    body = client.get(f"/services/hubkeeper/api/v1/users/{user}").json()
    return str(body["servers"][0]["status"]) if body["servers"] else "stopped"


def test_start_and_stop_answer_pending_then_settle(api: TestClient, slow_hub: LocalHub) -> None:
    started = api.post("/services/hubkeeper/api/v1/users/slow-ann/server/start")
    assert started.status_code == 200
    # answered as soon as the hub has the spawn under way, with where to follow it
    assert started.json() == {
        "status": "pending",
        "progress_url": "/services/hubkeeper/api/v1/users/slow-ann/server/progress",
    }
    wait_for(lambda: server_status(api, "slow-ann") == "running")
    stopped = api.post("/services/hubkeeper/api/v1/users/slow-ann/server/stop")
    assert stopped.status_code == 200
    assert stopped.json() == {"status": "pending"}
    wait_for(lambda: server_status(api, "slow-ann") == "stopped")


def test_stop_all_waits_for_pending_stops(api: TestClient, slow_hub: LocalHub) -> None:
    for name in ("slow-ben", "slow-cy"):
        slow_hub.start_server(name)
    accepted = api.post("/services/hubkeeper/api/v1/servers/stop-all", json={"reason": "slow"})
    assert accepted.status_code == 202
    job_id = accepted.json()["job"]
    assert accepted.json()["total"] == 2

    def done() -> bool:
        return api.get(f"/services/hubkeeper/api/v1/jobs/{job_id}").json()["state"] == "done"

    wait_for(done, timeout=60, what="the stop-all job")
    job = api.get(f"/services/hubkeeper/api/v1/jobs/{job_id}").json()
    assert job == {"state": "done", "total": 2, "done": 2, "failed": []}
    for name in ("slow-ben", "slow-cy"):
        model = slow_hub.server_model(name)
        assert model is None or (not model.get("ready") and not model.get("pending"))
