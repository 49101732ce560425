"""The SSE relay's own timing: keepalives, maximum lifetime, and closing the hub's stream when
the client goes away. The real hub's progress stream finishes in a second or two (see
test_api.py), so a stand-in that stalls is the only way to see these; it is named as such."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

from hubkeeper.console.api import relay_progress
from hubkeeper.errors import HubUnavailable
from hubkeeper.hub.models import ProgressEvent


class StallingHubStandIn:
    """Sends one progress event, then nothing, like a spawn stuck pulling an image."""

    def __init__(self, fail: bool = False) -> None:
        self.closed = asyncio.Event()
        self.fail = fail

    async def progress(self, user: str, server: str = "") -> AsyncIterator[ProgressEvent]:
        try:
            if self.fail:
                raise HubUnavailable("The hub at x is unreachable")
            yield ProgressEvent(progress=10, message="pulling image")
            await asyncio.sleep(3600)
        finally:
            self.closed.set()


def hk_with(hub: object) -> SimpleNamespace:
    return SimpleNamespace(hub=hub, shutting_down=asyncio.Event())


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [chunk async for chunk in stream]


async def test_keepalives_flow_and_the_stream_ends_at_its_lifetime():
    hub = StallingHubStandIn()
    chunks = await asyncio.wait_for(
        collect(relay_progress(hk_with(hub), "ann", "", keepalive=0.05, lifetime=0.4)),  # type: ignore[arg-type]
        timeout=5,
    )
    assert chunks[0].startswith(": progress of ann")
    assert (
        chunks[1]
        == 'data: {"progress": 10, "message": "pulling image", "ready": false, "failed": false}\n\n'
    )
    assert chunks.count(": keepalive\n\n") >= 3
    assert chunks[-1].startswith("event: timeout\n")
    await asyncio.wait_for(hub.closed.wait(), timeout=2)


async def test_a_client_that_leaves_closes_the_hub_stream():
    hub = StallingHubStandIn()
    stream = relay_progress(hk_with(hub), "ann", "gpu", keepalive=10, lifetime=60)  # type: ignore[arg-type]
    assert (await anext(stream)).startswith(": progress of ann/gpu")
    assert (await anext(stream)).startswith("data: ")
    await stream.aclose()  # what Starlette does when the client disconnects
    await asyncio.wait_for(hub.closed.wait(), timeout=2)


async def test_a_hub_error_becomes_an_error_event():
    chunks = await asyncio.wait_for(
        collect(relay_progress(hk_with(StallingHubStandIn(fail=True)), "ann", "")),  # type: ignore[arg-type]
        timeout=5,
    )
    assert chunks[-1].startswith("event: error\n")
    assert '"error": "hub_unavailable"' in chunks[-1]


async def test_a_shutdown_ends_the_stream_with_reconnect():
    """SIGTERM sets hk.shutting_down: the stream ends at once, telling the page to reconnect."""
    hub = StallingHubStandIn()
    hk = hk_with(hub)
    stream = relay_progress(hk, "ann", "", keepalive=10, lifetime=60)  # type: ignore[arg-type]
    assert (await anext(stream)).startswith(": progress of ann")
    assert (await anext(stream)).startswith("data: ")
    hk.shutting_down.set()
    rest = await asyncio.wait_for(collect(stream), timeout=2)
    assert rest == ['event: reconnect\ndata: {"message": "Hubkeeper is restarting; reconnect"}\n\n']
    await asyncio.wait_for(hub.closed.wait(), timeout=2)
