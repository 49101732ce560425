"""Shared fixtures: one real JupyterHub for the session, Hubkeeper served on the hub's service
port, databases (SQLite always, PostgreSQL when HUBKEEPER_TEST_POSTGRES_URL is set) and a
headless Chromium. See docs/architecture.md, "Test fixtures".
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hubkeeper.config import Settings
from hubkeeper.demo.localhub import LocalHub
from tests.serving import (  # noqa: F401 - build_settings, TEST_COOKIE_SECRET: importable here
    TEST_COOKIE_SECRET,
    HubkeeperServer,
    build_settings,
    serve_hubkeeper,
)
from tests.webhooks import receivers  # noqa: F401 - the fixture, for every test

# The suite configures Hubkeeper explicitly; settings from the caller's shell must not leak in.
for _key in list(os.environ):
    if _key.startswith(("JUPYTERHUB_", "HUBKEEPER_", "CONFIGPROXY_")) and not _key.startswith(
        "HUBKEEPER_TEST_"
    ):
        del os.environ[_key]

POSTGRES_URL = os.environ.get("HUBKEEPER_TEST_POSTGRES_URL", "")

# A sweep asked for "sooner" (`directory.sweep_soon()`) waits SWEEP_SOONER_MIN_GAP seconds
# after the last one finished: 30 s in service, where a lasting mismatch must not sweep nonstop.
# The session's Hubkeeper has swept moments before a module's fixture asks (console/test_pages,
# console/test_user_page, web/test_parameters), so each such fixture sat ~30 s idle; here a
# 2 s gap. Only asked-for sweeps come sooner (the scheduled ones keep full_sync_interval).
import hubkeeper.directory.sync as _directory_sync  # noqa: E402

_directory_sync.SWEEP_SOONER_MIN_GAP = 2.0

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# --- tiers (markers registered in pyproject.toml; `make test-fast` skips them all) ----------
# A test that uses one of these fixtures, directly or through another fixture, gets the marker.
# Tests that start a hub or a program in their own body say so with `pytestmark` or
# `@pytest.mark.<tier>` instead (docs/architecture.md, "Test tiers").
TIER_FIXTURES: dict[str, frozenset[str]] = {
    # a hub of the test's own, not the session `hub` (each ~5-10 s to start)
    "own_hub": frozenset(
        {
            "jhub",  # here: the /jhub/ layout
            "bare_hub",  # lockdown/test_enforce.py
            "hooked_hub",  # lockdown/test_enforce.py
            "hanging_hub",  # hub/test_budgets.py
            "slow_hub",  # console/ and culler/test_slow_hub.py
            "activity_hub",  # culler/test_kernels.py, test_signals.py, logs/test_activity.py
            "fuzz_hub",  # web/test_schemathesis.py
            "stack",  # deploy/test_compose.py: a hub and two replicas
            "z2jh",  # deploy/test_recipes.py: a hub and the chart's Deployment
        }
    ),
    # `hubkeeper` (or another program) as a process of its own
    "subprocess": frozenset({"replicas", "stack", "z2jh"}),
    "browser": frozenset({"browser", "page"}),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in TIER_FIXTURES.items():
            if used & fixtures and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


# What a test really starts is watched too: one that starts a hub other than the session's or
# runs a program without its tier marker is listed at the end of the run, to be marked.
_running: list[pytest.Item] = []
_untiered: dict[str, set[str]] = {"own_hub": set(), "subprocess": set()}
_shared_hub_starting = threading.Event()


def _note(marker: str) -> None:
    item = _running[-1] if _running else None
    if item is None or item.get_closest_marker(marker) is not None:
        return
    if marker == "subprocess" and any(
        item.get_closest_marker(m) is not None for m in ("browser", "own_db")
    ):
        return  # Playwright's own Chromium; initdb and pg_ctl of a private PostgreSQL
    _untiered[marker].add(item.nodeid)


class _NotedPopen(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        program = Path(str(args[0] if isinstance(args, list | tuple) else args).split()[0]).name
        if program == "jupyterhub":
            if not _shared_hub_starting.is_set():
                _note("own_hub")
        else:
            _note("subprocess")
        super().__init__(args, *rest, **kwargs)


subprocess.Popen = _NotedPopen  # type: ignore[misc]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for marker, nodeids in _untiered.items():
        if nodeids:
            terminalreporter.section(f"tests that need the {marker} marker", sep="-")
            for nodeid in sorted(nodeids):
                terminalreporter.line(nodeid)
            terminalreporter.line("(tests/conftest.py TIER_FIXTURES, or mark the test)")


# --- the hub -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """A real JupyterHub; Hubkeeper is registered as an EXTERNAL service on `hub.service_port`.

    Helpers: create_users(names, admin=False), add_to_group(group, users),
    start_server(name, server=""), stop_server(name, server=""), user_token(name),
    api(method, path, token=None, **httpx_kwargs). Tokens: service_token, admin_token.
    """
    local = LocalHub(tmp_path_factory.mktemp("hub"), test_server_tokens=True)
    atexit.register(local.stop)  # even if the session dies before the finalizer runs
    try:
        _shared_hub_starting.set()
        try:
            local.start()
        finally:
            _shared_hub_starting.clear()
        yield local
    finally:
        local.stop()
        atexit.unregister(local.stop)


# A second hub that copies the proxy's activity every second (tests/culler/test_kernels.py,
# test_signals.py, tests/logs/test_activity.py): activity a call caused shows within the test.
ACTIVITY_CONFIG = """
# Activity is copied from the proxy and reported by servers every second, kept to the second.
c.JupyterHub.last_activity_interval = 1
c.JupyterHub.activity_resolution = 0
c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": "1"}
"""


@pytest.fixture(scope="session")
def activity_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """The activity hub (ACTIVITY_CONFIG), started when a test first asks and shared by all:
    each test uses user names of its own and stops the servers it starts; nothing listens on
    its service port unless a test serves Hubkeeper there for its own duration."""
    local = LocalHub(tmp_path_factory.mktemp("activity-hub"), extra_config=ACTIVITY_CONFIG)
    atexit.register(local.stop)
    try:
        local.start()
        yield local
    finally:
        local.stop()
        atexit.unregister(local.stop)


# A hub that answers 202 ("still going") to every start and stop (console/test_slow_hub.py,
# culler/test_slow_hub.py): its grace is zero (`slow_spawn_timeout`, `slow_stop_timeout`, real
# hub settings), as on a busy production hub with slow spawners; and its spawner is slow on
# purpose for some: named servers "slowstart*" take 60 s to start (a pending spawn meanwhile),
# servers of users named "*slowstop*" take 4 s to stop.
SLOW_HUB_CONFIG = """
import asyncio
from jupyterhub.spawner import SimpleLocalProcessSpawner

