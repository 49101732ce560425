"""One server's memory and CPU, read from jupyter-resource-usage's `api/metrics/v1`.

What the extension writes (jupyter_resource_usage/api.py `ApiHandler.get`, 1.x):
`{"rss": <bytes of the server and its children>, "pss": <bytes, on Linux>, "limits":
{"memory": {"rss": <bytes, 0 = no limit (MEM_LIMIT)>, "pss": ..., "warn": bool}, "cpu": ...},
"cpu_percent": <% of one core, summed over the processes>, "cpu_count": int}`; `cpu_percent`
only when the server runs with `ResourceUseDisplay.track_cpu_percent = True`.

The answer comes from a server the user controls, so nothing in it is trusted: only finite,
non-negative numbers (never booleans) are taken, clamped to plausible bounds; an answer
without a usable `rss` gives no figures at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_BYTES = 1 << 50  # 1 PiB: more is not a server's memory, it is garbage clamped
MAX_CPU_PERCENT = 100.0 * 4096  # 4,096 cores fully used


@dataclass(frozen=True, slots=True)
class Figures:
    """A server's figures at `at` (UTC): memory in bytes (rss), its limit in bytes (None: no
    limit said), CPU in % of one core (None: not tracked)."""

    memory_bytes: int
    memory_limit_bytes: int | None
    cpu_percent: float | None
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "memory_bytes": self.memory_bytes,
            "memory_limit_bytes": self.memory_limit_bytes,
            "cpu_percent": self.cpu_percent,
            "at": self.at,
        }


def _number(value: object) -> float | None:
    """A finite, non-negative int or float; None for anything else (bool, str, NaN, ...)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        return None
    return number


def read_figures(data: object, at: datetime) -> Figures | None:
    """The figures in one `api/metrics/v1` answer, or None when it has no usable `rss`."""
    if not isinstance(data, dict):
        return None
    rss = _number(data.get("rss"))
    if rss is None:
        return None
    limit: int | None = None
    limits = data.get("limits")
    memory = limits.get("memory") if isinstance(limits, dict) else None
    if isinstance(memory, dict):
        value = _number(memory.get("rss"))
        if value:  # 0 is the extension's "no limit"
            limit = int(min(value, MAX_BYTES))
    cpu = _number(data.get("cpu_percent"))
    return Figures(
        memory_bytes=int(min(rss, MAX_BYTES)),
        memory_limit_bytes=limit,
        cpu_percent=None if cpu is None else round(min(cpu, MAX_CPU_PERCENT), 1),
        at=at,
    )
