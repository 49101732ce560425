"""Hubkeeper replicas started the way docker-compose.yml starts them, on this machine.

`compose_replica(...)` takes the `hubkeeper` service's command and environment from the
repository's docker-compose.yml, fills `${VAR}` from the given .env values, and maps only the
container network's names to this machine (hub:8081 → the LocalHub, postgres → the test
database, 0.0.0.0:10101 → 127.0.0.1:<free port>). Everything else is passed as written.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from hubkeeper.demo.localhub import LocalHub, free_port
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
VENV_BIN = Path(sys.executable).parent
PREFIX = "/services/hubkeeper/"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?[?-][^}]*)?\}")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate(value: str, dotenv: Mapping[str, str]) -> str:
    """`${VAR}`, `${VAR:?message}`, `${VAR:-default}` as Compose reads them (VAR must be set)."""
    return _VAR.sub(lambda m: dotenv[m.group(1)], value)


def section(path: Path) -> str:
    """The text between the `# --- Hubkeeper (begin)` and `# --- Hubkeeper (end)` markers."""
    text = path.read_text()
    begin = text.index("# --- Hubkeeper (begin)")
    end = text.index("# --- Hubkeeper (end)")
    return text[begin:end]


class Replica:
    """One `hubkeeper serve` process; its log in `log_path`."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, log_path: Path):
        self.command = command
        self.env = env
        self.port = port
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}{PREFIX}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> Replica:
        clean = {
            k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "HUBKEEPER_"))
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                env={**clean, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.log_path.parent,
            )
        proc = self.proc

        def live() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"hubkeeper exited {proc.returncode}:\n{self.log()}")
            try:
                return httpx.get(self.url + "api/v1/health/live", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(live, timeout, f"hubkeeper on {self.port}", interval=0.2)
        except AssertionError as timed_out:
            if proc.poll() is not None:
                raise
            raise AssertionError(f"{timed_out}:\n{self.log()}") from None
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.get(self.url + path, headers=headers, timeout=30, **kw)

    def post(self, path: str, token: str, **kw: Any) -> httpx.Response:
        return httpx.post(
            self.url + path, headers={"Authorization": f"token {token}"}, timeout=60, **kw
        )

    def leads(self, token: str, loop: str = "session-recorder") -> bool:
        response = self.get("metrics", token)
        return response.status_code == 200 and f'hubkeeper_leader{{loop="{loop}"}} 1.0' in (
            response.text
        )

    def kill(self) -> None:
        """SIGKILL: the replica dies without releasing anything (a lost node)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def compose_replica(
    hub: LocalHub,
    db_url: str,
    state_dir: Path,
    name: str,
    dotenv: Mapping[str, str],
    **extra_env: str,
) -> Replica:
    """The compose file's `hubkeeper` service as a local process (not started)."""
    service = compose()["services"]["hubkeeper"]
    port = free_port()
    env: dict[str, str] = {}
    for key, raw in service["environment"].items():
        value = interpolate(str(raw), dotenv)
        value = value.replace("http://hub:8081/hub/api", hub.api_url)
        value = value.replace("http://0.0.0.0:10101", f"http://127.0.0.1:{port}")
        value = value.replace("http://localhost:8000", hub.url)
        if "@postgres:5432/" in value:
            value = db_url  # the test's own PostgreSQL database
        env[key] = value
    env["HUBKEEPER_REPLICA_ID"] = name
    env["HUBKEEPER_COOKIE_SECRET_FILE"] = str(state_dir / f"{name}.cookie")
    env.update(extra_env)
    command = [str(x) for x in service["command"]]
    assert command[:2] == ["hubkeeper", "serve"], command
    command[0] = str(VENV_BIN / "hubkeeper")
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    state_dir.mkdir(parents=True, exist_ok=True)
    return Replica(command, env, port, state_dir / f"{name}.log")


def dotenv_for(hub: LocalHub) -> dict[str, str]:
    """The .env the compose file asks for, with this hub's service token."""
    return {
        "POSTGRES_PASSWORD": "unused-here",
        "HUBKEEPER_API_TOKEN": hub.service_token,
        "HUBKEEPER_COOKIE_SECRET": "c" * 64,
        "CONFIGPROXY_AUTH_TOKEN": "unused-here",
    }


def admin_user_token(hub: LocalHub) -> str:
    """A token of the hub's `admin` user, made with LocalHub's hub-admin service (the recipes'
    Hubkeeper role has no `tokens` scope: production does not need it)."""
    response = hub.api(
        "POST", "/users/admin/tokens", token=hub.admin_token, json={"note": "deploy tests"}
    )
    response.raise_for_status()
    return str(response.json()["token"])
