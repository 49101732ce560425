"""Usage reports over a million sessions, on SQLite and PostgreSQL, for 30 days and a year.

    .venv/bin/python bench/usage.py [--sessions 1000000] [--users 10000] [--runs 20]
        [--sqlite PATH] [--postgres postgresql+psycopg://.../postgres] [--write]

The data, written afresh each run relative to the moment the run starts (`now`): N sessions
from U users over the two years before `now`, lengths drawn from an exponential with a mean of
2 h (capped at 3 days, so some cross one or more midnights) except one in 200, a server left
running for 1 to 90 days (uniformly), those running at `now` open and
~10 left open long ago (a crash), each user in one or two of 40 groups recorded as the groups
at the session's start. PostgreSQL gets a database of its own (`hubkeeper_usage_bench`).

Measured, per database:

1. the rollups' first build (`hubkeeper.history.rollup.refresh` from nothing: what the
   usage-rollup loop does once after an upgrade), and the report computed from the sessions
   alone (`usage_in_db`, what a report does while the rollups are not built yet);
2. `hubkeeper.history.report.usage` in-process (what the API, the History page and
   `hubkeeper report` call), each cell after one warm-up;
3. `GET api/v1/usage` on a real `hubkeeper serve` beside a real JupyterHub, through the hub's
   proxy with an admin's API token: the whole answer (auth, query, JSON), the figure the
   target is about (p95 < 300 ms).

Before the process is timed, its recorder has reconciled the sessions with the hub (the
sessions left open are closed: their users have no servers on this hub) and its usage-rollup
loop has brought the rollups up to date. Windows start at a UTC midnight and end at now.
Also times the pure Python path the issue measured (load every session, then `aggregate`)
for 30 days on SQLite, as the ratio against which the SQL figures stand (same run).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
from hubkeeper_proc import Hubkeeper  # noqa: E402
from hubsetup import cpu_model  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from timing import percentile  # noqa: E402

from hubkeeper.db.engine import create_db_engine, migrate, normalise_url  # noqa: E402
from hubkeeper.demo.localhub import LocalHub  # noqa: E402
from hubkeeper.history.report import usage  # noqa: E402
from hubkeeper.history.rollup import behind, refresh  # noqa: E402
from hubkeeper.history.service import sessions_between  # noqa: E402
from hubkeeper.history.usage import aggregate  # noqa: E402
from hubkeeper.history.usage_db import SQLITE_TS, usage_in_db  # noqa: E402

log = logging.getLogger("bench.usage")

SPAN = timedelta(days=730)
BENCH_DB = "hubkeeper_usage_bench"
BEGIN = "<!-- bench/usage.py: begin (written by `bench/usage.py --write`) -->"
END = "<!-- bench/usage.py: end -->"
DOC = REPO / "docs" / "performance.md"
TARGET_MS = 300.0
CELLS = [(days, by) for days in (30, 365) for by in ("day", "user", "group")]

# (user, server, started_at, stopped_at or None, duration_s or None, groups at start)
Row = tuple[str, str, datetime, datetime | None, float | None, list[str]]


def generate(n: int, users: int, now: datetime, seed: int = 9) -> Iterator[Row]:
    """Session rows, as described in the module docstring."""
    rng = random.Random(seed)
    groups = {
        u: sorted({f"g{rng.randrange(40):02d}" for _ in range(rng.choice((1, 1, 2)))})
        for u in range(users)
    }
    span = SPAN.total_seconds()
    for i in range(n):
        u = rng.randrange(users)
        start = now - timedelta(seconds=rng.random() * span)
        if rng.random() < 0.005:  # a server left running for days or months
            length = rng.uniform(1, 90) * 86400
        else:
            length = min(rng.expovariate(1 / 7200), 3 * 86400)
        stop: datetime | None = start + timedelta(seconds=length)
        assert stop is not None
        if stop > now or rng.random() < 10 / n:  # running now, or a few left open long ago
            stop = None
        # one open session per server (the database holds to it): an open one is a named server
        server = "" if stop else f"open-{i}"
        duration = (stop - start).total_seconds() if stop else None
        yield (f"bench-{u:05d}", server, start, stop, duration, groups[u])


def fill_sqlite(path: str, n: int, users: int, now: datetime) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM server_session")
    conn.executemany(
        'INSERT INTO server_session ("user", server, started_at, stopped_at, duration_s,'
        " stop_reason, groups) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (
                user,
                server,
                start.strftime(SQLITE_TS),
                stop.strftime(SQLITE_TS) if stop else None,
                duration,
                "unknown" if stop else None,
                json.dumps(groups),
            )
            for user, server, start, stop, duration, groups in generate(n, users, now)
        ),
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def fill_postgres(url: str, n: int, users: int, now: datetime) -> None:
    import psycopg

    plain = normalise_url(url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        conn.execute("TRUNCATE server_session")
        with conn.cursor().copy(
            'COPY server_session ("user", server, started_at, stopped_at, duration_s,'
            " stop_reason, groups) FROM STDIN"
        ) as copy:
            for user, server, start, stop, duration, groups in generate(n, users, now):
                copy.write_row(
                    (
                        user,
                        server,
                        start,
                        stop,
                        duration,
                        "unknown" if stop else None,
                        json.dumps(groups),
                    )
                )
        conn.commit()
        conn.execute("ANALYZE server_session")


def bench_database(server_url: str) -> str:
    """A fresh database of the bench's own on the PostgreSQL server of `server_url`."""
    import psycopg

    plain = normalise_url(server_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return normalise_url(server_url).rsplit("/", 1)[0] + "/" + BENCH_DB


def stats(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), percentile(times, 95)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm the page cache and the plan
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return stats(times)


def midnight_before(now: datetime, days: int) -> datetime:
    return (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)


def in_process(name: str, engine: Engine, runs: int, python_path: bool) -> dict[str, Any]:
    """The first build, the report without rollups, and `usage()` per cell, in this process."""
    out: dict[str, Any] = {}
    with engine.begin() as conn:  # from nothing, as after the upgrade that adds the rollups
        for table in (
            "usage_rollup_state",
            "usage_day",
            "usage_day_profile",
            "usage_user_day",
            "usage_user_month",
        ):
            conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - constant names
    now = datetime.now(UTC)
    since = midnight_before(now, 365)
    for by in ("day", "user", "group"):  # before the first build: computed from the sessions
        t0 = time.perf_counter()
        usage_in_db(engine, since=since, until=now, by=by, now=now)
        out[f"direct 365 {by}"] = (time.perf_counter() - t0) * 1000
        log.info("%s: a year by %s from the sessions: %.0f ms", name, by, out[f"direct 365 {by}"])
    t0 = time.perf_counter()
    refresh(engine, now)
    out["build"] = (time.perf_counter() - t0) * 1000
    log.info("%s: first build of the rollups: %.0f ms", name, out["build"])
    for days, by in CELLS:
        since = midnight_before(now, days)
        out[f"{days} {by}"] = timed(
            lambda by=by, since=since: usage(
                engine, since=since, until=datetime.now(UTC), by=by, now=datetime.now(UTC)
            ),
            runs,
        )
        log.info("%s in-process %d days by %s: p50/p95 %s ms", name, days, by, out[f"{days} {by}"])
        if python_path and days == 30 and by == "day":
            out["python 30 day"] = timed(
                lambda since=since: aggregate(
                    sessions_between(engine, since, now), since=since, until=now, by="day", now=now
                ),
                3,
            )
    return out


def wait_current(engine: Engine, hk: Hubkeeper, timeout: float = 600.0) -> float:
    """Seconds until the process has reconciled and its loop has the rollups current."""
    started = time.monotonic()
    time.sleep(5)  # the recorder's first reconcile (closes the sessions the hub never ran)
    deadline = started + timeout
    quiet = 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"rollups not current after {timeout:.0f} s:\n{hk.tail()}")
        quiet = quiet + 1 if behind(engine, datetime.now(UTC)) is None else 0
        time.sleep(2)
    return time.monotonic() - started


