"""The console API against a real hub: reads, start/stop with conflicts, stop-all jobs, spawn
progress, roles, errors. Hubkeeper runs on the hub's service port (`hubkeeper_server`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from hubkeeper.demo.localhub import MANAGERS_GROUP
from tests.waiting import wait_for_async


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def tokens(hub: Any) -> dict[str, str]:
    """API tokens: the hub admin `admin`, a manager, and a user with no Hubkeeper role."""
    manager, nobody = unique("mgr"), unique("nobody")
    hub.create_users([manager, nobody])
    hub.add_to_group(MANAGERS_GROUP, [manager])
    return {
        "admin": hub.user_token("admin"),
        "manager": hub.user_token(manager),
        "nobody": hub.user_token(nobody),
    }


@pytest.fixture
async def api(hubkeeper_server: Any, tokens: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client for `<service prefix>api/v1/`."""
    async with httpx.AsyncClient(
        base_url=hubkeeper_server.direct_url + "api/v1/",
        headers={"Authorization": f"token {tokens['admin']}"},
        timeout=60,
    ) as client:
        yield client


@pytest.fixture
async def manager_api(
    hubkeeper_server: Any, tokens: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=hubkeeper_server.direct_url + "api/v1/",
        headers={"Authorization": f"Bearer {tokens['manager']}"},
        timeout=60,
    ) as client:
        yield client


def path(name: str, server: str = "") -> str:
    user = quote(name, safe="")
    return f"users/{user}/servers/{quote(server, safe='')}" if server else f"users/{user}/server"


async def make_users(hub: Any, *names: str) -> None:
    await asyncio.to_thread(hub.create_users, list(names))


def is_utc_iso(value: str | None) -> bool:
    return value is None or datetime.fromisoformat(value).utcoffset() is not None


# --- errors and roles ------------------------------------------------------------------------
async def test_json_error_shape_for_an_unknown_user(api):
    response = await api.get("users/no-such-user-anywhere")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "user_not_found"
    assert "no-such-user-anywhere" in body["detail"]


async def test_no_token_is_401_and_a_user_without_a_role_is_403(hubkeeper_server, tokens):
    base = hubkeeper_server.direct_url + "api/v1/"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        anonymous = await client.get("users")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]
        nobody = await client.get("users", headers={"Authorization": f"token {tokens['nobody']}"})
        assert nobody.status_code == 403
        assert set(nobody.json()) == {"error", "detail"}


async def test_a_manager_reads_but_may_not_act(manager_api, hub):
    name = unique("mread")
    await make_users(hub, name)
    # reading one user the directory does not know yet fetches it from the hub
    assert (await manager_api.get(f"users/{name}")).status_code == 200
    listed = await manager_api.get("users", params={"q": name})
    assert listed.status_code == 200
    assert [u["name"] for u in listed.json()["items"]] == [name]
    assert (await manager_api.get("directory")).status_code == 200
    assert (await manager_api.get("audit")).status_code == 200
    for attempt in (
        manager_api.post(f"{path(name)}/start"),
        manager_api.post(f"{path(name)}/stop"),
        manager_api.post("servers/stop-all", json={"reason": "no"}),
    ):
        response = await attempt
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
    assert (await asyncio.to_thread(hub.server_model, name)) is None


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "id"},
        {"sort": "; drop table"},
        {"state": "busy"},
        {"status": "busy"},
        {"state": "running", "status": "stopped"},
        {"limit": "0"},
        {"limit": "501"},
        {"offset": "-1"},
        {"limit": "many"},
        {"q": "x" * 300},
    ],
)
async def test_bad_query_values_are_422_not_500(api, params):
    response = await api.get("users", params=params)
    assert response.status_code == 422
    # the same code for a bad parameter whichever check finds it
    assert response.json()["error"] == "invalid_parameter"


async def test_weird_names_are_404_or_422_never_500(api):
    for name in ("%00", "a%0Ab", "..", "x" * 300, "%F0%9F%98%80", "a b"):
        response = await api.get(f"users/{name}")
        assert response.status_code in (404, 422), (name, response.text)
        assert set(response.json()) == {"error", "detail"}
    response = await api.post("users/nobody-at-all-here/server/start")
    assert response.status_code == 404
    assert response.json()["error"] == "user_not_found"


