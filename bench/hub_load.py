"""Load on the hub (issue #14): the hub alone, the hub with jupyterhub-idle-culler 2.0, and
the hub with Hubkeeper (two replicas on PostgreSQL), side by side in one run, at N running
servers.

    .venv/bin/python bench/hub_load.py [--servers 1000,5000] [--window 300] [--repeat 3]
        [--warm-up 20] [--write]

Each N gets a fresh hub with a light spawner (no process per server: every server is the one
stand-in process of bench/kernel_standin.py, which also serves a kernels API). Then three
windows of `--window` seconds, one per companion, each after a warm-up:
- the hub's CPU (utime + stime of its process, from /proc), as % of one core;
- its API requests per minute by kind, and the time it spent answering them per minute,
  from its own request log (`log:… 200 GET /hub/api/… (who@ip) 5.04ms`), the bench's own
  probe and set-up requests left out;
- the p50/p95 of a user's cheap call (`GET /hub/api/users/<self>` with their own token)
  made every 0.5 s;
- with Hubkeeper: how long after a start and a stop done at the hub's API its API shows it
  (its window begins after the warm-up, while the paced token mints of its start go on, as
  they do for minutes at thousands of servers and again at each hourly renewal: `--settle`
  waits for them to end instead; what they cost is reported on its own line);
- the companions' own CPU (each process, from /proc: each Hubkeeper replica, idle-culler)
  and, with Hubkeeper on PostgreSQL, that of the PostgreSQL backends serving its database:
  on a small machine they compete with the hub (one thread) for the cores.
`--repeat K` runs the three windows K times, interleaved (A B C A B C ...), so that a
machine that gets busier or quieter during the run moves all three alike; the table then
gives each companion's median p50/p95 over its K windows (and sums its requests), the
ratios come from the medians, and each window's p95 is listed below.
Both cullers run a pass every 120 s (`--cull-every`), so each window holds a server pass and
(Hubkeeper) a kernel pass; otherwise at their defaults. Both are hub services whose tokens
come from the hub's configuration, as deployed (`idle_culler_service`). Writes the hub-load
section of docs/performance.md with `--write`. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
from hubsetup import cpu_model  # noqa: E402

from hubkeeper.demo.localhub import LocalHub, free_port  # noqa: E402

VENV_BIN = Path(sys.executable).parent
BEGIN, END = "<!-- hub-load-bench -->", "<!-- /hub-load-bench -->"
PG_SERVER = os.environ.get(
    "HUBKEEPER_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PROBE, FRESH, CULLER_SERVICE = "load-probe", "load-fresh", "idle-culler"
WARM_UP = 20.0  # s before each window (default): companions sync, sweep and run a first pass
# With --settle, Hubkeeper's window waits, beyond the warm-up, for the token mints of its
# start to end (no server-token request for MINTS_QUIET s), at most MAX_SETTLE s.
# 90 s: beyond the resource sampler's 60-s interval (its first pass mints in more than one go;
# 15 s let a 5,000-server window begin mid-burst)
MINTS_QUIET = 90.0
# A start mints every running server's token (the kernel pass and the resource sampler need
# them all), paced: ~30 minutes at 5,000 servers; 1,200 s let that window begin mid-mint.
MAX_SETTLE = 2700.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Hub CPU points (% of a core) a companion must add before a ratio of two of them means
# anything: the hub alone varies by about this much from window to window on a shared machine.
NOISE_CPU = 0.5
REQUEST = re.compile(r"\] (\d{3}) ([A-Z]+) (\S+) \(([^@)]*)@[^)]*\) ([\d.]+)ms")

LIGHT_SPAWNER = """
from jupyterhub.spawner import Spawner

class LightSpawner(Spawner):
    # bench stand-in: no process per server; every server is one stand-in process
    running = False

    async def start(self):
        self.running = True
        return ("127.0.0.1", {port})

    async def poll(self):
        return None if self.running else 0

    async def stop(self, now=False):
        self.running = False

