"""The backtest's trade-off chart: for each candidate idle timeout, the server-hours it would
have saved (a bar, as a percentage of the largest saving) and the cuts it would have regretted.
The template draws it as HTML bars (no JS, text stays readable on a phone)."""

from __future__ import annotations

from dataclasses import dataclass

from hubkeeper.culler import backtest
from hubkeeper.kit.durations import short


@dataclass(frozen=True)
class Row:
    percent: float  # the bar's length: the saving as a % of the largest one
    timeout_s: int
    label: str  # the timeout, e.g. "30m"
    saved_hours: float
    regret_sessions: int
    cut_sessions: int
    marks: tuple[str, ...]  # "typed" (the one asked for), "current" (the culler's policy)


@dataclass(frozen=True)
class TradeOff:
    rows: list[Row]


def timeouts_to_try(typed: int, current: int) -> tuple[int, ...]:
    """The candidates `suggest` tries, the typed timeout and the current policy's, sorted."""
    return tuple(sorted({*backtest.CANDIDATES, typed, current}))


def trade_off(results: dict[int, backtest.Result], *, typed: int, current: int) -> TradeOff:
    """A row for each replayed timeout (shortest first), bars scaled to the largest saving."""
    totals = {timeout: result.total for timeout, result in results.items()}
    peak = max((total.saved_s for total in totals.values()), default=0.0) or 1.0
    rows = []
    for timeout in sorted(totals):
        total = totals[timeout]
        marks = tuple(
            mark for mark, at in (("typed", typed), ("current", current)) if at == timeout
        )
        rows.append(
            Row(
                percent=round(100 * total.saved_s / peak, 1),
                timeout_s=timeout,
                label=short(timeout),
                saved_hours=round(total.saved_s / 3600, 1),
                regret_sessions=total.regret_sessions,
                cut_sessions=total.cut_sessions,
                marks=marks,
            )
        )
    return TradeOff(rows=rows)
