"""Geometry of the server-hours bar chart; the template draws it as inline SVG (no JS)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hubkeeper.history.usage import UsageRow

WIDTH, HEIGHT = 800, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 26  # room for the axis labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    key: str
    hours: float
    label: str  # the day shown under the bar, or "" (labels thin out on long windows)


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: float
    top: int
    bottom: float
    bars: list[Bar]
    ticks: list[Tick]
    peak: float


def _nice_max(value: float) -> float:
    """1, 2, 5 × 10^n at or above value (at least 1 h)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def bar_chart(days: list[UsageRow]) -> Chart:
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    peak = max((r.server_hours for r in days), default=0.0)
    top = _nice_max(peak)
    slot = plot_w / max(1, len(days))
    every = max(1, math.ceil(len(days) / 10))
    bars = []
    for i, row in enumerate(days):
        height = plot_h * row.server_hours / top
        bars.append(
            Bar(
                x=round(LEFT + i * slot + slot * 0.15, 2),
                y=round(TOP + plot_h - height, 2),
                width=round(max(1.0, slot * 0.7), 2),
                height=round(height, 2),
                key=row.key,
                hours=row.server_hours,
                label=row.key[5:] if i % every == 0 else "",
            )
        )
    ticks = [
        Tick(y=round(TOP + plot_h - plot_h * f, 2), label=f"{top * f:g}") for f in (0.0, 0.5, 1.0)
    ]
    return Chart(WIDTH, HEIGHT, LEFT, WIDTH - RIGHT, TOP, TOP + plot_h, bars, ticks, peak)
