"""The backtest's replay on made sessions, figures computed by hand (culler/backtest.py).

Times are from T0 = 2026-11-02 00:00 UTC; bucket k is [T0 + 300 k, T0 + 300 (k + 1)), and
activity in it counts at its end. Timeout 30 min (1800 s = 6 buckets) unless said.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hubkeeper.culler.backtest import (
    NO_GROUP,
    first_cut,
    items,
    keys_of,
    make_run,
    replay,
    suggest,
)
from hubkeeper.db.activity import BUCKET, PER_DAY, bucket_of, from_bytes, to_bytes

T0 = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
DAY0 = int(T0) // BUCKET // PER_DAY
MIN = 60
HOUR = 3600


def run(active: list[int], start: float = 0, stop: float = 4 * HOUR, user: str = "ann", keys=()):  # noqa: ANN001, ANN201
    """A session from T0 + start to T0 + stop with activity in buckets `active` (counted from
    T0, any day)."""
    days: dict[int, int] = {}
    for k in active:
        day, bit = divmod(int(T0) // BUCKET + k, PER_DAY)
        days[day] = days.get(day, 0) | (1 << bit)
    made = make_run(user, tuple(keys) or (user,), T0 + start, T0 + stop, days)
    assert made is not None
    return made


def test_cut_after_the_last_activity_plus_the_timeout() -> None:
    # active for the first 30 min (buckets 0-5), then idle until the stop at 4 h
    found = first_cut(run(list(range(6))), 1800)
    assert found == (T0 + 30 * MIN + 30 * MIN, None)  # cut at 1 h, nothing after
    result = replay([run(list(range(6)))], 1800)
    assert result.total.cut_sessions == 1
    assert result.total.saved_s == 3 * HOUR
    assert result.total.server_s == 4 * HOUR
    assert result.total.regret_sessions == 0


def test_never_idle_long_enough_is_never_cut() -> None:
    assert first_cut(run(list(range(48))), 1800) is None
    # a gap of exactly the timeout (bucket 5's end to bucket 11's end: 30 min) is not a cut
    assert first_cut(run([*range(6), 11, *range(11, 48)]), 1800) is None
    # one bucket more is: cut 30 min after bucket 5's end; the next activity at bucket 12's end
    assert first_cut(run([*range(6), *range(12, 48)]), 1800) == (T0 + HOUR, T0 + 65 * MIN)


def test_the_start_counts_as_activity() -> None:
    # no activity at all: cut a timeout after the first bucket's end
    assert first_cut(run([], start=0, stop=2 * HOUR), 1800) == (T0 + 35 * MIN, None)
    # a session shorter than that is never cut
    assert first_cut(run([], start=0, stop=30 * MIN), 1800) is None


def test_regret_when_the_same_server_is_used_again_within_15_minutes() -> None:
    # idle from 30 min, cut at 1 h; used again in bucket 14 (ends 1 h 15: within 15 min)
    regret = run([*range(6), 14])
    assert first_cut(regret, 1800) == (T0 + HOUR, T0 + 75 * MIN)
    assert replay([regret], 1800).total.regret_sessions == 1
    # used again in bucket 15 (ends 1 h 20): not a regret
    late = run([*range(6), 15])
    result = replay([late], 1800)
    assert (result.total.cut_sessions, result.total.regret_sessions) == (1, 0)
    assert result.total.saved_s == 3 * HOUR  # the stop is still 4 h


def test_regret_when_the_user_starts_a_new_server_within_15_minutes() -> None:
    # cut at 1 h; the user stopped at 1 h 30 anyway and started another server at 1 h 10
    first = run(list(range(6)), stop=90 * MIN)
    back = run([14], start=70 * MIN, stop=2 * HOUR)
    result = replay([first, back], 1800)
    assert result.total.cut_sessions == 2  # the second is idle from 1 h 15 + 30 min too
    assert result.total.regret_sessions == 1
    assert result.total.saved_s == 30 * MIN + 15 * MIN  # 1 h 30 - 1 h; 2 h - 1 h 45
    # 20 minutes later is no regret; another user's start is none either
    later = run([18], start=80 * MIN, stop=90 * MIN)
    other = run([], start=65 * MIN, stop=70 * MIN, user="ben")
    assert replay([first, later, other], 1800).total.regret_sessions == 0


def test_sessions_over_midnight_read_both_days() -> None:
    # from 23:00 to 03:00 next day, active until 00:30 (buckets 276-293), then idle
    over = run(list(range(276, 294)), start=23 * HOUR, stop=27 * HOUR)
    assert first_cut(over, 1800) == (T0 + 25 * HOUR, None)  # 00:30 + 30 min of the next day
    assert replay([over], HOUR).total.saved_s == 27 * HOUR - (24 * HOUR + 30 * MIN + HOUR)


def test_a_start_inside_a_bucket_and_a_stop_inside_one() -> None:
    # start at 00:02, stop at 01:03; only the start: cut at 00:05 + 30 min
    found = first_cut(run([], start=2 * MIN, stop=63 * MIN), 1800)
    assert found == (T0 + 35 * MIN, None)
    # activity in the bucket holding the stop counts at the stop: no cut after it
    assert first_cut(run([5, 11], start=2 * MIN, stop=58 * MIN), 1800) is None


def test_rows_per_key_and_the_total() -> None:
    a = run(list(range(6)), keys=("physics", "maths"))  # 3 h saved
    b = run(list(range(48)), user="ben", keys=("maths",))  # never cut
    out = items(replay([a, b], 1800))
    assert [row["key"] for row in out["items"]] == ["maths", "physics"]
    maths = out["items"][0]
    assert maths == {
        "key": "maths",
        "sessions": 2,
        "server_hours": 8.0,
        "saved_hours": 3.0,
        "saved_cost": None,
        "cut_sessions": 1,
        "regret_sessions": 0,
    }
    assert out["total"]["sessions"] == 2  # counted once however many groups
    assert out["total"]["saved_hours"] == 3.0


def test_keys_of_groups_at_start_else_now_else_no_group() -> None:
    assert keys_of("user", "ann", '["a"]', lambda _u: ()) == ("ann",)
    assert keys_of("group", "ann", '["a", "b"]', lambda _u: ["c"]) == ("a", "b")
    assert keys_of("group", "ann", None, lambda _u: ["c"]) == ("c",)
    assert keys_of("group", "ann", "[]", lambda _u: ["c"]) == (NO_GROUP,)


def test_suggest_picks_the_shortest_timeout_under_the_regret_rate() -> None:
    # "lab": idle 25 min then back, every time: a 15 min cut regrets, 30 min never cuts
    lab = [run([*range(6), *range(10, 48)], user=f"lab{i}", keys=("lab",)) for i in range(4)]
    # "class": work for 30 min then leave the server running: any timeout cuts, none regret
    course = [run(list(range(6)), user=f"c{i}", keys=("class",)) for i in range(4)]
    found = {row["key"]: row for row in suggest(lab + course, 0.0)}
    assert found["class"]["timeout_s"] == 900
    assert found["lab"]["timeout_s"] == 1800
    assert found["lab"]["regret_rate"] == 0.0
    assert found["lab"]["cut_sessions"] == 0
    # with every session allowed to regret, "lab" takes 15 min too
    assert {r["key"]: r["timeout_s"] for r in suggest(lab + course, 1.0)}["lab"] == 900
    # a rate no candidate meets: null
    always = [run([*range(6), 10], user="x", keys=("x",))]
    assert suggest(always, 0.0, candidates=(900,))[0] == {"key": "x", "timeout_s": None}


def test_bitmaps_are_stored_short() -> None:
    assert to_bytes(0) == b""
    assert to_bytes(1) == b"\x01"
    assert len(to_bytes(1 << 287)) == 36
    assert from_bytes(to_bytes(1 << 200 | 5)) == 1 << 200 | 5
    assert bucket_of(datetime(2026, 11, 2, 0, 4, 59, tzinfo=UTC)) == DAY0 * PER_DAY
    assert bucket_of(datetime(2026, 11, 2, 0, 5, tzinfo=UTC)) == DAY0 * PER_DAY + 1


def test_one_pass_over_many_timeouts_agrees_with_each_alone() -> None:
    """replay_many's shared maps against first_cut, session by session, on random history."""
    import random

    from hubkeeper.culler.backtest import REGRET_WINDOW, replay_many

    rng = random.Random(5)
    runs = []
    for i in range(400):
        start = rng.randrange(0, 3 * 86400)
        stop = start + rng.randrange(60, 20 * HOUR)
        k0, k1 = start // BUCKET, (stop - 1) // BUCKET
        active = [k for k in range(k0, k1 + 1) if rng.random() < rng.choice((0.05, 0.3, 0.8))]
        runs.append(run(active, start=start, stop=stop, user=f"u{i % 40}", keys=(f"g{i % 3}",)))
    timeouts = (300, 900, 1000, 1800, 3600, 7200, 14400, 28800, 86400)
    many = replay_many(runs, timeouts)
    for timeout in timeouts:
        cuts = saved = regrets = 0
        for r in runs:
            found = first_cut(r, timeout)
            if found is None:
                continue
            cut, again = found
            cuts += 1
            saved += r.stop - cut
            back = again is not None and again <= cut + REGRET_WINDOW
            back = back or any(
                o.user == r.user and cut < o.start <= cut + REGRET_WINDOW for o in runs
            )
            regrets += back
        total = many[timeout].total
        assert (total.cut_sessions, total.regret_sessions) == (cuts, regrets), timeout
        assert abs(total.saved_s - saved) < 1e-6, timeout
        assert total.sessions == len(runs)


def test_saved_cost_prices_the_saved_hours_by_profile() -> None:
    # a: 3 h saved on a 2.0/h profile; c: 3 h saved on the 0.5/h default; b: never cut
    a = run(list(range(6)), keys=("physics",))._replace(price=2.0)
    b = run(list(range(48)), user="ben", keys=("physics",))._replace(price=2.0)
    c = run(list(range(6)), user="cy", keys=("maths",))._replace(price=0.5)
    out = items(replay([a, b, c], 1800))
    assert {row["key"]: row["saved_cost"] for row in out["items"]} == {
        "physics": 6.0,
        "maths": 1.5,
    }
    assert out["total"]["saved_cost"] == 7.5
