"""`quota.warning` (80 %) and `quota.exceeded` (100 %) notifications: one replica (the leader
of `quota-watch`) compares every user's server-hours this calendar month (UTC) with their
quota every `interval` seconds. Each user is notified once per month per level (the keys
`quota.warning:<user>:<YYYY-MM>`, `quota.exceeded:<user>:<YYYY-MM>`), and only of the highest
level reached: a user found over quota gets no warning after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Engine

from hubkeeper.kit.clock import utcnow
from hubkeeper.loops.retry import retry_pause
from hubkeeper.outbox.events import Event
from hubkeeper.outbox.record import Outbox
from hubkeeper.quotas import settings as quota_settings
from hubkeeper.quotas.usage import month_hours, next_month

log = logging.getLogger(__name__)

INTERVAL = 300.0  # s between checks
WARN_AT = 0.8  # fraction of the quota that earns a warning

# a user's current groups (None: unknown, e.g. not in the directory yet)
GroupsOf = Callable[[str], Sequence[str] | None]


def quota_event(user: str, used: float, quota: float, now: datetime) -> Event | None:
    """The notification `user` has earned this month with `used` of `quota` server-hours at
    `now` (UTC), or None below 80 %."""
    month = f"{now:%Y-%m}"
    resets = f"{next_month(now):%Y-%m-%d %H:%M} UTC"
    if used >= quota:
        if quota == 0 and used == 0:
            return None
        return Event(
            "quota.exceeded",
            key=f"quota.exceeded:{user}:{month}",
            text=(
                f"{user} has used up their server-hours for {month}: {used:.1f} of "
                f"{quota:g} hours (resets {resets})"
            ),
            user=user,
            reason=f"{used:.1f} of {quota:g} server-hours",
            at=now,
        )
    if used >= WARN_AT * quota:
        return Event(
            "quota.warning",
            key=f"quota.warning:{user}:{month}",
            text=(
                f"{user} has used {used / quota:.0%} of their server-hours for {month}: "
                f"{used:.1f} of {quota:g} hours (resets {resets})"
            ),
            user=user,
            reason=f"{used:.1f} of {quota:g} server-hours",
            at=now,
        )
    return None


class QuotaWatch:
    """Notifies users nearing or over their monthly quota. `check()` is one pass (tests call
    it with their own `now`); `run()` is the leader loop."""

    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        *,
        groups_of: GroupsOf | None = None,
        interval: float = INTERVAL,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.groups_of = groups_of
        self.interval = interval
        self.clock = clock

    def _due(self, now: datetime) -> list[Event]:
        quotas, _at, _by = quota_settings.load(self.engine)
        if not quotas.users and not quotas.groups:
            return []
        events = []
        for user, month in sorted(month_hours(self.engine, now).items()):
            groups = self.groups_of(user) if self.groups_of else None
            if groups is None:  # not in the directory: the groups of their latest session
                groups = month.groups or ()
            quota = quotas.hours_for(user, list(groups))
            if quota is None:
                continue
            event = quota_event(user, month.hours, quota, now)
            if event is not None:
                events.append(event)
        return events

    async def check(self, now: datetime | None = None) -> list[Event]:
        """One pass at `now` (default: the clock); the events it recorded (new ones only).
        Raises the database's errors."""
        now = now or self.clock()
        events = await asyncio.to_thread(self._due, now)
        recorded = []
        for event in events:
            if await self.outbox.emit(event):
                recorded.append(event)
        return recorded

    async def run(self) -> None:
        """The `quota-watch` loop: a pass every `interval` s. Never returns; cancel to stop."""
        while True:
            try:
                await self.check()
            except Exception as exc:
                log.warning("quota check failed (%s)", exc)
                await retry_pause(max(self.interval / 10, 5.0))
                continue
            await asyncio.sleep(self.interval)
