"""Read benchmark: Hubkeeper's users page and users API against the hub's own `GET /users`.

    .venv/bin/python bench/run.py [--users 50000] [--repeat 30] [--quick]

Sets up (or reuses) a real JupyterHub with N users in `.bench/hub-N`, starts real user servers,
runs Hubkeeper as a separate process, waits until its directory holds every user, then times
every search x status x sort x page combination on all three, interleaved, through the hub's
proxy (the path a browser and a script take). Then freshness (a server started/stopped on the
hub, until Hubkeeper shows it), memory, and the directory's cold query cost in-process.
Writes docs/performance.md and .bench/results-N.json. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import re
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from hubkeeper_proc import Hubkeeper  # noqa: E402
from hubsetup import (  # noqa: E402
    PAGINATION,
    cpu_model,
    hub_total,
    prepare_hub,
    rss_kib,
    running_users,
    start_servers,
    user_name,
)
from timing import Samples, percentile, timed_get  # noqa: E402

log = logging.getLogger("bench")

PAGE_SIZE = 50
PREFIX = "/services/hubkeeper/"
TARGET_P95_MS = 20.0
PROFILE_RATE = 250  # py-spy samples per second

# (label, q): none, many matches (20 % at 50,000), ten users, none at all; set by `searches()`
SEARCHES: tuple[tuple[str, str], ...] = ()


def searches(n_users: int) -> tuple[tuple[str, str], ...]:
    common = "user-1" if n_users >= 20_000 else "user-01"
    rare = f"-{n_users // 10 - 1:04d}"  # user-49990 … user-49999 at 50,000
    return (("none", ""), ("common", common), ("rare", rare), ("no match", "zzz-nobody"))


# label → (page status, API state, hub state)
STATUSES = {
    "any": ("any", "any", None),
    "running": ("running", "running", "active"),
    "stopped": ("stopped", "stopped", "inactive"),
}
# label → (page sort, API sort, hub sort); None = that side has no such sort
SORTS = {
    "name": ("name", "name", "name"),
    "-last_activity": ("-last_activity", "-last_activity", "-last_activity"),
    "-started": ("-started", None, None),
}
PAGES = ("first", "last")


@dataclass
class Combo:
    search: str
    q: str
    status: str
    sort: str
    page: str

    @property
    def label(self) -> str:
        return f"q={self.search} · {self.status} · {self.sort} · {self.page}"


def combos() -> list[Combo]:
    return [
        Combo(search, q, status, sort, page)
        for search, q in SEARCHES
        for status in STATUSES
        for sort in SORTS
        for page in PAGES
    ]


# --- set-up --------------------------------------------------------------------------------


def wait_for_sync(
    api: httpx.Client, expected: int, timeout: float
) -> tuple[float, dict[str, Any] | None]:
    """Until Hubkeeper's API lists `expected` users (and says its sweep is done, if it can)."""
    start = time.monotonic()
    deadline = start + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            info = directory_info(api)
            response = api.get(PREFIX + "api/v1/users", params={"limit": 1})
            if response.status_code == 200:
                last = response.json().get("total")
                ready = info.get("ready", True) if info else True
                if last == expected and ready:
                    return time.monotonic() - start, info
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"Hubkeeper lists {last} users after {timeout:.0f} s, expected {expected}")


def directory_info(api: httpx.Client) -> dict[str, Any] | None:
    """The directory's state if Hubkeeper exposes it (`api/v1/directory`), else None."""
    try:
        response = api.get(PREFIX + "api/v1/directory")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    data = response.json()
    return data if isinstance(data, dict) else None


# --- the read benchmark ----------------------------------------------------------------------


