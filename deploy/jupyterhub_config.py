"""JupyterHub config with Hubkeeper as a *managed* service: the hub starts and stops it.

Hubkeeper must be installed in the hub's Python environment (`pip install hubkeeper`), which
also lets the hub plugin below be imported (hubkeeper.hub_plugin: one-server tokens for
Hubkeeper, the lockdown spawn hook, the lockdown shown on the hub's pages). Keep your own hub
settings above the Hubkeeper section; copy the section as it is. Settings come from the hub's
environment:

- HUBKEEPER_PORT (default 10101): where Hubkeeper listens (127.0.0.1 only: the hub proxies it)
- HUBKEEPER_DATABASE_URL (default: SQLite in the hub's working directory; PostgreSQL for
  production: postgresql://user:password@host/hubkeeper)
- HUBKEEPER_MANAGER_GROUPS / HUBKEEPER_ADMIN_GROUPS (default "managers" / none)

tests/deploy/test_recipes.py runs the Hubkeeper section against a real hub.
"""

c = get_config()  # type: ignore[name-defined]  # noqa: F821

# --- your hub: replace with your own authenticator, spawner, ... ----------------------------
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.admin_users = {"admin"}
c.Authenticator.allow_all = True

# --- Hubkeeper (begin) -------------------------------------------------------------------
import os  # noqa: E402
import sys  # noqa: E402

from hubkeeper.hub_plugin import configure  # noqa: E402

hubkeeper_port = int(os.environ.get("HUBKEEPER_PORT", "10101"))
hubkeeper_url = f"http://127.0.0.1:{hubkeeper_port}"
proxy_api_url = c.ConfigurableHTTPProxy.api_url
if not isinstance(proxy_api_url, str):  # not set above: the hub's default
    proxy_api_url = "http://127.0.0.1:8001"
c.JupyterHub.services.append(
    {
        "name": "hubkeeper",
        "url": hubkeeper_url,
        # The hub creates the service's token and passes it with the other JUPYTERHUB_* values.
        "command": [sys.executable, "-m", "hubkeeper.cli", "serve"],
        "environment": {
            "HUBKEEPER_DATABASE_URL": os.environ.get(
                "HUBKEEPER_DATABASE_URL", "sqlite:///./hubkeeper.sqlite"
            ),
            "HUBKEEPER_MANAGER_GROUPS": os.environ.get("HUBKEEPER_MANAGER_GROUPS", "managers"),
            "HUBKEEPER_ADMIN_GROUPS": os.environ.get("HUBKEEPER_ADMIN_GROUPS", ""),
            # Reach user servers at their own address (never through the proxy, so Hubkeeper's
            # reads do not count as activity): the proxy's REST API and its token.
            "HUBKEEPER_PROXY_API_URL": proxy_api_url,
            "CONFIGPROXY_AUTH_TOKEN": os.environ.get("CONFIGPROXY_AUTH_TOKEN", ""),
            "HUBKEEPER_LOG_FORMAT": os.environ.get("HUBKEEPER_LOG_FORMAT", "text"),
        },
        "oauth_no_confirm": True,
    }
)
c.JupyterHub.load_roles.append(
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
    }
)
# Everyone may reach Hubkeeper's sign-in; Hubkeeper decides who gets in (hub admins,
# HUBKEEPER_ADMIN_GROUPS, HUBKEEPER_MANAGER_GROUPS) and shows others a clear 403 page.
c.JupyterHub.extra_user_scopes = {"access:services!service=hubkeeper"}
# The hub plugin: the custom scope above, its endpoint, the lockdown spawn hook (fails open
# when Hubkeeper is down; chained after a hook configured above) and the lockdown's reason on
# the hub's own pages.
configure(c, service="hubkeeper")
# --- Hubkeeper (end) ---------------------------------------------------------------------
