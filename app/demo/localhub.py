"""A real JupyterHub on 127.0.0.1, with Hubkeeper registered as a service.

Used by `hubkeeper demo` (Hubkeeper runs as a *managed* service the hub starts) and by the test
suite (Hubkeeper is an *external* service the tests run themselves on `service_port`).

Laid out like a real deployment, three ports: the proxy's public one (`port`, `url`), the
hub's own (`hub_port`, where JUPYTERHUB_API_URL points, as the hub hands it to a managed
service; `/user/...` is NOT served there) and the proxy's REST API (`proxy_api_port`). An
optional `base_url` (e.g. "/jhub/") puts everything under a prefix, as `c.JupyterHub.base_url`.

Everything the hub writes lives in `state_dir`: its config, sqlite database, cookie secret, pid
files, log and the users' home directories. Everything listens on free local ports.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from hubkeeper.hub_plugin import SCOPE as PLUGIN_SCOPE

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
SERVICE_NAME = "hubkeeper"
SERVICE_PREFIX = f"/services/{SERVICE_NAME}/"
ADMIN_SERVICE_NAME = "hub-admin"
MANAGERS_GROUP = "managers"

# What Hubkeeper asks of the hub: exactly the scopes its features use, one role for the demo,
# the tests and the README ("Registering Hubkeeper with a hub"). Each is proven needed by
# tests/auth/test_least_privilege.py (the feature that fails without it is named there).
# Not here: `delete:users` is the opt-in extra for the culler's `cull_users` (deleting users);
# `admin:users`, `admin:groups`, `read:metrics`, `read:hub` are used by no feature, nor
# `access:servers`: users' servers are reached with one-server tokens from the hub plugin
# (hub_plugin.py, hub/server_tokens.py), never with Hubkeeper's own token.
SERVICE_SCOPES = [
    "list:users",  # the console's user list and the sync loops (GET /users)
    "read:users",  # admin flag, groups and last_activity in the user models
    "read:servers",  # the servers in the user models: status, started, last_activity, url
    "start:servers",  # start a user's server (console, API)
    "delete:servers",  # stop servers: console, stop-all, lockdown, culler
    "list:groups",  # groups for usage by group (`hubkeeper report --by group`)
    "read:groups",  # the members of those groups
    PLUGIN_SCOPE,  # one-server tokens from the hub plugin (logs, kernels, status)
]
# A hub without the plugin: `tokens` in its place still works, but it lets Hubkeeper mint any
# user's token with all their scopes (hub admin in disguise); health warns.
FALLBACK_SCOPES = [scope if scope != PLUGIN_SCOPE else "tokens" for scope in SERVICE_SCOPES]
USER_SCOPE = f"access:services!service={SERVICE_NAME}"
MANAGER_SCOPES = [USER_SCOPE]

# Processes the hub leaves behind if it dies badly; only these are hunted down in `stop()`.
OWN_PROCESS_MARKERS = (
    "jupyterhub",
    "configurable-http-proxy",
    "jupyterhub-singleuser",
    "hubkeeper.cli",
    "ipykernel",
)

LOG_FILE_NAME = ".jupyter-server-log.txt"
# Users whose name starts with this get servers without ContentsManager.allow_hidden.
NO_HIDDEN_PREFIX = "nohidden-"
# Users named so get a spawn that always fails, with FAIL_SPAWN_MESSAGE (spawn.failed tests).
FAIL_SPAWN_PREFIX = "failspawn-"
FAIL_SPAWN_MESSAGE = "This test hub refuses failspawn-* servers"
# Users whose name starts with this get servers without jupyter-resource-usage (a 404 at
# api/metrics/v1, as in an image without it).
NO_METRICS_PREFIX = "nometrics-"


class LocalHubError(RuntimeError):
    """The hub did not come up; the message ends with the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the hub and its proxy bind (both set SO_REUSEADDR): connections of a stopped
        # listener left in TIME_WAIT do not keep the port from being served again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def proxy_command() -> str:
    """configurable-http-proxy from the repo's node_modules (after `npm ci`), else PATH."""
    local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    raise LocalHubError(
        f"configurable-http-proxy is not installed: run `npm ci` (or `make install`) in {REPO_ROOT}"
    )