# --- reads ---------------------------------------------------------------------------------
async def test_users_list_filters_sorts_and_pages(api, hub):
    prefix = unique("list")
    names = [f"{prefix}-{c}" for c in "abc"]
    await make_users(hub, *names)
    # known to the directory at once: unknown users are read from the hub on demand, and the
    # active sync picks up new users within seconds

    async def listed() -> dict[str, Any] | None:
        body = (await api.get("users", params={"q": prefix.upper()})).json()
        return body if body["total"] == 3 else None

    body = await wait_for_async(listed, 15, "the three users in the list", interval=0.3)
    assert body["total"] == 3 and body["offset"] == 0 and body["limit"] == 50
    assert [u["name"] for u in body["items"]] == names
    desc = (await api.get("users", params={"q": prefix, "sort": "-name", "limit": 2})).json()
    assert [u["name"] for u in desc["items"]] == names[::-1][:2] and desc["total"] == 3
    paged = (await api.get("users", params={"q": prefix, "offset": 2})).json()
    assert [u["name"] for u in paged["items"]] == names[2:]
    stopped = (await api.get("users", params={"q": prefix, "state": "stopped"})).json()
    assert stopped["total"] == 3
    running = (await api.get("users", params={"q": prefix, "state": "running"})).json()
    assert running["total"] == 0

    user = body["items"][0]
    assert set(user) == {"name", "admin", "groups", "last_activity", "servers"}
    assert user["servers"] == [
        {
            "name": "",
            "status": "stopped",
            "started": None,
            "last_activity": None,
            "url": f"/user/{names[0]}/",
            "resources": None,  # memory and CPU: only for a running server
        }
    ]


async def test_get_one_user_reads_the_hub_when_the_directory_does_not_know_it_yet(api, hub):
    name = unique("fresh")
    await make_users(hub, name)
    response = await api.get(f"users/{name}")  # straight after creation: before any sync
    assert response.status_code == 200
    assert response.json()["name"] == name


async def test_since_version_answers_204_when_nothing_changed(api):
    status = (await api.get("directory")).json()
    assert set(status) >= {"synced_at", "lag_seconds", "stale", "last_error", "counts"}
    assert set(status["counts"]) == {"running", "starting", "stopping", "stopped", "users"}
    assert is_utc_iso(status["synced_at"])
    response = await api.get("users", params={"since": status["version"]})
    assert response.status_code in (200, 204)  # 200 only if a sync landed in between
    if response.status_code == 204:
        assert response.content == b""
    assert (await api.get("users", params={"since": -1})).status_code == 200


