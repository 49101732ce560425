"""The service functions the pages call directly: access links and their audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hubkeeper.auth.principal import Principal
from hubkeeper.console import service
from hubkeeper.errors import NotFound
from hubkeeper.main import create_app

WHO = Principal(name="admin", role="admin", via="web")


@pytest.fixture
def app_client(make_settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings())) as client:
        yield client


def test_access_server_gives_the_hub_url_and_is_audited(app_client, hub):
    hk = app_client.app.state.hk
    name = f"acc-{uuid.uuid4().hex[:6]}+x"
    hub.create_users([name])
    url = app_client.portal.call(service.access_server, hk, WHO, name)
    assert url == f"{hub.url}/user/{name.replace('+', '%2B')}/"
    with pytest.raises(NotFound):
        app_client.portal.call(service.access_server, hk, WHO, name, "nope")
    with pytest.raises(NotFound):
        app_client.portal.call(service.access_server, hk, WHO, "no-such-user-acc")
    events = app_client.get(
        "/api/v1/audit",
        params={"action": "server.access"},
        headers={"Authorization": f"token {hub.user_token('admin')}"},
    ).json()["items"]
    assert [(e["target"], e["outcome"]) for e in events] == [
        ("no-such-user-acc", "failed"),
        (f"{name}/nope", "failed"),
        (name, "ok"),
    ]
    assert events[2]["detail"] == url


def test_server_url_without_a_public_url_is_relative(make_settings):
    settings = make_settings(JUPYTERHUB_PUBLIC_URL="", JUPYTERHUB_BASE_URL="/jh/")
    assert service.server_url(settings, "a b", "lab/1") == "/jh/user/a%20b/lab%2F1/"
    assert service.target_of("ann") == "ann" and service.target_of("ann", "gpu") == "ann/gpu"
