"""Who is asking: hub token (API) or session cookie (browser), and may they?

Cookie-authenticated requests follow JupyterHub's own defences (jupyterhub/_xsrf_utils.py
`_needs_check_xsrf`, 4.1+): without `subdomain_host` every user's server shares Hubkeeper's
origin, so a page on a server an admin opens could make the admin's browser call Hubkeeper.
Only plain page views (`Sec-Fetch-Mode: navigate` into a document, or no Sec-Fetch headers at
all) and same-origin `no-cors` reads go without the CSRF token; every script-made request
(fetch/XHR/EventSource: modes `cors`, `same-origin`) must carry it, reads included, and a
write must carry it and come from the same origin (`Sec-Fetch-Site`). Header tokens skip all
of this: a page cannot make the browser attach one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from hubkeeper.auth.principal import Principal, role_for, session_role
from hubkeeper.auth.sessions import SESSION_COOKIE, csrf_matches, load_session
from hubkeeper.auth.tokens import TokenCache, require_access, token_from_header
from hubkeeper.errors import Forbidden, Unauthenticated
from hubkeeper.state import HubkeeperState
from hubkeeper.web.openapi import secures_route

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "_csrf"
# A navigation is a page view (or a download, which lands on disk), unless it loads into a
# frame or object: the CSP forbids framing, but the request would still be made.
FRAME_DESTS = {"iframe", "frame", "embed", "object"}


class LoginRequired(Unauthenticated):
    """An anonymous browser: pages redirect it to `login?next=...`; the API answers 401."""

    code = "login_required"

    def __init__(self, next_url: str) -> None:
        super().__init__("Sign in through the hub to continue")
        self.next_url = next_url


def _token_cache(hk: HubkeeperState) -> TokenCache:
    if hk.token_cache is None:
        hk.token_cache = TokenCache(hk.settings.token_cache_seconds)
    return hk.token_cache


def _next_url(request: Request) -> str:
    """Where to come back to after signing in: this page, always under the prefix.

    An HTMX request (a poll, a fragment) is not a page to come back to: its `HX-Current-URL`
    (the page it was made from) is used when it lies under the prefix, else the prefix.
    """
    root = request.scope.get("root_path", "")
    if request.headers.get("HX-Request"):
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        prefix = root + "/"
        if current.path.startswith(prefix):
            return current.path + (f"?{current.query}" if current.query else "")
        return prefix
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
        require_access(identity, hk.settings.access_scopes)
        role = role_for(
            admin=identity.admin,
            groups=identity.groups,
            admin_groups=hk.settings.admin_groups,
            manager_groups=hk.settings.manager_groups,
        )
        principal = Principal(name=identity.name, role=role, via="api")
    else:
        web_session = await load_session(hk, request.cookies.get(SESSION_COOKIE))
        if web_session is None:
            raise LoginRequired(_next_url(request))
        request.state.signed_in_as = web_session.user
        request.state.csrf_token = web_session.csrf_token
        principal = Principal(
            name=web_session.user,
            role=session_role(web_session.role),
            via="web",
            csrf_token=web_session.csrf_token,
        )
    request.state.principal = principal
    return principal


def needs_csrf(request: Request) -> bool:
    """Does this cookie-authenticated request need the CSRF token? (as `_needs_check_xsrf`)"""
    if request.method not in SAFE_METHODS:
        return True
    mode = request.headers.get("Sec-Fetch-Mode", "unspecified").lower()
    site = request.headers.get("Sec-Fetch-Site", "unspecified").lower()
    dest = request.headers.get("Sec-Fetch-Dest", "unspecified").lower()
    if mode in ("navigate", "unspecified") and dest not in FRAME_DESTS:
        return False
    # e.g. an <img> on our own page: the requesting page never sees the answer.
    return not (mode == "no-cors" and site == "same-origin")


async def given_csrf(request: Request) -> str | None:
    """The CSRF token the request carries: header, form field, or `_csrf` in the query (an
    EventSource cannot set headers)."""
    given = request.headers.get(CSRF_HEADER) or request.query_params.get(CSRF_FIELD)
    if not given and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        field = form.get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    return given


def check_same_origin_write(request: Request) -> None:
    """A cookie write must come from a page of this origin: browsers say so in Sec-Fetch-Site
    (absent from older browsers and non-browser clients, which then rely on the token)."""
    site = request.headers.get("Sec-Fetch-Site", "same-origin").lower()
    if site != "same-origin":
        raise Forbidden(
            "Hubkeeper accepts changes only from its own pages (this request came from "
            f"a {site} page)",
            code="csrf_failed",
        )


async def check_csrf(request: Request, expected: str) -> None:
    """Raise 403 `csrf_failed` unless a cookie-authenticated request may go on."""
    if request.method not in SAFE_METHODS:
        check_same_origin_write(request)
    if not needs_csrf(request):
        return
    if not csrf_matches(expected, await given_csrf(request)):
        raise Forbidden(
            "This request is missing its CSRF token; reload the page and try again",
            code="csrf_failed",
        )


async def _check_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated requests: see the module's docstring; header tokens skip it."""
    if principal.via != "web":
        return
    await check_csrf(request, principal.csrf_token)


# What a manager meets on an admin route (actions, server logs): what they can do instead.
MANAGER_REFUSED = (
    "Only hub admins may do this (actions on servers and the culler, lockdowns, server logs). "
    "As a manager you can read the users and their servers, sessions and usage, culls and "
    "exemptions, lockdowns and the audit log."
)


def _refuse_user(principal: Principal) -> None:
    """Role `user` (a signed-in hub user who is neither admin nor manager): 403 `no_role` on
    everything but their own servers and page."""
    if principal.is_reader:
        return
    if principal.via == "web":
        detail = (
            f"You are signed in as {principal.name}, but this part of Hubkeeper is for hub "
            "admins and managers; your own servers are on your page (me)."
        )
    else:
        detail = (
            f"{principal.name} is neither a hub admin nor in a manager group: only their own "
            "servers (me/servers) are open to them"
        )
    raise Forbidden(detail, code="no_role")


@secures_route
async def require_signed_in(request: Request) -> Principal:
    """Every signed-in hub user (admin, manager, user): their own servers and page."""
    principal = await _principal(request)
    await _check_csrf(request, principal)
    return principal


@secures_route
async def require_reader(request: Request) -> Principal:
    """Admins and managers: every read."""
    principal = await _principal(request)
    _refuse_user(principal)
    await _check_csrf(request, principal)
    return principal


@secures_route
async def require_admin(request: Request) -> Principal:
    """Admins only: every action, and logs."""
    principal = await _principal(request)
    _refuse_user(principal)
    if not principal.is_admin:
        raise Forbidden(MANAGER_REFUSED)
    await _check_csrf(request, principal)
    return principal
