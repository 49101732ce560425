"""The follower's own timing and arithmetic: keepalives and lifetime (against a real server's
log, with a HubClient of this test's own), line splitting, shrinking and skipping ahead."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hubkeeper.hub.client import HubClient
from hubkeeper.hub.servers import FileRange, ServerGateway
from hubkeeper.logs.service import MAX_BACKLOG, _advance, follow_log, split_lines

USER = "logs-timing"


def test_split_lines_drops_a_partial_first_line_and_keeps_the_unfinished_last():
    assert split_lines(b"tial\nfull 1\r\nfull 2\nunfin", at_start=False) == (
        ["full 1", "full 2"],
        len(b"tial\nfull 1\r\nfull 2\n"),
    )
    assert split_lines(b"a\nb\n", at_start=True) == (["a", "b"], 4)
    assert split_lines(b"no newline yet", at_start=True) == ([], 0)
    assert split_lines(b"\xff\n", at_start=True) == (["\ufffd"], 2)


def test_advance_follows_growth_notices_shrinking_and_skips_a_huge_backlog():
    events, offset, mid = _advance(FileRange(b"one\ntwo\npart", 10, 22), 10, False)
    assert events == ['id: 18\ndata: {"lines": ["one", "two"]}\n\n'] and offset == 18
    assert not mid
    events, offset, mid = _advance(FileRange(b"", 5, 5), 18, False)
    assert events[0].startswith("event: notice\nid: 5\n") and offset == 5
    size = 10 * MAX_BACKLOG
    events, offset, mid = _advance(FileRange(b"x", 0, size), 0, False)
    assert "skipping ahead" in events[0] and offset > size - MAX_BACKLOG and mid
    events, offset, mid = _advance(FileRange(b"rest of a line\nnext\n", 100, 120), 100, True)
    assert '"lines": ["next"]' in events[0] and offset == 120 and not mid


async def test_keepalives_then_timeout_at_the_lifetime(hub: Any, hubkeeper_server: Any) -> None:
    await asyncio.to_thread(hub.create_users, [USER])
    await asyncio.to_thread(hub.start_server, USER)
    client = HubClient(hub.api_url, hub.service_token)
    servers = ServerGateway(client, proxy_api_url=hub.proxy_api_url, proxy_token=hub.proxy_token)
    try:
        model = (await client.get_user(USER)).servers[""]
        hk = SimpleNamespace(
            hub=client,
            servers=servers,
            settings=SimpleNamespace(server_log_path=".jupyter-server-log.txt"),
        )
        size = (Path(hub.state_dir) / "homes" / USER / ".jupyter-server-log.txt").stat().st_size
        chunks = [
            chunk
            async for chunk in follow_log(
                hk,  # type: ignore[arg-type]
                USER,
                "",
                model,
                tail=None,
                resume_at=size,
                poll=0.05,
                keepalive=0.2,
                lifetime=1.0,
            )
        ]
        assert chunks[0].startswith("retry: 3000\n")
        assert chunks.count(": keepalive\n\n") >= 3
        # Watching must not write to the log it watches (a 416 would be logged as a warning).
        assert not [chunk for chunk in chunks if '"lines"' in chunk], chunks
        assert chunks[-1].startswith("event: timeout\n")
    finally:
        await servers.aclose()
        await client.aclose()
        await asyncio.to_thread(hub.stop_server, USER)
