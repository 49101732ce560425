"""`hubkeeper stop-all`: the console's stop-all job from a terminal, audited as `cli:<user>`."""

from __future__ import annotations

import asyncio
import getpass
import sys
from dataclasses import dataclass

from hubkeeper.config import Settings
from hubkeeper.console.directory import UserDirectory
from hubkeeper.console.jobs import JobRegistry
from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.errors import HubkeeperError
from hubkeeper.hub.client import HubClient
from hubkeeper.state import HubkeeperState


@dataclass(frozen=True)
class CliActor:
    name: str
    via: str = "cli"


def _state(settings: Settings) -> HubkeeperState:
    hub = HubClient(settings.hub_api_url, settings.hub_api_token, timeout=settings.hub_timeout)
    return HubkeeperState(
        settings=settings,
        engine=create_db_engine(settings.database_url),
        hub=hub,
        directory=UserDirectory(hub, settings),
        jobs=JobRegistry(),
        cookie_secret="",
    )


async def stop_all(settings: Settings, *, reason: str, assume_yes: bool) -> int:
    await asyncio.to_thread(migrate, settings.database_url)
    hk = _state(settings)
    who = CliActor(name=f"cli:{getpass.getuser()}")
    try:
        await hk.directory.refresh_active()
        rows, _total = hk.directory.query_rows(status="active", limit=10**9)
        running = [r for r in rows if r.status in ("running", "starting")]
        if not running:
            print("No servers are running; nothing to stop.")
            return 0
        if not assume_yes and sys.stdin.isatty():
            prompt = f"Stop {len(running)} running server(s)? Type 'yes' to go on: "
            answer = await asyncio.to_thread(input, prompt)
            if answer.strip().lower() != "yes":
                print("Nothing was stopped.")
                return 1
        job = await hk.jobs.start_stop_all(hk, who, reason)
        shown = -1
        while job.state != "done":
            if job.done != shown:
                shown = job.done
                print(f"  {job.done}/{job.total} handled", flush=True)
            await asyncio.sleep(0.5)
        print(f"Stopped {job.stopped} of {job.total} server(s).")
        for failure in job.failed:
            print(f"  failed: {failure['user']}/{failure['server']}: {failure['error']}")
        return 1 if job.failed else 0
    except HubkeeperError as exc:
        print(f"hubkeeper: {exc.detail}", file=sys.stderr)
        return 3
    finally:
        await hk.jobs.shutdown()
        await hk.hub.aclose()
        hk.engine.dispose()
