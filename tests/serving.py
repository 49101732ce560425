"""Hubkeeper configured and served as the hub hands it a service, for fixtures and for tests
that run a hub of their own (`with LocalHub(...) as hub, serve_hubkeeper(hub, tmp) as served`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubkeeper.config import Settings
from hubkeeper.demo.localhub import MANAGERS_GROUP, LocalHub
from tests.waiting import wait_for

TEST_COOKIE_SECRET = "0123456789abcdef" * 4


def build_settings(hub: LocalHub, db_url: str, tmp_dir: Path, **overrides: Any) -> Settings:
    """Settings as the hub would hand them to Hubkeeper; overrides by env name or field name."""
    values: dict[str, Any] = {
        **hub.hubkeeper_env(),
        "HUBKEEPER_DATABASE_URL": db_url,
        "HUBKEEPER_COOKIE_SECRET": TEST_COOKIE_SECRET,
        "HUBKEEPER_COOKIE_SECRET_FILE": str(tmp_dir / "hubkeeper_cookie_secret"),
        "HUBKEEPER_MANAGER_GROUPS": MANAGERS_GROUP,
        # The culler's periodic passes stay off in tests unless a test turns them on: on the
        # shared session hub they would stop other tests' servers or issue server tokens.
        "HUBKEEPER_CULL_ENABLED": "false",
        "HUBKEEPER_CULL_KERNELS_ENABLED": "false",
        # Nor is memory and CPU sampled: each sample is a line in the server's log (the log
        # tests follow it) and a token for each running server.
        "HUBKEEPER_RESOURCES_INTERVAL": "0",
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class HubkeeperServer:
    app: Any
    settings: Settings
    direct_url: str  # http://127.0.0.1:<service port>/services/hubkeeper/
    proxied_url: str  # <hub url>/services/hubkeeper/
    server: Any
    thread: threading.Thread


@contextlib.contextmanager
def serve_hubkeeper(hub: LocalHub, tmp: Path, **overrides: Any) -> Iterator[HubkeeperServer]:
    """Hubkeeper (create_app + uvicorn in a thread) on `hub.service_port`, configured with
    what the hub hands a service (`hub.hubkeeper_env()`)."""
    import uvicorn

    from hubkeeper.main import create_app

    settings = build_settings(hub, f"sqlite:///{tmp / 'hubkeeper.sqlite'}", tmp, **overrides)
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=hub.service_port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hubkeeper-test-server", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "Hubkeeper's server thread ended before it started"
        return bool(server.started)

    wait_for(started, 30, "Hubkeeper on the hub's service port", interval=0.02)
    prefix = hub.service_prefix
    try:
        yield HubkeeperServer(
            app=app,
            settings=settings,
            direct_url=f"http://127.0.0.1:{hub.service_port}{prefix}",
            proxied_url=f"{hub.origin}{prefix}",
            server=server,
            thread=thread,
        )
    finally:
        server.should_exit = True
        thread.join(15)