c.JupyterHub.spawner_class = LightSpawner
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.active_server_limit = 0
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
"""


def idle_culler_service(token: str) -> str:
    """Hub config: jupyterhub-idle-culler as z2jh and its README run it, a service with its
    documented role and a token from the configuration. The hub checks such a token as it
    checks Hubkeeper's (a token it did not generate: 16,384 rounds of SHA-512 on every
    request, ~3 ms of its thread here, unless `trust_user_provided_tokens`); a token the hub
    minted (what this bench gave idle-culler before) skips that, which flattered it."""
    service = {"name": CULLER_SERVICE, "api_token": token}
    role = {
        "name": CULLER_SERVICE,
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": [CULLER_SERVICE],
    }
    return (
        f"\nc.JupyterHub.services.append({json.dumps(service)})\n"
        f"c.JupyterHub.load_roles.append({json.dumps(role)})\n"
    )


def kind_of(method: str, path: str) -> str:
    """A request's kind, as the hub's log shows it."""
    query = path.split("?", 1)[1] if "?" in path else ""
    path = path.split("?", 1)[0]
    api = path.split("/hub/api", 1)[-1]
    if api == "/users":
        if "state=" in query:  # the hub logs it as state=[secret]
            return f"{method} /users?state= (list)"
        if "sort=" in query:
            return f"{method} /users?sort= (one page)"
        return f"{method} /users (list)"
    if re.fullmatch(r"/users/[^/]+", api):
        return f"{method} /users/{{name}}"
    if api.endswith("/tokens"):
        return f"{method} /users/{{name}}/tokens"
    if api.startswith("/hubkeeper/server-tokens"):
        return f"{method} /hubkeeper/server-tokens"
    if api == "/user":
        return f"{method} /user (whoami)"
    if "/server" in api:
        return f"{method} /users/{{name}}/server…"
    return f"{method} {api or path}"


@dataclass
class Window:
    name: str
    seconds: float
    cpu_percent: float
    requests: Counter[str] = field(default_factory=Counter)
    ms_by_kind: Counter[str] = field(default_factory=Counter)
    # each request's ms by kind: a request that arrives while the hub's thread is busy with
    # its own work (its activity update from the proxy every 300 s, a collection) is logged
    # with the wait, so a few such add more to a kind's sum than its median suggests
    ms_lists: dict[str, list[float]] = field(default_factory=dict)
    hub_ms: float = 0.0
    probe_ms: list[float] = field(default_factory=list)
    fresh_start_s: float | None = None
    fresh_stop_s: float | None = None
    hub_start_s: float | None = None  # when the hub's own API showed the start (nan: later)
    hub_stop_s: float | None = None
    sweep_pages: list[float] = field(default_factory=list)  # ms each, from the warm-up
    warm_mints: list[float] = field(default_factory=list)  # token requests in the warm-up, ms
    warm_s: float = 0.0  # s the companion ran before the window
    settled: bool = True  # with --settle: False when the start's mints had not stopped
    log_from: int = 0  # the hub log's size when the window began
    companion_cpu: list[float] = field(default_factory=list)  # % of a core, each process
    postgres_cpu: float | None = None  # % of a core, the backends serving Hubkeeper's db
    runs: list[Window] = field(default_factory=list)  # the windows a combined one is made of

    def per_minute(self, value: float) -> float:
        return value * 60.0 / self.seconds

    def p(self, q: int) -> float:
        """The probe's q-th percentile, ms; of a combined window, the median of its runs'."""
        if self.runs:
            return statistics.median(w.p(q) for w in self.runs)
        return statistics.quantiles(self.probe_ms, n=100)[q - 1] if self.probe_ms else 0.0


def combine(windows: list[Window]) -> Window:
    """One companion's K windows as one: requests and hub time summed over their time, CPU
    averaged over it, percentiles and freshness the median of the windows'."""
    if len(windows) == 1:
        return windows[0]
    seconds = sum(w.seconds for w in windows)
    out = Window(
        windows[0].name, seconds, sum(w.cpu_percent * w.seconds for w in windows) / seconds
    )
    out.runs = windows
    for w in windows:
        out.requests.update(w.requests)
        out.ms_by_kind.update(w.ms_by_kind)
        for kind, values in w.ms_lists.items():
            out.ms_lists.setdefault(kind, []).extend(values)
        out.hub_ms += w.hub_ms
        out.probe_ms += w.probe_ms
        out.sweep_pages += w.sweep_pages
        out.warm_mints += w.warm_mints
    if all(w.companion_cpu for w in windows):
        out.companion_cpu = [
            sum(w.companion_cpu[i] * w.seconds for w in windows) / seconds
            for i in range(min(len(w.companion_cpu) for w in windows))
        ]
    if all(w.postgres_cpu is not None for w in windows):
        out.postgres_cpu = sum((w.postgres_cpu or 0.0) * w.seconds for w in windows) / seconds
    starts = [w.fresh_start_s for w in windows if w.fresh_start_s is not None]
    stops = [w.fresh_stop_s for w in windows if w.fresh_stop_s is not None]
    out.fresh_start_s = statistics.median(starts) if starts else None
    out.fresh_stop_s = statistics.median(stops) if stops else None
    for name in ("hub_start_s", "hub_stop_s"):
        seen = [v for w in windows if (v := getattr(w, name)) is not None]
        setattr(out, name, statistics.median(seen) if seen else None)
    return out


