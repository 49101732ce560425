"""The hub configurations of docs/deploy.md, run against a real hub: the managed-service
`deploy/jupyterhub_config.py` and the z2jh `deploy/z2jh/values.yaml` (+ the Deployment in
`deploy/z2jh/hubkeeper.yaml`); and the docs include those files as they are."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hubkeeper.demo.localhub import LocalHub, free_port
from tests.deploy.stack import REPO, VENV_BIN, Replica, admin_user_token, section
from tests.deploy.test_compose import localhub_with
from tests.waiting import wait_for

MANAGED = REPO / "deploy" / "jupyterhub_config.py"
VALUES = REPO / "deploy" / "z2jh" / "values.yaml"
MANIFESTS = REPO / "deploy" / "z2jh" / "hubkeeper.yaml"
DOCS = REPO / "docs" / "deploy.md"
USER = "deploy-recipe-ann"


def lockdown_refuses_spawns(hub: LocalHub, base: str, token: str) -> None:
    """Lock through Hubkeeper, see the hub refuse a spawn with the reason, lift it."""
    auth = {"Authorization": f"token {token}"}
    locked = httpx.post(
        base + "api/v1/lockdown",
        headers=auth,
        json={"reason": "recipe test", "stop_servers": False},
        timeout=30,
    )
    assert locked.status_code in (200, 201), locked.text
    try:
        refused = hub.api("POST", f"/users/{USER}/server", token=hub.admin_token)
        assert refused.status_code == 503 and "recipe test" in refused.text
    finally:
        httpx.delete(base + "api/v1/lockdown", headers=auth, timeout=30)


@pytest.mark.own_hub
@pytest.mark.subprocess
def test_the_managed_service_recipe_runs_hubkeeper_under_a_real_hub(tmp_path):
    port = free_port()
    hub = localhub_with(
        section(MANAGED),
        tmp_path / "hub",
        HUBKEEPER_PORT=str(port),
        HUBKEEPER_DATABASE_URL=f"sqlite:///{tmp_path / 'hubkeeper.sqlite'}",
    )
    with hub:
        # the managed service's token is the hub's own: the tests act with hub-admin's
        hub.api("POST", "/users", token=hub.admin_token, json={"usernames": [USER]})
        token = admin_user_token(hub)
        base = f"{hub.url}/services/hubkeeper/"
        wait_for(lambda: _status(base + "api/v1/health/live") == 200, 60, "the managed Hubkeeper")
        health = httpx.get(base + "api/v1/health", timeout=30).json()
        assert health["hub"]["reachable"] is True and health["database"] == "ok"
        assert health["server_tokens"] == {"mode": "plugin", "warnings": []}
        one = httpx.get(
            base + f"api/v1/users/{USER}", headers={"Authorization": f"token {token}"}, timeout=30
        )
        assert one.status_code == 200 and one.json()["name"] == USER  # its token reads users
        metrics = httpx.get(base + "metrics", headers={"Authorization": f"token {token}"})
        assert metrics.status_code == 200 and "hubkeeper_leader" in metrics.text
        lockdown_refuses_spawns(hub, base, token)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


# --- zero-to-jupyterhub -------------------------------------------------------------------
def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def z2jh_config_text(values: dict[str, Any], hubkeeper_url: str) -> str:
    """What z2jh's own jupyterhub_config.py does with hub.services, hub.loadRoles and
    hub.extraConfig (a stand-in for the chart, which cannot run here): each service and role
    gets its key as `name`, camelCase keys (apiToken) become the hub's snake_case, and every
    extraConfig snippet runs after, in key order. The in-cluster name `hubkeeper:10101` is
    mapped to where the test runs Hubkeeper."""
    hub = values["hub"]
    services = [
        {"name": name, **{_snake(k): v for k, v in spec.items()}}
        for name, spec in hub["services"].items()
    ]
    roles = [{"name": name, **spec} for name, spec in hub["loadRoles"].items()]
    text = "\n".join(
        [
            f"c.JupyterHub.services = {json.dumps(services)}",
            f"c.JupyterHub.load_roles = {json.dumps(roles)}",
            *(hub["extraConfig"][k] for k in sorted(hub["extraConfig"])),
        ]
    )
    return text.replace("http://hubkeeper:10101", hubkeeper_url).replace(": true", ": True")


def z2jh_extra_files(values: dict[str, Any], root: Path) -> dict[str, str]:
    """hub.extraFiles written under `root` as the chart mounts them, the plugin filled as the
    values say (`--set-file ...stringData=` with `hubkeeper hub-plugin`'s output); returns
    {mountPath: where it is here}."""
    import subprocess

    plugin = subprocess.run(
        [str(VENV_BIN / "hubkeeper"), "hub-plugin"], capture_output=True, text=True, check=True
    ).stdout
    mounted: dict[str, str] = {}
    for name, spec in values["hub"]["extraFiles"].items():
        here = root / spec["mountPath"].lstrip("/")
        here.parent.mkdir(parents=True, exist_ok=True)
        here.write_text(plugin if name == "hubkeeper-hub-plugin" else spec["stringData"])
        mounted[str(Path(spec["mountPath"]).parent)] = str(here.parent)
    return mounted


def deployment_replica(hub: LocalHub, db_url: str, tmp: Path, port: int) -> Replica:
    """The Deployment's container (command, Secret and env) as a local process, with the
    cluster's names mapped to this machine (hub:8081, the database)."""
    docs = list(yaml.safe_load_all(MANIFESTS.read_text()))
    secret = next(d for d in docs if d["kind"] == "Secret")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {k: str(v) for k, v in secret["stringData"].items()}
    for item in container["env"]:
        env[item["name"]] = str(item.get("value", "z2jh-pod-0"))  # fieldRef: the pod name
    env["JUPYTERHUB_API_TOKEN"] = hub.service_token
    env["JUPYTERHUB_API_URL"] = hub.api_url
    env["JUPYTERHUB_SERVICE_URL"] = f"http://127.0.0.1:{port}"
    env["HUBKEEPER_DATABASE_URL"] = db_url
    env["HUBKEEPER_COOKIE_SECRET_FILE"] = str(tmp / "cookie")
    command = [str(x) for x in container["command"]]
    command[0] = str(VENV_BIN / "hubkeeper")
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    tmp.mkdir(parents=True, exist_ok=True)
    return Replica(command, env, port, tmp / "z2jh.log")


def test_the_z2jh_manifests_say_what_the_docs_promise():
    docs = list(yaml.safe_load_all(MANIFESTS.read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert kinds["Deployment"]["spec"]["replicas"] == 2
    policy = kinds["NetworkPolicy"]["spec"]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule.get("ports", [])}
    assert {8081, 8001, 8888} <= egress_ports  # hub, proxy API, user servers
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for access in ("hub", "proxy-api", "singleuser"):
        assert labels[f"hub.jupyter.org/network-access-{access}"] == "true"
    values = yaml.safe_load(VALUES.read_text())
    assert values["hub"]["services"]["hubkeeper"]["url"] == "http://hubkeeper:10101"
    assert values["proxy"]["secretToken"]


@pytest.fixture
def z2jh(tmp_path) -> Iterator[tuple[LocalHub, Replica]]:
    values = yaml.safe_load(VALUES.read_text())
    port = free_port()
    text = z2jh_config_text(values, f"http://127.0.0.1:{port}")
    for mount, here in z2jh_extra_files(values, tmp_path / "files").items():
        text = text.replace(f'"{mount}"', json.dumps(here))
    hub = localhub_with(text, tmp_path / "hub")
    # the chart's placeholder token → this hub's (LocalHub keeps one per state dir)
    hub.extra_config = hub.extra_config.replace(
        values["hub"]["services"]["hubkeeper"]["apiToken"], hub.service_token
    )
    db = f"sqlite:///{tmp_path / 'hk.sqlite'}"
    replica = deployment_replica(hub, db, tmp_path / "replica", port)
    replica.start()  # before the hub: it waits at start for the services it lists
    try:
        with hub:
            yield hub, replica
    finally:
        replica.stop()


def test_the_z2jh_values_register_hubkeeper_and_its_spawn_hook_with_a_real_hub(z2jh):
    hub, replica = z2jh
    hub.create_users([USER])
    token = admin_user_token(hub)
    base = f"{hub.url}/services/hubkeeper/"
    health = httpx.get(base + "api/v1/health", timeout=30)
    assert health.status_code == 200 and health.json()["hub"]["reachable"] is True
    assert health.json()["server_tokens"] == {"mode": "plugin", "warnings": []}
    assert replica.get("api/v1/users", token).status_code == 200
    lockdown_refuses_spawns(hub, base, token)


def test_the_docs_include_the_recipe_files_as_they_are():
    """docs/deploy.md shows each file between `<!-- file: PATH -->` and the next code
    fence; what it shows must be the file (no copies that rot)."""
    text = DOCS.read_text()
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    shown = {path for path, _ in blocks}
    assert {
        "deploy/jupyterhub_config.py",
        "docker-compose.yml",
        "deploy/compose/jupyterhub_config.py",
        "deploy/z2jh/values.yaml",
        "deploy/z2jh/hubkeeper.yaml",
    } <= shown
    for path, body in blocks:
        assert body == (REPO / path).read_text(), f"docs/deploy.md shows an old {path}"


def _role_scopes_in_python_config(path: Path) -> list[str]:
    text = path.read_text()
    block = re.search(r'"name": "hubkeeper-service",\s*"scopes": \[(.*?)\]', text, re.S)
    assert block, f"{path}: the hubkeeper-service role"
    return re.findall(r'^\s*"([^"]+)",', block.group(1), re.M)


def test_every_recipe_gives_hubkeeper_exactly_the_least_privilege_role():
    """One role everywhere: demo, tests, README (tests/auth/test_least_privilege.py) and the
    recipes, so none of them drifts to the broad scopes or forgets the plugin's scope."""
    from hubkeeper.demo.localhub import SERVICE_SCOPES

    for path in (
        REPO / "deploy" / "jupyterhub_config.py",
        REPO / "deploy/compose/jupyterhub_config.py",
    ):
        assert _role_scopes_in_python_config(path) == SERVICE_SCOPES, path
    values = yaml.safe_load(VALUES.read_text())
    assert values["hub"]["loadRoles"]["hubkeeper-service"]["scopes"] == SERVICE_SCOPES
