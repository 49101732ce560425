"""`hubkeeper lockdown on|off|status` from a terminal, audited as `cli:<user>`.

Writes the database directly; a running Hubkeeper picks the change up within seconds
(`app.lockdown.service.watch`), and so does the hub's spawn hook through it.
"""

from __future__ import annotations

import asyncio
import getpass
import sys

from hubkeeper.actions.lockdown_state import LockdownState
from hubkeeper.config import Settings
from hubkeeper.db.engine import migrate
from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.actors import SystemActor
from hubkeeper.kit.progress import ProgressBar
from hubkeeper.lockdown import service
from hubkeeper.state import HubkeeperState, cli_state


def _describe(state: LockdownState) -> str:
    if not state.active or state.since is None:
        return "The hub is open: servers may start."
    return f"The hub is LOCKED since {state.since:%Y-%m-%d %H:%M} UTC by {state.by}: {state.reason}"


async def _wait(hk: HubkeeperState, job_id: str) -> int:
    job = hk.jobs.get(job_id)
    if job is None:
        return 0
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


async def lockdown(settings: Settings, action: str, *, reason: str = "", keep: bool = False) -> int:
    """Exit codes: 0 done, 1 refused (already so) or some servers failed to stop, 3 hub/db."""
    await asyncio.to_thread(migrate, settings.database_url)
    hk = cli_state(settings)
    who = SystemActor(name=f"cli:{getpass.getuser()}", via="cli")
    try:
        if action == "status":
            print(_describe(await asyncio.to_thread(service.load, hk.engine)))
            return 0
        if action == "off":
            ended = await service.unlock(hk, who, outbox=hk.outbox)
            print(f"Lockdown lifted ({ended.reason}). Servers may start again.")
            return 0
        reason = reason.strip()
        if not reason or len(reason) > service.REASON_MAX:
            print(
                f"hubkeeper: give a --reason of 1 to {service.REASON_MAX} characters",
                file=sys.stderr,
            )
            return 2
        result = await service.lock(hk, who, reason, stop_servers=not keep, outbox=hk.outbox)
        print(_describe(result.state))
        if result.stop_error:
            print(f"hubkeeper: could not stop the servers: {result.stop_error}", file=sys.stderr)
            return 3
        if result.job is not None:
            return await _wait(hk, result.job.id)
        return 0
    except HubkeeperError as exc:
        print(f"hubkeeper: {exc.detail}", file=sys.stderr)
        return 1 if exc.status_code == 409 else 3
    finally:
        await hk.jobs.shutdown()
        await hk.hub.aclose()
        hk.engine.dispose()