def timed_gets(client: httpx.Client, url: str, params: dict[str, str], runs: int) -> tuple:
    """(p50, p95) ms of `runs` GETs after one warm-up, and the warm-up's response."""
    first = client.get(url, params=params)
    first.raise_for_status()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(url, params=params)
        _ = response.content
        times.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    return stats(times), first


def over_http(
    name: str, hub: LocalHub, url: str, state: Path, token: str, runs: int
) -> dict[str, Any]:
    """`GET api/v1/usage` per cell, and the History page, on a real `hubkeeper serve` on
    database `url`."""
    hk = Hubkeeper(hub, state)
    hk.db_url = url
    cookie = hk.session_cookie(role="manager")  # a signed-in manager, for the page
    out: dict[str, Any] = {}
    engine = create_db_engine(url)
    hk.start()
    try:
        out["settle"] = wait_current(engine, hk)
        base = f"{hub.origin}{hub.base_url}services/hubkeeper/"
        with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=60) as client:
            for days, by in CELLS:
                since = midnight_before(datetime.now(UTC), days)
                params = {"since": since.isoformat(), "by": by}
                out[f"{days} {by}"], first = timed_gets(client, base + "api/v1/usage", params, runs)
                out[f"{days} {by} rows"] = len(first.json()["rows"])
                log.info("%s HTTP %d days by %s: %s ms", name, days, by, out[f"{days} {by}"])
        with httpx.Client(headers={"Cookie": cookie}, timeout=60) as browser:
            for days in (30, 365):
                since = midnight_before(datetime.now(UTC), days - 1).date().isoformat()
                params = {"since": since, "by": "user"}
                out[f"page {days}"], _ = timed_gets(browser, base + "history", params, runs)
                log.info("%s History page %d days by user: %s ms", name, days, out[f"page {days}"])
    finally:
        hk.stop()
        engine.dispose()
    return out


