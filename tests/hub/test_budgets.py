"""Interactive hub requests (token checks, page reads) never queue behind bulk work.

A real hub whose spawns of `budget-*` users hang in a slow spawn hook: the hub holds each
start request its full 10 s grace (`slow_spawn_timeout`) before answering 202 — a busy
production hub during a stop-all or a cull pass looks like this. With the bulk budget
filled by such calls (and more queued behind them), an identity check and a user read
through the interactive budget still answer while every bulk call is still waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from hubkeeper.demo.localhub import LocalHub
from hubkeeper.hub.client import HubClient
from tests.waiting import wait_for_async

BULK = 2
SLOW = """
import asyncio as _asyncio

async def _hang_budget_spawns(spawner):
    if spawner.user.name.startswith("budget-"):
        await _asyncio.sleep(60)

c.Spawner.pre_spawn_hook = _hang_budget_spawns
"""
USERS = [f"budget-{i}" for i in range(BULK * 2)]


@pytest.fixture(scope="module")
def hanging_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    hub = LocalHub(tmp_path_factory.mktemp("budgets"), spawn_hook=False, extra_config=SLOW)
    try:
        hub.start()
        hub.create_users([*USERS, "budget-reader"])
        yield hub
    finally:
        hub.stop()


async def test_identity_checks_and_reads_do_not_wait_for_saturated_bulk_calls(
    hanging_hub: LocalHub,
) -> None:
    token = await asyncio.to_thread(hanging_hub.user_token, "budget-reader")
    client = HubClient(
        hanging_hub.api_url, hanging_hub.service_token, concurrency=2, bulk_concurrency=BULK
    )
    try:
        bulk = [asyncio.create_task(client.bulk.start_server(name)) for name in USERS]

        # wait until the hub holds the first BULK of them (their spawns are pending)
        async def held() -> bool:
            pending = [
                await asyncio.to_thread(hanging_hub.server_model, name) for name in USERS[:BULK]
            ]
            return all(m and m.get("pending") == "spawn" for m in pending)

        await wait_for_async(held, 20, "the bulk calls to reach the hub")

        who = await client.identify(token)
        reader = await client.get_user("budget-reader")

        # both answered while every bulk call was still held by the hub or queued behind
        assert not any(task.done() for task in bulk)
        assert who.name == "budget-reader" and reader.name == "budget-reader"
        # the queued half has not even been sent: the bulk budget is what held them
        later = [await asyncio.to_thread(hanging_hub.server_model, n) for n in USERS[BULK:]]
        assert all(m is None or not m.get("pending") for m in later)
        results = await asyncio.wait_for(asyncio.gather(*bulk), timeout=120)
        assert set(results) == {"starting"}  # 202 after the hub's grace
    finally:
        for task in bulk:
            task.cancel()
        await client.aclose()
        for name in USERS:
            await asyncio.to_thread(hanging_hub.stop_server, name)
