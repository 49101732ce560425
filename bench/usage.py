"""Usage reports over a million sessions: `hubkeeper.history.rollup.usage` (by=day through the
daily rollup, by=user/group in SQL) on SQLite and PostgreSQL, for 30 days and for a year.

    .venv/bin/python bench/usage.py [--sessions 1000000] [--users 10000] [--runs 15]
        [--sqlite /tmp/usage-bench.sqlite] [--postgres postgresql+psycopg://...]

The data (built once per database, reused while its row count matches): N sessions from U
users over the two years before a fixed `now`, lengths drawn from an exponential with a mean
of 2 h (capped at 3 days, so some cross one or more midnights), those running at `now` open
and ~10 left open long ago (a crash), each user in one or two of 40 groups recorded as the
groups at the session's start. Also times the pure
Python path the issue measured (load every session, then `aggregate`) for 30 days on SQLite,
as the ratio against which the SQL figures stand (same run, same machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from hubkeeper.db.engine import create_db_engine, migrate, normalise_url
from hubkeeper.history.rollup import usage
from hubkeeper.history.service import sessions_between
from hubkeeper.history.usage import aggregate
from hubkeeper.history.usage_db import SQLITE_TS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=730)


def generate(n: int, users: int, seed: int = 9):  # noqa: ANN201 - yields row tuples
    rng = random.Random(seed)
    groups = {
        u: sorted({f"g{rng.randrange(40):02d}" for _ in range(rng.choice((1, 1, 2)))})
        for u in range(users)
    }
    span = SPAN.total_seconds()
    for _ in range(n):
        u = rng.randrange(users)
        start = NOW - timedelta(seconds=rng.random() * span)
        length = min(rng.expovariate(1 / 7200), 3 * 86400)
        stop: datetime | None = start + timedelta(seconds=length)
        assert stop is not None
        if stop > NOW or rng.random() < 10 / n:  # running now, or a few left open long ago
            stop = None
        yield (f"bench-{u:05d}", start, stop, groups[u])


def count(engine) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM server_session")).scalar() or 0)


def fill_sqlite(path: str, n: int, users: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM server_session")
    rows = (
        (
            user,
            "",
            start.strftime(SQLITE_TS),
            stop.strftime(SQLITE_TS) if stop else None,
            (stop - start).total_seconds() if stop else None,
            "unknown" if stop else None,
            json.dumps(groups),
        )
        for user, start, stop, groups in generate(n, users)
    )
    conn.executemany(
        'INSERT INTO server_session ("user", server, started_at, stopped_at, duration_s,'
        " stop_reason, groups) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def fill_postgres(url: str, n: int, users: int) -> None:
    import psycopg

    plain = normalise_url(url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        conn.execute("TRUNCATE server_session")
        with conn.cursor().copy(
            'COPY server_session ("user", server, started_at, stopped_at, duration_s,'
            " stop_reason, groups) FROM STDIN"
        ) as copy:
            for user, start, stop, groups in generate(n, users):
                copy.write_row(
                    (
                        user,
                        "",
                        start,
                        stop,
                        (stop - start).total_seconds() if stop else None,
                        "unknown" if stop else None,
                        json.dumps(groups),
                    )
                )
        conn.commit()
        conn.execute("ANALYZE server_session")


BEGIN = "<!-- bench/usage.py: begin (written by `bench/usage.py --write`) -->"
END = "<!-- bench/usage.py: end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
TARGET_MS = 300.0


def write_section(rows: list[tuple[str, int, str, float, float]], notes: list[str]) -> None:
    """Put the figures into docs/performance.md between the markers (bench/run.py keeps them
    when it rewrites the rest of the file)."""
    lines = [
        BEGIN,
        "## Usage over a million sessions (`bench/usage.py`)",
        "",
        *notes,
        "",
        "| database | window | by | p50 ms | p95 ms | p95 < 300 ms |",
        "| --- | ---: | --- | ---: | ---: | --- |",
        *(
            f"| {db} | {days} days | {by} | {p50:.0f} | {p95:.0f} | "
            f"{'yes' if p95 < TARGET_MS else '**no**'} |"
            for db, days, by, p50, p95 in rows
        ),
        END,
    ]
    text = DOC.read_text() if DOC.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + "\n".join(lines) + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    DOC.write_text(text)


def timed(fn, runs: int) -> tuple[float, float]:  # noqa: ANN001
    fn()  # warm the page cache and the plan
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95


def bench(
    name: str, url: str, n: int, users: int, runs: int, python_path: bool
) -> list[tuple[str, int, str, float, float]]:
    migrate(url)
    engine = create_db_engine(url)
    rows: list[tuple[str, int, str, float, float]] = []
    if count(engine) != n:
        t0 = time.perf_counter()
        if url.startswith("sqlite"):
            fill_sqlite(url.split("sqlite:///", 1)[1], n, users)
        else:
            fill_postgres(url, n, users)
        print(f"{name}: wrote {n:,} sessions in {time.perf_counter() - t0:.0f} s", flush=True)
    with engine.begin() as conn:  # measure the one-off rollup build, then its use
        conn.execute(text("DELETE FROM usage_rollup_state"))
        conn.execute(text("DELETE FROM usage_day"))
    t0 = time.perf_counter()
    usage(engine, since=NOW - timedelta(days=30), until=NOW, by="day", now=NOW)
    build = (time.perf_counter() - t0) * 1000
    print(f"{name:10} first by=day call, building the daily rollup: {build:7.0f} ms", flush=True)
    rows.append((f"{name}, first call: builds the rollup (once)", 730, "day", build, build))
    for days in (30, 365):
        since = (NOW - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
        for by in ("day", "user", "group"):
            p50, p95 = timed(
                lambda by=by, since=since: usage(engine, since=since, until=NOW, by=by, now=NOW),
                runs,
            )
            print(f"{name:10} {days:3} days by {by:5}: p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
            rows.append((name, days, by, p50, p95))
        if python_path and days == 30:
            p50, p95 = timed(
                lambda since=since: aggregate(
                    sessions_between(engine, since, NOW), since=since, until=NOW, by="day", now=NOW
                ),
                3,
            )
            print(f"{name:10} {days:3} days by day, Python (before): p50 {p50:7.1f} ms")
            rows.append((f"{name}, Python `aggregate` (before)", days, "day", p50, p95))
    engine.dispose()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--sqlite", default="/tmp/hubkeeper-usage-bench.sqlite")
    parser.add_argument("--postgres", default="")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    Path(args.sqlite).parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    rows = bench("sqlite", f"sqlite:///{args.sqlite}", args.sessions, args.users, args.runs, True)
    if args.postgres:
        rows += bench("postgresql", args.postgres, args.sessions, args.users, args.runs, False)
    if args.write:
        load_after = os.getloadavg()
        notes = [
            f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.processor() or 'cpu'}, "
            f"{os.cpu_count()} cores; SQLite {sqlite3.sqlite_version}.",
            f"- Data: {args.sessions:,} sessions from {args.users:,} users over the two years "
            "before `now` (see the module docstring); `hubkeeper.history.rollup.usage` (what "
            "the API, the History page and `hubkeeper report` call: by=day through the daily "
            "rollup, by=user/group in SQL), each cell after one warm-up, "
            f"{args.runs} runs; windows end at `now` and start at a UTC midnight.",
            f"- Load average (1 min) before / after: {load_before[0]:.1f} / {load_after[0]:.1f} "
            "on a machine shared with other work: tails carry noise.",
        ]
        write_section(rows, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
