"""`hubkeeper stop-all`: the console's stop-all job from a terminal, audited as `cli:<user>`."""

from __future__ import annotations

import asyncio
import getpass
import sys

from hubkeeper.config import Settings
from hubkeeper.db.engine import migrate
from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.actors import SystemActor
from hubkeeper.kit.progress import ProgressBar
from hubkeeper.state import cli_state


async def stop_all(settings: Settings, *, reason: str, assume_yes: bool) -> int:
    await asyncio.to_thread(migrate, settings.database_url)
    hk = cli_state(settings)
    who = SystemActor(name=f"cli:{getpass.getuser()}", via="cli")
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
        job = await hk.jobs.start_stop_all(who, reason)
        with ProgressBar("Stopping servers") as bar:
            while True:
                bar.update(job.done, job.total)
                if job.state == "done":
                    break
                await asyncio.sleep(0.2)
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
