"""What the culler remembers of kernels that are gone: under `idle_source: kernels`, a server
with no kernels and no terminals is idle from its start *or its last kernel*; once a kernel is
shut down, the server no longer shows it, so its last activity is remembered here from the
looks the passes made (per server start; a restarted server starts afresh).

Memory of this process only: a culler that takes over (another replica, a restart) has not
seen the kernels that went before, and counts such a server from its start, as before this.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hubkeeper.kit.clock import parse_iso

Key = tuple[str, str]  # (user, server)
MAX_SERVERS = 100_000  # remembered servers before the memory is reset (bounded memory)


class KernelsSeen:
    """The latest kernel `last_activity` seen per server start (UTC)."""

    def __init__(self) -> None:
        self._latest: dict[Key, tuple[datetime | None, datetime]] = {}

    def note(
        self,
        user: str,
        server: str,
        started: datetime | None,
        kernels: Iterable[dict[str, Any]],
    ) -> None:
        """Remember the latest `last_activity` of `kernels`, read from `user`'s `server`
        that started at `started`."""
        times = [t for k in kernels if (t := parse_iso(k.get("last_activity"))) is not None]
        if not times:
            return
        key = (user, server)
        latest = max(times)
        known = self._latest.get(key)
        if known is not None and known[0] == started and known[1] >= latest:
            return
        if len(self._latest) >= MAX_SERVERS and key not in self._latest:
            self._latest.clear()
        self._latest[key] = (started, latest)

    def last(self, user: str, server: str, started: datetime | None) -> datetime | None:
        """The latest kernel activity seen in this start of the server; None if none seen."""
        known = self._latest.get((user, server))
        if known is None or known[0] != started:
            return None
        return known[1]