# --- actions -------------------------------------------------------------------------------
async def test_start_and_stop_the_default_server_with_conflicts(api, hub):
    name = unique("ss")
    await make_users(hub, name)
    started = await api.post(f"{path(name)}/start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] in ("running", "pending")
    await asyncio.to_thread(hub.start_server, name)  # waits until ready
    again = await api.post(f"{path(name)}/start")
    assert again.status_code == 409
    assert again.json()["error"] == "already_running"

    user = (await api.get(f"users/{name}")).json()
    assert user["servers"][0]["status"] == "running"
    assert is_utc_iso(user["servers"][0]["started"]) and user["servers"][0]["started"]
    assert (await api.get("users", params={"q": name, "state": "running"})).json()["total"] == 1

    stopped = await api.post(f"{path(name)}/stop")
    assert stopped.status_code == 200
    assert stopped.json()["status"] in ("stopped", "pending")
    await asyncio.to_thread(hub.stop_server, name)
    again = await api.post(f"{path(name)}/stop")
    assert again.status_code == 409
    assert again.json()["error"] == "already_stopped"

    audit = (await api.get("audit", params={"target": name, "limit": 10})).json()
    actions = [(e["action"], e["outcome"], e["actor"], e["via"]) for e in audit["items"]]
    assert actions == [
        ("server.stop", "failed", "admin", "api"),
        ("server.stop", "ok", "admin", "api"),
        ("server.start", "failed", "admin", "api"),
        ("server.start", "ok", "admin", "api"),
    ]
    assert "already stopped" in audit["items"][0]["error"]


async def test_named_servers_and_names_that_need_quoting(api, hub):
    name = unique("o'neil+q@lab")
    await make_users(hub, name)
    assert (await api.get(f"users/{quote(name, safe='')}")).json()["name"] == name
    missing = await api.post(f"{path(name, 'gpu')}/stop")
    assert missing.status_code == 404
    assert missing.json()["error"] == "server_not_found"
    started = await api.post(f"{path(name, 'gpu')}/start")
    assert started.status_code == 200, started.text
    try:
        await asyncio.to_thread(hub.start_server, name, "gpu")
        user = (await api.get(f"users/{quote(name, safe='')}")).json()
        statuses = {s["name"]: s["status"] for s in user["servers"]}
        # the hub may also list a (stopped) default server once the user has a spawner
        assert statuses.pop("gpu") == "running"
        assert set(statuses.values()) <= {"stopped"}
        gpu = next(s for s in user["servers"] if s["name"] == "gpu")
        assert gpu["url"].endswith("/gpu/")
    finally:
        stopped = await api.post(f"{path(name, 'gpu')}/stop")
        assert stopped.status_code == 200
        await asyncio.to_thread(hub.stop_server, name, "gpu")
    # stopped named servers stay listed
    user = (await api.get(f"users/{quote(name, safe='')}")).json()
    assert ("gpu", "stopped") in [(s["name"], s["status"]) for s in user["servers"]]
    audit = (await api.get("audit", params={"target": f"{name}/gpu"})).json()
    assert {e["action"] for e in audit["items"]} == {"server.start", "server.stop"}


async def test_spawn_progress_is_relayed_as_server_sent_events(api, hub):
    name = unique("prog")
    await make_users(hub, name)
    assert (await api.post(f"{path(name)}/start")).status_code == 200
    try:
        events: list[dict[str, Any]] = []
        async with api.stream("GET", f"{path(name)}/progress") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "no-cache" in response.headers["cache-control"]
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        assert events and events[-1].get("ready") is True
    finally:
        await asyncio.to_thread(hub.stop_server, name)


async def test_progress_of_an_unknown_user_is_404_json(api):
    response = await api.get("users/nobody-zz-top/server/progress")
    assert response.status_code == 404
    assert response.json()["error"] == "user_not_found"


async def test_stop_all_stops_every_running_server_as_a_job(api, hub):
    names = [unique("all") for _ in range(3)]
    await make_users(hub, *names)
    await asyncio.gather(  # together: one after another took ~40 s on a loaded machine
        *(asyncio.to_thread(hub.start_server, name) for name in names),
        asyncio.to_thread(hub.start_server, names[0], "second"),
    )

    bad = await api.post("servers/stop-all", json={})
    assert bad.status_code == 422
    accepted = await api.post("servers/stop-all", json={"reason": "maintenance window"})
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["total"] >= 4
    job_id = body["job"]

    async def finished() -> dict[str, Any] | None:
        job = (await api.get(f"jobs/{job_id}")).json()
        return job if job["state"] == "done" else None

    job = await wait_for_async(finished, 90, "the stop-all job", interval=0.3)
    assert job == {"state": "done", "total": body["total"], "done": body["total"], "failed": []}
    for name in names:
        model = await asyncio.to_thread(hub.server_model, name)
        assert model is None or not model["ready"]  # the hub omits stopped servers here

    summary = (await api.get("audit", params={"action": "servers.stop_all"})).json()["items"][0]
    assert summary["outcome"] == "ok" and summary["actor"] == "admin"
    assert "maintenance window" in summary["detail"]
    assert f"stopped {body['total']} of {body['total']}" in summary["detail"]
    per_server = (await api.get("audit", params={"action": "server.stop", "limit": 50})).json()
    targets = {e["target"] for e in per_server["items"] if e["detail"].startswith("stop-all;")}
    assert {*names, f"{names[0]}/second"} <= targets

    assert (await api.get("jobs/not-a-job")).status_code == 404
    listed = (await api.get("users", params={"q": "all-", "state": "running"})).json()
    assert not set(names) & {u["name"] for u in listed["items"]}
