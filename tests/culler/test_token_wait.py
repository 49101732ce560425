"""A kernel pass does not wait minutes for tokens being minted (paced: a start's thousands
take minutes, hub/server_tokens.py): it waits TOKEN_WAIT s in all, reads the servers whose
token came, and leaves the others to the next pass. Stand-ins: only the waiting is under
test (the real mint and pass are in tests/hub and test_kernels.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from hubkeeper.culler import passes
from hubkeeper.hub.models import HubServer, HubUser
from tests.culler.helpers import cfg
from tests.history.factories import prepared

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class SlowTokens:
    """Tokens for `ann` at once; `bob`'s never come (his batch is far down the queue)."""

    def __init__(self) -> None:
        self.never: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def start_prefetch(self, servers: list[tuple[str, str]]) -> None:
        return None  # queued already, by the resource sampler

    async def ready(self, key: tuple[str, str]) -> None:
        if key[0] == "bob":
            await asyncio.shield(self.never)


class Gateway:
    def __init__(self) -> None:
        self.tokens = SlowTokens()
        self.asked: list[str] = []

    async def list_kernels(self, user: str, server: str) -> list[dict[str, Any]]:
        self.asked.append(user)
        return []

    async def list_terminals(self, user: str, server: str) -> list[dict[str, Any]]:
        return []

    async def delete_kernel(self, user: str, server: str, kernel_id: str) -> None:
        raise AssertionError("nothing to cull")


async def test_a_pass_leaves_servers_whose_token_has_not_come_to_the_next(db_url):
    engine = prepared(db_url)
    server = HubServer(name="", ready=True, started=T0, last_activity=T0)
    users = [HubUser(name=name, servers={"": server}) for name in ("ann", "bob")]

    async def running() -> list[HubUser]:
        return users

    gateway = Gateway()
    try:
        result = await asyncio.wait_for(
            passes.kernels_pass(
                cfg(kernels={"enabled": True, "timeout_s": 600}),
                hub=None,  # type: ignore[arg-type]  # the users come from `running`
                engine=engine,
                gateway=gateway,
                running=running,
                now=T0,
                token_wait=0.2,  # TOKEN_WAIT (60 s) for the periodic pass, 10 s for a preview
            ),
            10,
        )
        assert gateway.asked == ["ann"] and result.waiting_for_token == 1
        assert result.errors == []
        # said wherever the pass is shown (CLI, preview): "nothing to cull" does not cover it
        assert result.not_checked.startswith("1 server(s) not checked")
    finally:
        engine.dispose()
