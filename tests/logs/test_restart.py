"""A log stream across a hub restart, on a hub of this test's own: the restart replaces the
proxy (CHP) while the user's server lives on (`cleanup_servers = False`). The stream ends with
`event: reconnect`, not a final error, and a reconnect with Last-Event-ID gets every line
written across the restart exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from hubkeeper.demo.localhub import LocalHub
from tests.logs.test_api import read_events
from tests.serving import serve_hubkeeper

USER = "logs-restart"
MARK = "restart-mark-"
KEEP_SERVERS = "c.JupyterHub.cleanup_servers = False  # servers outlive a hub restart\n"


def log_file(hub: LocalHub) -> Path:
    return Path(hub.state_dir) / "homes" / USER / ".jupyter-server-log.txt"


def append(hub: LocalHub, line: str) -> None:
    with log_file(hub).open("a", encoding="utf-8") as f:
        f.write(line + "\n")


@pytest.mark.own_hub
async def test_a_stream_survives_a_hub_restart_without_losing_or_repeating_lines(
    tmp_path: Path,
) -> None:
    with (
        LocalHub(tmp_path / "hub", extra_config=KEEP_SERVERS) as hub,
        serve_hubkeeper(hub, tmp_path) as served,
    ):
        await asyncio.to_thread(hub.create_users, [USER])
        await asyncio.to_thread(hub.start_server, USER)
        token = await asyncio.to_thread(hub.user_token, "admin")
        url = served.direct_url + f"api/v1/users/{USER}/logs/stream"
        written: list[str] = []
        got: list[str] = []
        last_id = ""
        async with httpx.AsyncClient(
            headers={"Authorization": f"token {token}"}, timeout=60
        ) as client:
            async with client.stream("GET", url) as response:
                assert response.status_code == 200
                stream = read_events(response)
                _, last_id, _ = await asyncio.wait_for(anext(stream), 30)  # the tail

                # Lines keep coming while the hub goes down and comes back.
                restarted = threading.Event()

                def write_across_the_restart() -> None:
                    n = 0
                    while not restarted.is_set() or n < 5:
                        line = f"{MARK}{n}"
                        append(hub, line)
                        written.append(line)
                        n += 1
                        restarted.wait(0.2)

                writer = threading.Thread(target=write_across_the_restart)
                writer.start()

                async def restart() -> None:
                    try:
                        await asyncio.to_thread(hub.restart)
                    finally:
                        restarted.set()

                restarting = asyncio.create_task(restart())
                ended_with = ""
                deadline = time.monotonic() + 120

                def caught_up() -> bool:
                    return restarted.is_set() and not writer.is_alive() and written[-1] in got

                # The stream either ends with `reconnect` (it saw the hub, proxy or server
                # stop answering) or, when the server stayed reachable at its address through
                # the restart, simply goes on: both are right, as long as no line is lost.
                while not caught_up():
                    assert time.monotonic() < deadline, "neither a reconnect nor every line"
                    try:
                        event, event_id, data = await asyncio.wait_for(anext(stream), 2)
                    except TimeoutError:
                        continue  # quiet: look again whether the restart is over
                    except StopAsyncIteration:
                        break
                    if event == "message":
                        got += [x for x in data["lines"] if x.startswith(MARK)]
                        last_id = event_id
                    elif event in ("reconnect", "error", "timeout"):
                        ended_with = event
                        assert event == "reconnect", data
                        break
                await restarting
                await asyncio.to_thread(writer.join)
            assert ended_with in ("reconnect", "")  # never a final error

            # Reconnect as an EventSource does (Last-Event-ID), retrying while the hub's
            # routes come back, until the last line written arrives.
            for _attempt in range(60):
                if written[-1] in got:
                    break
                headers = {"Last-Event-ID": last_id}
                async with client.stream("GET", url, headers=headers) as response:
                    if response.status_code == 503:
                        await asyncio.sleep(0.5)
                        continue
                    assert response.status_code == 200
                    async for event, event_id, data in read_events(response):
                        if event != "message":
                            break
                        got += [x for x in data["lines"] if x.startswith(MARK)]
                        last_id = event_id
                        if written[-1] in got:
                            break
        assert got == written
