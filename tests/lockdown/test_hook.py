"""The hub-side hook on its own: self-contained, and what it does when Hubkeeper is away."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tornado.web import HTTPError

from hubkeeper.demo.localhub import free_port
from hubkeeper.lockdown.hook import UNREACHABLE_MESSAGE, make_pre_spawn_hook


@pytest.mark.subprocess
def test_the_hook_imports_nothing_else_from_hubkeeper():
    code = (
        "import sys, hubkeeper.lockdown.hook; "
        "print(sorted(m for m in sys.modules if m == 'hubkeeper' or m.startswith('hubkeeper.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = (
        "['hubkeeper', 'hubkeeper.hub_plugin', 'hubkeeper.lockdown', 'hubkeeper.lockdown.hook']"
    )
    assert out.stdout.strip() == modules


async def test_an_unreachable_hubkeeper_lets_spawns_through_by_default(caplog):
    hook = make_pre_spawn_hook(f"http://127.0.0.1:{free_port()}/status", timeout=1)
    assert await hook(object()) is None
    assert "lockdown check failed" in caplog.text


async def test_fail_closed_refuses_with_a_message_when_hubkeeper_is_away():
    hook = make_pre_spawn_hook(f"http://127.0.0.1:{free_port()}/status", timeout=1, fail_open=False)
    with pytest.raises(HTTPError) as caught:
        await hook(object())
    assert caught.value.status_code == 503
    assert caught.value.jupyterhub_message == UNREACHABLE_MESSAGE  # type: ignore[attr-defined]


async def test_an_open_hub_lets_spawns_through(hubkeeper_server):
    hook = make_pre_spawn_hook(hubkeeper_server.direct_url + "api/v1/lockdown/status")
    assert await hook(object()) is None
