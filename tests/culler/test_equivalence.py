"""Hubkeeper's server pass decides as jupyterhub-idle-culler 2.0 does, on the same hub state
(idle, active, past max age, pending, named servers under each policy, admin, a null
activity), and differs only where docs/culler.md says it does on purpose."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hubkeeper.culler.service import Culler
from hubkeeper.culler.settings import CullerSettings
from hubkeeper.db.engine import migrate
from hubkeeper.kit.clock import iso_utc, utcnow
from hubkeeper.state import cli_state
from tests.conftest import build_settings
from tests.culler.helpers import delete_user, later, names, set_activity
from tests.culler.idle_culler import HubLens, hubkeeper_decisions, idle_culler_decisions

DAY = 86400


@pytest.fixture(scope="module")
def scenario(hub) -> Any:
    idle, active, old, pending, named, admin, null = names(
        "equiv", "idle", "active", "old", "pending", "named", "admin", "null"
    )
    everyone = [idle, active, old, pending, named, admin, null]
    hub.create_users([u for u in everyone if u != admin])
    hub.create_users([admin], admin=True)
    # started together: one after another, eight spawns took ~90 s on a loaded machine
    with ThreadPoolExecutor(len(everyone) + 1) as pool:
        list(pool.map(hub.start_server, [*everyone, named], [""] * len(everyone) + ["lab"]))
    for user in (active, old):
        set_activity(hub, user, "", later(90))
    ten_days_ago = iso_utc(utcnow() - timedelta(days=10))

    def started_long_ago(model: dict[str, Any]) -> None:
        model["servers"][""]["started"] = ten_days_ago

    def spawning(model: dict[str, Any]) -> None:
        model["servers"][""]["pending"] = "spawn"
        model["servers"][""]["ready"] = False

    def never_active(model: dict[str, Any]) -> None:
        model["last_activity"] = None
        model["servers"][""]["last_activity"] = None

    rewrites = {old: started_long_ago, pending: spawning, null: never_active}
    yield {"users": set(everyone), "rewrites": rewrites, "names": locals()}
    with ThreadPoolExecutor(len(everyone) + 1) as pool:
        list(pool.map(hub.stop_server, [*everyone, named], [""] * len(everyone) + ["lab"]))
    delete_user(hub, admin)


POLICIES = [
    # (Hubkeeper settings, idle-culler arguments)
    (
        {"named_servers": "keep", "cull_users": False, "cull_admin_users": True},
        {
            "cull_named_servers": False,
            "remove_named_servers": False,
            "cull_users": False,
            "cull_admin_users": True,
        },
    ),
    (
        {"named_servers": "cull", "cull_users": True, "cull_admin_users": False},
        {
            "cull_named_servers": True,
            "remove_named_servers": False,
            "cull_users": True,
            "cull_admin_users": False,
        },
    ),
    (
        {"named_servers": "cull_and_remove", "cull_users": True, "cull_admin_users": True},
        {
            "cull_named_servers": True,
            "remove_named_servers": True,
            "cull_users": True,
            "cull_admin_users": True,
        },
    ),
]


async def decide_both(hub, tmp_path: Path, scenario, ours: dict, theirs: dict, **common):
    lens = await HubLens(hub.api_url, scenario["rewrites"]).start()
    db = f"sqlite:///{tmp_path / 'equiv.sqlite'}"
    await asyncio.to_thread(migrate, db)
    hk = cli_state(build_settings(hub, db, tmp_path, JUPYTERHUB_API_URL=lens.api_url))
    now = later(100)
    try:
        cfg = CullerSettings(timeout_s=common["timeout"], max_age_s=common["max_age"], **ours)
        result = await Culler.of(hk).servers_pass(
            cfg, now=now, users=scenario["users"], dry_run=True
        )
        assert not result.error
        mine = hubkeeper_decisions(result)
        theirs_found = await idle_culler_decisions(
            lens,
            hub.service_token,
            now=now,
            timeout=common["timeout"],
            max_age=common["max_age"],
            **theirs,
        )
    finally:
        await lens.aclose()
        await hk.hub.aclose()
        await hk.servers.aclose()
        hk.engine.dispose()
    theirs_mine = {d for d in theirs_found if d[0] in scenario["users"]}
    return mine, theirs_mine


@pytest.mark.parametrize(("ours", "theirs"), POLICIES)
async def test_same_decisions_as_idle_culler(hub, tmp_path, scenario, ours, theirs):
    mine, idle_culler = await decide_both(
        hub, tmp_path, scenario, ours, theirs, timeout=60, max_age=7 * DAY
    )
    assert mine == idle_culler
    n = scenario["names"]
    stopped = {(u, s) for u, s, action in mine if action != "delete_user"}
    assert (n["idle"], "") in stopped and (n["null"], "") in stopped
    assert (n["old"], "") in stopped  # past max age though active
    assert (n["active"], "") not in stopped and (n["pending"], "") not in stopped
    assert ((n["named"], "lab") in stopped) == (ours["named_servers"] != "keep")


async def test_deliberate_difference_admin_past_max_age_is_never_deleted(hub, tmp_path, scenario):
    """idle-culler 2.0 deletes an admin on the max-age path even with cull_admin_users off
    (its `handle_user`); Hubkeeper does not. The admin here is past max age (a tiny one)."""
    ours = {"named_servers": "cull", "cull_users": True, "cull_admin_users": False}
    theirs = {
        "cull_named_servers": True,
        "remove_named_servers": False,
        "cull_users": True,
        "cull_admin_users": False,
    }
    admin = scenario["names"]["admin"]
    set_activity(hub, admin, "", later(95))
    mine, idle_culler = await decide_both(
        hub, tmp_path, scenario, ours, theirs, timeout=3000, max_age=50
    )
    assert (admin, "", "delete_user") in idle_culler
    assert (admin, "", "delete_user") not in mine
    assert mine - {(admin, "", "delete_user")} == idle_culler - {(admin, "", "delete_user")}
