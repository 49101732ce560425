"""Loops end when cancelled, even in their retry pause (issue #13: the culler used to swallow
that cancellation and went on culling on a replica that no longer led)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from hubkeeper.culler import service as culler_service
from hubkeeper.db.engine import create_db_engine
from hubkeeper.hub.client import HubClient
from hubkeeper.loops.leader import Leader
from hubkeeper.loops.retry import cancel_and_wait, retry_pause
from hubkeeper.loops.supervisor import Loop, Supervisor
from hubkeeper.main import create_app
from tests.waiting import wait_for_async

LONG_PAUSE = 30.0  # s: far longer than the one second a cancelled loop may take


def failing_loop(failures: list[str], name: str) -> Any:
    """A loop whose every pass fails, then pauses LONG_PAUSE s as real loops do."""

    async def run() -> None:
        while True:
            try:
                raise RuntimeError(f"{name} failed")
            except RuntimeError:
                failures.append(name)
                await retry_pause(LONG_PAUSE)

    return run


async def test_every_loop_cancelled_in_its_retry_pause_ends_within_a_second(tmp_path: Path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'leader.sqlite'}")
    leader = Leader(engine, replica="test", interval=0.1)
    failures: list[str] = []
    names = ["replica-a", "replica-b", "leader-a", "leader-b"]
    supervisor = Supervisor(
        [
            Loop(
                name,
                failing_loop(failures, name),
                runs="leader" if "leader" in name else "every_replica",
            )
            for name in names
        ],
        leader,
    )
    supervisor.start()
    try:
        await wait_for_async(lambda: set(failures) == set(names), 10, "every loop to fail once")
        tasks = supervisor.tasks
        started = time.monotonic()
        await asyncio.wait_for(supervisor.stop(), timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert all(task.done() for task in tasks.values())
    finally:
        await leader.close()
        engine.dispose()


async def test_the_culler_loop_cancelled_in_its_retry_pause_ends(monkeypatch: pytest.MonkeyPatch):
    calls: list[float] = []

    async def broken_pass() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("the database is down")

    async def settings() -> Any:
        return type("Current", (), {"settings": object()})()

    # No hub or database: the loop only reads the settings (stubbed) and calls the pass.
    culler: Any = culler_service.Culler(
        hub=None,  # type: ignore[arg-type]
        engine=None,  # type: ignore[arg-type]
        stopper=None,  # type: ignore[arg-type]
        servers=None,
        settings=None,  # type: ignore[arg-type]
    )
    monkeypatch.setattr(culler, "current", settings)
    monkeypatch.setattr(culler_service, "LOOP_RETRY_S", LONG_PAUSE)
    task = asyncio.create_task(culler._forever(broken_pass, lambda cfg: 0, "server"))
    await wait_for_async(lambda: calls, 5, "the first failed pass")
    await asyncio.sleep(0.05)  # now in its retry pause
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=1.0)
    assert len(calls) == 1  # no second pass after the cancel


async def test_cancel_and_wait_passes_on_the_callers_own_cancellation():
    helper = asyncio.create_task(asyncio.sleep(LONG_PAUSE))
    release = asyncio.Event()

    async def cleanup() -> None:
        try:
            await release.wait()
        finally:
            # the caller is cancelled while it cleans up: that must not be swallowed
            await cancel_and_wait(helper)
            await asyncio.sleep(LONG_PAUSE)  # never reached: the cancel goes on

    outer = asyncio.create_task(cleanup())
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(outer, timeout=1.0)
    assert helper.cancelled()


async def test_the_apps_loops_stop_within_seconds_while_the_hub_is_down(make_settings: Any):
    """Every loop the app declares, with the hub unreachable (the directory sync and the
    leader loops fail and pause): the lifespan's shutdown ends them all promptly."""
    app = create_app(make_settings())
    hk = app.state.hk
    hk.directory.hub = HubClient("http://127.0.0.1:9/hub/api", "x", timeout=1.0)  # nobody there
    async with app.router.lifespan_context(app):
        await wait_for_async(lambda: hk.directory.last_error, 20, "the directory sync to fail")
        assert hk.loops is not None
        tasks = hk.loops.tasks
        assert {"directory-sync", "culler", "kernel-culler", "session-recorder"} <= set(tasks)
        started = time.monotonic()
    assert time.monotonic() - started < 5.0  # loops, then stops under way (1 s), then close
    assert all(task.done() for task in tasks.values())