def hub_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def cpu_seconds_or_zero(pid: int) -> float:
    """A process's CPU seconds; 0 once it has gone (a companion that died says so in its log)."""
    try:
        return hub_cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_backends(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to `database` (its process title
    is `postgres: <user> <database> <client> <state>`)."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres:") and f" {database} " in f"{title} ":
                found[int(entry.name)] = hub_cpu_seconds(int(entry.name))
        except OSError:
            continue
    return found


def start_servers(hub: LocalHub, names: list[str]) -> None:
    def one(name: str) -> None:
        response = hub.api("POST", f"/users/{name}/server", json={}, timeout=120)
        if response.status_code not in (201, 202, 400):
            response.raise_for_status()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, names))


def create_users(hub: LocalHub, names: list[str]) -> None:
    for start in range(0, len(names), 500):
        hub.api(
            "POST",
            "/users",
            json={"usernames": names[start : start + 500]},
            token=hub.admin_token,
            timeout=120,
        ).raise_for_status()


class Probe(threading.Thread):
    """A user's cheap hub call every 0.5 s, with their own token."""

    def __init__(self, hub: LocalHub, token: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{hub.api_url}/users/{PROBE}"
        self.token = token
        self.stop_now = threading.Event()
        self.ms: list[float] = []

    def run(self) -> None:
        with httpx.Client(headers={"Authorization": f"token {self.token}"}, timeout=30) as http:
            while not self.stop_now.is_set():
                began = time.perf_counter()
                http.get(self.url).raise_for_status()
                self.ms.append((time.perf_counter() - began) * 1000)
                self.stop_now.wait(0.5)


def freshness(
    hub: LocalHub, base: str, token: str | None, *, start: bool
) -> tuple[float | None, float]:
    """Seconds from a start (or stop) at the hub's API until Hubkeeper's API shows it (None
    without Hubkeeper: `token` None), and until the hub's own API does (asked every 0.5 s by
    the hub-admin token, left out of the counts). Every run does the same start and stop, so
    the hub's own time is side by side: a slow stop on a loaded hub is the hub's time, not
    Hubkeeper's."""
    want = "running" if start else "stopped"
    began = time.monotonic()
    if start:
        hub.api("POST", f"/users/{FRESH}/server", json={}, token=hub.admin_token)
    else:
        hub.api("DELETE", f"/users/{FRESH}/server", token=hub.admin_token)
    hub_done = float("nan")
    asked_hub = 0.0
    with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30) as http:
        while time.monotonic() - began < 60:
            now = time.monotonic()
            if hub_done != hub_done and now - asked_hub >= 0.5:  # nan: not yet
                asked_hub = now
                model = hub.api("GET", f"/users/{FRESH}", token=hub.admin_token).json()
                server = (model.get("servers") or {}).get("")
                done = (server or {}).get("ready") and not (server or {}).get("pending")
                if done if start else server is None:
                    hub_done = time.monotonic() - began
                    if token is None:
                        return None, hub_done
            if token is None:
                time.sleep(0.1)
                continue
            user = http.get(f"{base}api/v1/users/{FRESH}").json()
            status = next((s["status"] for s in user.get("servers", []) if s["name"] == ""), None)
            if (status or "stopped") == want:
                return time.monotonic() - began, hub_done
            time.sleep(0.1)
    return (float("nan") if token else None), hub_done


def postgres_database() -> str | None:
    try:
        import psycopg

        name = f"hubkeeper_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return PG_SERVER.rsplit("/", 1)[0] + f"/{name}"
    except Exception as exc:  # noqa: BLE001 - the bench says so and goes on with SQLite
        print(f"no PostgreSQL ({exc}): one Hubkeeper replica on SQLite instead", file=sys.stderr)
        return None


