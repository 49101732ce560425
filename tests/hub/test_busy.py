"""A hub that refuses a spawn for load answers 429 with Retry-After
(jupyterhub/handlers/base.py, `spawn_single_user`); Hubkeeper answers 429 `hub_busy` and
passes the Retry-After on. The hub's answer is a stand-in here (httpx.MockTransport): making a
real hub hit its concurrent_spawn_limit takes slow spawns; the rendering is Hubkeeper's own."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from hubkeeper.errors import HubBusy
from hubkeeper.hub.client import HubClient
from hubkeeper.main import create_app


def busy_hub(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        429,
        json={"status": 429, "message": "Too many users trying to log in right now."},
        headers={"Retry-After": "37"},
    )


async def test_a_busy_hub_is_hub_busy_with_its_retry_after():
    hub = HubClient("http://hub.test/hub/api", "x", transport=httpx.MockTransport(busy_hub))
    try:
        with pytest.raises(HubBusy) as raised:
            await hub.start_server("ann")
    finally:
        await hub.aclose()
    assert raised.value.status_code == 429 and raised.value.code == "hub_busy"
    assert raised.value.headers == {"Retry-After": "37"}
    assert "Too many users" in raised.value.detail


def test_the_answer_is_429_hub_busy_with_retry_after(make_settings):
    app = create_app(make_settings(), run_migrations=False)

    async def refused() -> None:
        raise HubBusy("start 'ann''s server: the hub is busy", headers={"Retry-After": "37"})

    app.add_api_route("/api/v1/test-busy", refused)
    with TestClient(app) as client:
        response = client.get("/api/v1/test-busy", headers={"Accept": "application/json"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "37"
    assert response.json()["error"] == "hub_busy"
