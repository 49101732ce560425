"""What the server says decides with the hub: a busy kernel keeps its server (`keep_busy`),
and under `idle_source: kernels` an open tab's polling is not use. Real kernels, driven over
the kernel websocket, on a hub that copies the proxy's activity every second."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup
from websockets.sync.client import connect

from hubkeeper.kit.actors import SystemActor
from hubkeeper.kit.clock import iso_utc, utcnow
from tests.culler.helpers import call, cfg, later, names, server_up
from tests.waiting import wait_for


@pytest.fixture
def client(activity_client):
    return activity_client


def execute(base: str, kernel_id: str, auth: dict[str, str], code: str) -> None:
    """Send `code` to the kernel over its websocket (Jupyter protocol 5, JSON frames), wait
    until the kernel says it is busy, then close the socket (the tab is gone)."""
    url = base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
    with connect(url, additional_headers=auth, open_timeout=30) as ws:
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "session": session,
                        "username": "test",
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": utcnow().isoformat(),
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                }
            )
        )
        while True:
            msg = json.loads(ws.recv(timeout=60))
            if (
                msg.get("msg_type") == "status"
                and msg.get("parent_header", {}).get("msg_id") == msg_id
                and msg.get("content", {}).get("execution_state") == "busy"
            ):
                return


def new_kernel(base: str, auth: dict[str, str]) -> str:
    made = httpx.post(f"{base}/api/kernels", json={"name": "python3"}, headers=auth, timeout=60)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def kernel_state(client: Any, user: str, kernel_id: str) -> dict[str, Any]:
    hk = client.app.state.hk
    found = {k["id"]: k for k in call(client, hk.servers.list_kernels, user, "")}
    return found.get(kernel_id, {})


def test_a_busy_disconnected_kernel_keeps_its_server_until_keep_busy_is_off(client, activity_hub):
    hub, hk = activity_hub, client.app.state.hk
    (user,) = names("signals", "busy")
    hub.create_users([user])
    hub.start_server(user)
    try:
        base = call(client, hk.servers._base, user, "")
        auth = {"Authorization": f"token {hub.user_token(user)}"}
        kernel = new_kernel(base, auth)
        execute(base, kernel, auth, "import time; time.sleep(600)")
        wait_for(
            lambda: kernel_state(client, user, kernel).get("connections") == 0,
            timeout=30,
            what="the websocket to close",
        )
        assert kernel_state(client, user, kernel)["execution_state"] == "busy"

        busy = cfg(timeout_s=60, keep_busy=True)
        call(client, hk.culler.update_settings, hk_admin(), busy.model_dump())
        admin = {"Authorization": f"token {hub.user_token('admin')}"}
        preview = client.get(
            "api/v1/culler/preview",
            params={"within": 120, "include_kept": 1},
            headers=admin,
        )
        assert preview.status_code == 200, preview.text
        mine = [i for i in preview.json() if i["user"] == user]
        assert len(mine) == 1 and mine[0]["kept"] and kernel in mine[0]["kept"]
        plain = client.get("api/v1/culler/preview", params={"within": 120}, headers=admin)
        assert [i for i in plain.json() if i["user"] == user] == []

        asked = client.get(f"api/v1/users/{user}/idleness", headers=admin)
        assert asked.status_code == 200, asked.text
        sources = {(s["source"], s["id"]) for s in asked.json()["signals"]}
        assert {("hub", None), ("proxy", None), ("kernel", kernel)} <= sources
        (seen,) = [s for s in asked.json()["signals"] if s["source"] == "kernel"]
        assert seen["state"] == "busy" and seen["last_activity"]

        page = client.get("culler/idleness", params={"user": user}, headers=admin)
        assert page.status_code == 200, page.text
        soup = BeautifulSoup(page.text, "html.parser")
        assert "keep" in soup.select_one("#idleness-decision").get_text()
        rows = [r.get_text(" ", strip=True) for r in soup.select("#signals-table tbody tr")]
        assert any(kernel in r and "busy" in r for r in rows)
        culler_page = client.get("culler", params={"within": 120}, headers=admin)
        assert culler_page.status_code == 200
        links = BeautifulSoup(culler_page.text, "html.parser").select("#preview-table a")
        assert any("culler/idleness" in (a.get("href") or "") and user in a["href"] for a in links)

        user_page = client.get(f"users/{user}", headers=admin)
        assert user_page.status_code == 200, user_page.text
        (why,) = BeautifulSoup(user_page.text, "html.parser").select("[data-idleness-link]")
        assert f"user={user}" in why["href"]

        at = later(120)
        idle = call(client, hk.culler.idleness, user, "", now=at)
        assert idle["decision"] == "keep" and kernel in idle["reason"]
        result = call(client, hk.culler.servers_pass, busy, now=at, users={user})
        assert result.culled == [] and server_up(hub, user)
        assert [k["server"] for k in result.kept if k["user"] == user] == [""]

        careless = cfg(timeout_s=60, keep_busy=False)
        call(client, hk.culler.update_settings, hk_admin(), careless.model_dump())
        idle = call(client, hk.culler.idleness, user, "", now=at)
        assert (idle["decision"], idle["reason"], idle["cull_at"]) == ("cull", "idle", at_iso(at))
        result = call(client, hk.culler.servers_pass, careless, now=at, users={user})
        assert [(c.user, c.reason) for c in result.culled] == [(user, "idle")]
        assert not server_up(hub, user)
    finally:
        hub.stop_server(user)


def at_iso(when: datetime) -> str:
    return iso_utc(when)


def hk_admin() -> Any:
    return SystemActor(name="test")


def test_polling_tab_keeps_the_server_under_hub_but_not_under_kernels(client, activity_hub):
    hub, hk = activity_hub, client.app.state.hk
    (user,) = names("signals", "tab")
    hub.create_users([user])
    hub.start_server(user)
    try:
        base = call(client, hk.servers._base, user, "")
        auth = {"Authorization": f"token {hub.user_token(user)}"}
        kernel = new_kernel(base, auth)
        execute(base, kernel, auth, "1 + 1")  # it ran something once, then the tab went away
        wait_for(
            lambda: kernel_state(client, user, kernel).get("execution_state") == "idle",
            timeout=60,
            what="the kernel to finish",
        )
        kernel_last = kernel_state(client, user, kernel)["last_activity"]
        # The "tab": polls api/contents through the proxy, as JupyterLab's file browser does.
        polled = hub.origin + (hub.server_model(user) or {})["url"] + "api/contents"

        def hub_saw_polling() -> bool:
            response = httpx.get(polled, headers=auth, timeout=10)
            assert response.status_code == 200, response.text
            seen = (hub.server_model(user) or {}).get("last_activity") or ""
            return seen > kernel_last and (
                _parse(seen) - _parse(kernel_last) > timedelta(seconds=5)
            )

        wait_for(hub_saw_polling, timeout=60, what="the hub to count the tab's polling")
        hub_last = _parse((hub.server_model(user) or {})["last_activity"])
        now = hub_last + timedelta(seconds=1)  # 1 s after the tab's last poll; kernel idle ≥ 5 s

        by_hub = cfg(timeout_s=3, idle_source="hub")
        call(client, hk.culler.update_settings, hk_admin(), by_hub.model_dump())
        assert call(client, hk.culler.idleness, user, "", now=now)["decision"] == "keep"
        result = call(client, hk.culler.servers_pass, by_hub, now=now, users={user}, dry_run=True)
        assert result.planned == []

        by_kernels = cfg(timeout_s=3, idle_source="kernels")
        call(client, hk.culler.update_settings, hk_admin(), by_kernels.model_dump())
        idle = call(client, hk.culler.idleness, user, "", now=now)
        assert (idle["decision"], idle["reason"]) == ("cull", "idle")
        result = call(client, hk.culler.servers_pass, by_kernels, now=now, users={user})
        assert [(c.user, c.reason) for c in result.culled] == [(user, "idle")]
        assert not server_up(hub, user)
    finally:
        hub.stop_server(user)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