class Companion:
    """A process (or two) beside the hub for one window."""

    def __init__(self, commands: list[tuple[list[str], dict[str, str]]], log: Path) -> None:
        self.commands, self.log = commands, log
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.procs = []  # a companion is started again for each repeat
        for command, env in self.commands:
            out = open(self.log, "ab")  # noqa: SIM115 - owned by the child
            self.procs.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            out.close()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


# Both cullers' idle timeout (seconds): longer than any run, so no server is culled in a window.
# At 3600 s a 5,000-server run whose settle lasted 45 minutes reached it, and the window
# measured Hubkeeper culling thousands of servers (bench at 53e6b9b), not the steady state.
IDLE_TIMEOUT = 6 * 3600


def idle_culler(hub: LocalHub, token: str, cull_every: int, log: Path) -> Companion:
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": token}
    command = [
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
        f"--url={hub.api_url}",
        f"--timeout={IDLE_TIMEOUT}",
        f"--cull-every={cull_every}",
    ]
    return Companion([(command, env)], log)


def hubkeeper(hub: LocalHub, db_url: str, cull_every: int, log: Path, replicas: int) -> Companion:
    commands = []
    for i in range(replicas):
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "HUBKEEPER_"))
        }
        env.update(hub.hubkeeper_env())
        port = hub.service_port if i == 0 else free_port()
        env.update(
            {
                "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
                "HUBKEEPER_DATABASE_URL": db_url,
                "HUBKEEPER_COOKIE_SECRET": "b" * 64,
                "HUBKEEPER_REPLICA_ID": f"bench-{i}",
                "HUBKEEPER_CULL_INTERVAL": str(cull_every),
                "HUBKEEPER_CULL_TIMEOUT": str(IDLE_TIMEOUT),
                "HUBKEEPER_CULL_KERNELS_INTERVAL": str(cull_every),
                "HUBKEEPER_LOG_LEVEL": "warning",
            }
        )
        commands.append(([str(VENV_BIN / "hubkeeper"), "serve"], env))
    return Companion(commands, log)


def measure(
    hub: LocalHub,
    name: str,
    seconds: float,
    probe_token: str,
    *,
    hubkeeper_token: str | None,
    companion: Companion | None = None,
    database: str | None = None,
) -> Window:
    pid = hub.pid
    assert pid is not None
    log_at = Path(hub.log_path).stat().st_size
    procs = [p.pid for p in companion.procs] if companion else []
    own0 = [cpu_seconds_or_zero(p) for p in procs]
    pg0 = postgres_backends(database) if database else {}
    cpu0, t0 = hub_cpu_seconds(pid), time.monotonic()
    probe = Probe(hub, probe_token)
    probe.start()
    window = Window(name, seconds, 0.0)
    window.log_from = log_at
    base = f"{hub.service_url}{hub.service_prefix}"
    time.sleep(seconds / 3)
    window.fresh_start_s, window.hub_start_s = freshness(hub, base, hubkeeper_token, start=True)
    time.sleep(max(0.0, t0 + 2 * seconds / 3 - time.monotonic()))
    window.fresh_stop_s, window.hub_stop_s = freshness(hub, base, hubkeeper_token, start=False)
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))
    window.seconds = time.monotonic() - t0
    window.cpu_percent = (hub_cpu_seconds(pid) - cpu0) / window.seconds * 100
    window.companion_cpu = [
        max(0.0, cpu_seconds_or_zero(p) - before) / window.seconds * 100
        for p, before in zip(procs, own0, strict=True)
    ]
    if database:
        pg1 = postgres_backends(database)
        # backends that ended during the window are lost (Hubkeeper's pools keep theirs)
        used = sum(max(0.0, cpu - pg0.get(backend, 0.0)) for backend, cpu in pg1.items())
        window.postgres_cpu = used / window.seconds * 100
    probe.stop_now.set()
    probe.join()
    window.probe_ms = probe.ms
    time.sleep(1.0)  # the hub's last log lines reach the file
    with Path(hub.log_path).open() as log:
        log.seek(log_at)
        for line in log:
            found = REQUEST.search(line)
            if not found or "/hub/api" not in found.group(3):
                continue
            who = found.group(4)
            if who in (PROBE, "hub-admin", "admin"):  # the bench's own requests
                continue
            kind = kind_of(found.group(2), found.group(3))
            window.requests[kind] += 1
            window.ms_by_kind[kind] += float(found.group(5))
            window.ms_lists.setdefault(kind, []).append(float(found.group(5)))
            window.hub_ms += float(found.group(5))
    return window


