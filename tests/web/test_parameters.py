"""One API vocabulary: unknown query parameters are refused on every API route (a misspelt
filter must never widen a list), and `GET users` takes the users page's names and values
(state, group, the started sort), the former `status=` too. Against the real session hub."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.waiting import wait_for

GROUP = f"params-{uuid.uuid4().hex[:6]}"
RUNNER = f"params-run-{uuid.uuid4().hex[:6]}"
IDLE = f"params-idle-{uuid.uuid4().hex[:6]}"
OUTSIDER = f"params-out-{uuid.uuid4().hex[:6]}"

LIST_ENDPOINTS = [
    "users",
    "sessions",
    "usage",
    "culls",
    "exemptions",
    "lockdowns",
    "audit",
    "culler/preview",
    "notifications",
]
# every other API route answers an unknown parameter the same way (the check is the router's)
OTHER_READS = ["me", "directory", "lockdown", "culler", "health", "health/live"]


@pytest.fixture(scope="module")
def people(hub: Any, hubkeeper_server: Any) -> Any:
    hub.create_users([RUNNER, IDLE, OUTSIDER])
    hub.add_to_group(GROUP, [RUNNER, IDLE])
    hub.start_server(RUNNER)
    hk = hubkeeper_server.app.state.hk
    hk.loop.call_soon_threadsafe(hk.directory.sweep_soon)
    wait_for(
        lambda: (
            len(hk.directory.query_users(group=GROUP)[0]) == 2
            and hk.directory.query_users(state="running", q=RUNNER)[1] == 1
        ),
        timeout=60,
        what="the directory to see the group and the running server",
    )
    yield
    hub.stop_server(RUNNER)


@pytest.fixture
async def api(hubkeeper_server: Any, hub: Any) -> AsyncIterator[httpx.AsyncClient]:
    token = await asyncio.to_thread(hub.user_token, "admin")
    async with httpx.AsyncClient(
        base_url=hubkeeper_server.direct_url + "api/v1/",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    ) as client:
        yield client


@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS + OTHER_READS)
async def test_an_unknown_parameter_is_refused_and_named(api, endpoint):
    paged = ("users", "sessions", "culls", "exemptions", "lockdowns", "audit", "notifications")
    known = {"limit": 5} if endpoint in paged else {}
    response = await api.get(endpoint, params={"staus": "running", "zz": "1", **known})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "unknown_parameter"
    unknown_part = body["detail"].split(";")[0]
    assert "'staus'" in unknown_part and "'zz'" in unknown_part
    assert "limit" not in unknown_part  # a known one is not named as unknown


async def test_the_known_parameters_still_work(api, people):
    paged = ("users", "sessions", "culls", "exemptions", "lockdowns", "audit", "notifications")
    for endpoint in LIST_ENDPOINTS:
        response = await api.get(endpoint, params={"limit": 5} if endpoint in paged else {})
        assert response.status_code == 200, (endpoint, response.text)


async def test_a_write_with_an_unknown_parameter_changes_nothing(api, people):
    response = await api.post(f"users/{IDLE}/server/start", params={"dry_run": "1"})
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_parameter"
    user = (await api.get(f"users/{IDLE}")).json()
    assert all(s["status"] == "stopped" for s in user["servers"])


async def test_state_group_and_started_sort(api, people):
    def names(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [u["name"] for u in response.json()["items"]]

    in_group = names(await api.get("users", params={"group": GROUP}))
    assert in_group == sorted([RUNNER, IDLE])
    assert names(await api.get("users", params={"group": GROUP, "state": "running"})) == [RUNNER]
    assert names(await api.get("users", params={"group": GROUP, "state": "active"})) == [RUNNER]
    assert names(await api.get("users", params={"group": GROUP, "state": "stopped"})) == [IDLE]
    # started: the running one first (the other has no start), both ways
    for sort in ("started", "-started"):
        got = names(await api.get("users", params={"group": GROUP, "sort": sort}))
        assert got == [RUNNER, IDLE], sort
    assert names(await api.get("users", params={"group": "no-such-group"})) == []


async def test_the_former_status_name_keeps_working(api, people):
    """A script built from an old console URL (`?status=running`) gets what it asked for,
    never the whole list."""
    old = await api.get("users", params={"status": "running", "group": GROUP})
    new = await api.get("users", params={"state": "running", "group": GROUP})
    assert old.status_code == 200 and old.json() == new.json()
    assert [u["name"] for u in old.json()["items"]] == [RUNNER]
    # the page's old finer values map onto pending
    starting = await api.get("users", params={"status": "starting", "group": GROUP})
    assert starting.status_code == 200 and starting.json()["items"] == []
    same = await api.get("users", params={"status": "running", "state": "running"})
    assert same.status_code == 200
    clash = await api.get("users", params={"status": "stopped", "state": "running"})
    assert clash.status_code == 422 and clash.json()["error"] == "invalid_parameter"


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [
        ("users", {"state": "busy"}),
        ("users", {"sort": "id"}),
        ("users", {"limit": "0"}),
        ("sessions", {"since": "yesterday"}),
        ("sessions", {"limit": "many"}),
        ("audit", {"outcome": "meh"}),
        ("culls", {"until": "soon"}),
    ],
)
async def test_a_bad_value_is_invalid_parameter_whoever_finds_it(api, endpoint, params):
    response = await api.get(endpoint, params=params)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_parameter"


PAGE_BAD_VALUES = [
    ("users", {"state": "runing"}),
    ("users", {"status": "busy"}),
    ("users", {"sort": "id"}),
    ("users/rows", {"sort": "id"}),
    ("culls", {"reason": "idel"}),
    ("culls", {"kind": "notebook"}),
    ("notifications", {"event": "cull.nope"}),
    ("history", {"by": "course"}),
    ("history", {"reason": "timeout"}),
    ("audit", {"outcome": "meh"}),
    ("culler", {"bt_by": "course"}),
    ("culler", {"bt_days": "abc"}),
]


def test_a_page_refuses_a_filter_value_it_does_not_know(hubkeeper_server: Any) -> None:
    """The pages' URLs take the API's values: a misspelt one is a 422 page naming what is
    allowed, never the whole list (the users page once fell back to "any")."""
    from bs4 import BeautifulSoup

    from hubkeeper.auth.sessions import issue_session

    hk = hubkeeper_server.app.state.hk
    name, value, _ = asyncio.run(issue_session(hk, user="admin", role="admin"))
    with httpx.Client(
        base_url=hubkeeper_server.direct_url,
        cookies={name: value},
        timeout=30,
        follow_redirects=True,
    ) as client:
        for path, params in PAGE_BAD_VALUES:
            refused = client.get(path, params=params)
            assert refused.status_code == 422, (path, params, refused.status_code)
            page = BeautifulSoup(refused.text, "html.parser")
            assert page.select_one("[data-code]")["data-code"] == "invalid_parameter"
            ((_, bad),) = params.items()
            assert repr(bad) in page.get_text(), (path, params)
            back = page.select_one("a[data-without-filters]")["href"]
            assert back.endswith(path) and "?" not in back
        for path, params in [
            ("users", {"state": "running", "sort": "-cpu"}),
            ("users", {"status": "starting"}),  # the former name and value
            ("culls", {"reason": "max_age", "kind": "server"}),
            ("history", {"by": "profile"}),
            ("audit", {"outcome": "ok"}),
            ("culler", {"within": "5", "bt_by": "user", "bt_days": "7"}),
        ]:
            assert client.get(path, params=params).status_code == 200, (path, params)
