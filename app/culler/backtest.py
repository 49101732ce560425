"""The policy backtester: replay recorded sessions and their activity under a candidate idle
timeout, and say what it would have saved and whom it would have hurt.

The model (docs/culler.md "Backtest"), times in seconds since 1970-01-01 UTC:

- A session's activity is its 5-minute buckets (db/activity.py) of one source: `hub` (the
  hub's or the proxy route's `last_activity` moving) or `kernels` (kernel activity the kernel
  pass saw). Activity seen in a bucket counts at the bucket's end (capped at the session's
  stop), and the session's start counts as activity (its first bucket is active): the
  replay never cuts earlier than the real culler could have.
- The policy cuts a session at the first moment it has been idle for longer than `timeout`:
  `cut = last activity + timeout`, if that is before the session stopped. `saved` = stop - cut.
- `saved_cost`: the saved server-hours × the price of the session's profile
  (HUBKEEPER_PRICES, `kit.prices.price_of`); None without prices.
- A cut is a regret when its user was active again within `REGRET_WINDOW` (15 min) of it:
  the same server's next activity (which the cut would have met with a stopped server), or
  a session of that user (any server) starting in `(cut, cut + 15 min]`.

`replay` is pure and runs over prepared `Run`s; `prepare` builds them from session rows and
activity rows. The bitmaps are Python ints: finding the first gap of `m` empty buckets is a
handful of shifts and ANDs per session (log2 m steps), not a walk over the buckets.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from hubkeeper.db.activity import BUCKET, PER_DAY

REGRET_WINDOW = 900  # s after a cut in which a return is a regret
NO_GROUP = "(no group)"  # as the usage report names it
CANDIDATES = (900, 1800, 3600, 7200, 14400, 28800)  # s: the timeouts `suggest` tries
MIN_TIMEOUT = BUCKET  # s: shorter than a bucket cannot be told apart from activity
MAX_TIMEOUT = 30 * 86400  # s
GroupsOf = Callable[[str], Sequence[str]]


class Run(NamedTuple):
    """One session ready for replay (times in s since the epoch, UTC). A plain tuple: a year
    of a large hub is a million of them."""

    user: str
    keys: tuple[str, ...]  # what it counts under (its user, or its groups); shared tuples
    start: float
    stop: float
    b0: int  # the bucket holding `start`
    n: int  # buckets from b0 to the one holding the last instant before `stop`
    bits: int  # activity: bit i = bucket b0 + i (bit 0 set: the start)
    price: float | None = None  # per server-hour of its profile (HUBKEEPER_PRICES); None: unpriced


@dataclass(slots=True)
class Tally:
    sessions: int = 0
    server_s: float = 0.0
    saved_s: float = 0.0
    cut_sessions: int = 0
    regret_sessions: int = 0
    saved_cost: float | None = None  # Σ saved hours × price; None: no prices

    def add(self, other: Tally) -> None:
        self.sessions += other.sessions
        self.server_s += other.server_s
        self.saved_s += other.saved_s
        self.cut_sessions += other.cut_sessions
        self.regret_sessions += other.regret_sessions
        if other.saved_cost is not None:
            self.saved_cost = (self.saved_cost or 0.0) + other.saved_cost

    def as_dict(self, key: str | None = None) -> dict[str, object]:
        out: dict[str, object] = {} if key is None else {"key": key}
        out.update(
            sessions=self.sessions,
            server_hours=round(self.server_s / 3600, 3),
            saved_hours=round(self.saved_s / 3600, 3),
            saved_cost=None if self.saved_cost is None else round(self.saved_cost, 4),
            cut_sessions=self.cut_sessions,
            regret_sessions=self.regret_sessions,
        )
        return out


@dataclass(slots=True)
class Result:
    by_key: dict[str, Tally] = field(default_factory=dict)
    total: Tally = field(default_factory=Tally)


def bucket_span(start: float, stop: float) -> tuple[int, int]:
    """(b0, n): the bucket holding `start` and how many buckets reach the last instant
    before `stop` (at least one)."""
    b0 = int(start) // BUCKET
    b1 = (math.ceil(stop) - 1) // BUCKET
    return b0, max(b1 - b0 + 1, 1)


def day_bits(days: dict[int, int], b0: int, n: int) -> int:
    """The session's activity from its server's bitmaps by day: bit i = bucket b0 + i."""
    d0, d1 = b0 // PER_DAY, (b0 + n - 1) // PER_DAY
    if d0 == d1:
        combined = days.get(d0, 0)
    else:
        combined = 0
        for day in range(d0, d1 + 1):
            found = days.get(day)
            if found:
                combined |= found << ((day - d0) * PER_DAY)
    return (combined >> (b0 - d0 * PER_DAY)) & ((1 << n) - 1)


def make_run(
    user: str,
    keys: tuple[str, ...],
    start: float,
    stop: float,
    days: dict[int, int] | None,
    price: float | None = None,
) -> Run | None:
    """A `Run` from a session's times and its server's bitmaps by day (None: no stop after
    start, nothing to replay); `price` per server-hour, None when there are no prices."""
    if stop <= start:
        return None
    b0, n = bucket_span(start, stop)
    bits = 1 | (day_bits(days, b0, n) if days else 0)
    return Run(user, keys, start, stop, b0, n, bits, price)


def _steps(m: int) -> tuple[int, ...]:
    """The shifts that turn "bucket p empty" into "buckets p .. p+m-1 empty" by doubling."""
    steps = []
    have = 1
    while have < m:
        step = min(have, m - have)
        steps.append(step)
        have += step
    return tuple(steps)


def _cut(bits: int, b0: int, n: int, stop: float, timeout: int, steps: tuple[int, ...]):  # noqa: ANN202
    m = timeout // BUCKET  # empty buckets after an active one that make a gap > timeout
    empty = ~bits & ((1 << (n + m + 1)) - 1)  # past the session: empty
    for step in steps:
        empty &= empty >> step
    starts = bits & (empty >> 1)  # an active bucket followed by m empty ones
    if not starts:
        return None
    j = (starts & -starts).bit_length() - 1
    last = (b0 + j + 1) * BUCKET
    cut = (stop if last > stop else last) + timeout
    if cut >= stop:
        return None
    rest = bits >> (j + 1)
    if not rest:
        return cut, None
    again = (b0 + j + 1 + (rest & -rest).bit_length()) * BUCKET
    return cut, (stop if again > stop else again)


def first_cut(run: Run, timeout: int) -> tuple[float, float | None] | None:
    """(cut time, the same server's next activity after it or None), or None when the
    policy never cuts this session. `timeout` in whole seconds, at least one bucket.

    Bit tricks on the session's bitmap: "bucket p starts m empty buckets" for every p at
    once in log2(m) shifts and ANDs, then the lowest active bucket followed by such a run."""
    return _cut(run.bits, run.b0, run.n, run.stop, timeout, _steps(timeout // BUCKET))


def replay(runs: Iterable[Run], timeout: int) -> Result:
    """The candidate policy over `runs`: tallies per key and in total."""
    return replay_many(runs, (timeout,))[timeout]


def replay_many(
    runs: Iterable[Run],
    timeouts: Iterable[int],
    more_starts: Mapping[str, Iterable[float]] | None = None,
) -> dict[int, Result]:
    """Several candidate timeouts (s, at least one bucket) in one pass over `runs` (a list
    or a stream: each is looked at once). `more_starts`: by user, the starts (s since the
    epoch) of sessions replayed elsewhere, which can make a cut here a regret.

    Shortest first, each session's "m empty buckets from here" map grows from the last one
    (`runs &= runs >> (m - m_before)` holds while the step is at most m_before: doubling
    timeouts cost one shift each), and a session one timeout does not cut is cut by no
    longer one, so the pass stops there."""
    ordered = sorted(set(timeouts))
    ms = [t // BUCKET for t in ordered]
    plan: list[tuple[int, int, tuple[int, ...], bool]] = []  # timeout, m, shifts, fresh
    before = 1
    for timeout, m in zip(ordered, ms, strict=True):
        if m <= 2 * before and plan:
            shifts: tuple[int, ...] = (m - before,) if m > before else ()
        else:
            shifts = _steps(m)  # from the one-bucket map
        plan.append((timeout, m, shifts, not plan or m > 2 * before))
        before = m
    widest = ms[-1] + 1
    # every session's start by user, for regrets in a new server: known only once all are
    # read, so those checks wait in `pending` (one pass: `runs` may be a stream)
    starts: dict[str, list[float]] = defaultdict(list)
    for user, more in (more_starts or {}).items():
        starts[user].extend(more)
    pending: list[tuple[str, float, list[float], int]] = []
    # sessions, server s, and per timeout saved s, cuts, regrets: by keys tuple (shared) and
    # price (the few prices of the profiles: saved cost = saved s × price, at the end)
    count = len(plan)
    acc: dict[tuple[tuple[str, ...], float | None], list[float]] = {}
    for user, keys, start, stop, b0, n, bits, price in runs:
        starts[user].append(start)
        row = acc.get((keys, price))
        if row is None:
            row = acc[(keys, price)] = [0.0] * (2 + 3 * count)
        row[0] += 1
        row[1] += stop - start
        base = b0 * BUCKET
        one_empty = ~bits & ((1 << (n + widest)) - 1)  # past the session: empty
        empty = one_empty
        for i, (timeout, _m, shifts, fresh) in enumerate(plan):
            if stop <= base + BUCKET + timeout:  # no cut before the first bucket's end
                break
            if fresh:
                empty = one_empty
            for step in shifts:
                empty &= empty >> step
            found = bits & (empty >> 1)  # an active bucket followed by m empty ones
            if not found:
                break
            j = (found & -found).bit_length()  # index + 1
            last = base + j * BUCKET
            cut = (stop if last > stop else last) + timeout
            if cut >= stop:
                break
            at = 2 + 3 * i
            row[at] += stop - cut
            row[at + 1] += 1
            rest = bits >> j
            if rest:
                again = base + (j + (rest & -rest).bit_length()) * BUCKET
                if (stop if again > stop else again) <= cut + REGRET_WINDOW:
                    row[at + 2] += 1
                    continue
            pending.append((user, cut, row, at + 2))
    for values in starts.values():
        values.sort()
    bisect_right = bisect.bisect_right
    for user, cut, row, at in pending:
        mine = starts[user]
        k = bisect_right(mine, cut)
        if k < len(mine) and mine[k] <= cut + REGRET_WINDOW:
            row[at] += 1
    results = {timeout: Result() for timeout in ordered}
    for (keys, price), row in acc.items():
        for i, timeout in enumerate(ordered):
            at = 2 + 3 * i
            one = Tally(int(row[0]), row[1], row[at], int(row[at + 1]), int(row[at + 2]))
            one.saved_cost = None if price is None else row[at] / 3600 * price
            result = results[timeout]
            for key in keys:
                tally = result.by_key.get(key)
                if tally is None:
                    tally = result.by_key[key] = Tally()
                tally.add(one)
            result.total.add(one)
    return results


def suggest(
    runs: Iterable[Run], max_regret: float, candidates: Iterable[int] = CANDIDATES
) -> list[dict[str, object]]:
    """Per key, the shortest candidate timeout (s) whose regret rate — regret sessions per
    session replayed — stays at or under `max_regret` (0..1); null when none does."""
    return suggest_from(replay_many(runs, candidates), max_regret)


def suggest_from(many: dict[int, Result], max_regret: float) -> list[dict[str, object]]:
    """`suggest` on replays already made, by timeout."""
    results = sorted(many.items())
    keys = sorted({k for _, r in results for k in r.by_key})
    out: list[dict[str, object]] = []
    for key in keys:
        chosen: tuple[int, Tally] | None = None
        for timeout, result in results:
            tally = result.by_key.get(key)
            if tally is None or tally.sessions == 0:
                continue
            if tally.regret_sessions / tally.sessions <= max_regret:
                chosen = (timeout, tally)
                break
        if chosen is None:
            out.append({"key": key, "timeout_s": None})
            continue
        timeout, tally = chosen
        row: dict[str, object] = {"key": key, "timeout_s": timeout}
        row.update(tally.as_dict())
        row["regret_rate"] = round(tally.regret_sessions / tally.sessions, 4)
        out.append(row)
    return out


def keys_of(
    by: str, user: str, groups_json: str | None, groups_of: Callable[[str], Sequence[str]]
) -> tuple[str, ...]:
    """What a session counts under: its user, or the groups its user was in at its start
    (`ServerSession.groups`; for older sessions the user's groups now), "(no group)" if none.
    A user in two groups counts in both, so group rows may add up to more than the total."""
    if by == "user":
        return (user,)
    groups = list(groups_of(user)) if groups_json is None else json.loads(groups_json)
    return tuple(str(g) for g in groups) or (NO_GROUP,)


def items(result: Result) -> dict[str, object]:
    """The API's answer: rows by key (sorted), and the total."""
    return {
        "items": [result.by_key[k].as_dict(k) for k in sorted(result.by_key)],
        "total": result.total.as_dict(),
    }
