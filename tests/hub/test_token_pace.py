"""Bulk server-token mints are paced (hub/server_tokens.py): batches of BATCH, each in its turn
of the hub's time background work shares (hub/pace.py), so mints never hold more than a few
per cent of the hub's one thread; meanwhile each server is read as soon as its batch is
in, and never minted twice. A stand-in hub, no real one: only the timing is under test."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from hubkeeper.errors import HubError
from hubkeeper.hub import server_tokens
from hubkeeper.hub.pace import HubPace
from hubkeeper.hub.server_tokens import PLUGIN_SCOPE, ServerTokens

MINT_S = 0.01  # how long the stand-in hub takes per batch


class SlowHub:
    def __init__(self) -> None:
        self.calls: list[tuple[float, float, int]] = []  # (began, ended, servers)
        self.one_by_one: list[tuple[str, str]] = []
        self.pace = HubPace()

    async def own_scopes(self) -> list[str]:
        return [PLUGIN_SCOPE]

    async def issue_server_tokens(self, servers: list[tuple[str, str]]) -> dict[Any, Any]:
        began = time.monotonic()
        await asyncio.sleep(MINT_S)
        self.calls.append((began, time.monotonic(), len(servers)))
        return {key: (f"t-{key[0]}", 3600.0) for key in servers}

    async def issue_server_token(self, user: str, server: str) -> tuple[str, float]:
        self.one_by_one.append((user, server))
        return f"one-{user}", 3600.0


async def test_bulk_mints_come_in_small_paced_batches():
    hub = SlowHub()
    tokens = ServerTokens(hub)  # type: ignore[arg-type]
    servers = [(f"u{i}", "") for i in range(2 * server_tokens.BATCH + 1)]
    assert await tokens.prefetch(servers) == len(servers)
    assert [n for *_, n in hub.calls] == [server_tokens.BATCH, server_tokens.BATCH, 1]
    for (_b0, ended, _n), (began, _e1, _n1) in zip(hub.calls, hub.calls[1:], strict=False):
        assert began - ended >= MINT_S * (1 - hub.pace.share) / hub.pace.share * 0.9
    assert await tokens.prefetch([]) == 0 and len(hub.calls) == 3  # nothing asked


async def test_a_server_is_read_once_its_batch_is_in_and_minted_once():
    hub = SlowHub()
    tokens = ServerTokens(hub)  # type: ignore[arg-type]
    servers = [(f"u{i}", "") for i in range(3 * server_tokens.BATCH)]
    minting = tokens.start_prefetch(servers)
    assert minting is not None and all(tokens.queued(key) for key in servers)
    # a second prefetch (the other loop) leaves them to the first
    assert tokens.start_prefetch(servers) is None
    first, last = servers[0], servers[-1]
    await tokens.ready(first)  # what a pass does before it reads a server
    assert await tokens.token(*first) == "t-u0"
    assert len(hub.calls) == 1  # the first batch only: no wait for the whole mint
    assert not tokens.queued(first) and tokens.queued(last)
    await tokens.ready(last)  # its own batch
    assert await tokens.token(*last) == f"t-{last[0]}" and len(hub.calls) == 3
    assert await minting == len(servers)
    assert [n for *_, n in hub.calls] == [server_tokens.BATCH] * 3  # none minted one by one
    assert tokens.minted == len(servers)


async def test_someone_reading_a_server_does_not_wait_for_its_batch():
    """A log read mints its token at once; the bulk mint then leaves that server out."""
    hub = SlowHub()
    tokens = ServerTokens(hub)  # type: ignore[arg-type]
    servers = [(f"u{i}", "") for i in range(2 * server_tokens.BATCH)]
    minting = tokens.start_prefetch(servers)
    assert minting is not None
    last = servers[-1]
    assert await tokens.token(*last) == f"one-{last[0]}"
    assert hub.one_by_one == [last] and len(hub.calls) <= 1
    assert await minting == len(servers) - 1
    assert [n for *_, n in hub.calls] == [server_tokens.BATCH, server_tokens.BATCH - 1]


async def test_a_mint_that_ends_lets_its_waiters_mint_on_their_own():
    hub = SlowHub()
    tokens = ServerTokens(hub)  # type: ignore[arg-type]
    servers = [(f"u{i}", "") for i in range(2 * server_tokens.BATCH)]
    waiter = tokens.start_prefetch(servers)
    assert waiter is not None
    await tokens.ready(servers[0])
    waiter.cancel()  # a pass that ends stops its wait, not the mint
    await asyncio.sleep(0)
    assert tokens.queued(servers[-1])
    assert tokens._worker is not None
    tokens._worker.cancel()  # the app shutting down
    await asyncio.wait({tokens._worker})
    await asyncio.sleep(0)  # its done callback
    assert not any(tokens.queued(key) for key in servers)
    await asyncio.wait_for(tokens.ready(servers[-1]), 1)  # nothing left to wait for


class FlakyHub(SlowHub):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def issue_server_tokens(self, servers: list[tuple[str, str]]) -> dict[Any, Any]:
        if self.failures:
            self.failures -= 1
            raise HubError("the hub answered 503", code="hub_unavailable", status_code=503)
        return await super().issue_server_tokens(servers)


async def test_a_refused_batch_is_tried_again_then_given_up(monkeypatch):
    monkeypatch.setattr(server_tokens, "RETRY_PAUSE", 0.0)
    servers = [(f"u{i}", "") for i in range(2 * server_tokens.BATCH)]
    flaky = ServerTokens(FlakyHub(failures=server_tokens.BATCH_RETRIES))  # type: ignore[arg-type]
    assert await flaky.prefetch(servers) == len(servers)  # a hiccup costs nothing
    down = ServerTokens(FlakyHub(failures=99))  # type: ignore[arg-type]
    assert await asyncio.wait_for(down.prefetch(servers), 5) == 0  # given up, nobody stuck
    assert not any(down.queued(key) for key in servers)


async def test_a_starts_tokens_are_renewed_spread_over_the_hour(monkeypatch):
    """Minted within minutes at a start, they would all be renewed within minutes an hour
    later: the first renewal of each comes after a random share of its life, the next ones
    at the usual margin, so the spread stays."""
    clock = [0.0]
    # this module's clock only (the event loop's is time.monotonic too)
    monkeypatch.setattr(server_tokens, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(server_tokens, "BATCH_PAUSE", 0.0)
    tokens = ServerTokens(SlowHub())  # type: ignore[arg-type]
    servers = [(f"u{i}", "") for i in range(40)]
    assert await tokens.prefetch(servers) == 40
    life = 3600.0 - server_tokens.TOKEN_MARGIN  # before a renewal is due at the latest
    clock[0] = life * server_tokens.RENEW_SPREAD - 1
    assert tokens.missing(servers) == []
    clock[0] = life * (1 + server_tokens.RENEW_SPREAD) / 2  # the spread's middle
    assert 0 < len(tokens.missing(servers)) < 40
    clock[0] = life
    assert tokens.missing(servers) == servers and all(tokens.usable(k) for k in servers)
    assert await tokens.prefetch(servers) == 40  # renewed: now the usual margin
    clock[0] = 2 * life - 1
    assert tokens.missing(servers) == []
    clock[0] = 2 * life
    assert tokens.missing(servers) == servers


async def test_a_replica_that_stops_leading_stops_minting_and_lets_its_waiters_go():
    hub = SlowHub()
    tokens = ServerTokens(hub)  # type: ignore[arg-type]
    servers = [(f"u{i}", "") for i in range(5 * server_tokens.BATCH)]
    minting = tokens.start_prefetch(servers)
    assert minting is not None
    await tokens.ready(servers[0])  # the first batch is in
    assert tokens.drop_queue() > 0
    await asyncio.wait_for(minting, 5)  # nobody is left waiting for a mint that will not come
    calls = len(hub.calls)
    assert calls < 5 and not any(tokens.queued(key) for key in servers)
    await asyncio.sleep(0.2)
    assert len(hub.calls) == calls  # no batch after the drop
    # a server read later gets its token at once, one by one
    last = servers[-1]
    assert await tokens.token(*last) == f"one-{last[0]}"
    assert tokens.drop_queue() == 0  # nothing under way: a no-op
