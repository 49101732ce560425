"""Small timing helpers: percentiles and a timed GET."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * pct / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Samples:
    """Wall-clock milliseconds of one target for one combination."""

    ms: list[float] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)
    starts: list[float] = field(default_factory=list)  # time.time() at each request's start

    @property
    def p50(self) -> float:
        return statistics.median(self.ms) if self.ms else float("nan")

    @property
    def p95(self) -> float:
        return percentile(self.ms, 95) if self.ms else float("nan")

    @property
    def max(self) -> float:
        return max(self.ms) if self.ms else float("nan")


def timed_get(
    client: httpx.Client,
    url: str,
    params: Mapping[str, str | int],
    headers: Mapping[str, str] | None = None,
) -> tuple[float, httpx.Response]:
    """GET and read the whole body; returns (milliseconds, response)."""
    start = time.perf_counter()
    response = client.get(url, params=params, headers=headers)
    _ = response.content
    return (time.perf_counter() - start) * 1000, response
