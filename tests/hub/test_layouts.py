"""Hubkeeper in two real deployment layouts, everything through the hub's proxy as a person
would use it: log tail, live follow, start/stop and "Open" (access).

- "managed": the session hub; Hubkeeper has what a managed service gets (JUPYTERHUB_API_URL on
  the hub's own port, the proxy public on another, its API on a third) plus the proxy API
  settings.
- "jhub": a hub with `base_url=/jhub/`, Hubkeeper as an external service under
  /jhub/services/hubkeeper/.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from hubkeeper.auth.sessions import issue_session
from hubkeeper.demo.localhub import LOG_FILE_NAME, LocalHub
from tests.waiting import wait_for

ADMIN = "reach-layout-admin"
WORKER = "reach-layout-worker"
EMAIL = "ann@example.org"  # users named like e-mail addresses are common (OAuth logins)


@dataclass
class Layout:
    name: str
    hub: LocalHub
    server: Any  # conftest.HubkeeperServer
    token: str  # an admin user's hub token: Hubkeeper's API accepts it

    @property
    def api(self) -> str:
        return self.server.proxied_url + "api/v1/"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


# the /jhub/ layout is a hub of its own (asked for by name below, which the tiers cannot see)
@pytest.fixture(scope="module", params=["managed", pytest.param("jhub", marks=pytest.mark.own_hub)])
def layout(request: pytest.FixtureRequest) -> Iterator[Layout]:
    hub_fixture, server_fixture = {
        "managed": ("hub", "hubkeeper_server"),
        "jhub": ("jhub", "jhub_server"),
    }[request.param]
    hub: LocalHub = request.getfixturevalue(hub_fixture)
    server = request.getfixturevalue(server_fixture)
    hub.create_users([ADMIN], admin=True)
    hub.create_users([WORKER])
    yield Layout(request.param, hub, server, hub.user_token(ADMIN))
    hub.stop_server(WORKER)


def log_file(hub: LocalHub, name: str) -> Path:
    return hub.homes_dir / name / LOG_FILE_NAME


def cookie_session(layout: Layout) -> tuple[dict[str, str], str]:
    """A signed-in admin's cookie and CSRF token (issued in a thread: the server has its own
    loop and this test has none running)."""
    with ThreadPoolExecutor(1) as pool:
        coro = issue_session(layout.server.app.state.hk, user=ADMIN, role="admin")
        name, value, csrf = pool.submit(asyncio.run, coro).result()
    return {name: value}, csrf


def test_the_layout_is_a_real_one(layout: Layout) -> None:
    settings = layout.server.settings
    hub = layout.hub
    # The API URL is the hub's own port, never the proxy's public one.
    assert urlsplit(settings.hub_api_url).port == hub.hub_port != hub.port
    assert settings.proxy_api_url == hub.proxy_api_url
    assert urlsplit(hub.proxy_api_url).port not in (hub.port, hub.hub_port)
    # On the hub's own port /user/... is not served: the hub redirects it (the old fault).
    redirect = httpx.get(
        f"http://127.0.0.1:{hub.hub_port}{hub.base_url}user/{WORKER}/api/status",
        follow_redirects=False,
    )
    assert redirect.status_code in (301, 302, 303, 307)
    health = httpx.get(layout.server.proxied_url + "api/v1/health", timeout=30).json()
    assert health["status"] == "ok"
    assert health["servers"] == {
        "reachable": True,
        "via": "proxy_api",
        "counts_as_activity": False,
        "detail": None,
    }


def test_start_log_tail_follow_access_and_stop(layout: Layout) -> None:
    hub = layout.hub
    with httpx.Client(timeout=60, headers=layout.auth()) as client:
        started = client.post(layout.api + f"users/{WORKER}/server/start")
        assert started.status_code == 200, started.text
        assert started.json()["status"] in ("running", "pending")
        wait_for(
            lambda: (hub.server_model(WORKER) or {}).get("ready"), 60, "the server to be ready"
        )

        # The tail, right after the hub says ready.
        tail = client.get(layout.api + f"users/{WORKER}/logs", params={"lines": 5})
        assert tail.status_code == 200, tail.text
        assert 0 < len(tail.json()["lines"]) <= 5

        # Live follow: a line written after the stream opened arrives.
        marker = f"reach-layout-marker-{layout.name}-{time.monotonic_ns()}"
        seen = False
        with client.stream("GET", layout.api + f"users/{WORKER}/logs/stream") as stream:
            assert stream.status_code == 200
            deadline = time.monotonic() + 30
            for line in stream.iter_lines():
                if line.startswith("data:") and not seen:
                    with log_file(hub, WORKER).open("a") as f:
                        f.write(marker + "\n")
                    seen = True
                    continue
                if marker in line:
                    assert json.loads(line[5:])["lines"][-1] == marker
                    break
                assert time.monotonic() < deadline, "the appended line never arrived"

    # "Open" as an admin: a POST that redirects to the URL the hub gives the server.
    cookies, csrf = cookie_session(layout)
    with httpx.Client(timeout=60, cookies=cookies) as browser:
        opened = browser.post(
            layout.server.proxied_url + f"users/{WORKER}/server/access",
            data={"_csrf": csrf},
            follow_redirects=False,
        )
        assert opened.status_code == 303, opened.text[:300]
        assert urlsplit(opened.headers["location"]).path == f"{hub.base_url}user/{WORKER}/"

    with httpx.Client(timeout=60, headers=layout.auth()) as client:
        stopped = client.post(layout.api + f"users/{WORKER}/server/stop")
        assert stopped.status_code == 200, stopped.text
        wait_for(lambda: not (hub.server_model(WORKER) or {}).get("ready"), 60, "the stop")
        wait_for(
            lambda: hub.server_model(WORKER) is None or not hub.server_model(WORKER).get("pending"),
            60,
            "the stop to finish",
        )
        gone = client.get(layout.api + f"users/{WORKER}/logs")
        assert gone.status_code == 409 and gone.json()["error"] == "server_not_running"


def test_a_user_named_like_an_email_address_opens_on_the_hub_url(hub, hubkeeper_server) -> None:
    layout = Layout("managed", hub, hubkeeper_server, "")
    hub.create_users([ADMIN], admin=True)
    hub.create_users([EMAIL])
    hub.start_server(EMAIL)
    try:
        cookies, csrf = cookie_session(layout)
        with httpx.Client(timeout=60, cookies=cookies) as browser:
            opened = browser.post(
                hubkeeper_server.proxied_url + f"users/{quote(EMAIL, safe='')}/server/access",
                data={"_csrf": csrf},
                follow_redirects=False,
            )
        assert opened.status_code == 303, opened.text[:300]
        location = opened.headers["location"]
        assert urlsplit(location).path == f"/user/{EMAIL}/"  # '@' as the hub writes it
        token = hub.user_token(EMAIL)
        with httpx.Client(timeout=30, headers={"Authorization": f"token {token}"}) as owner:
            assert owner.get(location + "api/status").status_code == 200
            escaped = location.replace("@", "%40")
            assert owner.get(escaped + "api/status").status_code == 404  # why it matters
        # And its log reads too (route keys, tokens and scopes with '@' in them).
        admin_token = hub.user_token(ADMIN)
        logs = httpx.get(
            hubkeeper_server.proxied_url + f"api/v1/users/{quote(EMAIL, safe='')}/logs",
            headers={"Authorization": f"token {admin_token}"},
            timeout=60,
        )
        assert logs.status_code == 200, logs.text
    finally:
        hub.stop_server(EMAIL)
