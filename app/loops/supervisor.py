"""Every background loop of a Hubkeeper process, declared as data and run by one supervisor.

A `Loop` names a coroutine that runs until cancelled, and says whether it runs on every replica
(the directory sync, the lockdown watch, the audit spool) or on one replica at a time, the one
that leads its name (hubkeeper.loops.leader: the session recorder, lockdown enforcement, the
cullers, usage rollups). `Supervisor.start()` starts them all; `Supervisor.stop()` cancels them
all and waits until each has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hubkeeper.loops.retry import cancel_and_wait

log = logging.getLogger(__name__)

Runs = Literal["every_replica", "leader"]


class Leads(Protocol):
    """What the supervisor needs of `hubkeeper.loops.leader.Leader`."""

    def run_as_leader(
        self,
        name: str,
        loop_factory: Callable[[], Awaitable[Any]],
        interval: float | None = None,
        otherwise: Callable[[], Awaitable[Any]] | None = None,
        lock: str | None = None,
    ) -> Coroutine[Any, Any, None]: ...


@dataclass(frozen=True)
class Loop:
    """One background loop.

    `run` is called once per start and must run until cancelled; it handles its own failures
    (pausing with `hubkeeper.loops.retry.retry_pause`). `runs="leader"`: only on the replica
    that leads `name`; it is cancelled when leadership is lost and started again when won.
    `otherwise` (leader loops only): what the replica runs while another one leads (the
    directory: read what the leader saw). `lock` (leader loops only): lead under the lock of
    the loop so named, so the two always run on the same replica. `name` is also the metrics
    label `loop` of `hubkeeper_leader`.
    """

    name: str
    run: Callable[[], Awaitable[Any]]
    runs: Runs = "every_replica"
    otherwise: Callable[[], Awaitable[Any]] | None = None
    lock: str | None = None


class Supervisor:
    """Starts the declared loops and stops them all (see the module docstring)."""

    def __init__(self, loops: Sequence[Loop], leader: Leads) -> None:
        names = [loop.name for loop in loops]
        if len(set(names)) != len(names):
            raise ValueError(f"loop names must be unique: {names}")
        self.loops = tuple(loops)
        self.leader = leader
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    @property
    def tasks(self) -> dict[str, asyncio.Task[Any]]:
        """The running tasks by loop name (for tests and health)."""
        return dict(self._tasks)

    def start(self) -> None:
        """Start every loop (once; a second call is an error)."""
        if self._tasks:
            raise RuntimeError("the loops are already running")
        for loop in self.loops:
            coro = (
                self.leader.run_as_leader(
                    loop.name, loop.run, otherwise=loop.otherwise, lock=loop.lock
                )
                if loop.runs == "leader"
                else _run(loop.run)
            )
            self._tasks[loop.name] = asyncio.create_task(coro, name=f"hubkeeper-{loop.name}")

    async def stop(self) -> None:
        """Cancel every loop and wait until each has ended (in declaration order)."""
        tasks, self._tasks = self._tasks, {}
        for task in tasks.values():
            task.cancel()
        for name, task in tasks.items():
            await cancel_and_wait(task)
            log.debug("loop %s stopped", name)


async def _run(factory: Callable[[], Awaitable[Any]]) -> None:
    await factory()
