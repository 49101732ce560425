"""hubkeeper.hub_plugin without a hub: what it imports, and what `configure` sets."""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path

import pytest
from traitlets.config import Config

from hubkeeper import hub_plugin

PLUGIN = Path(hub_plugin.__file__)


def test_it_imports_only_the_standard_library_tornado_and_jupyterhub():
    """It runs in the hub's process and ships as one file (`hubkeeper hub-plugin`)."""
    tree = ast.parse(PLUGIN.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    outside = {r for r in roots if r not in sys.stdlib_module_names}
    assert outside <= {"tornado", "jupyterhub"}, outside


def _config(base_url: str | None = None) -> Config:
    c = Config()
    if base_url:
        c.JupyterHub.bind_url = f"http://127.0.0.1:8000{base_url}"
    c.JupyterHub.services = [{"name": "hubkeeper", "url": "http://10.0.0.5:10101"}]
    return c


def test_configure_defines_the_scope_and_the_endpoint():
    c = _config()
    c.JupyterHub.custom_scopes = {"custom:other:x": {"description": "kept"}}
    hub_plugin.configure(c)
    assert set(c.JupyterHub.custom_scopes) == {"custom:other:x", hub_plugin.SCOPE}
    assert [h[0] for h in c.JupyterHub.extra_handlers] == [hub_plugin.ENDPOINT]
    hub_plugin.configure(c)  # twice: still one handler
    assert len(c.JupyterHub.extra_handlers) == 1


def test_the_status_url_follows_the_service_url_and_base_url():
    assert hub_plugin.status_url_of(_config("/jhub/"), "hubkeeper") == (
        "http://10.0.0.5:10101/jhub/services/hubkeeper/api/v1/lockdown/status"
    )
    assert hub_plugin.status_url_of(_config(), "hubkeeper").endswith(
        ":10101/services/hubkeeper/api/v1/lockdown/status"
    )
    with pytest.raises(ValueError, match="list the service"):
        hub_plugin.configure(Config(), service="hubkeeper")


def test_the_quota_check_is_asked_with_the_services_own_token():
    c = _config()
    assert hub_plugin.service_token_of(c, "hubkeeper") is None
    c.JupyterHub.service_tokens = {"from-tokens": "hubkeeper", "other": "x"}
    assert hub_plugin.service_token_of(c, "hubkeeper") == "from-tokens"
    c.JupyterHub.services = [
        {"name": "hubkeeper", "url": "http://10.0.0.5:10101", "api_token": "from-entry"}
    ]
    assert hub_plugin.service_token_of(c, "hubkeeper") == "from-entry"


async def test_the_lockdown_hook_runs_after_the_one_configured_before():
    seen: list[str] = []

    async def earlier(spawner: object) -> None:
        seen.append("earlier")

    c = _config()
    c.Spawner.pre_spawn_hook = earlier
    hub_plugin.configure(c, status_url="http://127.0.0.1:9/unreachable")
    await c.Spawner.pre_spawn_hook(object())  # Hubkeeper unreachable: fails open
    assert seen == ["earlier"]


def test_pages_show_the_reason_escaped_before_the_configured_announcement():
    c = _config()
    c.JupyterHub.template_vars = {"announcement": "Maintenance Friday", "other": 1}
    hub_plugin.configure(c, status_url="http://127.0.0.1:9/unreachable")
    announce = c.JupyterHub.template_vars["announcement"]
    assert c.JupyterHub.template_vars["other"] == 1
    assert "announcement_home" not in c.JupyterHub.template_vars  # home falls back to it
    status = announce.__closure__  # the LockdownStatus it reads
    lockdown = next(
        cell.cell_contents
        for cell in status
        if isinstance(cell.cell_contents, hub_plugin.LockdownStatus)
    )
    lockdown.checked_at = float("inf")  # no refresh: this test sets the answer
    assert announce(None) == "Maintenance Friday"
    lockdown.locked, lockdown.message = True, "Locked <script>x</script> & co"
    assert announce(None) == (
        '<span style="overflow-wrap: anywhere"><strong>Locked:</strong> '
        "Locked &lt;script&gt;x&lt;/script&gt; &amp; co</span><br>Maintenance Friday"
    )


async def test_configure_twice_chains_once():
    seen: list[str] = []

    async def earlier(spawner: object) -> None:
        seen.append("earlier")

    c = _config()
    c.Spawner.pre_spawn_hook = earlier
    c.JupyterHub.template_vars = {"announcement": "Friday"}
    for _ in range(2):
        hub_plugin.configure(c, status_url="http://127.0.0.1:9/unreachable")
    await c.Spawner.pre_spawn_hook(object())
    assert seen == ["earlier"]
    assert c.JupyterHub.template_vars["announcement"].hubkeeper_previous == "Friday"


def test_the_file_imports_on_older_pythons_too():
    """It runs in the hub's interpreter, which may be older than Hubkeeper's 3.11."""
    text = PLUGIN.read_text()
    assert "from datetime import UTC" not in text and "import UTC" not in text


def test_the_cli_prints_the_plugin_as_one_file(capsys, monkeypatch):
    from hubkeeper.cli import main

    # main() points the root logger at this test's captured stderr, which closes after it:
    # every later test in this worker would log "I/O operation on closed file".
    monkeypatch.setattr("hubkeeper.ops.logs.configure_logging", lambda *_args: None)
    assert main(["hub-plugin"]) == 0
    assert capsys.readouterr().out == PLUGIN.read_text()


class _Spawner:
    def __init__(self, spawn: asyncio.Future[None]) -> None:
        self._spawn_future = spawn
        self.name = ""
        self.user = type("User", (), {"name": "ann"})()
        self.hubkeeper_started = datetime(2026, 12, 5, 12, 0, 0, 123456)


async def _reports_after(spawn_outcome: BaseException | None, monkeypatch) -> list[dict]:
    from tornado.httpclient import AsyncHTTPClient

    sent: list[dict] = []

    async def fetch(self, url, **kwargs):  # noqa: ANN001, ANN202
        sent.append({"url": url, **json.loads(kwargs["body"])})

    monkeypatch.setattr(AsyncHTTPClient, "fetch", fetch)
    spawn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    hook = hub_plugin.make_post_stop_hook("http://hk/api/v1/spawns/failed", "t0ken")
    hook(_Spawner(spawn))  # the hub stops the failed spawn from inside it: not done yet
    if spawn_outcome is None:
        spawn.set_result(None)
    else:
        spawn.set_exception(spawn_outcome)
    await asyncio.sleep(0.05)
    return sent


async def test_a_failed_spawn_is_reported_with_its_started_and_message(monkeypatch):
    from tornado.web import HTTPError

    error = HTTPError(500, "no room")
    error.jupyterhub_message = "No room on the cluster"  # type: ignore[attr-defined]
    sent = await _reports_after(error, monkeypatch)
    assert sent == [
        {
            "url": "http://hk/api/v1/spawns/failed",
            "user": "ann",
            "server": "",
            "started": "2026-12-05T12:00:00.123456Z",
            "message": "No room on the cluster",
        }
    ]


async def test_plain_stops_and_the_plugins_own_refusals_are_not_reported(monkeypatch):
    assert await _reports_after(None, monkeypatch) == []
    refusal = hub_plugin._refuse("The hub is locked")
    assert await _reports_after(refusal, monkeypatch) == []
    # a stop after a finished spawn: nothing is even awaited
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    assert hub_plugin.make_post_stop_hook("http://hk/x", "t")(_Spawner(done)) is None
