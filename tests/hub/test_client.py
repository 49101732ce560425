"""HubClient against a real JupyterHub (the session hub, plus one of its own to break)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hubkeeper.demo.localhub import LocalHub, free_port
from hubkeeper.errors import Conflict, HubUnavailable, NotFound
from hubkeeper.hub.client import HubClient
from tests.waiting import wait_for_async

PAGED = [f"page-user-{i:03d}" for i in range(230)]
READY = ["page-user-005", "page-user-120", "page-user-228"]
ODD_NAME = "a b+c@d.e"  # space, plus and at-sign: every path segment must be quoted


@pytest.fixture
async def client(hub: LocalHub) -> AsyncIterator[HubClient]:
    hub_client = HubClient(hub.api_url, hub.service_token, timeout=30)
    try:
        yield hub_client
    finally:
        await hub_client.aclose()


@pytest.fixture(scope="module")
def paged_users(hub: LocalHub) -> list[str]:
    hub.create_users(PAGED)
    return PAGED


async def wait_for_status(client: HubClient, user: str, server: str, status: str) -> None:
    async def reached() -> bool:
        model = (await client.get_user(user)).servers.get(server)
        return (model.status if model else "stopped") == status

    await wait_for_async(reached, 30, f"{user}/{server} to become {status}")


async def test_list_users_returns_every_user_once_across_pages(client, paged_users):
    for page_size in (200, 37):
        users = await client.list_users(name_filter="page-user-", page_size=page_size)
        names = [user.name for user in users]
        assert len(names) == len(set(names)) == len(paged_users)
        assert set(names) == set(paged_users)


async def test_iter_user_pages_reports_the_hub_total(client, paged_users):
    pages = [page async for page in client.iter_user_pages(name_filter="page-user-")]
    assert [len(users) for users, _ in pages] == [200, 30]
    assert {total for _, total in pages} == {len(paged_users)}


async def test_state_ready_follows_next_through_short_pages(hub, client, paged_users):
    await asyncio.gather(*(asyncio.to_thread(hub.start_server, name) for name in READY))
    try:
        for page_size in (50, 1):
            pages = [
                users
                async for users, _ in client.iter_user_pages(
                    state="ready", name_filter="page-user-", page_size=page_size
                )
            ]
            names = [user.name for users in pages for user in users]
            assert sorted(names) == READY
            # The hub pages over users with an active server and drops the not-ready ones
            # from each page afterwards; the client follows `next`, whatever a page holds.
            assert len(pages) >= len(READY) // page_size
    finally:
        await asyncio.gather(*(asyncio.to_thread(hub.stop_server, name) for name in READY))


async def test_get_unknown_user_is_not_found(client):
    with pytest.raises(NotFound):
        await client.get_user("nobody-by-this-name")


async def test_default_server_start_twice_conflicts_and_stop_is_idempotent(hub, client):
    hub.create_users(["srv-default"])
    status = await client.start_server("srv-default")
    assert status in ("running", "starting")
    with pytest.raises(Conflict):
        await client.start_server("srv-default")
    await wait_for_status(client, "srv-default", "", "running")
    user = await client.get_user("srv-default")
    assert user.servers[""].url == "/user/srv-default/"
    assert await client.stop_server("srv-default") in ("stopped", "stopping")
    await wait_for_status(client, "srv-default", "", "stopped")
    # JupyterHub 6 answers 204 to stopping a stopped server: the client cannot tell it apart.
    assert await client.stop_server("srv-default") == "stopped"


async def test_named_server_start_and_stop(hub, client):
    hub.create_users(["srv-named"])
    assert await client.start_server("srv-named", "gpu") in ("running", "starting")
    await wait_for_status(client, "srv-named", "gpu", "running")
    user = await client.get_user("srv-named")
    assert user.servers["gpu"].url == "/user/srv-named/gpu/"
    assert "" not in user.servers or user.servers[""].status == "stopped"
    assert await client.stop_server("srv-named", "gpu", remove=True) in ("stopped", "stopping")
    await wait_for_status(client, "srv-named", "gpu", "stopped")


async def test_username_that_needs_quoting(hub, client):
    hub.create_users([ODD_NAME])
    assert (await client.get_user(ODD_NAME)).name == ODD_NAME
    await client.start_server(ODD_NAME)
    await wait_for_status(client, ODD_NAME, "", "running")
    await client.stop_server(ODD_NAME)
    await wait_for_status(client, ODD_NAME, "", "stopped")


async def test_progress_stream_ends_ready(hub, client):
    hub.create_users(["srv-progress"])
    await client.start_server("srv-progress")
    events = [event async for event in client.progress("srv-progress")]
    assert events and events[-1].ready
    assert not any(event.failed for event in events)
    await client.stop_server("srv-progress")
    await wait_for_status(client, "srv-progress", "", "stopped")


async def test_unreachable_hub_is_hub_unavailable():
    dead = HubClient(f"http://127.0.0.1:{free_port()}/hub/api", "no-token", timeout=2)
    try:
        with pytest.raises(HubUnavailable):
            await dead.info()
        with pytest.raises(HubUnavailable):
            await dead.list_users()
    finally:
        await dead.aclose()


@pytest.mark.own_hub
async def test_hub_stopped_during_a_paged_listing_is_hub_unavailable(tmp_path):
    """A hub of its own, stopped between two pages; it must leave no process behind."""
    doomed = LocalHub(tmp_path / "doomed")
    await asyncio.to_thread(doomed.start)
    try:
        doomed.create_users([f"doomed-{i:02d}" for i in range(30)])
        listing = HubClient(doomed.api_url, doomed.service_token, timeout=5)
        seen: list[str] = []
        with pytest.raises(HubUnavailable):
            async for users, _ in listing.iter_user_pages(page_size=10, pause=0.05):
                seen.extend(user.name for user in users)
                if len(seen) == 10:
                    await asyncio.to_thread(doomed.kill)
        assert len(seen) == 10
        await listing.aclose()
    finally:
        await asyncio.to_thread(doomed.stop)
    assert not doomed._own_processes()