def requests_for(combo: Combo, totals: dict[tuple[str, str], int]) -> dict[str, Any]:
    """The three equivalent requests of one combination (None where a side cannot say it)."""
    page_status, api_state, hub_state = STATUSES[combo.status]
    page_sort, api_sort, hub_sort = SORTS[combo.sort]
    total = totals[(combo.q, combo.status)]
    last_offset = max(0, (total - 1) // PAGE_SIZE * PAGE_SIZE)
    offset = 0 if combo.page == "first" else last_offset
    page_params: dict[str, Any] = {"sort": page_sort, "page": offset // PAGE_SIZE + 1}
    if combo.q:
        page_params["q"] = combo.q
    if page_status != "any":
        page_params["status"] = page_status
    out: dict[str, Any] = {"page": page_params, "api": None, "hub": None, "offset": offset}
    if api_sort:
        out["api"] = {
            "q": combo.q,
            "state": api_state,
            "sort": api_sort,
            "offset": offset,
            "limit": PAGE_SIZE,
        }
    if hub_sort:
        hub_params: dict[str, Any] = {"sort": hub_sort, "offset": offset, "limit": PAGE_SIZE}
        if combo.q:
            hub_params["name_filter"] = combo.q
        if hub_state:
            hub_params["state"] = hub_state
        out["hub"] = hub_params
    return out


def measure(
    combo: Combo,
    reqs: dict[str, Any],
    clients: dict[str, httpx.Client],
    repeat: int,
    warmup: int = 3,
) -> dict[str, Samples]:
    """Sequential, interleaved page / API / hub requests on keep-alive clients."""
    urls = {"page": PREFIX + "users", "api": PREFIX + "api/v1/users", "hub": "/hub/api/users"}
    headers = {"hub": PAGINATION}
    result = {name: Samples() for name in ("page", "api", "hub") if reqs[name] is not None}
    for i in range(warmup + repeat):
        for name, samples in result.items():
            started = time.time()
            ms, response = timed_get(clients[name], urls[name], reqs[name], headers.get(name))
            if i >= warmup:
                samples.ms.append(ms)
                samples.starts.append(started)
                samples.statuses.add(response.status_code)
            elif i == 0 and response.status_code != 200:
                log.warning(
                    "%s %s → %s: %s", combo.label, name, response.status_code, response.text[:300]
                )
    return result


def measure_floor(clients: dict[str, httpx.Client], repeat: int) -> dict[str, Any]:
    """Trivial requests through the same proxy: what a request costs before any work."""
    out = {}
    for name, client, url in (
        ("hubkeeper health", clients["api"], PREFIX + "api/v1/health"),
        ("hubkeeper me (auth)", clients["api"], PREFIX + "api/v1/me"),
        ("hub api root", clients["hub"], "/hub/api/"),
        ("hubkeeper me, direct (no proxy)", clients["direct"], PREFIX + "api/v1/me"),
    ):
        s = Samples()
        for i in range(repeat + 3):
            ms, response = timed_get(client, url, {})
            if i >= 3:
                s.ms.append(ms)
                s.statuses.add(response.status_code)
        out[name] = {"p50": s.p50, "p95": s.p95, "statuses": sorted(s.statuses)}
    return out


def directory_code_hash() -> str:
    """Which app/directory/store.py the measured Hubkeeper ran (it changes while in work)."""
    import hashlib

    data = (REPO / "app" / "directory" / "store.py").read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


SYNC_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*HTTP Request: GET \S+/hub/api/users\?"
)


def slow_vs_sync(
    timeline: list[tuple[float, float]], log_path: Path, threshold_ms: float = TARGET_P95_MS
) -> dict[str, Any]:
    """Are Hubkeeper's slow requests the ones that ran while its sync loop talked to the hub?

    Hubkeeper logs each hub request (httpx, at INFO) when its answer arrives; the sync then
    parses and applies it on the same event loop. A request counts as "near a sync" when a
    hub answer was logged between 0.2 s before it started and the moment it ended.
    """
    marks = []
    for line in log_path.read_text(errors="replace").splitlines():
        m = SYNC_LINE.match(line)
        if m:
            when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            marks.append(when.replace(tzinfo=UTC).timestamp())
    marks.sort()

    def near(start: float, ms: float) -> bool:
        import bisect

        i = bisect.bisect_left(marks, start - 0.2)
        return i < len(marks) and marks[i] <= start + ms / 1000

    slow = [(t, ms) for t, ms in timeline if ms > threshold_ms]
    return {
        "requests": len(timeline),
        "slow": len(slow),
        "slow_near_sync": sum(near(t, ms) for t, ms in slow),
        "all_near_sync": sum(near(t, ms) for t, ms in timeline),
        "hub_answers_logged": len(marks),
    }


# --- freshness ---------------------------------------------------------------------------------


def hk_server_status(api: httpx.Client, name: str) -> str | None:
    response = api.get(PREFIX + f"api/v1/users/{name}")
    if response.status_code != 200:
        return None
    servers = response.json().get("servers") or []
    for server in servers:
        if server.get("name", "") == "":
            return str(server.get("status"))
    return "stopped"


def hub_server_state(hub_client: httpx.Client, name: str) -> str:
    model = (hub_client.get(f"/hub/api/users/{name}").json().get("servers") or {}).get("")
    if not model:
        return "stopped"
    if model.get("pending"):
        return "pending"
    return "running" if model.get("ready") else "stopped"


def follow(
    hub_client: httpx.Client, api: httpx.Client, name: str, want: str, timeout: float = 90.0
) -> tuple[float, float]:
    """Seconds from now until the hub, and until Hubkeeper, say the server is `want`."""
    start = time.monotonic()
    t_hub = t_hk = None
    while time.monotonic() - start < timeout and (t_hub is None or t_hk is None):
        if t_hub is None and hub_server_state(hub_client, name) == want:
            t_hub = time.monotonic() - start
        if t_hk is None and hk_server_status(api, name) == want:
            t_hk = time.monotonic() - start
        time.sleep(0.02)
    if t_hub is None or t_hk is None:
        raise RuntimeError(f"{name} not {want} in {timeout:.0f} s (hub {t_hub}, hk {t_hk})")
    return t_hub, t_hk


def freshness(hub_client: httpx.Client, api: httpx.Client, names: list[str]) -> dict[str, Any]:
    """Start, then stop, a server straight on the hub; how long until Hubkeeper shows it."""
    out: dict[str, list[dict[str, float]]] = {"start": [], "stop": []}
    for name in names:
        hub_client.post(f"/hub/api/users/{name}/server", json={})
        t_hub, t_hk = follow(hub_client, api, name, "running")
        out["start"].append({"hub": t_hub, "hubkeeper": t_hk, "behind": t_hk - t_hub})
        time.sleep(1)
        hub_client.delete(f"/hub/api/users/{name}/server")
        t_hub, t_hk = follow(hub_client, api, name, "stopped")
        out["stop"].append({"hub": t_hub, "hubkeeper": t_hk, "behind": t_hk - t_hub})
        log.info("freshness %s: start %s, stop %s", name, out["start"][-1], out["stop"][-1])
    return out


# --- in-process cold query cost --------------------------------------------------------------


def fetch_directory_copy(api: httpx.Client) -> list[dict[str, Any]]:
    """Every user as Hubkeeper's API lists them (fast: no hub walk)."""
    users: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = api.get(PREFIX + "api/v1/users", params={"offset": offset, "limit": 500})
        response.raise_for_status()
        data = response.json()
        users.extend(data["items"])
        offset += 500
        if offset >= data["total"]:
            return users


def cold_queries(users: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    """A UserDirectory in this process holding the same users (copied from Hubkeeper's API);
    each query timed with the per-version result cache invalidated, which is what a new
    search, or any change on the hub, costs. Also the index rebuild."""
    from hubkeeper.config import Settings
    from hubkeeper.directory.store import UserDirectory
    from hubkeeper.hub.models import HubServer, HubUser

    settings = Settings(JUPYTERHUB_API_URL="http://127.0.0.1:1/hub/api", JUPYTERHUB_API_TOKEN="x")
    directory = UserDirectory(None, settings)  # type: ignore[arg-type]  # never syncs
    for u in users:
        servers = {
            s["name"]: HubServer(
                name=s["name"],
                ready=s["status"] == "running",
                pending="spawn" if s["status"] == "pending" else None,
                started=s["started"],
                last_activity=s["last_activity"],
                url=s["url"],
            )
            for s in u["servers"]
            if s["status"] != "stopped" or s["started"]
        }
        directory.upsert(
            HubUser(
                name=u["name"],
                admin=u["admin"],
                groups=u["groups"],
                last_activity=u["last_activity"],
                servers=servers,
            )
        )
    t = time.perf_counter()
    directory.reindex()
    build_ms = {"first build (name order)": (time.perf_counter() - t) * 1000}
    # The first query of each sort may build that sort's order: time it apart.
    for sort in ("-last_activity", "-started", "last_activity", "started"):
        directory.version += 1
        t = time.perf_counter()
        directory.query_rows(sort=sort, status="stopped")
        build_ms[f"first rows query sorted {sort}"] = (time.perf_counter() - t) * 1000
    for sort in ("-last_activity", "last_activity"):
        directory.version += 1
        t = time.perf_counter()
        directory.query_users(sort=sort, state="stopped")
        build_ms[f"first users query sorted {sort}"] = (time.perf_counter() - t) * 1000
    build_ms.update(change_costs(directory))
    import gc

    gc.collect()
    t = time.perf_counter()
    gc.collect()
    gc_ms = (time.perf_counter() - t) * 1000
    build_ms[f"a full gc.collect() with it loaded ({len(gc.get_objects()):,} objects)"] = gc_ms
    rows: dict[str, Any] = {}
    for combo in combos():
        if combo.page != "first":
            continue  # the page is a slice of the same cached list
        page_status, api_state, _ = STATUSES[combo.status]
        page_sort, api_sort, _ = SORTS[combo.sort]
        for kind in ("rows", "users"):
            if kind == "users" and api_sort is None:
                continue
            ms = []
            if kind == "rows":  # untimed: builds that sort's order if not yet built
                directory.query_rows(q=combo.q, status=page_status, sort=page_sort)
            else:
                directory.query_users(q=combo.q, state=api_state, sort=api_sort)
            for _ in range(repeat):
                directory.version += 1  # a change on the hub: the result cache starts empty
                t = time.perf_counter()
                if kind == "rows":
                    _, total = directory.query_rows(q=combo.q, status=page_status, sort=page_sort)
                else:
                    _, total = directory.query_users(q=combo.q, state=api_state, sort=api_sort)
                ms.append((time.perf_counter() - t) * 1000)
            key = f"{combo.search}|{combo.status}|{combo.sort}"
            rows.setdefault(key, {})[kind] = {
                "p50": percentile(ms, 50),
                "p95": percentile(ms, 95),
                "total": total,
            }
    return {"users": len(users), "build_ms": build_ms, "queries": rows}


def change_costs(directory: Any) -> dict[str, float]:
    """What applying a change costs (it runs on the event loop): one user, and a batch big
    enough to rebuild every index (e.g. stop-all, or users created in bulk)."""
    from datetime import timedelta

    out = {}
    names = sorted(directory._users)[:: max(1, len(directory._users) // 400)][:400]  # noqa: SLF001
    for label, batch in (("1 user changed", names[:1]), (f"{len(names)} users changed", names)):
        for name in batch:
            user = directory.get(name)
            when = (user.last_activity or datetime.now(UTC)) + timedelta(seconds=1)
            directory.upsert(user.model_copy(update={"last_activity": when}))
        t = time.perf_counter()
        directory.reindex()
        out[f"apply: {label} (reindex)"] = (time.perf_counter() - t) * 1000
    # What the sync loops do instead for a big batch: rebuild in a worker thread.
    for name in names:
        user = directory.get(name)
        when = (user.last_activity or datetime.now(UTC)) + timedelta(seconds=1)
        directory.upsert(user.model_copy(update={"last_activity": when}))
    total_ms, stall_ms = asyncio.run(_rebuild_off_loop_stall(directory))
    out[f"apply: {len(names)} users changed as the sync loops do (thread), in all"] = total_ms
    out["of which the longest event-loop stall"] = stall_ms
    return out


async def _rebuild_off_loop_stall(directory: Any) -> tuple[float, float]:
    """(total ms, longest gap in ms between 1 ms ticks of the event loop) for a rebuild."""
    longest = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    t = time.perf_counter()
    await directory.rebuild_off_loop()
    total = time.perf_counter() - t
    done = True
    await task
    return total * 1000, longest * 1000


# --- profile -----------------------------------------------------------------------------------


def start_profiler(pid: int, path: Path) -> Any:
    """py-spy (dev extra) sampling Hubkeeper while it answers; None when not installed."""
    import shutil
    import subprocess

    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists() and not shutil.which("py-spy"):
        log.warning("py-spy is not installed: no profile")
        return None
    return subprocess.Popen(
        [
            str(exe if exe.exists() else "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(path),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profiler(proc: Any) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except Exception:
        proc.kill()


# (label, frame prefix, per what): frames of interest in py-spy's "func (file:line)" form
PROFILE_FRAMES = (
    ("users page handler, all", "users_page (app/console/pages.py", "page"),
    ("  template rendering", "render (app/web/templating.py", "page"),
    ("  directory query (query_rows)", "UserDirectory.query_rows (", "page"),
    ("users API handler, all", "list_users (app/console/api.py", "api"),
    ("  UserOut.of (building the models)", "UserOut.of (", "api"),
    ("  response serialisation", "serialize_response (fastapi/routing.py", "api"),
    ("  directory query (query_users)", "UserDirectory.query_users (", "api"),
    ("auth: principal (event loop)", "_principal (app/auth/dependencies.py", "all"),
    ("auth: session row read (worker thread)", "_load (app/auth/sessions.py", "page"),
    ("background: active sync", "UserDirectory.sync_active (", "run"),
    ("background: full sweep", "UserDirectory.full_sweep (", "run"),
    ("index patch/rebuild (reindex)", "UserDirectory.reindex (", "run"),
)


def profile_breakdown(
    path: Path, rate: int, requests: dict[str, int]
) -> list[tuple[str, float, float]]:
    """(label, CPU seconds, ms per request) for PROFILE_FRAMES, from a py-spy raw file."""
    seconds: dict[str, float] = {label: 0.0 for label, _, _ in PROFILE_FRAMES}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        for label, prefix, _ in PROFILE_FRAMES:
            if any(f.startswith(prefix) for f in frames):
                seconds[label] += int(count) / rate
    out = []
    for label, _, per in PROFILE_FRAMES:
        n = requests.get(per, 0)
        out.append((label, seconds[label], 1000 * seconds[label] / n if n else float("nan")))
    return out


def summarise_profile(path: Path, top: int = 30) -> list[tuple[str, float, float]]:
    """(frame, inclusive %, self %) of the busiest frames in a py-spy raw (collapsed) file."""
    from collections import Counter

    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    if not total:
        return []
    return [(f, 100 * c / total, 100 * own[f] / total) for f, c in inclusive.most_common(top)]


# --- report ----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def machine() -> dict[str, str]:
    cpu = cpu_model()
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    import os

    import jupyterhub

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "jupyterhub": jupyterhub.__version__,
        "os": platform.platform(),
    }


def render_markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Performance: the users page and `GET api/v1/users` at scale",
        "",
        "Generated by `bench/run.py` (`make bench`); do not edit by hand, run it again.",
        "",
        f"- Date: {r['date']}",
        f"- Command: `{r['command']}`",
        f"- Code: app/directory/store.py sha256 {r['code_hash']['at_start']} "
        f"(at the end: {r['code_hash']['at_end']}).",
        f"- Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, "
        f"{r['machine']['ram']} RAM; Python {r['machine']['python']}; "
        f"JupyterHub {r['machine']['jupyterhub']}; {r['machine']['os']}",
        f"- Hub: {r['users']:,} users (+ `admin`), {r['servers']} running user servers, sqlite; "
        "users written into the stopped hub's database with `jupyterhub.orm` "
        f"(the hub then lists {r['hub_total']:,}).",
        f"- Each cell: {r['repeat']} sequential requests after 3 warm-up ones, keep-alive, "
        "page / API / hub interleaved, all through the hub's proxy on 127.0.0.1; "
        "wall-clock ms at the client (p50 / p95). Page = `GET users` HTML (session cookie), "
        "API = `GET api/v1/users` (an admin's hub token), hub = `GET /hub/api/users` with "
        "the same token, `name_filter`, `state=active|inactive`, `sort`, `offset`, `limit=50` "
        "and the pagination Accept header.",
        f"- Searches: common = `{SEARCHES[1][1]}`, rare = `{SEARCHES[2][1]}`, "
        f"no match = `{SEARCHES[3][1]}`. Status running ↔ hub `state=active`, stopped ↔ "
        "`inactive`. The hub and Hubkeeper's API have no `started` sort (n/a). "
        "`last` = the last page of that view.",
        f"- Target: Hubkeeper p95 ≤ {TARGET_P95_MS:.0f} ms in every combination.",
        f"- Load average (1/5/15 min) before the table: {' '.join(r['load']['before'])}; "
        f"after: {' '.join(r['load']['after'])}. The machine is shared: other work ran "
        "beside the benchmark, so tails (p95) carry noise.",
        "- Floor (trivial requests through the same proxy, p50 / p95 ms): "
        + "; ".join(f"{k} {v['p50']:.1f} / {v['p95']:.1f}" for k, v in r["floor"].items())
        + ".",
        "",
        "## Results",
        "",
        "| combination | page p50 | page p95 | API p50 | API p95 | hub p50 | hub p95 "
        "| hub/page p95 | hub/API p95 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in r["rows"]:
        page, api, hub = row.get("page"), row.get("api"), row.get("hub")

        def ratio(ours: dict[str, float] | None, hub: dict[str, float] | None = hub) -> str:
            if not ours or not hub:
                return "n/a"
            return f"{hub['p95'] / ours['p95']:.1f}×"

        def cell(s: dict[str, float] | None, key: str) -> str:
            if not s:
                return "n/a"
            text = fmt(s[key])
            return f"**{text}**" if key == "p95" and s[key] > TARGET_P95_MS else text

        lines.append(
            f"| {row['label']} | {cell(page, 'p50')} | {cell(page, 'p95')} | "
            f"{cell(api, 'p50')} | {cell(api, 'p95')} | "
            f"{fmt(hub['p50']) if hub else 'n/a'} | {fmt(hub['p95']) if hub else 'n/a'} | "
            f"{ratio(page)} | {ratio(api)} |"
        )
    s = r["summary"]
    lines += [
        "",
        "Bold: over the target.",
        "",
        "## Summary",
        "",
        f"- Hubkeeper page p95: worst {fmt(s['page_worst'][1])} ms ({s['page_worst'][0]}); "
        f"API p95: worst {fmt(s['api_worst'][1])} ms ({s['api_worst'][0]}).",
        f"- Hub p95: best {fmt(s['hub_best'][1])} ms ({s['hub_best'][0]}), worst "
        f"{fmt(s['hub_worst'][1])} ms ({s['hub_worst'][0]}).",
    ]
    if s["missed"]:
        lines.append(
            f"- **Target missed** in {len(s['missed'])} of {s['cells']} cells "
            f"(p95 > {TARGET_P95_MS:.0f} ms): "
            + "; ".join(s["missed"][:12])
            + (" …" if len(s["missed"]) > 12 else "")
            + "."
        )
    else:
        lines.append(f"- Target met: every Hubkeeper p95 ≤ {TARGET_P95_MS:.0f} ms.")
    if s["errors"]:
        lines.append("- **Non-200 answers**: " + "; ".join(s["errors"]))
    f = r["freshness"]
    lines += [
        "",
        "## Freshness (seconds behind the hub)",
        "",
        "A server started (then stopped) straight on the hub's API; the hub and Hubkeeper's "
        "`GET api/v1/users/{name}` polled every 20 ms; behind = when Hubkeeper showed it − "
        "when the hub showed it.",
        "",
        "| event | runs | behind median | behind max | hub took (median) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for event in ("start", "stop"):
        runs = f[event]
        behind = [x["behind"] for x in runs]
        took = [x["hub"] for x in runs]
        lines.append(
            f"| server {event} | {len(runs)} | {percentile(behind, 50):.2f} s | "
            f"{max(behind):.2f} s | {percentile(took, 50):.2f} s |"
        )
    if r.get("lag_samples"):
        lag = r["lag_samples"]
        lines.append(
            f"\nThe directory's own `lag_seconds` sampled between combinations: median "
            f"{percentile(lag, 50):.1f} s, max {max(lag):.1f} s."
        )
    lines += [
        "",
        "## Sync and memory",
        "",
        f"- Hubkeeper start → answering: {r['hk_startup_s']:.1f} s; → directory holds all "
        f"{r['hub_total']:,} users (first full sweep): {r['sync_s']:.1f} s.",
        f"- Directory version changes during the read benchmark: {r['version_changes']} "
        "(each one empties the per-version query cache).",
        "- Index work, in-process, in ms (a synchronous call blocks the event loop while it "
        "runs; the sync loops do wholesale rebuilds in a worker thread, last two figures): "
        + "; ".join(f"{k} {v:.1f} ms" for k, v in r["cold"]["build_ms"].items())
        + ".",
        f"- RSS after sync: Hubkeeper {r['hk_rss_mib']:.0f} MiB (after the benchmark "
        f"{r['hk_rss_after_mib']:.0f} MiB); hub {r['hub_rss_mib']:.0f} MiB.",
        "",
        "## Cold query cost (in-process)",
        "",
        "The directory caches each query's result until anything in it changes, so repeated "
        "requests above mostly measure rendering and HTTP. A new search, or any change on the "
        "hub, recomputes it. This times `query_rows` (the page) and `query_users` (the API) "
        "with the cache invalidated before each call, in the bench process (ms); add it to "
        "the warm figures above for a cache miss.",
        "",
        "| search · status · sort | rows p50 | rows p95 | users p50 | users p95 | matches |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, q in r["cold"]["queries"].items():
        rows_ = q.get("rows")
        users_ = q.get("users")
        lines.append(
            f"| {key.replace('|', ' · ')} | {fmt(rows_['p50'], 2)} | {fmt(rows_['p95'], 2)} | "
            f"{fmt(users_['p50'], 2) if users_ else 'n/a'} | "
            f"{fmt(users_['p95'], 2) if users_ else 'n/a'} | {rows_['total']:,} |"
        )
    sv = r.get("slow_vs_sync")
    if sv and sv["requests"]:
        lines += [
            "",
            "## Slow requests and the sync loop",
            "",
            f"Of {sv['requests']:,} timed Hubkeeper requests, {sv['slow']} took over "
            f"{TARGET_P95_MS:.0f} ms; {sv['slow_near_sync']} of those ran while a hub answer "
            "to the sync loop arrived (0.2 s before the request to its end), against "
            f"{100 * sv['all_near_sync'] / sv['requests']:.0f} % of all requests "
            f"({sv['hub_answers_logged']} hub answers logged by Hubkeeper).",
        ]
    if r.get("breakdown"):
        lines += [
            "",
            "## Where Hubkeeper's time goes (py-spy, during the read benchmark)",
            "",
            f"py-spy sampled the Hubkeeper process at {PROFILE_RATE} Hz (non-blocking) while "
            "the table above was measured; CPU seconds in each part (inclusive) and that "
            "divided by the requests of its kind (warm-ups included).",
            "",
            "| part | CPU s | ms per request |",
            "| --- | ---: | ---: |",
        ]
        for label, secs, per in r["breakdown"]:
            lines.append(f"| {label} | {secs:.2f} | {fmt(per, 2)} |")
    if r.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'combination':<50} {'page p50/p95':>14} {'API p50/p95':>14} {'hub p50/p95':>14}")
    for row in rows:
        cells = []
        for name in ("page", "api", "hub"):
            s = row.get(name)
            cells.append(f"{fmt(s['p50'])}/{fmt(s['p95'])}" if s else "n/a")
        print(f"{row['label']:<50} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14}")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def worst(name: str) -> tuple[str, float]:
        found = [(r["label"], r[name]["p95"]) for r in rows if r.get(name)]
        return max(found, key=lambda x: x[1]) if found else ("-", float("nan"))

    hub = [(r["label"], r["hub"]["p95"]) for r in rows if r.get("hub")]
    missed, errors, cells = [], [], 0
    for r in rows:
        for name in ("page", "api"):
            s = r.get(name)
            if not s:
                continue
            cells += 1
            if s["p95"] > TARGET_P95_MS:
                missed.append(f"{name} {r['label']} {s['p95']:.1f} ms")
        for name in ("page", "api", "hub"):
            s = r.get(name)
            if s and s["statuses"] != [200]:
                errors.append(f"{name} {r['label']} {s['statuses']}")
    return {
        "page_worst": worst("page"),
        "api_worst": worst("api"),
        "hub_best": min(hub, key=lambda x: x[1]) if hub else ("-", float("nan")),
        "hub_worst": max(hub, key=lambda x: x[1]) if hub else ("-", float("nan")),
        "missed": missed,
        "errors": errors,
        "cells": cells,
    }


# --- main ------------------------------------------------------------------------------------


def kept_culler_section(out: Path) -> str:
    """The culler section bench/culler.py wrote into the same report, kept across a rewrite."""
    if not out.exists():
        return ""
    found = re.search(r"<!-- culler-bench -->.*?<!-- /culler-bench -->\n?", out.read_text(), re.S)
    return "\n" + found.group(0) if found else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per cell")
    parser.add_argument("--servers", type=int, default=20, help="user servers to start")
    parser.add_argument("--freshness-runs", type=int, default=3)
    parser.add_argument(
        "--profile", action="store_true", help="sample Hubkeeper with py-spy (dev extra)"
    )
    parser.add_argument("--quick", action="store_true", help="2,000 users, 10 repeats (smoke)")
    parser.add_argument(
        "--out",
        default=None,
        help="markdown report (default docs/performance.md; --quick: .bench/performance-quick.md)",
    )
    parser.add_argument(
        "--culler",
        action="store_true",
        help="run only the culler benchmark (bench/culler.py: Hubkeeper vs idle-culler 2.0)",
    )
    args = parser.parse_args(argv)
    if args.culler:
        from culler import main as culler_main

        return culler_main([])
    if args.quick:
        args.users, args.repeat, args.servers, args.freshness_runs = 2_000, 10, 5, 1
    out = (
        Path(args.out)
        if args.out
        else (
            REPO / ".bench" / "performance-quick.md"
            if args.quick
            else REPO / "docs" / "performance.md"
        )
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    global SEARCHES
    SEARCHES = searches(args.users)
    state_dir = REPO / ".bench" / f"hub-{args.users}"
    state_dir.mkdir(parents=True, exist_ok=True)
    command = (
        "make bench"
        if not argv and len(sys.argv) == 1
        else (
            ".venv/bin/python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
        ).strip()
    )
    hub = hk = None
    try:
        hub, setup_s = prepare_hub(state_dir, args.users)
        log.info("hub ready with %d users in %.1f s (set-up, not measured)", args.users, setup_s)
        names = running_users(args.users, args.servers)
        log.info("starting %d user servers…", len(names))
        log.info("servers up in %.1f s", start_servers(hub, names))
        hub_total_all = hub_total(hub)
        token = hub.user_token("admin", note="hubkeeper bench")

        hk = Hubkeeper(hub, state_dir)
        cookie = hk.session_cookie()
        hk.start()
        hk_startup = hk.up_at - hk.started_at
        api = httpx.Client(
            base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=60.0
        )
        page = httpx.Client(base_url=hub.url, headers={"Cookie": cookie}, timeout=60.0)
        hub_client = httpx.Client(
            base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=60.0
        )
        sync_s, info = wait_for_sync(api, hub_total_all, timeout=600)
        sync_s += hk_startup
        assert hk.pid and hub.pid
        hk_rss = (rss_kib(hk.pid) or 0) / 1024
        hub_rss = (rss_kib(hub.pid) or 0) / 1024
        log.info(
            "Hubkeeper synced %d users %.1f s after start; RSS %.0f MiB (hub %.0f MiB)",
            hub_total_all,
            sync_s,
            hk_rss,
            hub_rss,
        )

        # Totals of each (q, status) view, from the hub, to find the last page.
        totals: dict[tuple[str, str], int] = {}
        for _, q in SEARCHES:
            for status, (_, _, hub_state) in STATUSES.items():
                params = {"name_filter": q} if q else {}
                if hub_state:
                    params["state"] = hub_state
                totals[(q, status)] = hub_total(hub, **params)

        clients = {"page": page, "api": api, "hub": hub_client}
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        direct = httpx.Client(
            base_url=hub.service_url, headers={"Authorization": f"token {token}"}, timeout=60.0
        )
        floor = measure_floor({**clients, "direct": direct}, args.repeat)
        rows, lag_samples, versions = [], [], []
        timeline: list[tuple[float, float]] = []  # (start, ms) of every Hubkeeper request
        code_hash = directory_code_hash()
        all_combos = combos()
        profile_path = REPO / ".bench" / f"profile-{args.users}.txt"
        profiler = start_profiler(hk.pid, profile_path) if args.profile else None
        for n, combo in enumerate(all_combos, 1):
            reqs = requests_for(combo, totals)
            result = measure(combo, reqs, clients, args.repeat)
            row: dict[str, Any] = {"label": combo.label, "offset": reqs["offset"]}
            for name, s in result.items():
                if name != "hub":
                    timeline.extend((t, ms) for t, ms in zip(s.starts, s.ms, strict=True))
                row[name] = {
                    "p50": s.p50,
                    "p95": s.p95,
                    "max": s.max,
                    "statuses": sorted(s.statuses),
                }
            rows.append(row)
            info = directory_info(api)
            if info and isinstance(info.get("lag_seconds"), (int, float)):
                lag_samples.append(float(info["lag_seconds"]))
            if info:
                versions.append(info.get("version"))
            log.info(
                "[%d/%d] %s page %s api %s hub %s",
                n,
                len(all_combos),
                combo.label,
                *(f"{row[k]['p95']:.1f}" if k in row else "n/a" for k in ("page", "api", "hub")),
            )
        stop_profiler(profiler)
        profile = summarise_profile(profile_path) if profiler and profile_path.exists() else []
        n_page = sum(1 for r in rows if r.get("page")) * (args.repeat + 3)
        n_api = sum(1 for r in rows if r.get("api")) * (args.repeat + 3)
        breakdown = (
            profile_breakdown(
                profile_path,
                PROFILE_RATE,
                {"page": n_page, "api": n_api, "all": n_page + n_api, "run": 0},
            )
            if profiler and profile_path.exists()
            else []
        )
        print_table(rows)
        for label, secs, per in breakdown:
            print(f"{label:<45} {secs:7.2f} s {per:7.2f} ms/request")

        fresh_names = [user_name(i) for i in range(2, 2 + args.freshness_runs)]
        fresh = freshness(hub_client, api, fresh_names)
        hk_rss_after = (rss_kib(hk.pid) or 0) / 1024
        copy = fetch_directory_copy(api)
        (REPO / ".bench" / f"directory-copy-{args.users}.json").write_text(json.dumps(copy))
        cold = cold_queries(copy, min(args.repeat, 20))

        notes = [
            "Hubkeeper ran with `HUBKEEPER_LOG_LEVEL=warning` (no uvicorn access log) and its "
            "default sync settings; the users page session was written straight into its "
            "database and signed like `app/auth/sessions.py` does.",
            "The hub's figures include its proxy hop, as Hubkeeper's do.",
            f"Set-up (not measured): users ready {setup_s:.0f} s after start "
            "(inserting 50,000 rows takes ~10 s the first time; the cache dir is reused).",
        ]
        report = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command,
            "machine": machine(),
            "users": args.users,
            "hub_total": hub_total_all,
            "servers": len(names),
            "repeat": args.repeat,
            "rows": rows,
            "summary": summarise(rows),
            "freshness": fresh,
            "lag_samples": lag_samples,
            "directory_info": info,
            "hk_startup_s": hk_startup,
            "sync_s": sync_s,
            "hk_rss_mib": hk_rss,
            "hk_rss_after_mib": hk_rss_after,
            "hub_rss_mib": hub_rss,
            "cold": cold,
            "floor": floor,
            "load": {"before": load_before, "after": Path("/proc/loadavg").read_text().split()[:3]},
            "profile": profile,
            "breakdown": breakdown,
            "code_hash": {"at_start": code_hash, "at_end": directory_code_hash()},
            "slow_vs_sync": slow_vs_sync(timeline, hk.log_path),
            "version_changes": len(set(v for v in versions if v is not None)) - 1
            if versions
            else "unknown",
            "notes": notes,
        }
        (REPO / ".bench" / f"results-{args.users}.json").write_text(
            json.dumps(report, indent=1, default=str)
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        text = render_markdown(report)
        # bench/usage.py and bench/culler.py keep their sections in the same file: carry them
        # over (the usage section, when there, runs to the end of the file: the culler's with it)
        old = out.read_text() if out.exists() else ""
        marker = "<!-- bench/usage.py: begin"
        if marker in old:
            text = text.rstrip("\n") + "\n\n" + old[old.index(marker) :]
        else:
            text += kept_culler_section(out)
        out.write_text(text)
        print(f"\nwrote {out.relative_to(REPO)}")
        s = report["summary"]
        print(
            f"worst page p95 {s['page_worst']}, worst API p95 {s['api_worst']}, "
            f"hub best p95 {s['hub_best']}"
        )
        for event in ("start", "stop"):
            behind = [x["behind"] for x in fresh[event]]
            print(
                f"freshness {event}: median {percentile(behind, 50):.2f} s, "
                f"max {max(behind):.2f} s behind the hub"
            )
        return 0 if not s["missed"] and not s["errors"] else 1
    except KeyboardInterrupt:
        log.warning("interrupted")
        return 130
    finally:
        if hk is not None:
            hk.stop()
        if hub is not None:
            hub.stop()


if __name__ == "__main__":
    sys.exit(main())
