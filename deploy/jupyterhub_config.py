"""JupyterHub config for docker-compose.yml: registers Hubkeeper as an external service.

Replace the authenticator and spawner with your own; the Hubkeeper parts are marked.
"""

import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821

c.JupyterHub.bind_url = "http://0.0.0.0:8000"
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = "http://hub:8081"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/data/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/data/jupyterhub_cookie_secret"  # noqa: S105
c.JupyterHub.authenticator_class = "dummy"  # replace with your authenticator
c.Authenticator.admin_users = {"admin"}
c.Authenticator.allow_all = True
# Users' servers: homes in the data volume (no system users needed), the server's output in
# ~/.jupyter-server-log.txt (as repo2docker images do) and hidden files readable, so
# Hubkeeper's Logs page can read it.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "/srv/jupyterhub/data/homes/{username}"
c.Spawner.cmd = [
    "sh",
    "-c",
    'exec jupyterhub-singleuser "$@" >> "$HOME/.jupyter-server-log.txt" 2>&1',
    "sh",
]
c.Spawner.args = ["--ContentsManager.allow_hidden=True", "--allow-root"]
# Servers listen on all interfaces so Hubkeeper (another container) can reach them at their
# route target, http://hub:<port> (docker-compose.yml gives this container hostname "hub").
c.Spawner.ip = "0.0.0.0"  # noqa: S104 - inside the compose network, by design
# The proxy's REST API where Hubkeeper can read it (HUBKEEPER_PROXY_API_URL); its token is
# CONFIGPROXY_AUTH_TOKEN from the environment, shared by the hub, the proxy and Hubkeeper.
c.ConfigurableHTTPProxy.api_url = "http://hub:8001"

# --- Hubkeeper ---------------------------------------------------------------------------
c.JupyterHub.services = [
    {
        "name": "hubkeeper",
        "url": "http://hubkeeper:10101",
        "api_token": os.environ["HUBKEEPER_API_TOKEN"],
        "oauth_no_confirm": True,
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "hubkeeper-service",
        "scopes": [
            "admin:users",
            "admin:servers",
            "access:servers",
            "admin:groups",
            "read:metrics",
            "read:hub",
            # Issue each user's server a token that opens only that server (never
            # Hubkeeper's own token): POST /users/{name}/tokens needs `tokens`.
            "tokens",
        ],
        "services": ["hubkeeper"],
    },
    {
        # Everyone may reach Hubkeeper's sign-in; Hubkeeper itself decides who gets in
        # (hub admins, HUBKEEPER_ADMIN_GROUPS, HUBKEEPER_MANAGER_GROUPS) and shows others a
        # clear 403 page instead of the hub's bare refusal.
        "name": "user",
        "scopes": ["self", "access:services!service=hubkeeper"],
    },
]


# --- Hubkeeper lockdown: refuse spawns while the hub is locked (see README) ---------------
import json  # noqa: E402
import logging  # noqa: E402

from tornado.httpclient import AsyncHTTPClient  # noqa: E402
from tornado.web import HTTPError  # noqa: E402

LOCKDOWN_STATUS = "http://hubkeeper:10101/services/hubkeeper/api/v1/lockdown/status"


async def hubkeeper_lockdown_hook(spawner):  # type: ignore[no-untyped-def]
    try:
        response = await AsyncHTTPClient().fetch(LOCKDOWN_STATUS, request_timeout=2)
        status = json.loads(response.body)
    except Exception as exc:  # Hubkeeper unreachable: let the spawn go ahead (fail open)
        logging.getLogger("hubkeeper").warning("lockdown check failed: %s", exc)
        return
    if status.get("locked"):
        error = HTTPError(503, status["message"])
        error.jupyterhub_message = status["message"]  # what the user's page shows
        raise error


c.Spawner.pre_spawn_hook = hubkeeper_lockdown_hook