class SlowOnPurposeSpawner(SimpleLocalProcessSpawner):
    async def start(self):
        if self.name.startswith("slowstart"):
            await asyncio.sleep(60)
        return await super().start()

    async def stop(self, now=False):
        if "slowstop" in self.user.name:
            await asyncio.sleep(4)
        return await super().stop(now=now)

c.JupyterHub.spawner_class = SlowOnPurposeSpawner
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0, "slow_stop_timeout": 0}
"""


@pytest.fixture(scope="session")
def slow_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """The slow hub (SLOW_HUB_CONFIG), started when a test first asks and shared by the
    console's and the culler's slow-hub tests (each with user names of its own)."""
    local = LocalHub(tmp_path_factory.mktemp("slow-hub"), extra_config=SLOW_HUB_CONFIG)
    atexit.register(local.stop)
    try:
        local.start()
        yield local
    finally:
        local.stop()
        atexit.unregister(local.stop)


# --- databases -----------------------------------------------------------------------------
def _postgres_database() -> Iterator[str]:
    """A fresh, uniquely named database on the test server, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    from hubkeeper.db.engine import normalise_url

    server = make_url(normalise_url(POSTGRES_URL))
    name = f"hubkeeper_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


DB_KINDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


@pytest.fixture(params=DB_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, and (when configured) a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hubkeeper.sqlite'}"
    else:
        yield from _postgres_database()


# --- settings ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the migrations' head, made once: copying it (~1 ms) saves each app the
    fresh migration (~0.5-1 s) its start-up would run; at head, start-up only checks."""
    from hubkeeper.db.engine import migrate

    path = tmp_path_factory.mktemp("migrated") / "hubkeeper.sqlite"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def make_settings(hub: LocalHub, tmp_path: Path, _migrated_sqlite: Path) -> Callable[..., Settings]:
    """`make_settings(db_url=None, **overrides)`: Settings for the session hub. Without
    `db_url`: a SQLite file of the test's own, already migrated."""

    def make(db_url: str | None = None, **overrides: Any) -> Settings:
        if db_url is None:
            default = tmp_path / "hubkeeper.sqlite"
            if not default.exists():
                shutil.copyfile(_migrated_sqlite, default)
            db_url = f"sqlite:///{default}"
        return build_settings(hub, db_url, tmp_path, **overrides)

    return make


# --- Hubkeeper served where the hub proxies /services/hubkeeper/ (tests/serving.py) -------
@pytest.fixture(scope="session")
def hubkeeper_server(
    hub: LocalHub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubkeeperServer]:
    """Hubkeeper on the session hub's service port."""
    with serve_hubkeeper(hub, tmp_path_factory.mktemp("hubkeeper")) as served:
        yield served


# --- the second layout: an external service on a hub under base_url=/jhub/ --------------------
@pytest.fixture(scope="session")
def jhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """A second real hub, `c.JupyterHub.base_url = "/jhub/"` (hub's own port separate, proxy
    API on a third), where Hubkeeper is an external service. Started only when a test asks."""
    local = LocalHub(tmp_path_factory.mktemp("jhub"), base_url="/jhub/")
    atexit.register(local.stop)
    try:
        local.start()
        yield local
    finally:
        local.stop()
        atexit.unregister(local.stop)


@pytest.fixture(scope="session")
def jhub_server(
    jhub: LocalHub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubkeeperServer]:
    """Hubkeeper on the /jhub/ hub's service port (prefix /jhub/services/hubkeeper/)."""
    with serve_hubkeeper(jhub, tmp_path_factory.mktemp("jhubkeeper")) as served:
        yield served


# --- browser -------------------------------------------------------------------------------
# Playwright's sync API runs its own asyncio loop in a greenlet and, after every sync call,
# marks that loop as *running* in this thread. pytest-asyncio then refuses to run any async
# test or fixture afterwards ("Runner.run() cannot be called from a running event loop").
# So the loop is marked running only while a browser test (or fixture) uses Playwright, and
# unmarked again afterwards.
@contextlib.contextmanager
def _playwright_loop(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    asyncio._set_running_loop(loop)
    try:
        yield
    finally:
        asyncio._set_running_loop(None)


@dataclass
class _Browser:
    browser: Any
    loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="session")
def _browser_session() -> Iterator[_Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (make install installs it)")
    from playwright.sync_api import sync_playwright

    manager = sync_playwright()
    playwright = manager.start()
    loop = manager._loop
    try:
        with _playwright_loop(loop):
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield _Browser(chromium, loop)
        finally:
            with _playwright_loop(loop):
                chromium.close()
    finally:
        with _playwright_loop(loop):
            playwright.stop()


@pytest.fixture
def browser(_browser_session: _Browser) -> Iterator[Any]:
    """Headless Chromium through Playwright's SYNC API, for plain `def` tests only (an
    `async def` test runs inside pytest-asyncio's loop, where the sync API refuses to work)."""
    with _playwright_loop(_browser_session.loop):
        yield _browser_session.browser


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    """A fresh browser context and page per test; when the test fails, the page is saved to
    test-artifacts/<test>.png and .html."""
    context = browser.new_context()
    try:
        page = context.new_page()
        yield page
        _save_failed_page(request.node, page)
    finally:
        context.close()


def _save_failed_page(item: pytest.Item, page: Any) -> None:
    report = getattr(item, "report_call", None)
    if report is None or not report.failed:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        (ARTIFACTS / f"{name}.html").write_text(page.content())
    except Exception as exc:  # a dead page must not hide the test's own failure
        print(f"could not save a screenshot: {exc}")