def write_section(text_lines: list[str]) -> None:
    """Put the figures into docs/performance.md between the markers (bench/run.py keeps them
    when it rewrites the rest of the file)."""
    lines = [BEGIN, *text_lines, END]
    doc = DOC.read_text() if DOC.exists() else ""
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + "\n".join(lines) + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    DOC.write_text(doc)


def render(
    args: argparse.Namespace, found: dict[str, dict[str, Any]], notes: list[str]
) -> list[str]:
    lines = [
        "## Usage over a million sessions (`bench/usage.py`)",
        "",
        *notes,
        "",
        "Target: p95 < 300 ms for the answer of `GET api/v1/usage` (HTTP, the last columns).",
        "",
        "| database | window | by | rows | in-process p50 / p95 ms | HTTP p50 / p95 ms | "
        "p95 < 300 ms |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for db, result in found.items():
        for days, by in CELLS:
            p50, p95 = result["in_process"][f"{days} {by}"]
            h50, h95 = result["http"][f"{days} {by}"]
            lines.append(
                f"| {db} | {days} days | {by} | {result['http'][f'{days} {by} rows']:,} | "
                f"{p50:.0f} / {p95:.0f} | {h50:.0f} / {h95:.0f} | "
                f"{'yes' if h95 < TARGET_MS else '**no**'} |"
            )
    lines += [
        "",
        "The History page (`GET history?since=...&by=user` signed in as a manager: the chart "
        "by day, the 100 busiest users, the first page of sessions, as HTML):",
        "",
        "| database | window | p50 / p95 ms | p95 < 300 ms |",
        "| --- | ---: | ---: | --- |",
    ]
    for db, result in found.items():
        for days in (30, 365):
            p50, p95 = result["http"][f"page {days}"]
            lines.append(
                f"| {db} | {days} days | {p50:.0f} / {p95:.0f} | "
                f"{'yes' if p95 < TARGET_MS else '**no**'} |"
            )
    lines += [
        "",
        "Without the rollups (in-process, one run each): the first build, and a year computed "
        "from the sessions alone (what a report does until the build is done):",
        "",
        "| database | first build of the rollups | a year by day | by user | by group |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for db, result in found.items():
        r = result["in_process"]
        lines.append(
            f"| {db} | {r['build'] / 1000:.1f} s | {r['direct 365 day']:.0f} ms | "
            f"{r['direct 365 user']:.0f} ms | {r['direct 365 group']:.0f} ms |"
        )
    python = found.get("sqlite", {}).get("in_process", {}).get("python 30 day")
    if python:
        ours = found["sqlite"]["in_process"]["30 day"][0]
        lines += [
            "",
            f"The code before (every session of the window loaded into Python, then "
            f"`aggregate`), 30 days by day on SQLite: p50 {python[0]:.0f} ms, against "
            f"{ours:.1f} ms from the rollups in the same run ({python[0] / ours:.0f}×).",
        ]
    return lines + HOW


HOW = [
    "",
    "How (`app/history/rollup.py`, `app/history/report.py`):",
    "",
    "- Closed UTC days do not change once every session touching them is recorded, so three "
    "rollups keep them: per day (by=day), per day, user and groups at start, and per month, "
    "user and groups. A report reads the whole closed days and months of its window from them "
    "and computes only its edges from the sessions (a partial first day, today): a year by "
    "user reads about eleven monthly rows and a few dozen daily rows per user instead of "
    "every session. The per-user rollups keep the sessions that *start* in a day or month, so "
    "a session spanning several counts once; the sessions already running at the window's "
    "start are added from the sessions table.",
    "- They are checked on each use (a few index reads) and rebuilt from the first day a "
    "change touches: a session written into the past, an open session closed at a past time, "
    "a new midnight. Small rebuilds (at most 20,000 sessions) happen in the report itself; "
    "the first build after the upgrade is the `usage-rollup` leader loop's (the table above, "
    "in transactions of 62 days), and until it is done a report computes from the sessions "
    "(the 'without the rollups' figures). `tests/history/test_rollup.py` checks every window "
    "shape against the definition (`aggregate`) through such changes, on both databases.",
    "- The edges are computed from the sessions that start within a day before them, plus "
    "those over a day long that reach into them (their own partial index, "
    "`ix_server_session_long`) and the open ones: a server left running for months (one "
    "session in 200 in this data) never widens the scan of every report.",
    "- In-process runs on the data as generated, with its servers running since before "
    "today (open sessions, which each check of the rollups looks up by id); the HTTP runs "
    "come after the process's recorder has closed them (the bench hub runs none of them).",
    "- The HTTP figures add to the in-process ones the token check (cached), the JSON of up "
    "to 10,000 rows (by=user answers one row per user) and the proxy hop.",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sqlite", default="")
    parser.add_argument("--postgres", default="", help="a server URL; the bench makes its own db")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="hubkeeper-usage-bench-"))
    load_before = os.getloadavg()
    now = datetime.now(UTC)
    databases = {"sqlite": f"sqlite:///{args.sqlite or work / 'usage.sqlite'}"}
    if args.postgres:
        databases["postgresql"] = bench_database(args.postgres)
    found: dict[str, dict[str, Any]] = {}
    for name, url in databases.items():
        migrate(url)
        t0 = time.perf_counter()
        if name == "sqlite":
            fill_sqlite(url.split("sqlite:///", 1)[1], args.sessions, args.users, now)
        else:
            fill_postgres(url, args.sessions, args.users, now)
        log.info("%s: wrote %d sessions in %.0f s", name, args.sessions, time.perf_counter() - t0)
        engine = create_db_engine(url)
        found[name] = {"in_process": in_process(name, engine, args.runs, name == "sqlite")}
        engine.dispose()
    hub = LocalHub(work / "hub", start_timeout=60)
    hub.start()
    try:
        token = hub.user_token("admin", note="usage bench")
        for name, url in databases.items():
            state = work / f"hubkeeper-{name}"
            state.mkdir()
            found[name]["http"] = over_http(name, hub, url, state, token, args.runs)
    finally:
        hub.stop()
    load_after = os.getloadavg()
    notes = [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}; SQLite "
        f"{sqlite3.sqlite_version}.",
        f"- Data: {args.sessions:,} sessions from {args.users:,} users over the two years "
        "before the run (see the module docstring). In-process: "
        "`hubkeeper.history.report.usage`; HTTP: `GET api/v1/usage` on a real "
        "`hubkeeper serve` through a real hub's proxy. Each cell after one warm-up, "
        f"{args.runs} runs; windows start at a UTC midnight and end at now.",
        f"- Load average (1 min) before / after: {load_before[0]:.1f} / {load_after[0]:.1f}.",
    ]
    lines = render(args, found, notes)
    print("\n".join(lines))
    if args.write:
        write_section(lines)
    return 0


def machine() -> str:
    return f"{cpu_model('unknown CPU')}, {os.cpu_count()} cores; Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
