"""JupyterHub config for docker-compose.yml: registers Hubkeeper (two replicas behind the name
`hubkeeper`) as an external service. The hub image does not have Hubkeeper installed: the hub
plugin is the one file `hubkeeper hub-plugin` prints, which docker-compose.yml mounts beside
this one as hubkeeper_hub_plugin.py. Replace the authenticator and spawner with your own; the
Hubkeeper parts are marked. tests/deploy/test_compose.py runs the Hubkeeper section against a
real hub.
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
# Servers listen on all interfaces so Hubkeeper (other containers) can reach them at their
# route target, http://hub:<port> (docker-compose.yml gives this container hostname "hub").
c.Spawner.ip = "0.0.0.0"  # noqa: S104 - inside the compose network, by design
# The proxy's REST API where Hubkeeper reads the routes (HUBKEEPER_PROXY_API_URL); its token is
# CONFIGPROXY_AUTH_TOKEN from the environment, shared by the hub, the proxy and Hubkeeper.
c.ConfigurableHTTPProxy.api_url = "http://hub:8001"

# --- Hubkeeper (begin) -------------------------------------------------------------------
HUBKEEPER_URL = os.environ.get("HUBKEEPER_URL", "http://hubkeeper:10101")
c.JupyterHub.services = [
    {
        "name": "hubkeeper",
        "url": HUBKEEPER_URL,
        "api_token": os.environ["HUBKEEPER_API_TOKEN"],
        "oauth_no_confirm": True,
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "hubkeeper-service",
        "scopes": [
            # exactly what Hubkeeper's features use (README "Registering Hubkeeper");
            # add "delete:users" only if the culler should delete users (cull_users)
            "list:users",
            "read:users",
            "read:servers",
            "start:servers",
            "delete:servers",
            "list:groups",
            "read:groups",
            "custom:hubkeeper:server-tokens",  # one-server tokens from the hub plugin
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


# The hub plugin (one file, beside this one): the custom scope above, its endpoint, the
# lockdown spawn hook (fails open when Hubkeeper is down) and the lockdown on the hub's pages.
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # noqa: F821 - traitlets sets it
from hubkeeper_hub_plugin import configure  # noqa: E402

configure(c, service="hubkeeper")
# --- Hubkeeper (end) ---------------------------------------------------------------------
