"""Hubkeeper's hub role holds exactly the scopes its features use: each is proven needed.

One LocalHub per reduced role would be too slow, so the "service-like identity" is a token of
the hub's `admin` user limited (by the hub, via the hub-admin token) to the role's scopes, or
to the role minus one scope; Hubkeeper runs with that token as its JUPYTERHUB_API_TOKEN and a
named feature must work with the whole role and fail without the one scope.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hubkeeper.console import service as console
from hubkeeper.db.engine import migrate
from hubkeeper.demo.localhub import SERVICE_SCOPES
from hubkeeper.directory.store import UserDirectory
from hubkeeper.errors import HubkeeperError
from hubkeeper.history.cli import _groups_by_user
from hubkeeper.kit.actors import SystemActor
from hubkeeper.state import HubkeeperState, cli_state

RUNNING = "guard-lp-running"  # a server that runs throughout
SPARE = "guard-lp-spare"  # started and stopped by the control test
ADMIN = "guard-lp-admin"
GROUP = "guard-lp-group"
ACTOR = SystemActor("least-privilege-test")

Feature = Callable[[HubkeeperState], Awaitable[None]]


async def _directory_user(hk: HubkeeperState, name: str):
    directory = UserDirectory(hk.hub, hk.settings)
    await directory.full_sweep()
    return directory.get(name)


async def console_lists_users(hk: HubkeeperState) -> None:
    assert await _directory_user(hk, ADMIN) is not None, "the console lists no such user"


async def console_shows_admin_groups_activity(hk: HubkeeperState) -> None:
    user = await _directory_user(hk, ADMIN)
    assert user is not None
    assert user.admin and GROUP in user.groups and user.last_activity is not None, user


async def console_shows_running_server(hk: HubkeeperState) -> None:
    user = await _directory_user(hk, RUNNING)
    assert user is not None and "" in user.servers, user
    assert user.servers[""].status == "running"


async def start_a_server(hk: HubkeeperState) -> None:
    await console.start_server(hk, ACTOR, SPARE)


async def stop_a_server(hk: HubkeeperState) -> None:
    await console.stop_server(hk, ACTOR, SPARE)


async def usage_by_group(hk: HubkeeperState) -> None:
    members = await _groups_by_user(hk.settings)
    assert GROUP in members.get(ADMIN, []), members


async def per_server_token(hk: HubkeeperState) -> None:
    """The server gateway asks the hub for a token that opens only that server."""
    await hk.servers.server_status(RUNNING)


# scope → (feature that needs it, the feature)
NEEDS: dict[str, tuple[str, Feature]] = {
    "list:users": ("console user list", console_lists_users),
    "read:users": (
        "admin flag, groups, activity in the console",
        console_shows_admin_groups_activity,
    ),
    "read:servers": ("running servers in the console", console_shows_running_server),
    "start:servers": ("start a server", start_a_server),
    "delete:servers": ("stop a server", stop_a_server),
    "list:groups": ("usage by group", usage_by_group),
    "read:groups": ("usage by group", usage_by_group),
    "custom:hubkeeper:server-tokens": ("one-server token for logs and kernels", per_server_token),
}


def test_every_scope_of_the_role_names_the_feature_that_needs_it():
    assert set(NEEDS) == set(SERVICE_SCOPES)
    assert len(SERVICE_SCOPES) == len(set(SERVICE_SCOPES))


def test_the_readme_documents_the_same_role():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r'"name": "hubkeeper-service",\s*"scopes": \[(.*?)\]', readme, re.S)
    assert block, "README: the hubkeeper-service role in the managed-service recipe"
    assert re.findall(r'"([^"]+)"', block.group(1)) == SERVICE_SCOPES
    table = re.findall(r"^\| `([a-z:!=/-]+)` \|", readme.split("## Registering", 1)[1], re.M)
    assert [scope for scope in table if scope in NEEDS or scope == "admin:users"][
        : len(SERVICE_SCOPES)
    ] == SERVICE_SCOPES


@pytest.fixture(scope="module")
def world(hub, tmp_path_factory):
    hub.create_users([RUNNING, SPARE])
    hub.create_users([ADMIN], admin=True)
    hub.add_to_group(GROUP, [ADMIN])
    hub.api(
        "POST",
        f"/users/{ADMIN}/activity",
        token=hub.admin_token,
        json={"last_activity": "2026-01-01T00:00:00Z"},
    )
    hub.stop_server(SPARE)
    hub.start_server(RUNNING)
    db = tmp_path_factory.mktemp("least-privilege") / "hk.sqlite"
    migrate(f"sqlite:///{db}")
    yield f"sqlite:///{db}"
    hub.stop_server(RUNNING)
    hub.stop_server(SPARE)


def limited_token(hub, scopes: list[str]) -> str:
    response = hub.api(
        "POST",
        "/users/admin/tokens",
        token=hub.admin_token,
        json={"scopes": scopes, "expires_in": 600, "note": "least-privilege test"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def run_feature(hub, make_settings, db_url: str, scopes: list[str], feature: Feature) -> None:
    settings = make_settings(db_url=db_url, JUPYTERHUB_API_TOKEN=limited_token(hub, scopes))

    async def go() -> None:
        hk = cli_state(settings)
        try:
            await feature(hk)
        finally:
            await hk.hub.aclose()
            hk.engine.dispose()

    asyncio.run(go())


def test_the_whole_role_runs_every_feature(hub, make_settings, world):
    for _what, feature in [
        *[(n, f) for n, f in NEEDS.values() if f not in (start_a_server, stop_a_server)],
        ("start", start_a_server),
    ]:
        run_feature(hub, make_settings, world, SERVICE_SCOPES, feature)
    hub.start_server(SPARE)  # wait until it is up: a stop of a starting server is refused
    run_feature(hub, make_settings, world, SERVICE_SCOPES, stop_a_server)
    hub.stop_server(SPARE)


@pytest.mark.parametrize("scope", SERVICE_SCOPES)
def test_each_scope_is_needed(hub, make_settings, world, scope):
    what, feature = NEEDS[scope]
    if feature is stop_a_server:
        hub.start_server(SPARE)
    reduced = [s for s in SERVICE_SCOPES if s != scope]
    try:
        with pytest.raises((HubkeeperError, AssertionError)) as refused:
            run_feature(hub, make_settings, world, reduced, feature)
        print(f"without {scope}, {what} fails: {refused.value}")
    finally:
        hub.stop_server(SPARE)
    assert what