def run_n(n: int, args: argparse.Namespace, tmp: Path) -> list[list[Window]]:
    """`args.repeat` rounds of the three windows (the hub alone, idle-culler, Hubkeeper)."""
    standin_port = free_port()
    standin = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench" / "kernel_standin.py"),
            str(standin_port),
            "--remember-deletes",
        ]
    )
    culler_token = secrets.token_hex(32)
    hub = LocalHub(
        tmp / f"hub-{n}",
        extra_config=LIGHT_SPAWNER.format(port=standin_port) + idle_culler_service(culler_token),
        start_timeout=120,
    )
    rounds: list[list[Window]] = []
    try:
        hub.start()
        names = [f"load-{i:05d}" for i in range(n)]
        began = time.monotonic()
        create_users(hub, [*names, PROBE, FRESH])
        start_servers(hub, names)
        print(f"N={n}: {n} servers started in {time.monotonic() - began:.0f} s", flush=True)
        probe_token = hub.user_token(PROBE)
        admin = hub.user_token("admin")
        db = postgres_database()
        replicas = 2 if db else 1
        db_url = db or f"sqlite:///{tmp / f'hk-{n}.sqlite'}"
        db_name = db.rsplit("/", 1)[1] if db else None
        runs: list[tuple[str, Companion | None, bool]] = [
            ("the hub alone", None, False),
            (
                f"+ jupyterhub-idle-culler 2.0 (--timeout={IDLE_TIMEOUT}, "
                f"--cull-every={args.cull_every})",
                idle_culler(hub, culler_token, args.cull_every, tmp / f"idle-culler-{n}.log"),
                False,
            ),
            (
                f"+ Hubkeeper ({replicas} replica{'s' if replicas > 1 else ''}"
                f"{' on PostgreSQL' if db else ' on SQLite'})",
                hubkeeper(hub, db_url, args.cull_every, tmp / f"hubkeeper-{n}.log", replicas),
                True,
            ),
        ]
        for round_no in range(args.repeat):
            windows: list[Window] = []
            for name, companion, is_hubkeeper in runs:
                warm_from = Path(hub.log_path).stat().st_size
                if companion:
                    companion.start()
                try:
                    warmed = time.monotonic()
                    settled = True
                    if is_hubkeeper and args.settle:
                        _, settled = settle(hub, warm_from, args.warm_up, n)
                    else:
                        time.sleep(args.warm_up if companion else 2.0)
                    warmed = time.monotonic() - warmed
                    window = measure(
                        hub,
                        name,
                        args.window,
                        probe_token,
                        hubkeeper_token=admin if is_hubkeeper else None,
                        companion=companion,
                        database=db_name if is_hubkeeper else None,
                    )
                finally:
                    if companion:
                        companion.stop()
                window.warm_s = warmed
                window.settled = settled
                if is_hubkeeper:
                    window.sweep_pages = sweep_pages(hub, warm_from, window.log_from)
                    window.warm_mints = warm_mints(hub, warm_from, window.log_from)
                windows.append(window)
                run = f" (run {round_no + 1}/{args.repeat})" if args.repeat > 1 else ""
                print(f"N={n}{run}: {summary(window)}", flush=True)
            rounds.append(windows)
    finally:
        hub.stop()
        standin.terminate()
    return rounds


