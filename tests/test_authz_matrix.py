"""Who may do what, for every route the app has: built from the app's route table.

Every route (method + path) must declare its policy in POLICY below; a route added without
one fails `test_every_route_declares_a_policy`. Each route is then called, through the ASGI
app with the real session hub deciding who a token belongs to, as: anonymous, an ordinary hub
user (role `user`: neither admin nor manager), a manager, an admin, and an admin's token the
hub limited to other scopes.

Writes are sent in a form that passes authorisation but changes nothing (an unknown user, a
body that fails validation), so the matrix never starts, stops or locks anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from hubkeeper.main import create_app

PUBLIC, READER, ADMIN, OAUTH = "public", "reader", "admin", "oauth"
# signed_in: every signed-in hub user, role `user` included (their own servers and page)
SIGNED_IN = "signed_in"
# hub_plugin: only Hubkeeper's own service token, which the hub plugin's spawn hook sends
HUB_PLUGIN = "hub_plugin"
# metrics: a hub token whose scopes include read:metrics (the hub's admin role has it), as the
# hub's own /hub/metrics; no cookie sessions
METRICS = "metrics"
# public: anyone (health, sign-in, static files, API docs, the spawn hook's lockdown status)
# reader: admins and managers · admin: admins only · oauth: the sign-in's return leg (403
# without a flow of its own, for everyone)
POLICY: dict[tuple[str, str], str] = {
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    ("MOUNT", "/static"): PUBLIC,
    ("GET", "/api/v1/health"): PUBLIC,
    ("GET", "/health"): READER,  # the same, as a page
    ("GET", "/login"): PUBLIC,
    ("GET", "/oauth_callback"): OAUTH,
    ("GET", "/logout"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/api/v1/me"): SIGNED_IN,
    ("GET", "/api/v1/me/servers"): SIGNED_IN,
    ("POST", "/api/v1/me/server/keep"): SIGNED_IN,  # nobody's server runs here: 409
    ("POST", "/api/v1/me/servers/{server}/keep"): SIGNED_IN,  # 404: no such server
    ("POST", "/api/v1/users/{name}/server/keep"): ADMIN,
    ("POST", "/api/v1/users/{name}/servers/{server}/keep"): ADMIN,
    ("GET", "/me"): SIGNED_IN,  # the signed-in person's own servers
    ("POST", "/me/server/keep"): SIGNED_IN,
    ("POST", "/me/servers/{server}/keep"): SIGNED_IN,
    ("GET", "/api/v1/users"): READER,
    ("GET", "/api/v1/users/{name}"): READER,
    ("POST", "/api/v1/users/{name}/server/start"): ADMIN,
    ("POST", "/api/v1/users/{name}/servers/{server}/start"): ADMIN,
    ("POST", "/api/v1/users/{name}/server/stop"): ADMIN,
    ("POST", "/api/v1/users/{name}/servers/{server}/stop"): ADMIN,
    ("POST", "/api/v1/servers/stop-all"): ADMIN,
    ("GET", "/api/v1/jobs/{job_id}"): READER,
    ("GET", "/api/v1/directory"): READER,
    ("GET", "/api/v1/users/{name}/server/progress"): ADMIN,
    ("GET", "/api/v1/users/{name}/servers/{server}/progress"): ADMIN,
    ("GET", "/"): PUBLIC,  # a redirect to `users`
    ("GET", "/users"): READER,
    ("GET", "/users/rows"): READER,
    ("POST", "/users/{name}/server/start"): ADMIN,
    ("POST", "/users/{name}/servers/{server}/start"): ADMIN,
    ("POST", "/users/{name}/server/stop"): ADMIN,
    ("POST", "/users/{name}/servers/{server}/stop"): ADMIN,
    ("POST", "/users/{name}/server/access"): ADMIN,
    ("POST", "/users/{name}/servers/{server}/access"): ADMIN,
    ("GET", "/users/stop-all"): ADMIN,
    ("POST", "/users/stop-all"): ADMIN,
    ("GET", "/users/jobs/{job_id}"): ADMIN,
    ("GET", "/users/{name}"): READER,  # the user's page (managers: no actions, no log links)
    ("POST", "/users/{name}/server/keep"): ADMIN,  # the user's page's Keep running
    ("POST", "/users/{name}/servers/{server}/keep"): ADMIN,
    ("GET", "/api/v1/audit"): READER,
    ("GET", "/audit"): READER,
    ("GET", "/api/v1/lockdown"): READER,
    ("POST", "/api/v1/lockdown"): ADMIN,
    ("DELETE", "/api/v1/lockdown"): ADMIN,
    ("GET", "/api/v1/lockdown/status"): PUBLIC,  # the hub's spawn hook asks it, no token
    ("GET", "/api/v1/lockdowns"): READER,
    ("GET", "/lockdown"): READER,
    ("POST", "/lockdown"): ADMIN,
    ("POST", "/lockdown/lift"): ADMIN,
    ("GET", "/api/v1/users/{name}/logs"): ADMIN,
    ("GET", "/api/v1/users/{name}/logs/stream"): ADMIN,
    ("GET", "/logs"): ADMIN,
    ("GET", "/logs/{name}"): ADMIN,
    ("GET", "/logs/{name}/{server}"): ADMIN,
    ("GET", "/api/v1/sessions"): READER,
    ("GET", "/api/v1/usage"): READER,
    ("GET", "/history"): READER,
    ("GET", "/api/v1/health/live"): PUBLIC,
    ("GET", "/api/v1/health/ready"): PUBLIC,
    ("GET", "/metrics"): METRICS,
    ("GET", "/api/v1/culler"): READER,
    ("PUT", "/api/v1/culler"): ADMIN,
    ("GET", "/api/v1/culler/preview"): READER,
    ("GET", "/api/v1/culler/backtest"): READER,
    ("GET", "/api/v1/culler/backtest/suggest"): READER,
    ("GET", "/api/v1/users/{name}/idleness"): READER,
    ("POST", "/api/v1/culler/run"): ADMIN,
    ("GET", "/api/v1/culls"): READER,
    ("GET", "/api/v1/exemptions"): READER,
    ("POST", "/api/v1/exemptions"): ADMIN,
    ("DELETE", "/api/v1/exemptions/{exemption_id}"): ADMIN,
    ("GET", "/culler"): READER,
    ("GET", "/culls"): READER,
    ("GET", "/culler/idleness"): READER,
    ("POST", "/culler/settings"): ADMIN,
    ("POST", "/culler/run"): ADMIN,
    ("POST", "/culler/exemptions"): ADMIN,
    ("POST", "/culler/exemptions/{exemption_id}/delete"): ADMIN,
    ("GET", "/api/v1/quotas"): READER,
    ("PUT", "/api/v1/quotas"): ADMIN,
    ("GET", "/api/v1/me/quota"): SIGNED_IN,
    ("GET", "/api/v1/quotas/check"): HUB_PLUGIN,  # the spawn hook, with the service token
    ("POST", "/api/v1/spawns/failed"): HUB_PLUGIN,  # the stop hook's failed-spawn report
    # webhook deliveries (URLs, errors): an admin matter, managers get 403
    ("GET", "/api/v1/notifications"): ADMIN,
    ("GET", "/notifications"): ADMIN,
}

PATH_VALUES = {
    "name": "mx-ghost",
    "server": "nope",
    "job_id": "no-such-job",
    "exemption_id": "999999",
}
# Bodies that get past authorisation but fail validation: nothing is changed.
HARMLESS_BODY: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/servers/stop-all"): {"json": ["not an object"]},
    ("POST", "/api/v1/lockdown"): {"json": ["not an object"]},
    ("POST", "/users/stop-all"): {"data": {"reason": ""}},
    ("POST", "/lockdown"): {"data": {"reason": ""}},
    ("PUT", "/api/v1/culler"): {"json": ["not an object"]},
    ("POST", "/api/v1/exemptions"): {"json": ["not an object"]},
    ("POST", "/culler/exemptions"): {"data": {"reason": ""}},
    ("PUT", "/api/v1/quotas"): {"json": ["not an object"]},
}
IDENTITIES = ("anonymous", "user", "manager", "admin", "scoped_out")
# The same people signed in with the browser session instead of a token (script requests from
# Hubkeeper's own pages: the CSRF token and Sec-Fetch-Site: same-origin).
COOKIE_IDENTITIES = ("cookie_user", "cookie_manager", "cookie_admin")


def walk(routes: list[Any]) -> Iterator[Any]:
    """Every route of the app, with routers included by FastAPI opened up."""
    for route in routes:
        if hasattr(route, "effective_candidates"):  # FastAPI's included router
            yield from walk(route.effective_candidates())
        else:
            yield route


def route_table(app: Any) -> set[tuple[str, str]]:
    table = set()
    for route in walk(app.routes):
        methods = getattr(route, "methods", None)
        if not methods:
            table.add(("MOUNT", route.path))
            continue
        table |= {(method, route.path) for method in methods if method != "HEAD"}
    return table


@pytest.fixture(scope="module")
def tokens(hub) -> dict[str, str]:
    hub.create_users(["mx-admin"], admin=True)
    hub.create_users(["mx-manager", "mx-nobody"])
    hub.add_to_group("managers", ["mx-manager"])
    scoped = hub.api(
        "POST",
        "/users/mx-admin/tokens",
        token=hub.admin_token,
        json={"scopes": ["read:users:activity!user=mx-admin"], "expires_in": 3600},
    )
    assert scoped.status_code == 201, scoped.text
    return {
        "user": hub.user_token("mx-nobody"),
        "manager": hub.user_token("mx-manager"),
        "admin": hub.user_token("mx-admin"),
        "scoped_out": str(scoped.json()["token"]),
    }


@pytest.fixture(scope="module")
def client(hub, tmp_path_factory) -> Iterator[TestClient]:
    from tests.conftest import build_settings

    tmp = tmp_path_factory.mktemp("authz")
    settings = build_settings(hub, f"sqlite:///{tmp / 'hk.sqlite'}", tmp)
    with TestClient(
        create_app(settings), raise_server_exceptions=False, follow_redirects=False
    ) as test_client:
        yield test_client


def test_every_route_declares_a_policy(client):
    table = route_table(client.app)
    undeclared = sorted(table - set(POLICY))
    assert not undeclared, f"declare who may call these routes in POLICY: {undeclared}"
    gone = sorted(set(POLICY) - table)
    assert not gone, f"POLICY names routes the app no longer has: {gone}"


def expected(policy: str, identity: str, *, is_api: bool, cookie: bool = False) -> set[int] | None:
    """The statuses allowed; None = "let in" (anything but 401/403/5xx)."""
    if policy == PUBLIC:
        return None
    if policy == METRICS:
        if cookie or identity == "anonymous":
            return {401}
        return None if identity == "admin" else {403}
    if policy == OAUTH:
        return {403}
    if policy == HUB_PLUGIN:  # no person's token or cookie will do
        return {401} if identity == "anonymous" or cookie else {403}
    if identity == "anonymous":
        return {401} if is_api else {302}
    if identity == "scoped_out":
        return {403}
    if policy == SIGNED_IN:
        return None
    if identity == "user":  # role user: everything but their own servers and page
        return {403}
    if identity == "manager" and policy == ADMIN:
        return {403}
    return None


def call(
    client: TestClient,
    method: str,
    path: str,
    token: str | None,
    session: tuple[dict[str, str], str] | None = None,
):
    url = path
    for key, value in PATH_VALUES.items():
        url = url.replace("{" + key + "}", value)
    if method == "MOUNT":
        method, url = "GET", path + "/common.js"
    headers = {"Authorization": f"token {token}"} if token else {}
    if session is not None:
        cookies, csrf = session
        client.cookies.clear()
        for name, value in cookies.items():
            client.cookies.set(name, value)
        headers = {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    else:
        client.cookies.clear()
    kwargs = HARMLESS_BODY.get((method, path), {})
    # Through the service prefix, as the hub's proxy sends it.
    return client.request(method, "/services/hubkeeper" + url, headers=headers, **kwargs)


@pytest.mark.parametrize("identity", IDENTITIES)
def test_the_authorisation_matrix(client, tokens, identity):
    failures = []
    for (method, path), policy in sorted(POLICY.items()):
        response = call(client, method, path, tokens.get(identity))
        allowed = expected(policy, identity, is_api=path.startswith("/api/"))
        status = response.status_code
        ok = status < 500 and (status not in (401, 403) if allowed is None else status in allowed)
        if ok and status in (401, 403) and path.startswith("/api/"):
            ok = set(response.json()) == {"error", "detail"}
            if identity == "user" and policy != HUB_PLUGIN:  # says why: only their own servers
                ok = ok and response.json()["error"] == "no_role"
        if not ok:
            failures.append(
                f"{identity} {method} {path} ({policy}): {status} {response.text[:120]}"
            )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("identity", COOKIE_IDENTITIES)
def test_the_authorisation_matrix_with_browser_sessions(client, identity):
    import asyncio

    from hubkeeper.auth.sessions import issue_session

    role = {"cookie_user": "user", "cookie_manager": "manager", "cookie_admin": "admin"}[identity]
    name, value, csrf = asyncio.run(
        issue_session(client.app.state.hk, user=f"mx-{identity}", role=role)  # type: ignore[attr-defined]
    )
    as_token = {"cookie_user": "user", "cookie_manager": "manager", "cookie_admin": "admin"}
    failures = []
    # Logging out ends the session: it goes last.
    routes = sorted(POLICY.items(), key=lambda item: (item[0] == ("POST", "/logout"), item[0]))
    for (method, path), policy in routes:
        response = call(client, method, path, None, session=({name: value}, csrf))
        allowed = expected(policy, as_token[identity], is_api=path.startswith("/api/"), cookie=True)
        status = response.status_code
        ok = status < 500 and (status not in (401, 403) if allowed is None else status in allowed)
        if not ok:
            failures.append(
                f"{identity} {method} {path} ({policy}): {status} {response.text[:120]}"
            )
    client.cookies.clear()
    assert not failures, "\n".join(failures)
