"""Sign-in through the hub (`login`, `oauth_callback`), `logout`, and `api/v1/me`."""

from __future__ import annotations

import asyncio
import hmac
import logging

import httpx
from authlib.integrations.base_client.errors import OAuthError
from fastapi import APIRouter, Request
from itsdangerous import BadSignature
from pydantic import BaseModel
from starlette.responses import RedirectResponse, Response

from hubkeeper.actions import audit
from hubkeeper.auth import oauth
from hubkeeper.auth.dependencies import check_csrf
from hubkeeper.auth.principal import role_for
from hubkeeper.auth.sessions import (
    SESSION_COOKIE,
    STATE_MAX_AGE_SECONDS,
    cookie_options,
    end_session,
    issue_session,
    load_session,
    serializer,
    stale_state_cookies,
    state_cookie_name,
)
from hubkeeper.auth.tokens import reaches_service, require_access
from hubkeeper.deps import CurrentUser, StateDep
from hubkeeper.errors import BadRequest, Forbidden, HubUnavailable, Unauthenticated
from hubkeeper.web.errors import LOGIN_PENDING_COOKIE
from hubkeeper.web.strict import STRICT_QUERY
from hubkeeper.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(tags=["auth"])


@router.get("/login", include_in_schema=False)
async def login(request: Request, hk: StateDep, next: str | None = None) -> Response:
    """Start hub OAuth: remember where to go back to, then send the browser to the hub.

    Each flow has its own state cookie (its name carries a hash of the state), as
    jupyterhub/services/auth.py `HubOAuth.set_state_cookie` does for concurrent logins: two
    tabs signing in at once, or a burst of expired polls, never overwrite each other's state.
    """
    target = oauth.safe_next(next, hk.settings.service_prefix)
    state, verifier = oauth.new_state()
    response = RedirectResponse(oauth.authorize_url(hk, state, verifier), status_code=302)
    signed = serializer(hk, "oauth-state").dumps(
        {"state": state, "verifier": verifier, "next": target}
    )
    options = cookie_options(hk)
    for stale in stale_state_cookies(hk, request.cookies):
        response.delete_cookie(stale, path=str(options["path"]))
    response.set_cookie(
        state_cookie_name(state),
        signed,
        max_age=STATE_MAX_AGE_SECONDS,
        **options,  # type: ignore[arg-type]
    )
    return response


@router.get("/oauth_callback", include_in_schema=False)
async def oauth_callback(
    request: Request,
    hk: StateDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """Finish hub OAuth: check the state, trade the code, start a session."""
    if error:
        raise Forbidden(f"The hub refused the sign-in: {error}", code="oauth_refused")
    remembered: object = None
    if state:
        try:
            remembered = serializer(hk, "oauth-state").loads(
                request.cookies.get(state_cookie_name(state), ""), max_age=STATE_MAX_AGE_SECONDS
            )
        except BadSignature:
            remembered = None
    if (
        not isinstance(remembered, dict)
        or not state
        or not hmac.compare_digest(str(remembered.get("state", "")), state)
    ):
        raise Forbidden(
            "The sign-in could not be verified (OAuth state mismatch or expired); start again",
            code="oauth_state_mismatch",
        )
    if not code:
        raise BadRequest("The hub sent no authorization code", code="oauth_no_code")
    try:
        access_token = await oauth.exchange_code(hk, code, str(remembered["verifier"]))
    except (httpx.ConnectError, httpx.TimeoutException) as exc:
        raise HubUnavailable("The hub is unreachable; cannot finish signing in") from exc
    except (OAuthError, httpx.HTTPError, KeyError) as exc:
        log.warning("OAuth code exchange failed: %s", exc)
        raise Forbidden(
            "The hub did not accept the sign-in; start again", code="oauth_failed"
        ) from exc
    identity = await hk.hub.identify(access_token)
    if not reaches_service(identity.scopes, hk.settings.access_scopes):
        await asyncio.to_thread(
            audit.record,
            hk.engine,
            actor=identity.name,
            action="auth.login",
            outcome="refused",
            detail="token lacks the scope to reach Hubkeeper",
            via="web",
        )
        require_access(identity, hk.settings.access_scopes)
    role = role_for(
        admin=identity.admin,
        groups=identity.groups,
        admin_groups=hk.settings.admin_groups,
        manager_groups=hk.settings.manager_groups,
    )
    await asyncio.to_thread(
        audit.record,
        hk.engine,
        actor=identity.name,
        action="auth.login",
        outcome="ok",
        detail=f"role: {role}",
        via="web",
    )
    name, value, _csrf = await issue_session(
        hk, user=identity.name, role=role, access_token=access_token
    )
    target = oauth.safe_next(str(remembered.get("next")), hk.settings.service_prefix)
    if role == "user":
        target = own_landing(target, hk.settings.service_prefix)
    response = RedirectResponse(target, status_code=302)
    options = cookie_options(hk)
    response.set_cookie(name, value, **options)  # type: ignore[arg-type]
    response.delete_cookie(state_cookie_name(state), path=str(options["path"]))
    response.delete_cookie(LOGIN_PENDING_COOKIE, path=str(options["path"]))
    return response


@router.get("/logout", include_in_schema=False)
async def logout_page(request: Request, hk: StateDep) -> Response:
    """A page with a button: logging out is a write, so it is a POST with the CSRF token."""
    try:
        web_session = await load_session(hk, request.cookies.get(SESSION_COOKIE))
    except Forbidden:
        web_session = None
    if web_session is None:
        return RedirectResponse(hk.settings.service_prefix + "login", status_code=302)
    request.state.csrf_token = web_session.csrf_token
    request.state.signed_in_as = web_session.user
    return render(request, "logout.html", {"user": web_session.user})


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, hk: StateDep) -> Response:
    """End the session (CSRF-checked, same origin only), then show the signed-out page."""
    cookie = request.cookies.get(SESSION_COOKIE)
    try:
        web_session = await load_session(hk, cookie)
    except Forbidden:
        web_session = None  # a session whose token lost its scope is already gone
    if web_session is not None:
        await check_csrf(request, web_session.csrf_token)
        await end_session(hk, cookie)
        await asyncio.to_thread(
            audit.record, hk.engine, actor=web_session.user, action="auth.logout", via="web"
        )
    response = render(request, "signed_out.html", {})
    response.delete_cookie(SESSION_COOKIE, path=hk.settings.service_prefix)
    return response


def own_landing(target: str, prefix: str) -> str:
    """Where an ordinary user (role `user`) lands after signing in: the page they asked for
    when they may see it (their page `me`, signing out), else their page, not a 403."""
    rest = target[len(prefix) :] if target.startswith(prefix) else ""
    if rest.split("?")[0] in ("me", "logout"):
        return target
    return prefix + "me"


class Me(BaseModel):
    name: str
    role: str


@router.get("/api/v1/me", response_model=Me, dependencies=STRICT_QUERY)
async def me(who: CurrentUser) -> Me:
    """Who am I, and with which role (admin, manager, or user: their own servers only)?"""
    return Me(name=who.name, role=who.role)


__all__ = ["router", "Unauthenticated"]
