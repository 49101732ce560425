"""Lockdown that holds: while the hub is locked, stop every server that should not run.

The spawn hook (`hook.py`) refuses spawns at the door, but it cannot be the only guard:
a hub may not have the hook configured, the hook fails open while Hubkeeper is down, and a
spawn already past the hook when the lock was set still comes up. So a lifespan loop checks
the hub's active servers every `ENFORCE_SECONDS` while locked (the `state=active` listing:
its cost grows with running servers, never with all users) and stops:

- every server still starting (a pending spawn was not running when the lock was set;
  JupyterHub 6 interrupts a pending spawn on DELETE, `apihandlers/users.py`
  `UserServerAPIHandler.delete`: "we are interrupting a pending start");
- every running server that started after the lock was set (the hub sets a server's
  `started` when its spawn begins, before the pre-spawn hook runs: `user.py` `User.spawn`);
- every other running server too, unless the lock was set with `stop_servers=false`
  ("keep the servers that are running now").

A server found so is stopped at once — in the first seconds of a lockdown only when the next
pass still finds it, leaving the lock's own stop-all job (which claims its servers at once)
to do its work — and stays to be stopped while this lockdown lasts (a spawn found pending is
stopped even if it came up meanwhile).

Each stop is recorded in the session history with reason `lockdown` and audited as the
system: actor `lockdown`, via `system`. Stops use the hub client's bulk budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from hubkeeper.actions.lockdown_state import LockdownState
from hubkeeper.actions.stop import StopReason
from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.actors import SystemActor, target_of
from hubkeeper.kit.clock import as_utc, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from hubkeeper.actions.stop import ServerStopper
    from hubkeeper.directory.rows import ServerRow
    from hubkeeper.directory.store import UserDirectory
    from hubkeeper.history.recorder import SessionRecorder

log = logging.getLogger(__name__)

ENFORCE_SECONDS = 2.0  # between passes while locked (a pass while open costs nothing)
# So a server that comes up while locked is stopped within a pass or two plus the stop.
RETRY_AFTER_FAILURE = 30.0  # s before a server whose stop failed is tried (and audited) again
LOCKDOWN_ACTOR = SystemActor("lockdown")

Key = tuple[str, str]


def must_stop(row: ServerRow, state: LockdownState) -> bool:
    """Whether this server may not run under this lockdown (see the module's docstring)."""
    if not state.active or row.status not in ("running", "starting"):
        return False  # stopped, or already stopping
    if row.status == "starting" or state.stop_servers:
        return True
    if row.started is None or state.since is None:
        return True
    return as_utc(row.started) >= as_utc(state.since)


class Enforcer:
    """`hk.enforcer`; `run()` is the lifespan task, `enforce_once()` one
    pass (for tests), `drain()` waits for the stops under way (at shutdown).

    `stopper` stops the servers (bulk budget, audited as `lockdown`); `directory` lists the
    active servers; `lockdown()` answers the lockdown as last loaded (it changes while this
    runs); `stopping`: the servers a stop-all job or this enforcement is stopping (the job
    registry's set, shared: whoever comes second leaves them alone); `history`: the session
    recorder (None: no sessions recorded, no waiting for it to take stock). `interval` in
    seconds between passes."""

    def __init__(
        self,
        stopper: ServerStopper,
        directory: UserDirectory,
        *,
        lockdown: Callable[[], LockdownState],
        stopping: set[Key],
        history: SessionRecorder | None = None,
        interval: float = ENFORCE_SECONDS,
    ) -> None:
        self.stopper = stopper
        self.directory = directory
        self.lockdown = lockdown
        self.stopping = stopping
        self.history = history
        self.interval = interval
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._candidates: set[Key] = set()  # seen to stop in the last pass
        # Found must-stop under this lockdown: stays so (a spawn found pending that came up
        # before the next pass is still stopped, though it `started` before the lock).
        self._marked: set[Key] = set()
        self._lock_id: int | None = None
        self._failed: dict[Key, float] = {}  # monotonic time of the last failure

    async def run(self) -> None:
        """Pass after pass until cancelled; an error (hub down) never ends the loop."""
        while True:
            try:
                await self.enforce_once()
            except asyncio.CancelledError:
                raise
            except HubkeeperError as exc:
                log.warning("lockdown enforcement: could not read the hub: %s", exc.detail)
            except Exception:
                log.exception("lockdown enforcement pass failed unexpectedly")
            await asyncio.sleep(self.interval)

    async def enforce_once(self) -> list[Key]:
        """One pass: the servers it began to stop (stops run on as tasks; none while open).

        Raises HubUnavailable when the hub's active servers cannot be read.
        """
        state = self.lockdown()
        if not state.active or state.id != self._lock_id:
            self._failed.clear()
            self._candidates.clear()
            self._marked.clear()
            self._lock_id = state.id
        if not state.active:
            return []
        history = self.history
        if history is not None and not history.reconciled:
            # Not before the session history has taken stock: a server stopped now would
            # never get the session it ran (started while Hubkeeper was down).
            return []
        directory = self.directory
        age = directory.active_age()
        if age is None or age > self.interval:  # else the active sync just read the same
            await directory.refresh_active()
        rows, _ = directory.query_rows(status="active", limit=10**9)
        now = time.monotonic()
        begun: list[Key] = []
        # Just after a lock, a server is stopped when two passes in a row find it: the lock's
        # own stop-all job (started right after the lock) claims its servers in between.
        previous, self._candidates = self._candidates, set()
        young = state.since is not None and utcnow() - as_utc(state.since) < timedelta(
            seconds=2 * self.interval
        )
        for row in rows:
            key = (row.user, row.server)
            if row.status not in ("running", "starting"):
                continue
            if not (key in self._marked or must_stop(row, state)) or key in self._tasks:
                continue
            self._marked.add(key)
            if key in self.stopping:  # a stop-all job is on it already
                continue
            self._candidates.add(key)
            if young and key not in previous:
                continue
            failed_at = self._failed.get(key)
            if failed_at is not None and now - failed_at < RETRY_AFTER_FAILURE:
                continue
            self._tasks[key] = asyncio.create_task(
                self._stop(key, state), name=f"hubkeeper-lockdown-stop-{row.user}"
            )
            begun.append(key)
        return begun

    async def _stop(self, key: Key, state: LockdownState) -> None:
        user, server = key
        target = target_of(user, server)
        stopper = self.stopper
        self.stopping.add(key)
        try:
            done = await stopper.stop_and_wait(
                LOCKDOWN_ACTOR,
                user,
                server,
                reason=StopReason.LOCKDOWN,
                client=stopper.hub.bulk,
                audit_detail=f"lockdown enforcement ({state.reason})",
            )
            if done != "gone":
                self._failed.pop(key, None)
        except HubkeeperError as exc:  # audited by stop_and_wait
            self._failed[key] = time.monotonic()
            log.warning("lockdown enforcement: could not stop %s: %s", target, exc.detail)
        except Exception as exc:  # one server's surprise must not stop the others
            self._failed[key] = time.monotonic()
            log.exception("lockdown enforcement: stopping %s failed", target)
            await stopper.trail.write(
                LOCKDOWN_ACTOR,
                "server.stop",
                target,
                outcome="failed",
                detail=f"lockdown enforcement ({state.reason})",
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            self.stopping.discard(key)
            self._tasks.pop(key, None)
            with contextlib.suppress(HubkeeperError):
                fresh = await self.directory.refresh_user(user, bulk=True)
                found = fresh.servers.get(server) if fresh is not None else None
                if self.history is not None and (
                    found is None or found.status not in ("running", "stopping")
                ):
                    # Down now: a session it ran was closed as a lockdown stop just above
                    # (the refresh's transition); an interrupted spawn never had one, and
                    # its next run's stop must not be taken for ours.
                    self.history.forget_stop(user, server)

    async def drain(self, grace: float) -> None:
        """Let the stops under way finish (up to `grace` s), then cancel what is left."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
