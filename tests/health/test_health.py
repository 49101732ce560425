"""`GET api/v1/health` with the real hub up, and pointed at a hub that is not there."""

from __future__ import annotations

from starlette.testclient import TestClient

from hubkeeper.demo.localhub import free_port
from hubkeeper.main import create_app


def test_health_ok_with_the_real_hub(make_settings):
    with TestClient(create_app(make_settings())) as client:
        for path in ("/api/v1/health", "/services/hubkeeper/api/v1/health"):
            response = client.get(path)
            assert response.status_code == 200
            body = response.json()
            assert body["status"] == "ok"
            assert body["hub"]["reachable"] is True
            assert body["hub"]["version"].startswith("6.")
            assert body["database"] == "ok"


def test_health_degraded_when_the_hub_is_down(make_settings):
    settings = make_settings(
        JUPYTERHUB_API_URL=f"http://127.0.0.1:{free_port()}/hub/api", HUBKEEPER_HUB_TIMEOUT=2
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["hub"] == {"reachable": False, "version": None}
    assert response.json()["database"] == "ok"


def test_health_does_not_ask_the_hub_on_every_request(make_settings):
    from hubkeeper.health.routes import hub_check

    with TestClient(create_app(make_settings())) as client:
        for _ in range(20):
            assert client.get("/api/v1/health").json()["hub"]["reachable"] is True
        assert hub_check(client.app.state.hk).hub_requests == 1  # type: ignore[attr-defined]
