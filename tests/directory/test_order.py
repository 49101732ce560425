"""The directory applies the hub's answers in the order they were asked for: a real answer
asked for earlier (server running) that arrives after a newer one (server stopped) is
dropped, so the console and the session history never see the server flip back."""

from __future__ import annotations

import asyncio

from hubkeeper.directory.store import UserDirectory
from hubkeeper.hub.client import HubClient

USER = "steady-order"


async def test_an_older_answer_arriving_late_is_dropped(hub, make_settings) -> None:
    await asyncio.to_thread(hub.create_users, [USER])
    await asyncio.to_thread(hub.start_server, USER)
    client = HubClient(hub.api_url, hub.service_token)
    directory = UserDirectory(client, make_settings())
    try:
        # asked for first: the server runs (this answer is slow to be applied)
        older, _ = await client.user_page(name_filter=USER)
        assert older[0].servers[""].status == "running"
        await asyncio.to_thread(hub.stop_server, USER)
        # asked for later, applied first: stopped
        newer = await directory.refresh_user(USER)
        assert newer is not None and newer.servers[""].status == "stopped"
        seen = directory.version

        for user in older:  # the late answer
            assert not directory.upsert(user, fetched_at=older.fetched_at)
        assert directory.get(USER).servers[""].status == "stopped"
        assert directory.version == seen
        rows, total = directory.query_rows(q=USER, status="active")
        assert (rows, total) == ([], 0)
        # an answer asked for now is applied as usual
        assert directory.upsert(older[0]) is True
    finally:
        await client.aclose()
        await asyncio.to_thread(hub.stop_server, USER)
