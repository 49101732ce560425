"""docker-compose.yml: valid against the Compose specification's schema (tests/deploy/
compose-spec.json from github.com/compose-spec/compose-spec, Apache-2.0, see
compose-spec.LICENSE), and its hub config and Hubkeeper command + environment run here: a
LocalHub with the compose hub config's Hubkeeper section, two replicas as compose starts them
(no Docker daemon on these machines)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest

from hubkeeper.demo.localhub import LocalHub
from tests.conftest import POSTGRES_URL, _postgres_database
from tests.deploy.stack import (
    REPO,
    Replica,
    admin_user_token,
    compose,
    compose_replica,
    dotenv_for,
    section,
)
from tests.waiting import wait_for

SCHEMA = Path(__file__).with_name("compose-spec.json")
HUB_CONFIG = REPO / "deploy" / "compose" / "jupyterhub_config.py"
PLUGIN_FILE = REPO / "app" / "hub_plugin.py"  # docker-compose.yml mounts it for the hub
USER = "deploy-compose-ann"


def test_the_compose_file_follows_the_compose_specification():
    schema = json.loads(SCHEMA.read_text())
    document = compose()
    jsonschema.Draft7Validator(schema).validate(document)
    hubkeeper = document["services"]["hubkeeper"]
    assert hubkeeper["deploy"]["replicas"] == 2
    assert hubkeeper["environment"]["HUBKEEPER_DATABASE_URL"].startswith("postgresql")
    assert set(document["services"]) == {"postgres", "hub", "hubkeeper"}
    # the schema does catch mistakes (not a schema that accepts anything)
    broken = {**document, "services": {"hubkeeper": {**hubkeeper, "replicas": "two"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def localhub_with(section_text: str, tmp: Path, **env: str) -> LocalHub:
    """A LocalHub whose Hubkeeper service, roles and spawn hook come from `section_text`
    (LocalHub's own external `hubkeeper` entry is removed first; its `hub-admin` service and
    managers role, which the test helpers need, are kept)."""
    # No plugin of LocalHub's own: the section configures it (once, as in a deployment).
    hub = LocalHub(tmp, extra_config="", plugin=False, spawn_hook=False)
    # The compose stack mounts the plugin as one file beside the hub's config.
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "hubkeeper_hub_plugin.py").write_text(PLUGIN_FILE.read_text())
    hub.extra_config = "\n".join(
        [
            "import os",
            f"os.environ.update({json.dumps({'HUBKEEPER_API_TOKEN': hub.service_token, **env})})",
            "_keep_services = [s for s in c.JupyterHub.services if s['name'] != 'hubkeeper']",
            "_keep_roles = [",
            "    r for r in c.JupyterHub.load_roles if r['name'] == 'hubkeeper-managers'",
            "]",
            "c.JupyterHub.services = []",
            "c.JupyterHub.load_roles = []",
            section_text,
            "c.JupyterHub.services = [*c.JupyterHub.services, *_keep_services]",
            "c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, *_keep_roles]",
        ]
    )
    return hub


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LocalHub, list[Replica]]]:
    if not POSTGRES_URL:
        pytest.skip("the compose stack runs on PostgreSQL: needs HUBKEEPER_TEST_POSTGRES_URL")
    tmp = tmp_path_factory.mktemp("compose")
    database = _postgres_database()
    db_url = next(database)
    hub = localhub_with(section(HUB_CONFIG), tmp / "hub")
    replicas: list[Replica] = []
    try:
        replicas = [
            compose_replica(hub, db_url, tmp / "replicas", name, dotenv_for(hub))
            for name in ("compose-1", "compose-2")
        ]
        # the hub's service URL: the first replica (compose's DNS name answers with both)
        hub.extra_config = hub.extra_config.replace(
            "os.environ.update({",
            f'os.environ.update({{"HUBKEEPER_URL": "http://127.0.0.1:{replicas[0].port}", ',
            1,
        )
        # replicas first: a hub waits at start for the external services it lists
        for replica in replicas:
            replica.start()
        hub.start()
        yield hub, replicas
    finally:
        for replica in replicas:
            replica.stop()
        hub.stop()
        next(database, None)


def test_the_compose_replicas_serve_through_the_hub_and_the_spawn_hook_asks_them(stack):
    hub, (first, second) = stack
    hub.create_users([USER])
    token = admin_user_token(hub)
    # through the hub's proxy, as users reach it
    proxied = httpx.get(f"{hub.url}/services/hubkeeper/api/v1/health", timeout=30)
    assert proxied.status_code == 200 and proxied.json()["hub"]["reachable"] is True
    for replica in (first, second):
        assert replica.get("api/v1/users", token).status_code == 200
        assert replica.get("api/v1/health/ready").status_code == 200
        assert replica.get("metrics", token).status_code == 200
    # JSON logs, as the compose file asks: every line of the replica's log is an object
    lines = [line for line in first.log_path.read_text().splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines[-20:])
    locked = first.post(
        "api/v1/lockdown", token, json={"reason": "compose test", "stop_servers": False}
    )
    assert locked.status_code in (200, 201), locked.text
    try:
        refused = hub.api("POST", f"/users/{USER}/server")
        assert refused.status_code == 503 and "compose test" in refused.text
    finally:
        httpx.delete(first.url + "api/v1/lockdown", headers={"Authorization": f"token {token}"})
    wait_for(
        lambda: hub.api("POST", f"/users/{USER}/server").status_code in (201, 202), 30, "a start"
    )
    hub.stop_server(USER)
