"""A JupyterHub holding N users for the read benchmark, kept in a cache dir between runs.

Users are written straight into the stopped hub's sqlite database with `jupyterhub.orm`
(creating 50,000 users through the REST API would freeze the hub's event loop for seconds per
batch and take minutes). The hub is started once first so that it creates its own schema and
roles; the rows added afterwards are what the hub's own API would have written: a user with
the default `user` role, `admin` users with the `admin` role, group memberships, `created` and
`last_activity` times.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from hubkeeper.demo.localhub import MANAGERS_GROUP, LocalHub

log = logging.getLogger("bench.hub")

PAGINATION = {"Accept": "application/jupyterhub-pagination+json"}
GROUPS = ("physics", "chemistry", "biology")  # plus MANAGERS_GROUP (~1 %)
ADMIN_EVERY = 10_000  # user-10000, user-20000, ... are admins ("a handful")
MARKER = "users-ready"


def user_name(i: int) -> str:
    return f"user-{i:05d}"


def hub_total(hub: LocalHub, **params: str) -> int:
    response = hub.api("GET", "/users", params={"limit": "1", **params}, headers=PAGINATION)
    response.raise_for_status()
    return int(response.json()["_pagination"]["total"])


def _insert_users(db_url: str, n_users: int, seed: int = 42) -> None:
    from jupyterhub import orm  # the hub's own models: the same rows its API would write

    rng = random.Random(seed)
    session = orm.new_session_factory(db_url)()
    try:
        user_role = orm.Role.find(session, "user")
        admin_role = orm.Role.find(session, "admin")
        assert user_role is not None and admin_role is not None, "hub did not create its roles"
        groups = {}
        for name in (*GROUPS, MANAGERS_GROUP):
            group = orm.Group.find(session, name)
            if group is None:
                group = orm.Group(name=name)
                session.add(group)
            groups[name] = group
        session.commit()
        existing = {name for (name,) in session.query(orm.User.name)}
        now = datetime.now(UTC).replace(tzinfo=None)  # the hub stores naive UTC
        batch = []
        for i in range(1, n_users + 1):
            name = user_name(i)
            if name in existing:
                continue
            admin = i % ADMIN_EVERY == 0
            created = now - timedelta(days=rng.uniform(30, 900))
            # ~15 % never used the hub; the rest were active some time after creation
            last_activity = (
                None if rng.random() < 0.15 else created + (now - created) * rng.random()
            )
            user = orm.User(name=name, admin=admin, created=created, last_activity=last_activity)
            user.roles = [user_role, admin_role] if admin else [user_role]
            member_of = [groups[GROUPS[i % len(GROUPS)]]] if i % 4 == 0 else []
            if i % 100 == 7:  # 1 %
                member_of.append(groups[MANAGERS_GROUP])
            user.groups = member_of
            batch.append(user)
            if len(batch) >= 5000:
                session.add_all(batch)
                session.commit()
                batch = []
        session.add_all(batch)
        session.commit()
    finally:
        session.close()


def prepare_hub(state_dir: Path, n_users: int, **hub_kwargs: object) -> tuple[LocalHub, float]:
    """A started LocalHub holding `n_users` users; returns it and the seconds set-up took."""
    started = time.monotonic()
    marker = state_dir / MARKER
    if not (marker.exists() and marker.read_text().strip() == str(n_users)):
        log.info("Populating %s with %d users (one-off; reused by later runs)", state_dir, n_users)
        # First start creates the schema, the roles and the `admin` user; then write the rows.
        first = LocalHub(state_dir, **hub_kwargs)  # type: ignore[arg-type]
        try:
            first.start()
        finally:
            first.stop()
        db_url = f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
        t0 = time.monotonic()
        _insert_users(db_url, n_users)
        log.info("Inserted users in %.1f s", time.monotonic() - t0)
    hub = LocalHub(state_dir, start_timeout=180.0, **hub_kwargs)  # type: ignore[arg-type]
    hub.start()
    try:
        total = hub_total(hub, name_filter="user-")
        if total != n_users:
            raise RuntimeError(f"the hub lists {total} bench users, expected {n_users}")
        marker.write_text(str(n_users))
    except BaseException:
        hub.stop()
        raise
    return hub, time.monotonic() - started


def running_users(n_users: int, count: int) -> list[str]:
    """Users spread over the whole name range, so running servers sit on many pages."""
    step = max(1, n_users // count)
    return [user_name(i) for i in range(step // 2 + 1, n_users + 1, step)][:count]


def start_servers(hub: LocalHub, names: list[str], timeout: float = 180.0) -> float:
    """Start a default server for each name (all at once) and wait until all are ready."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(len(names), 10) or 1) as pool:
        list(pool.map(lambda name: hub.start_server(name, timeout=timeout), names))
    return time.monotonic() - started


def hub_rss_kib(hub: LocalHub) -> int | None:
    return rss_kib(hub.pid) if hub.pid else None


def cpu_model(default: str = "unknown") -> str:
    """The CPU's model name from /proc/cpuinfo, or `default` where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def client(base_url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"token {token}"} if token else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=60.0)
