"""A session's record gaps: what `backtest.replay` needs of it, small enough to store and to
aggregate in SQL (culler/backtest_summary.py).

Under a timeout T (s, at least one bucket) the replay cuts a session at its first idle gap
longer than T: after the active bucket ending at `f`, `cut = f + T`, if that is before the
stop. Only a gap longer than every earlier gap of the session can be that first one (a
"record" gap; the trailing gap, to the stop and past it, is longer than any), and a session
has few: the gaps of a working spell grow slowly, then one long one. Record gap r, of length
`gap_s` ((empty buckets + 1) × 300 s), is the first gap longer than T for exactly
`prev_gap_s <= T < gap_s`; it cuts for `T < stop - f`. So each record becomes one `Gap`
with `lo <= T < hi`, and a session is cut under T by at most one of its `Gap`s:

- `saved` = stop - f - T;
- a regret by the same server: `back` (its next activity, capped at the stop) <= cut + 900,
  i.e. T >= back - f - 900;
- a regret by a new session of the user: a start s in (cut, cut + 900]; only the starts in
  `[f + lo, f + hi + 900]` can be one (`returns`).

Times in seconds since 1970-01-01 UTC, as `backtest.Run` has them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import NamedTuple

from hubkeeper.culler.backtest import REGRET_WINDOW, Run
from hubkeeper.db.activity import BUCKET


class Gap(NamedTuple):
    """One record gap that can cut: timeouts `lo <= T < hi` (s) cut the session at `f + T`."""

    f: float  # idle from: the end of the active bucket before the gap (s since the epoch)
    lo: float  # s: the longest earlier gap (0 for the first)
    hi: float  # s: min(this gap, stop - f)
    back: float | None  # the same server's next activity (capped at the stop); None: trailing


def record_gaps(run: Run) -> list[Gap]:
    """The record gaps of `run` that some timeout cuts at, in order (`lo` and `f` grow).

    Walks the runs of active buckets with bit tricks (a run of ones and the zeros after it
    in two steps), not bucket by bucket."""
    bits, stop = run.bits, run.stop
    base = run.b0 * BUCKET
    out: list[Gap] = []
    prev = 0.0
    pos = 0  # an active bucket (bit 0 is the start: always set)
    while True:
        here = bits >> pos
        ones = ((here + 1) & ~here).bit_length() - 1  # active buckets from pos on
        last = pos + ones - 1
        f: float = base + (last + 1) * BUCKET
        rest = bits >> (last + 1)
        if not rest:  # the trailing gap: longer than any timeout
            f = min(f, stop)
            if stop - f > prev:
                out.append(Gap(f, prev, stop - f, None))
            return out
        empty = (rest & -rest).bit_length() - 1
        gap = (empty + 1) * BUCKET
        nxt = last + 1 + empty
        if gap > prev:
            hi = min(gap, stop - f)
            if hi <= prev:  # cut at or after the stop from here on: no later gap cuts
                return out
            out.append(Gap(f, prev, hi, min(base + (nxt + 1) * BUCKET, stop)))
            prev = gap
        pos = nxt


def returns(gap: Gap, starts: Sequence[float]) -> list[float]:
    """The starts (sorted, s since the epoch) that can make a cut at this gap a regret: in
    `[f + lo, f + hi + 900]` (a little wider than needed; the check at replay is exact)."""
    low = bisect.bisect_left(starts, gap.f + gap.lo)
    high = bisect.bisect_right(starts, gap.f + gap.hi + REGRET_WINDOW)
    return list(starts[low:high])


def outcome(
    gap: Gap, stop: float, timeout: int, starts: Sequence[float]
) -> tuple[float, bool] | None:
    """(saved s, regret) under `timeout` if this gap cuts the session, else None: the rule
    the SQL aggregate applies, written once in Python for the tests."""
    if not gap.lo <= timeout < gap.hi:
        return None
    cut = gap.f + timeout
    regret = gap.back is not None and gap.back <= cut + REGRET_WINDOW
    if not regret:
        k = bisect.bisect_right(starts, cut)
        regret = k < len(starts) and starts[k] <= cut + REGRET_WINDOW
    return stop - cut, regret
