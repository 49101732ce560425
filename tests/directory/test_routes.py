"""The directory watches the proxy's routing table (free for the hub) and asks the hub only
about what changed (issue #14), on the real hub; the hub's own request log counts the cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hubkeeper.demo.localhub import SERVICE_SCOPES, LocalHub
from hubkeeper.directory.store import UserDirectory
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.servers import Route, ServerGateway, ServerUnreachable
from tests.serving import build_settings
from tests.waiting import wait_for_async

USER = "routes-watch-ann"
ACTOR = "routes-watch-admin"  # the hub logs requests by who made them: this test's own name


def _log_size(hub: LocalHub) -> int:
    return Path(hub.log_path).stat().st_size


def _hub_log_since(hub: LocalHub, offset: int) -> list[str]:
    with Path(hub.log_path).open() as log:
        log.seek(offset)
        return [line for line in log if f"({ACTOR}@" in line and "/hub/api/" in line]


@pytest.fixture
async def watched(hub, make_settings) -> AsyncIterator[tuple[UserDirectory, ServerGateway]]:
    await asyncio.to_thread(hub.create_users, [USER])
    await asyncio.to_thread(hub.create_users, [ACTOR], admin=True)
    token = hub.api(
        "POST",
        f"/users/{ACTOR}/tokens",
        token=hub.admin_token,
        json={"scopes": [s for s in SERVICE_SCOPES if s.startswith(("list:", "read:"))]},
    ).json()["token"]
    settings = make_settings(JUPYTERHUB_API_TOKEN=token)
    client = HubClient(settings.hub_api_url, token)
    gateway = ServerGateway.from_settings(client, settings)
    directory = UserDirectory(client, settings, routes=gateway)
    await directory.full_sweep()
    await directory.sync_by_routes(gateway)  # the first tick reconciles with the hub
    try:
        yield directory, gateway
    finally:
        await gateway.aclose()
        await client.aclose()
        await asyncio.to_thread(hub.stop_server, USER)


async def _tick_until(directory: UserDirectory, gateway, status: str, limit: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < limit:
        await directory.sync_by_routes(gateway)
        rows = directory.rows_for(USER)
        if rows and rows[0].status == status:
            return time.monotonic() - began
        await asyncio.sleep(0.2)
    raise AssertionError(f"{USER} never showed {status} within {limit} s")


async def test_a_start_and_a_stop_at_the_hub_cost_one_user_read_each(hub, watched, caplog):
    directory, gateway = watched
    caplog.set_level("WARNING", logger="hubkeeper.directory.store")
    # The hub logs a request after it has answered: the fixture's first-tick walk can reach
    # the log after we look (seen under load), and would count as this test's.
    await asyncio.sleep(1.0)
    offset = _log_size(hub)
    await asyncio.to_thread(hub.start_server, USER)  # behind Hubkeeper's back, until ready
    seen_in = await _tick_until(directory, gateway, "running", 3.0)
    await asyncio.to_thread(hub.stop_server, USER)
    seen_in = max(seen_in, await _tick_until(directory, gateway, "stopped", 3.0))
    await asyncio.sleep(1.0)  # the hub's log lines reach the file
    asked = _hub_log_since(hub, offset)
    walks = [line for line in asked if "&state=" in line]  # logged as state=[secret]
    # none, unless the proxy's API failed to answer meanwhile (a loaded machine): then the
    # tick falls back to the hub's list, as it must, and says so
    assert not walks or "proxy routes unavailable" in caplog.text, asked
    reads = [line for line in asked if f"/users/{USER}?" in line or f"/users/{USER} " in line]
    assert 1 <= len(reads) <= 4, asked  # the route change, and the pending stop re-read
    print(f"freshness: {seen_in:.2f} s; hub requests: {len(asked)}")


async def test_a_route_back_with_a_new_target_is_a_restart(hub, watched):
    directory, gateway = watched
    await asyncio.to_thread(hub.start_server, USER)
    await _tick_until(directory, gateway, "running", 3.0)
    before = directory.get(USER).servers[""].started
    # stop and start between two ticks: the route is back, at another port
    await asyncio.to_thread(hub.stop_server, USER)
    await asyncio.to_thread(hub.start_server, USER)
    await directory.sync_by_routes(gateway)
    assert directory.get(USER).servers[""].started != before


async def test_the_reconciliation_walks_paced_beside_the_ticks(hub, watched):
    directory, gateway = watched
    await asyncio.to_thread(hub.start_server, USER)
    await _tick_until(directory, gateway, "running", 3.0)
    offset = _log_size(hub)
    directory._reconciled_at = float("-inf")  # its interval is over
    began = time.monotonic()
    await directory.sync_by_routes(gateway)
    walk = directory._reconciling
    assert walk is not None  # in a task of its own: the tick did not wait for it
    assert time.monotonic() - began < 1.0
    await walk
    await asyncio.sleep(1.0)  # the hub's log lines reach the file
    asked = _hub_log_since(hub, offset)
    walked = [line for line in asked if "&state=" in line]
    assert walked and all("limit=50" in line for line in walked), asked
    assert directory.rows_for(USER)[0].status == "running" and directory.last_error is None
    assert directory.hub.pace.requests >= len(walked)  # each page in its turn of the share


class DownProxy:
    async def read_routes(self) -> dict[tuple[str, str], Route]:
        raise ServerUnreachable("The proxy API at http://127.0.0.1:1 did not answer")


async def test_a_proxy_api_that_is_down_falls_back_to_the_hub_and_says_so(hub, watched):
    directory, _gateway = watched
    offset = _log_size(hub)
    await directory.sync_by_routes(DownProxy())
    assert directory.routes_error and "did not answer" in directory.routes_error
    # the hub was asked instead: its log lines reach the file (logged as state=[secret])
    await wait_for_async(
        lambda: [line for line in _hub_log_since(hub, offset) if "&state=" in line],
        10,
        "the hub's log to show the active list asked for",
    )
    from hubkeeper.console.schemas import DirectoryStatus

    status = DirectoryStatus.of(directory)
    assert status.change_source == "proxy_routes" and status.routes_error


def test_health_says_where_changes_come_from(hubkeeper_server):
    import httpx

    health = httpx.get(hubkeeper_server.direct_url + "api/v1/health", timeout=30).json()
    assert health["changes"] == {"source": "proxy_routes", "detail": None}


async def test_a_user_created_at_the_hub_shows_at_the_next_recent_page(hub, watched):
    directory, gateway = watched
    newcomer = f"{USER}-new"
    await asyncio.to_thread(hub.create_users, [newcomer])  # no server: no route to show it
    directory._recent_at = float("-inf")  # the recent page is due
    await directory.sync_by_routes(gateway)
    assert directory.get(newcomer) is not None  # the page's total said someone was new


SLOW_STOPPER = "routes-slowstop-bo"  # the slow hub's spawner takes 4 s to stop "*slowstop*"


async def test_a_stop_still_pending_when_its_route_vanished_is_followed_up(
    slow_hub, tmp_path, monkeypatch
):
    """The hub deletes the route, then stops the server (4 s here), then clears the pending
    flag: the re-read the vanished route triggers says "stop pending". The follow-ups read
    the user again each second, so the stop shows about a second after the hub finishes,
    not at the next pending re-read (set to 60 s here, so only a follow-up can show it)."""
    from hubkeeper.directory import sync

    monkeypatch.setattr(sync, "FOLLOW_UP_FOR", 30.0)  # a loaded machine stops slower than 4 s
    await asyncio.to_thread(slow_hub.create_users, [SLOW_STOPPER])
    settings = build_settings(
        slow_hub,
        f"sqlite:///{tmp_path / 'unused.sqlite'}",
        tmp_path,
        HUBKEEPER_ACTIVE_SYNC_INTERVAL="60",
    )
    client = HubClient(settings.hub_api_url, settings.hub_api_token)
    gateway = ServerGateway.from_settings(client, settings)
    directory = UserDirectory(client, settings, routes=gateway)
    try:
        await asyncio.to_thread(slow_hub.start_server, SLOW_STOPPER)
        await directory.full_sweep()
        await directory.sync_by_routes(gateway)
        assert directory.rows_for(SLOW_STOPPER)[0].status == "running"

        response = await asyncio.to_thread(slow_hub.api, "DELETE", f"/users/{SLOW_STOPPER}/server")
        assert response.status_code == 202  # the slow hub's grace is zero: still stopping
        hub_done: float | None = None
        while True:
            await directory.sync_by_routes(gateway)
            status = directory.rows_for(SLOW_STOPPER)[0].status
            if status == "stopped":
                break
            model = await asyncio.to_thread(slow_hub.server_model, SLOW_STOPPER)
            if hub_done is None and not model:
                hub_done = time.monotonic()
            assert status in ("running", "stopping", "pending"), status
            assert hub_done is None or time.monotonic() - hub_done < 3.0, (
                "the hub had finished the stop 3 s ago and the directory still says " + status
            )
            await asyncio.sleep(0.2)
        assert not directory._follow_ups  # done with: no more reads
    finally:
        await gateway.aclose()
        await client.aclose()
        await asyncio.to_thread(slow_hub.stop_server, SLOW_STOPPER)
