"""STUB: replaced by its owner."""

import asyncio


class UserDirectory:
    def __init__(self, hub, settings):  # type: ignore[no-untyped-def]
        self.hub = hub
        self.settings = settings

    async def run(self) -> None:
        await asyncio.Event().wait()