def sweep_cost(n: int, w: Window) -> str:
    """The full sweep (every user, pages of 200, every HUBKEEPER_FULL_SYNC_INTERVAL = 600 s)
    runs at Hubkeeper's start, in the warm-up before the window; its cost per hour, from its
    pages as the hub logged them then (else from the list pages' average)."""
    if w.sweep_pages:  # every start sweeps: a combined window holds each run's
        pages = round(len(w.sweep_pages) / len(w.runs or [w]))
        per_page = statistics.mean(w.sweep_pages)
    else:
        kind = "GET /users (list)"
        per_page = w.ms_by_kind[kind] / w.requests[kind] if w.requests[kind] else 0.0
        pages = -(-(n + 3) // 200)
    return (
        f"- The full sweep (at start, in the warm-up, then every 600 s): {pages} pages of 200 "
        f"users, {per_page:.0f} ms a page, about {pages * 6 * per_page / 1000:.1f} s of hub "
        f"time per hour ({pages * 6 * per_page / 60:.0f} ms/min on average)."
    )


def sweep_pages(hub: LocalHub, since: int, until: int) -> list[float]:
    """Hub ms of each full-sweep page (no state, no sort, limit=200) Hubkeeper asked for in
    the hub's log between these offsets."""
    found: list[float] = []
    with Path(hub.log_path).open() as log:
        log.seek(since)
        text = log.read(max(0, until - since))
    for line in text.splitlines():
        match = REQUEST.search(line)
        if not match or match.group(4) in (PROBE, "hub-admin", "admin", CULLER_SERVICE):
            continue
        if kind_of(match.group(2), match.group(3)) == "GET /users (list)" and (
            "limit=200" in match.group(3)
        ):
            found.append(float(match.group(5)))
    return found


def settle(hub: LocalHub, since: int, least: float, servers: int) -> tuple[float, bool]:
    """Wait at least `least` s, then until the start's mints are over: the hub has logged no
    server-token request for MINTS_QUIET s, or (renewals begin ~14 minutes after the first
    mints and then never leave such a gap) it has logged one request for every 5 running
    servers and MINTS_QUIET s more have passed. At most MAX_SETTLE s in all; returns the
    seconds waited, and whether the mints stopped (False: MAX_SETTLE ran out first)."""
    began = time.monotonic()
    last_mint = began
    minted, all_minted_at = 0, None
    offset = since
    while True:
        time.sleep(1.0)
        with Path(hub.log_path).open("rb") as log:
            log.seek(offset)
            chunk = log.read()
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
        offset += len(whole)
        if b"/hubkeeper/server-tokens" in whole:
            last_mint = time.monotonic()
            minted += whole.count(b"/hubkeeper/server-tokens")
            if all_minted_at is None and minted >= servers / 5:
                all_minted_at = last_mint
        now = time.monotonic()
        if now - began >= least and now - last_mint >= MINTS_QUIET:
            return now - began, True
        if all_minted_at is not None and now - all_minted_at >= MINTS_QUIET:
            return now - began, True
        if now - began >= MAX_SETTLE:
            return now - began, False


def warm_mints(hub: LocalHub, since: int, until: int) -> list[float]:
    """Hub ms of each server-token request Hubkeeper made in the warm-up (between these
    offsets of the hub's log): a new leader's first resource pass mints a token for every
    running server it has none for."""
    with Path(hub.log_path).open() as log:
        log.seek(since)
        text = log.read(max(0, until - since))
    found: list[float] = []
    for line in text.splitlines():
        match = REQUEST.search(line)
        if match and kind_of(match.group(2), match.group(3)).endswith("/hubkeeper/server-tokens"):
            found.append(float(match.group(5)))
    return found


def when_window_began(runs: list[Window], args: argparse.Namespace) -> str:
    if not args.settle:
        return "at the warm-up end"
    if all(r.settled for r in runs):
        return "once the mints had stopped"
    return (
        f"**the mints had not stopped after {MAX_SETTLE:.0f} s: this window holds a start's "
        "mints, not the steady state**"
    )


def mint_cost(w: Window, args: argparse.Namespace) -> str:
    """The start's token burst: in the warm-up, and what of it reached the window."""
    kind = "POST /hubkeeper/server-tokens"
    runs = w.runs or [w]
    return (
        f"- Server tokens at a Hubkeeper start (one for each running server, 5 a request, "
        f"paced to about 3 % of the hub's time): before the window, which began "
        f"{statistics.median(r.warm_s for r in runs):.0f} s after the start "
        f"({when_window_began(runs, args)}), "
        f"{len(w.warm_mints) / len(runs):.0f} requests, "
        f"{sum(w.warm_mints) / len(runs) / 1000:.1f} s of hub time, per start; in the "
        f"window {w.requests[kind] / len(runs):.0f} requests, "
        f"{w.ms_by_kind[kind] / len(runs) / 1000:.1f} s (counted above)."
    )


def renewal_cost(n: int, w: Window) -> str:
    """What the hourly renewals cost once they are spread over the hour (server_tokens.py
    RENEW_SPREAD): every token renewed once per TOKEN_SECONDS - TOKEN_MARGIN, 5 a request,
    at the median hub time of the mint requests this run saw. A window soon after a start
    holds few or none of them (the first come after a quarter of the hour), so it is
    computed, not measured."""
    from hubkeeper.hub.server_tokens import BATCH, TOKEN_MARGIN, TOKEN_SECONDS

    kind = "POST /hubkeeper/server-tokens"
    seen = list(w.warm_mints) + list(w.ms_lists.get(kind, []))
    if not seen:
        return "- Token renewals: no mint request seen, so no cost per request to go by."
    per_request = statistics.median(seen)
    per_minute = n / ((TOKEN_SECONDS - TOKEN_MARGIN) / 60) / BATCH
    return (
        f"- Token renewals, spread over the hour (steady state, computed): {per_minute:.1f} "
        f"requests/min at {per_request:.0f} ms each (this run's median mint), about "
        f"{per_minute * per_request:.0f} ms of hub time per minute."
    )


def kinds(w: Window) -> str:
    def median(kind: str) -> str:
        values = w.ms_lists.get(kind)
        return f", {statistics.median(values):.0f} ms median" if values else ""

    return ", ".join(
        f"`{kind}` {w.per_minute(n):.1f} ({w.per_minute(w.ms_by_kind[kind]):.0f}{median(kind)})"
        for kind, n in w.requests.most_common()
    )


def summary(w: Window) -> str:
    requests = w.per_minute(sum(w.requests.values()))
    own = "+".join(f"{c:.1f}" for c in w.companion_cpu)
    pg = f", PostgreSQL {w.postgres_cpu:.1f} %" if w.postgres_cpu is not None else ""
    return (
        f"{w.name}: CPU {w.cpu_percent:.1f} %, {requests:.1f} req/min, "
        f"{w.per_minute(w.hub_ms):.0f} ms/min, probe p50/p95 {w.p(50):.1f}/{w.p(95):.1f} ms "
        f"({len(w.probe_ms)} calls)" + (f", its own CPU {own} %{pg}" if own else "")
    )


def companions_cpu(w: Window) -> str:
    """What a companion's own processes used, % of a core."""
    if not w.companion_cpu:
        return ""
    each = " + ".join(f"{c:.1f}" for c in w.companion_cpu)
    total = f" = {sum(w.companion_cpu):.1f} %" if len(w.companion_cpu) > 1 else " %"
    pg = (
        f"; PostgreSQL's backends for it {w.postgres_cpu:.1f} %"
        if w.postgres_cpu is not None
        else ""
    )
    return f"{each}{total}{pg}"


def commit() -> str:
    """The checkout's commit (short), or "an unknown commit" outside a git checkout."""
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    return found.stdout.strip()


def report(results: dict[int, list[list[Window]]], args: argparse.Namespace) -> str:
    lines = [
        BEGIN,
        "## Load on the hub: Hubkeeper against jupyterhub-idle-culler 2.0",
        "",
        f"`bench/hub_load.py --servers {args.servers} --window {args.window:g}"
        + (f" --repeat {args.repeat}" if args.repeat > 1 else "")
        + (f" --warm-up {args.warm_up:g}" if args.warm_up != WARM_UP else "")
        + (" --settle" if args.settle else "")
        + f"` at {commit()} on {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}. Fresh hubs with a "
        "light spawner (no process per server); both cullers pass every "
        f"{args.cull_every} s. Hub CPU is % of one core; requests and hub time per minute "
        "come from the hub's own request log (the probe's and the bench's own left out). "
        "Every run starts and stops one server at the hub's API; \"the hub's own\" is when "
        "the hub's API showed it."
        + (
            f" Each run {args.repeat} times, interleaved; the table gives the median p50 / "
            "p95 of a run's windows, the other figures over all of them."
            if args.repeat > 1
            else ""
        ),
        "",
    ]
    for n, rounds in results.items():
        windows = [combine([r[i] for r in rounds]) for i in range(len(rounds[0]))]
        alone = windows[0]
        lines += [
            f"**{n:,} running servers**",
            "",
            "| run | hub CPU | hub API requests/min | hub time answering, ms/min "
            "| a user's call p50 / p95 | freshness start / stop |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for w in windows:
            hubs_own = (
                f"the hub's own: {w.hub_start_s:.1f} s / {w.hub_stop_s:.1f} s"
                if w.hub_start_s is not None and w.hub_stop_s is not None
                else ""
            )
            fresh = (
                f"{w.fresh_start_s:.1f} s / {w.fresh_stop_s:.1f} s"
                + (f" ({hubs_own})" if hubs_own else "")
                if w.fresh_start_s is not None and w.fresh_stop_s is not None
                else f"— ({hubs_own})"
                if hubs_own
                else "—"
            )
            requests = w.per_minute(sum(w.requests.values()))
            lines.append(
                f"| {w.name} | {w.cpu_percent:.1f} % | {requests:.1f} | "
                f"{w.per_minute(w.hub_ms):.0f} | {w.p(50):.1f} / {w.p(95):.1f} ms | {fresh} |"
            )
        if len(windows) == 3:
            culler, keeper = windows[1], windows[2]
            added_culler = max(culler.cpu_percent - alone.cpu_percent, 0.01)
            added_keeper = keeper.cpu_percent - alone.cpu_percent
            cpu_ratio = added_keeper / added_culler
            p95_ratio = keeper.p(95) / max(alone.p(95), 0.01)
            time_ratio = keeper.per_minute(keeper.hub_ms) / max(
                culler.per_minute(culler.hub_ms), 0.01
            )
            request_ratio = keeper.per_minute(sum(keeper.requests.values())) / max(
                culler.per_minute(sum(culler.requests.values())), 0.01
            )
            lines += [
                "",
                (
                    f"- Hub CPU Hubkeeper adds / idle-culler adds: **{cpu_ratio:.2f}×** "
                    "(target ≤ 2)."
                    if min(added_keeper, culler.cpu_percent - alone.cpu_percent) >= NOISE_CPU
                    else "- Hub CPU Hubkeeper adds / idle-culler adds: not measurable here "
                    f"(added {added_keeper:+.2f} and {culler.cpu_percent - alone.cpu_percent:+.2f}"
                    f" points, under the {NOISE_CPU} points of noise); the hub's time answering "
                    "them, below, is the measure (target ≤ 2)."
                ),
                f"- A user's p95 with Hubkeeper / the hub alone: **{p95_ratio:.2f}×** "
                "(target ≤ 1.2).",
                f"- Hub time answering, Hubkeeper / idle-culler: {time_ratio:.2f}×; "
                f"requests: {request_ratio:.2f}×.",
                "- Hubkeeper's requests per minute by kind (hub ms per minute, ms a request): "
                f"{kinds(keeper)}.",
                f"- idle-culler's, the same way: {kinds(culler)}.",
                sweep_cost(n, keeper),
                mint_cost(keeper, args),
                renewal_cost(n, keeper),
                f"- Their own CPU, % of a core (each process): Hubkeeper {companions_cpu(keeper)}"
                f"; idle-culler {companions_cpu(culler)}.",
                "- Probe calls per run: "
                + ", ".join(
                    f"{w.name.split(' (')[0]} "
                    + " / ".join(str(len(run.probe_ms)) for run in (w.runs or [w]))
                    for w in windows
                )
                + ".",
            ]
            if len(rounds) > 1:
                lines.append(
                    "- p95 of each run, ms: "
                    + "; ".join(
                        f"{w.name.split(' (')[0]} "
                        + ", ".join(f"{run.p(95):.1f}" for run in w.runs)
                        for w in windows
                    )
                    + "."
                )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write_docs(text: str) -> None:
    path = REPO / "docs" / "performance.md"
    doc = path.read_text()
    if BEGIN in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + text + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="1000", help="comma-separated N (e.g. 1000,5000)")
    parser.add_argument("--window", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--cull-every", type=int, default=120, help="both cullers' interval")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the three windows this many times, interleaved"
    )
    parser.add_argument(
        "--warm-up", type=float, default=WARM_UP, help="seconds a companion runs before its window"
    )
    parser.add_argument(
        "--settle",
        action="store_true",
        help="start Hubkeeper's window only once its start's token mints are over (by "
        "default it starts after the warm-up, while they go on: the worst window of a start)",
    )
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    results: dict[int, list[list[Window]]] = {}
    with tempfile.TemporaryDirectory(prefix="hub-load-") as tmp:
        for n in (int(x) for x in args.servers.split(",")):
            results[n] = run_n(n, args, Path(tmp))
            print(report({n: results[n]}, args), flush=True)  # kept should a later N fail
    text = report(results, args)
    print(text)
    if args.write:
        write_docs(text)


if __name__ == "__main__":
    main()
