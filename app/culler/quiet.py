"""Which servers a periodic kernel pass may leave alone: those where nothing could have changed
since it last looked (issue #14: each look costs a request to the user's server and, once an
hour, a token from the hub).

A server is skipped when all of these hold:
- the pass looked at it before, in the same server start, under the same kernel settings (or,
  never looked at, see "First sight" below);
- its proxy route shows no request since that look (the route's `last_activity`, read once
  per pass from the proxy, which costs the hub nothing): no one opened a notebook, started a
  kernel or ran a cell from a browser;
- no kernel it saw can have become cullable yet: now is before the earliest
  `last_activity + timeout_s` among them (a kernel's `last_activity` only moves forward,
  which only delays its cull). A server that had no kernels has no such deadline.

Why not simply "no traffic, skip": a busy kernel computes with no traffic at all (a long cell
in a closed tab), and its `last_activity` stays where it was when it went busy. Its deadline
therefore passes while it is still busy, and from then on the server is looked at on every
pass until the kernel is idle again or culled; the busy rule decides, as it always did.

What this can delay, by design: a kernel that *dies* without any traffic (its process killed
on the server) is culled at its deadline rather than at the next pass, and a kernel started by
code already running on the server (not through the proxy) is first seen at the next look.
Neither loses work.

First sight: a server this process never looked at (a new leader's first pass, a server
started since) is not looked at while now is before `started + timeout_s`. Every kernel of a
server was started after the server, and a kernel's `last_activity` starts at its start and
only moves forward, so none can be due before then, busy or not, traffic or not. The pass
notes a look "as of now" with that deadline; from then on the rules above apply (traffic
after it brings a real look, for the backtest's kernel activity too). This is what keeps a
new leader from minting a token for every running server at once: only servers older than
the kernel timeout are looked at on its first pass (their tokens minted in paced batches,
hub/server_tokens.py). A server without a known start is always looked at.

`POST culler/run`, `hubkeeper cull` and the preview never skip: they look
at everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hubkeeper.culler.settings import KernelSettings
from hubkeeper.kit.clock import as_utc, parse_iso

Key = tuple[str, str]  # (user, server)


@dataclass(frozen=True)
class Look:
    """What a pass saw of one server's kernels."""

    at: datetime  # when the pass looked (UTC)
    started: datetime | None  # the server's start, to tell a restart
    settings: str  # the kernel settings the look was judged with (JSON)
    due: datetime | None  # earliest last_activity + timeout_s of its kernels; None: none


class QuietServers:
    """The last look at each server's kernels, kept by the periodic kernel pass (per process:
    a new leader starts by looking at everything)."""

    def __init__(self) -> None:
        self._looks: dict[Key, Look] = {}
        self.skipped = 0  # servers left alone, for metrics and tests

    def may_skip(
        self,
        key: Key,
        *,
        started: datetime | None,
        cfg: KernelSettings,
        route_activity: datetime | None,
        now: datetime,
    ) -> bool:
        """Whether nothing could have changed on this server since the last look (see the
        module docstring). `route_activity`: the proxy route's `last_activity`; None (no
        route read, or none given) never skips."""
        look = self._looks.get(key)
        if route_activity is None:
            return False
        if look is None:
            return self._first_sight(key, started=started, cfg=cfg, now=now)
        if look.started != started or look.settings != cfg.model_dump_json():
            return False
        if route_activity > look.at:
            return False
        return look.due is None or now < look.due

    def _first_sight(
        self, key: Key, *, started: datetime | None, cfg: KernelSettings, now: datetime
    ) -> bool:
        """Never looked at: skip (noting a look as of `now`) while no kernel can be due yet,
        i.e. before `started + timeout_s` (module docstring, "First sight")."""
        if started is None:
            return False
        due = as_utc(started) + timedelta(seconds=cfg.timeout_s)
        if now >= due:
            return False
        self._looks[key] = Look(now, started, cfg.model_dump_json(), due)
        return True

    def remember(
        self,
        key: Key,
        *,
        started: datetime | None,
        cfg: KernelSettings,
        kernels: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        """Note a look at this server and the kernels it found."""
        deadlines = []
        for kernel in kernels:
            seen = parse_iso(kernel.get("last_activity"))
            if seen is None or kernel.get("execution_state") == "dead":
                deadlines.append(now)  # unknown or dead: look again next time
            else:
                deadlines.append(seen + timedelta(seconds=cfg.timeout_s))
        self._looks[key] = Look(now, started, cfg.model_dump_json(), min(deadlines, default=None))

    def forget_except(self, keys: set[Key]) -> None:
        """Drop the looks of servers no longer running."""
        for key in [k for k in self._looks if k not in keys]:
            del self._looks[key]