class LocalHub:
    """One JupyterHub subprocess and everything it starts. Use as a context manager."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        port: int = 0,
        service_port: int = 0,
        managed: bool = False,
        service_env: Mapping[str, str] | None = None,
        admin_users: Iterable[str] = ("admin",),
        extra_config: str = "",
        start_timeout: float = 30.0,
        base_url: str = "/",
        spawn_hook: bool = True,
        plugin: bool = True,
        test_server_tokens: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port = port or free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.service_port = service_port or free_port()
        self.base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        self.managed = managed
        self.service_env = dict(service_env or {})
        self.admin_users = list(admin_users)
        self.extra_config = extra_config
        # False: no lockdown pre-spawn hook, like a hub whose admin never configured it.
        self.spawn_hook = spawn_hook
        # True: the hub runs hubkeeper.hub_plugin and Hubkeeper's role is SERVICE_SCOPES;
        # False: a hub without it, the role is FALLBACK_SCOPES (`tokens`).
        self.plugin = plugin
        # True (tests only): the named admins may mint server tokens, so a test can act as
        # Hubkeeper with an admin's token limited to Hubkeeper's role. Never in the demo.
        self.test_server_tokens = test_server_tokens and plugin
        self.start_timeout = start_timeout
        self.origin = f"http://127.0.0.1:{self.port}"  # the proxy's public address
        self.url = self.origin + self.base_url.rstrip("/")  # + "/hub/..." = the hub's pages
        # What the hub hands a service: the hub's own port (hub_connect_url), not the proxy.
        self.api_url = f"http://127.0.0.1:{self.hub_port}{self.base_url}hub/api"
        self.proxy_api_url = f"http://127.0.0.1:{self.proxy_api_port}"
        self.service_prefix = f"{self.base_url}services/{SERVICE_NAME}/"
        self.service_url = f"http://127.0.0.1:{self.service_port}"
        self.log_path = self.state_dir / "jupyterhub.log"
        self.config_path = self.state_dir / "jupyterhub_config.py"
        self.homes_dir = self.state_dir / "homes"
        self.service_token = self._persistent_secret("service_token")
        # A separate hub-admin token (a URL-less service with the admin role): only admins may
        # create admin users. Hubkeeper itself never gets it.
        self.admin_token = self._persistent_secret("admin_token")
        self.proxy_token = self._persistent_secret("proxy_token")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None

    # --- configuration -------------------------------------------------------------------
    def _persistent_secret(self, name: str) -> str:
        """Kept in the state dir so a restarted hub (the demo) keeps its tokens."""
        path = self.state_dir / name
        if path.exists():
            return path.read_text().strip()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32)
        path.touch(mode=0o600)
        path.write_text(value)
        return value

    def proxy_env(self) -> dict[str, str]:
        """The proxy API settings Hubkeeper needs to reach users' servers directly."""
        return {
            "HUBKEEPER_PROXY_API_URL": self.proxy_api_url,
            "HUBKEEPER_PROXY_AUTH_TOKEN": self.proxy_token,
        }

    def hubkeeper_env(self) -> dict[str, str]:
        """The environment an external Hubkeeper needs: the JUPYTERHUB_* a managed one gets
        (API URL on the hub's own port, jupyterhub/services/service.py) plus the proxy API."""
        return {
            "JUPYTERHUB_API_URL": self.api_url,
            "JUPYTERHUB_API_TOKEN": self.service_token,
            "JUPYTERHUB_CLIENT_ID": f"service-{SERVICE_NAME}",
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{self.service_prefix}oauth_callback",
            "JUPYTERHUB_SERVICE_PREFIX": self.service_prefix,
            "JUPYTERHUB_SERVICE_URL": self.service_url,
            "JUPYTERHUB_BASE_URL": self.base_url,
            "JUPYTERHUB_PUBLIC_URL": self.origin,
            **self.proxy_env(),
        }

    def _service_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": SERVICE_NAME,
            "url": self.service_url,
            "api_token": self.service_token,
            "oauth_no_confirm": True,
        }
        # No oauth_redirect_uri: the hub registers `<prefix>oauth_callback` (relative) for
        # both kinds, the same value JUPYTERHUB_OAUTH_CALLBACK_URL carries.
        if self.managed:
            spec["command"] = [sys.executable, "-m", "hubkeeper.cli", "serve"]
            spec["cwd"] = str(self.state_dir)
            spec["environment"] = {
                "JUPYTERHUB_PUBLIC_URL": self.origin,
                "PYTHONUNBUFFERED": "1",
                **self.proxy_env(),
                **self.service_env,
            }
        else:
            # The hub waits this long for an external service at start-up (default 30 s);
            # the tests start Hubkeeper only after the hub, so do not wait for it.
            spec["timeout"] = 1
        return spec

    def config_text(self) -> str:
        singleuser = VENV_BIN / "jupyterhub-singleuser"
        # Like repo2docker: the server's output goes to ~/.jupyter-server-log.txt.
        cmd = [
            "/bin/sh",
            "-c",
            f'exec {singleuser} "$@" >> "$HOME/{LOG_FILE_NAME}" 2>&1',
            "sh",
        ]
        args = [
            "--ContentsManager.allow_hidden=True",
            # jupyter-resource-usage (installed in this venv): CPU too, which it leaves off by
            # default; no Prometheus loop sampling psutil every second in every server (its
            # api/metrics/v1, which Hubkeeper reads, measures on request)
            "--ResourceUseDisplay.track_cpu_percent=True",
            "--ResourceUseDisplay.enable_prometheus_metrics=False",
        ]
        if os.geteuid() == 0:
            args.insert(0, "--allow-root")
        roles = [
            {
                "name": "hubkeeper-service",
                "description": "What Hubkeeper needs to run the hub's operations",
                "scopes": SERVICE_SCOPES if self.plugin else FALLBACK_SCOPES,
                "services": [SERVICE_NAME],
            },
            {
                "name": "hubkeeper-managers",
                "description": "Managers may sign in to Hubkeeper",
                "scopes": MANAGER_SCOPES,
                "groups": [MANAGERS_GROUP],
            },
        ]
        if self.test_server_tokens:
            # tests/auth/test_least_privilege.py acts as Hubkeeper with an admin's token
            # limited to Hubkeeper's role, which needs the plugin's scope.
            roles.append(
                {
                    "name": "hubkeeper-test-server-tokens",
                    "description": "Tests mint tokens acting as Hubkeeper's role",
                    "scopes": [PLUGIN_SCOPE],
                    "users": sorted(self.admin_users),
                }
            )
        d = self.state_dir
        values = {
            "bind_url": f"http://127.0.0.1:{self.port}{self.base_url}",
            "hub_port": self.hub_port,
            "proxy_api_url": self.proxy_api_url,
            "db_url": f"sqlite:///{d / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(d / "jupyterhub_cookie_secret"),
            "pid_file": str(d / "jupyterhub.pid"),
            "proxy_pid_file": str(d / "proxy.pid"),
            "proxy_command": [proxy_command()],
            "home_dir_template": str(self.homes_dir / "{username}"),
            "spawner_cmd": cmd,
            "spawner_args": args,
            "lockdown_status_url": (
                f"{self.service_url}{self.service_prefix}api/v1/lockdown/status"
            ),
            "services": [
                self._service_spec(),
                {"name": ADMIN_SERVICE_NAME, "api_token": self.admin_token, "admin": True},
            ],
            "roles": roles,
            "admin_users": sorted(self.admin_users),
        }
        lines = [
            "# Written by app/demo/localhub.py on every start; edits are overwritten.",
            "import json",
            f"v = json.loads({json.dumps(json.dumps(values))})",
            "c = get_config()  # noqa",
            'c.JupyterHub.bind_url = v["bind_url"]',
            'c.JupyterHub.hub_ip = "127.0.0.1"',
            'c.JupyterHub.hub_port = v["hub_port"]',
            'c.ConfigurableHTTPProxy.api_url = v["proxy_api_url"]',
            'c.ConfigurableHTTPProxy.command = v["proxy_command"]',
            'c.ConfigurableHTTPProxy.pid_file = v["proxy_pid_file"]',
            "c.ConfigurableHTTPProxy.should_start = True",
            'c.JupyterHub.db_url = v["db_url"]',
            'c.JupyterHub.cookie_secret_file = v["cookie_secret_file"]',
            'c.JupyterHub.pid_file = v["pid_file"]',
            "c.JupyterHub.cleanup_servers = True",
            "c.JupyterHub.cleanup_proxy = True",
            "c.JupyterHub.allow_named_servers = True",
            "c.JupyterHub.named_server_limit_per_user = 0",
            'c.JupyterHub.authenticator_class = "dummy"',
            "c.Authenticator.allow_all = True",
            'c.Authenticator.admin_users = set(v["admin_users"])',
            'c.JupyterHub.spawner_class = "simple"',
            'c.SimpleLocalProcessSpawner.home_dir_template = v["home_dir_template"]',
            'c.Spawner.ip = "127.0.0.1"',
            'c.Spawner.cmd = v["spawner_cmd"]',
            'c.Spawner.args = v["spawner_args"]',
            "async def _pre_spawn(spawner):",
            f"    # Users named {NO_HIDDEN_PREFIX}* get a server that refuses hidden files,",
            "    # like a stock jupyter_server, to test how that refusal is reported.",
            f"    if spawner.user.name.startswith({NO_HIDDEN_PREFIX!r}):",
            '        spawner.args = [a for a in spawner.args if "allow_hidden" not in a]',
            f"    # Users named {FAIL_SPAWN_PREFIX}* get a spawn that fails (spawn.failed tests).",
            f"    if spawner.user.name.startswith({FAIL_SPAWN_PREFIX!r}):",
            "        from tornado.web import HTTPError",
            f"        error = HTTPError(500, {FAIL_SPAWN_MESSAGE!r})",
            f"        error.jupyterhub_message = {FAIL_SPAWN_MESSAGE!r}",
            "        raise error",
            f"    # Users named {NO_METRICS_PREFIX}* get a server without jupyter-resource-usage.",
            f"    if spawner.user.name.startswith({NO_METRICS_PREFIX!r}):",
            "        off = '--ServerApp.jpserver_extensions=jupyter_resource_usage=False'",
            "        spawner.args = [a for a in spawner.args if a != off] + [off]",
            "c.Spawner.pre_spawn_hook = _pre_spawn",
            'c.Spawner.default_url = "/lab"',
            "c.Spawner.start_timeout = 60",
            "# Said to the server as MEM_LIMIT (not enforced by a local process spawner):",
            "# jupyter-resource-usage reports it as the memory limit",
            'c.Spawner.mem_limit = "2G"',
            "c.Spawner.http_timeout = 60",
            'c.JupyterHub.services = v["services"]',
            'c.JupyterHub.load_roles = v["roles"]',
            *self._hubkeeper_config_lines(),
            "# Everyone may reach Hubkeeper's sign-in, so a person without a Hubkeeper role sees",
            "# Hubkeeper's own clear 403 page instead of the hub's bare refusal (6.0+ option;",
            "# it adds to the default `user` role instead of redefining it).",
            f"c.JupyterHub.extra_user_scopes = {{{USER_SCOPE!r}}}",
            "",
            "# --- extra config ---",
            self.extra_config,
            "",
        ]
        return "\n".join(lines)

    def _hubkeeper_config_lines(self) -> list[str]:
        """The hub plugin (server tokens, the lockdown hook chained after `_pre_spawn`, the
        lockdown on the hub's pages), or without it only the old lockdown hook."""
        if self.plugin:
            return [
                "# Hubkeeper's side of the hub (README: registering Hubkeeper).",
                "from hubkeeper.hub_plugin import configure",
                f"configure(c, service={SERVICE_NAME!r}, lockdown={self.spawn_hook!r})",
            ]
        if not self.spawn_hook:
            return ["# No hub plugin and no lockdown spawn hook."]
        return [
            "# No hub plugin: only the lockdown hook, chained after _pre_spawn.",
            "from hubkeeper.lockdown.hook import make_pre_spawn_hook",
            '_lockdown_hook = make_pre_spawn_hook(v["lockdown_status_url"])',
            "async def _both(spawner):",
            "    await _pre_spawn(spawner)",
            "    await _lockdown_hook(spawner)",
            "c.Spawner.pre_spawn_hook = _both",
        ]

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> LocalHub:
        if self.running:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.homes_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("jupyterhub.pid", "proxy.pid"):
            (self.state_dir / stale).unlink(missing_ok=True)
        if not port_is_free(self.port):
            raise LocalHubError(f"port {self.port} is taken")
        self.config_path.write_text(self.config_text())
        env = dict(os.environ)
        env["CONFIGPROXY_AUTH_TOKEN"] = self.proxy_token
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        # Hubkeeper's own settings must not leak from our environment into the hub's children.
        for key in list(env):
            if key.startswith(("JUPYTERHUB_", "HUBKEEPER_")):
                env.pop(key)
        self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        started = time.monotonic()
        self._proc = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(self.config_path)],
            cwd=self.state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        log.info("JupyterHub up at %s in %.1f s", self.url, time.monotonic() - started)
        return self

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise LocalHubError(
                    f"jupyterhub exited with {self._proc.returncode}\n{self.log_tail()}"
                )
            try:
                # Both the hub's own port and the proxy in front of it.
                direct = httpx.get(self.api_url + "/", timeout=2.0)
                proxied = httpx.get(self.url + "/hub/api/", timeout=2.0)
                if direct.status_code == 200 and proxied.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise LocalHubError(
                    f"jupyterhub did not answer at {self.api_url} within "
                    f"{self.start_timeout:.0f} s\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no hub log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the hub (it stops user servers, the proxy and a managed service), then make
        sure nothing it started is left running."""
        proc = self._proc
        if proc is not None:
            leftovers = self._descendants(proc.pid)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("jupyterhub did not stop in %.0f s; killing it", timeout)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            leftovers |= self._own_processes()
            self._kill_all(leftovers)
            self._proc = None
        else:
            self._kill_all(self._own_processes())
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def restart(self, timeout: float = 30.0) -> LocalHub:
        """Stop the hub process alone (SIGTERM; it stops the proxy it started, and, with
        `c.JupyterHub.cleanup_servers = False` in `extra_config`, leaves users' servers
        running) and start it again: a new proxy, routes added back for running servers."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        self._proc = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        deadline = time.monotonic() + timeout
        while not (port_is_free(self.port) and port_is_free(self.proxy_api_port)):
            if time.monotonic() > deadline:
                raise LocalHubError("the hub's ports stayed taken after it stopped")
            time.sleep(0.1)
        return self.start()

    def kill(self) -> None:
        """Kill the hub and its proxy at once, as a crash would (tests of an absent hub)."""
        if self._proc is not None and self._proc.poll() is None:
            with_children = self._descendants(self._proc.pid)
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
            self._kill_all(with_children)
        self.stop()

    # --- process bookkeeping ---------------------------------------------------------------
    @staticmethod
    def _children_map() -> dict[int, list[int]]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read().decode(errors="replace")
            except OSError:
                continue
            # the command name may contain spaces and parentheses: split after the last ')'
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 2:
                children.setdefault(int(fields[1]), []).append(int(entry))
        return children

    def _descendants(self, pid: int) -> set[int]:
        children = self._children_map()
        found: set[int] = set()
        todo = [pid]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def _own_processes(self) -> set[int]:
        """Processes working inside the state dir that belong to a hub (orphans included)."""
        own: set[int] = set()
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            inside = cwd == str(self.state_dir) or cwd.startswith(str(self.state_dir) + os.sep)
            if inside and any(marker in cmdline for marker in OWN_PROCESS_MARKERS):
                own.add(int(entry))
        return own

    @staticmethod
    def _kill_all(pids: set[int], grace: float = 5.0) -> None:
        alive = set()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
                alive.add(pid)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            for pid in list(alive):
                if not _pid_alive(pid):
                    alive.discard(pid)
            time.sleep(0.05)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # --- API helpers (the service token has admin scopes) --------------------------------
    def api(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A call to the hub's REST API, with the service token unless told otherwise."""
        auth = f"token {token or self.service_token}"
        headers = {"Authorization": auth, **kwargs.pop("headers", {})}
        return httpx.request(
            method,
            self.api_url + path,
            headers=headers,
            timeout=kwargs.pop("timeout", 30.0),
            **kwargs,
        )

    def create_users(self, names: Iterable[str], *, admin: bool = False) -> None:
        """Create users that do not exist yet, in batches of at most 100."""
        names = list(names)
        for start in range(0, len(names), 100):
            batch = names[start : start + 100]
            # The hub-admin token: creating users is the harness's job, not in Hubkeeper's role.
            response = self.api(
                "POST",
                "/users",
                json={"usernames": batch, "admin": admin},
                token=self.admin_token,
            )
            if response.status_code == 409:  # all of them exist already
                continue
            response.raise_for_status()

    def add_to_group(self, group: str, users: Iterable[str]) -> None:
        # The hub-admin token: managing groups is the harness's job, not in Hubkeeper's role.
        self.api("POST", f"/groups/{quote(group, safe='')}", json={}, token=self.admin_token)
        response = self.api(
            "POST",
            f"/groups/{quote(group, safe='')}/users",
            json={"users": list(users)},
            token=self.admin_token,
        )
        response.raise_for_status()

    def user_token(self, name: str, *, note: str = "hubkeeper tests") -> str:
        """A new API token for user `name` (made with the hub-admin token)."""
        response = self.api(
            "POST",
            f"/users/{quote(name, safe='')}/tokens",
            json={"note": note},
            token=self.admin_token,
        )
        response.raise_for_status()
        return str(response.json()["token"])

    def server_model(self, name: str, server: str = "") -> dict[str, Any] | None:
        response = self.api("GET", f"/users/{quote(name, safe='')}")
        response.raise_for_status()
        servers: dict[str, Any] = response.json().get("servers") or {}
        return servers.get(server)

    def start_server(self, name: str, server: str = "", *, timeout: float = 60.0) -> None:
        """Start a server and wait until the hub says it is ready."""
        response = self.api("POST", _server_path(name, server), json={})
        if response.status_code not in (201, 202, 400):
            response.raise_for_status()
        deadline = time.monotonic() + timeout
        while True:
            model = self.server_model(name, server)
            if model and model.get("ready") and not model.get("pending"):
                return
            if time.monotonic() > deadline:
                raise LocalHubError(
                    f"server {name!r}/{server!r} not ready after {timeout:.0f} s: {model}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop_server(self, name: str, server: str = "", *, timeout: float = 30.0) -> None:
        """Stop a server (if running) and wait until the hub says it has stopped."""
        response = self.api("DELETE", _server_path(name, server))
        if response.status_code not in (202, 204, 400, 404):
            response.raise_for_status()
        deadline = time.monotonic() + timeout
        while True:
            model = self.server_model(name, server)
            if not model or (not model.get("ready") and not model.get("pending")):
                return
            if time.monotonic() > deadline:
                raise LocalHubError(f"server {name!r}/{server!r} still up: {model}")
            time.sleep(0.1)

    # --- context manager -----------------------------------------------------------------
    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _server_path(name: str, server: str) -> str:
    user = quote(name, safe="")
    return f"/users/{user}/servers/{quote(server, safe='')}" if server else f"/users/{user}/server"


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"
