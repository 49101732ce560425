"""Who is asking: hub token (API) or session cookie (browser), and may they?"""

from __future__ import annotations

from fastapi import Request

from hubkeeper.auth.principal import Principal, role_for
from hubkeeper.auth.sessions import SESSION_COOKIE, csrf_matches, load_session
from hubkeeper.auth.tokens import TokenCache, token_from_header
from hubkeeper.errors import Forbidden, Unauthenticated
from hubkeeper.state import HubkeeperState

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "_csrf"


class LoginRequired(Unauthenticated):
    """An anonymous browser: pages redirect it to `login?next=...`; the API answers 401."""

    code = "login_required"

    def __init__(self, next_url: str) -> None:
        super().__init__("Sign in through the hub to continue")
        self.next_url = next_url


def _token_cache(hk: HubkeeperState) -> TokenCache:
    cache = hk.extras.get("token_cache")
    if not isinstance(cache, TokenCache):
        cache = TokenCache(hk.settings.token_cache_seconds)
        hk.extras["token_cache"] = cache
    return cache


def _next_url(request: Request) -> str:
    """Where to come back to after signing in: this page, always under the prefix."""
    root = request.scope.get("root_path", "")
    path = request.url.path
    if root and not path.startswith(root + "/"):
        path = root + path
    return path + (f"?{request.url.query}" if request.url.query else "")


async def _principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    hk: HubkeeperState = request.app.state.hk
    token = token_from_header(request.headers.get("authorization"))
    if token:
        identity = await _token_cache(hk).identify(hk.hub, token)
        role = role_for(
            admin=identity.admin,
            groups=identity.groups,
            admin_groups=hk.settings.admin_groups,
            manager_groups=hk.settings.manager_groups,
        )
        if role is None:
            raise Forbidden(
                f"{identity.name} is neither a hub admin nor in a manager group",
                code="no_role",
            )
        principal = Principal(name=identity.name, role=role, via="api")
    else:
        web_session = await load_session(hk, request.cookies.get(SESSION_COOKIE))
        if web_session is None:
            raise LoginRequired(_next_url(request))
        request.state.signed_in_as = web_session.user
        request.state.csrf_token = web_session.csrf_token
        if web_session.role not in ("admin", "manager"):
            raise Forbidden(
                f"You are signed in as {web_session.user}, but Hubkeeper is for hub admins "
                "and managers.",
                code="no_role",
            )
        principal = Principal(
            name=web_session.user,
            role=web_session.role,  # type: ignore[arg-type]
            via="web",
            csrf_token=web_session.csrf_token,
        )
    request.state.principal = principal
    return principal


async def _check_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated writes must echo the session's CSRF token; header tokens skip it."""
    if principal.via != "web" or request.method in SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER)
    if not given and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        field = form.get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    if not csrf_matches(principal.csrf_token, given):
        raise Forbidden(
            "This request is missing its CSRF token; reload the page and try again",
            code="csrf_failed",
        )


async def require_reader(request: Request) -> Principal:
    """Admins and managers: every read."""
    principal = await _principal(request)
    await _check_csrf(request, principal)
    return principal


async def require_admin(request: Request) -> Principal:
    """Admins only: every action, and logs."""
    principal = await _principal(request)
    if not principal.is_admin:
        raise Forbidden("Only hub admins may do this; managers can read but not act")
    await _check_csrf(request, principal)
    return principal
