"""Culls a killed leader left "interrupted" are settled from the hub's answer when the next
leader's culler starts (issue #13): ok when the server is stopped, an error when the hub still
runs the server the cull was for, left alone when the server started again since."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from hubkeeper.culler import records
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import CullEvent
from hubkeeper.kit.clock import utcnow
from hubkeeper.main import create_app


def interrupted(engine: Any, user: str, *, ago: timedelta) -> int:
    with session_scope(engine) as session:
        event = CullEvent(
            at=utcnow() - ago,
            kind="server",
            user=user,
            server="",
            reason="idle",
            outcome="error",
            error=records.INTERRUPTED,
        )
        session.add(event)
        session.flush()
        return int(event.id or 0)


def outcome_of(engine: Any, event_id: int) -> tuple[str, str]:
    with session_scope(engine) as session:
        found = session.get(CullEvent, event_id)
        assert found is not None
        return found.outcome, found.error


async def test_interrupted_culls_are_settled_from_the_hub(hub: Any, make_settings: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    stopped, running = f"settle-stopped-{tag}", f"settle-running-{tag}"
    await asyncio.to_thread(hub.create_users, [stopped, running])
    await asyncio.to_thread(hub.start_server, running)
    try:
        hk = create_app(make_settings()).state.hk
        engine = hk.engine
        gone = interrupted(engine, f"settle-gone-{tag}", ago=timedelta(minutes=5))
        was_stopped = interrupted(engine, stopped, ago=timedelta(minutes=5))
        # the cull came after the server's start: the hub still running it means no stop
        not_stopped = interrupted(engine, running, ago=timedelta(seconds=-5))
        # the server started after the cull: nothing can be said
        restarted = interrupted(engine, running, ago=timedelta(hours=1))
        old = interrupted(engine, stopped, ago=records.SETTLE_WINDOW + timedelta(hours=1))

        settled = await hk.culler.settle_interrupted()

        assert settled == 3
        assert outcome_of(engine, gone) == ("ok", "")
        assert outcome_of(engine, was_stopped) == ("ok", "")
        assert outcome_of(engine, not_stopped) == ("error", records.NOT_STOPPED)
        assert outcome_of(engine, restarted) == ("error", records.INTERRUPTED)
        assert outcome_of(engine, old) == ("error", records.INTERRUPTED)
        # a second start (another replica) settles nothing twice
        assert await hk.culler.settle_interrupted() == 0
        await hk.hub.aclose()
    finally:
        await asyncio.to_thread(hub.stop_server, running)
