"""Shared pieces of the culler tests: an app per test, activity on the real hub, settings."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient

from hubkeeper.culler.settings import CullerSettings, KernelSettings
from hubkeeper.demo.localhub import LocalHub
from hubkeeper.kit.clock import utcnow
from hubkeeper.main import create_app

QUIET = {"HUBKEEPER_CULL_ENABLED": "false", "HUBKEEPER_CULL_KERNELS_ENABLED": "false"}


def names(prefix: str, *labels: str) -> list[str]:
    """Fresh user names on the shared hub: `culler-<prefix>-<label>-<random>`."""
    tag = uuid.uuid4().hex[:6]
    return [f"culler-{prefix}-{label}-{tag}" for label in labels]


@contextmanager
def app_client(settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def call(client: TestClient, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an async function on the app's event loop (where its hub client lives)."""
    return client.portal.call(functools.partial(fn, *args, **kwargs))


def cfg(**changes: Any) -> CullerSettings:
    """Settings for a test: no max age, kernels off, unless told otherwise."""
    kernels = changes.pop("kernels", {})
    base: dict[str, Any] = {"enabled": False, "max_age_s": 0, "timeout_s": 60}
    base.update(changes)
    return CullerSettings(**base, kernels=KernelSettings(**{"enabled": False, **kernels}))


def set_activity(hub: LocalHub, user: str, server: str, when: datetime) -> None:
    """Report activity for a server (and its user) to the hub, as a single-user server does
    (`POST /users/{name}/activity`; the hub accepts times up to 59 min ahead)."""
    stamp = when.isoformat()
    response = hub.api(
        "POST",
        f"/users/{quote(user, safe='')}/activity",
        json={"last_activity": stamp, "servers": {server: {"last_activity": stamp}}},
        token=hub.admin_token,  # users:activity is not in Hubkeeper's (least-privilege) role
    )
    assert response.status_code in (200, 204), response.text


def later(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


def server_up(hub: LocalHub, user: str, server: str = "") -> bool:
    model = hub.server_model(user, server)
    return bool(model and model.get("ready"))


def delete_user(hub: LocalHub, user: str) -> None:
    hub.api("DELETE", f"/users/{quote(user, safe='')}", token=hub.admin_token)


def listed_server(hub: LocalHub, user: str, server: str) -> dict[str, Any] | None:
    """The server's model, stopped ones included (`include_stopped_servers`)."""
    response = hub.api(
        "GET", f"/users/{quote(user, safe='')}", params={"include_stopped_servers": "1"}
    )
    response.raise_for_status()
    found: dict[str, Any] | None = (response.json().get("servers") or {}).get(server)
    return found
