"""`hubkeeper lockdown on|status|off` against the real hub and the shared Hubkeeper's database:
the running Hubkeeper picks the change up, and so does the hub's spawn hook."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest

from tests.cli import run_cli
from tests.waiting import wait_for

pytestmark = pytest.mark.subprocess

ANN = "lock-cli-ann"


def hubkeeper(hub: Any, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("lockdown", *args, env={**hub.hubkeeper_env(), "HUBKEEPER_DATABASE_URL": db_url})


def status_of(server: Any) -> dict[str, Any]:
    return dict(httpx.get(server.direct_url + "api/v1/lockdown/status", timeout=5).json())


def wait_until_locked(server: Any, locked: bool, timeout: float = 10.0) -> dict[str, Any]:
    def seen() -> dict[str, Any] | None:
        status = status_of(server)
        return status if status["locked"] is locked else None

    return dict(wait_for(seen, timeout, f"Hubkeeper to see locked={locked}", interval=0.2))


def test_cli_locks_and_lifts_the_running_hubkeeper(hub, hubkeeper_server):
    hub.create_users([ANN])
    db_url = hubkeeper_server.settings.database_url
    on = hubkeeper(hub, db_url, "on", "--reason", "lock-test from the CLI", "--keep-servers")
    try:
        assert on.returncode == 0, on.stdout + on.stderr
        assert "LOCKED" in on.stdout and "lock-test from the CLI" in on.stdout

        status = hubkeeper(hub, db_url, "status")
        assert status.returncode == 0 and "LOCKED" in status.stdout

        twice = hubkeeper(hub, db_url, "on", "--reason", "again", "--keep-servers")
        assert twice.returncode == 1
        assert "already locked" in twice.stderr and "Traceback" not in twice.stderr

        seen = wait_until_locked(hubkeeper_server, True)
        assert "lock-test from the CLI" in seen["message"]
        assert hub.api("POST", f"/users/{ANN}/server", json={}).status_code == 503
    finally:
        off = hubkeeper(hub, db_url, "off")
    assert off.returncode == 0, off.stdout + off.stderr
    assert "lifted" in off.stdout
    wait_until_locked(hubkeeper_server, False)
    again = hubkeeper(hub, db_url, "off")
    assert again.returncode == 1 and "not locked" in again.stderr
    assert "open" in hubkeeper(hub, db_url, "status").stdout

    token = hub.user_token("admin")
    events = httpx.get(
        hubkeeper_server.direct_url + "api/v1/audit",
        params={"target": "hub"},
        headers={"Authorization": f"token {token}"},
    ).json()["items"]
    mine = [e for e in events if e["via"] == "cli"]
    assert [(e["action"], e["outcome"]) for e in mine[:4]] == [
        ("lockdown.off", "failed"),
        ("lockdown.off", "ok"),
        ("lockdown.on", "failed"),
        ("lockdown.on", "ok"),
    ]
    assert all(e["actor"].startswith("cli:") for e in mine)


def test_cli_lock_without_a_reason_is_a_usage_error(hub, tmp_path):
    result = hubkeeper(hub, f"sqlite:///{tmp_path / 'x.sqlite'}", "on", "--reason", "  ")
    assert result.returncode == 2 and "--reason" in result.stderr
