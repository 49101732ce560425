"""`spawn.failed` notifications: a server that went from starting to stopped without ever
running, as the directory saw it; a start asked through Hubkeeper that the hub answered with
an error; or a failure the hub plugin reported (`POST api/v1/spawns/failed`, from the hub's
post-stop hook: spawns that fail too fast for the directory to see them pending).

Each failed spawn is notified once: its key is the user, the server and the hub's `started`
of the spawn (set when the spawn begins, the same on every replica), so replicas that all see
the transition, and a console start that saw the failure first, record it once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial

from hubkeeper.hub.models import HubUser
from hubkeeper.kit.clock import iso_utc, utcnow
from hubkeeper.outbox.events import Event, server_label
from hubkeeper.outbox.record import Outbox

log = logging.getLogger(__name__)

# s after a console-noted failure during which the directory does not notify the same server
# again (an older hub answer showing the spawn, applied late, must not make a second one)
NOTED_FOR = 60.0
# s within which a console start's failure and the hub plugin's report of a failure of the
# same server are the same failure (both paths see a start asked through Hubkeeper fail)
SAME_FAILURE = 10.0
# s after the hub plugin was last heard from (its spawn hook asking `quotas/check`, or a
# failure report) during which the directory's own guess is not made: the plugin reports
# every failed spawn itself, and the guess (starting, then stopped, never seen running) is
# also what a server that came up and was stopped between two looks of the directory shows
PLUGIN_HEARD_FOR = 86400.0
# s the directory waits before notifying a failure it saw, so that the hub's message, when a
# start asked through Hubkeeper brings it, goes into the one notification
SETTLE = 2.0

Key = tuple[str, str]  # (user, server)


def failed_event(
    user: str, server: str, since: datetime | None, reason: str | None, *, at: datetime
) -> Event:
    """The notification of one failed spawn; `since` is the hub's `started` of the spawn (or,
    unknown, when Hubkeeper asked for it)."""
    when = iso_utc(since) if since else iso_utc(at)
    text = f"{server_label(user, server)} failed to start"
    return Event(
        "spawn.failed",
        key=f"spawn.failed:{user}/{server}:{when}",
        text=f"{text}: {reason}" if reason else text,
        user=user,
        server=server,
        reason=reason,
        at=at,
    )


class SpawnWatch:
    """A directory listener (`on_change`) that notifies spawns that failed; the console tells
    it of failures the hub reported (`failed`). Cheap: it compares two states and, when a spawn
    failed, records the event in the background."""

    def __init__(self, outbox: Outbox, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.outbox = outbox
        self.clock = clock
        self.spawning: dict[Key, datetime | None] = {}  # seen starting: the spawn's `started`
        self._noted: dict[Key, float] = {}  # console-noted failures (time.monotonic())
        # the last failure reported by one path (console or plugin) and not yet by the other
        self._unpaired: dict[Key, tuple[float, str]] = {}
        # failures seen, waiting SETTLE s for the hub's message: the spawn's `started`, task
        self._settling: dict[Key, tuple[datetime | None, asyncio.Future[bool], Event]] = {}
        self._tasks: set[asyncio.Future[bool]] = set()
        self.settle = SETTLE
        self._plugin_heard: float | None = None  # time.monotonic()

    def plugin_heard(self) -> None:
        """The hub plugin's hooks called this replica (see PLUGIN_HEARD_FOR)."""
        self._plugin_heard = time.monotonic()

    @property
    def plugin_reports(self) -> bool:
        """Whether the hub plugin reports failed spawns (heard from within PLUGIN_HEARD_FOR)."""
        heard = self._plugin_heard
        return heard is not None and time.monotonic() - heard < PLUGIN_HEARD_FOR

    def on_change(self, old: HubUser | None, new: HubUser | None) -> None:
        """A directory listener (called on the event loop)."""
        if new is None:  # the user is gone: nothing to say about their spawns
            if old is not None:
                for key in [k for k in self.spawning if k[0] == old.name]:
                    del self.spawning[key]
            return
        name = new.name
        for server, model in new.servers.items():
            key = (name, server)
            if model.status == "starting":
                # the hub stamps `started` early in the spawn; a sighting just before keeps None
                if self.spawning.get(key) is None:
                    self.spawning[key] = model.started
            elif model.status == "running":
                self.spawning.pop(key, None)
        for key in [k for k in self.spawning if k[0] == name]:
            now_model = new.servers.get(key[1])
            if now_model is None or now_model.status == "stopped":
                since = self.spawning.pop(key)
                if self._recently_noted(key) or key in self._settling or self.plugin_reports:
                    continue
                event = failed_event(name, key[1], since, None, at=self.clock())
                task = self._emit(event, delay=self.settle)
                if task is not None:
                    self._settling[key] = (since, task, event)
                    task.add_done_callback(partial(self._settled, key))

    def _settled(self, key: Key, task: asyncio.Future[bool]) -> None:
        if key in self._settling and self._settling[key][1] is task:
            del self._settling[key]

    def _recently_noted(self, key: Key) -> bool:
        noted = self._noted.get(key)
        return noted is not None and time.monotonic() - noted < NOTED_FOR

    def failed(self, user: str, server: str, reason: str, *, since: datetime | None = None) -> None:
        """A spawn failed with the hub's `reason` (its message): a start asked through
        Hubkeeper (`since` None), or one the hub plugin reported with the spawn's `started`
        (`since`, UTC). Both see the same failure of a start asked through Hubkeeper: the
        first of the pair is notified, the other (from the other path, within SAME_FAILURE
        s) is not."""
        now = time.monotonic()
        self._noted = {k: t for k, t in self._noted.items() if now - t < NOTED_FOR}
        key = (user, server)
        path = "plugin" if since is not None else "console"
        first = self._unpaired.pop(key, None)
        if first is not None and first[1] != path and now - first[0] < SAME_FAILURE:
            return  # the other path's report of this same failure
        self._unpaired = {k: v for k, v in self._unpaired.items() if now - v[0] < SAME_FAILURE}
        self._unpaired[key] = (now, path)
        self._noted[key] = now
        since = since or self.spawning.pop(key, None)
        self.spawning.pop(key, None)
        settling = self._settling.pop(key, None)
        if settling is not None:  # seen by the directory: the same spawn, now with its message
            since = settling[0]
            settling[1].cancel()
        self._emit(failed_event(user, server, since, reason, at=self.clock()))

    def _emit(self, event: Event, *, delay: float = 0.0) -> asyncio.Future[bool] | None:
        async def emit() -> bool:
            if delay:
                await asyncio.sleep(delay)
            return await self.outbox.emit(event)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): nothing to record with
            log.warning("spawn.failed not recorded (no event loop): %s", event.key)
            return None
        task = loop.create_task(emit())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """At shutdown: record the failures still waiting for a message now, without it."""
        waiting = list(self._settling.values())
        self._settling.clear()
        for _since, task, event in waiting:
            task.cancel()
            await self.outbox.emit(event)
        await self.drain()

    async def drain(self) -> None:
        """Wait for the notifications under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
