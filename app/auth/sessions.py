"""Browser sessions: a random id in a signed, httponly cookie scoped to the service prefix.

Everything else (who, role, the hub access token, the CSRF token) stays in the database, so
a restart keeps people signed in and logout really ends the session.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer

from hubkeeper.auth.principal import role_for
from hubkeeper.auth.tokens import reaches_service, require_access
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import WebSession
from hubkeeper.errors import HubUnavailable, Unauthenticated
from hubkeeper.kit.clock import as_utc, utcnow
from hubkeeper.kit.sealed import seal, unseal
from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)

SESSION_COOKIE = "hubkeeper-session"
# One state cookie per OAuth flow: `hubkeeper-oauth-state-<hash of the state>`.
STATE_COOKIE = "hubkeeper-oauth-state"
# At most this many sign-ins in flight per browser; older state cookies are dropped.
MAX_STATE_COOKIES = 8
SESSION_MAX_AGE = timedelta(hours=12)
STATE_MAX_AGE_SECONDS = 600


def serializer(hk: HubkeeperState, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(hk.cookie_secret, salt=f"hubkeeper.{purpose}")


def state_cookie_name(state: str) -> str:
    """The cookie holding one flow's state; a hash, so the name stays short and plain."""
    return f"{STATE_COOKIE}-{hashlib.sha256(state.encode()).hexdigest()[:16]}"


def stale_state_cookies(hk: HubkeeperState, cookies: dict[str, str]) -> list[str]:
    """State cookies to drop before a new flow: unreadable or expired ones, and the oldest
    beyond `MAX_STATE_COOKIES - 1`, so a browser never piles up cookies (header size)."""
    live: list[tuple[datetime, str]] = []
    stale: list[str] = []
    for name, value in cookies.items():
        if not name.startswith(STATE_COOKIE):
            continue
        try:
            _, signed_at = serializer(hk, "oauth-state").loads(
                value, max_age=STATE_MAX_AGE_SECONDS, return_timestamp=True
            )
        except BadSignature:
            stale.append(name)
            continue
        live.append((signed_at, name))
    live.sort(reverse=True)
    stale.extend(name for _, name in live[MAX_STATE_COOKIES - 1 :])
    return stale


def cookie_options(hk: HubkeeperState) -> dict[str, object]:
    return {
        "path": hk.settings.service_prefix,
        "httponly": True,
        "samesite": "lax",
        "secure": hk.settings.secure_cookies,
    }


def seal_token(hk: HubkeeperState, token: str) -> str:
    """Hub access tokens are kept encrypted: a copy of the database is no key to the hub."""
    return seal(hk.cookie_secret, "access-token", token)


def open_token(hk: HubkeeperState, sealed: str) -> str | None:
    """The token, or None when it cannot be read (another cookie secret): sign in again."""
    return unseal(hk.cookie_secret, "access-token", sealed)


def _create(hk: HubkeeperState, user: str, role: str, access_token: str) -> WebSession:
    web_session = WebSession(
        id=secrets.token_urlsafe(32),
        user=user,
        role=role,
        access_token=seal_token(hk, access_token),
        csrf_token=secrets.token_urlsafe(32),
    )
    with session_scope(hk.engine) as db:
        db.add(web_session)
    return web_session


async def issue_session(
    hk: HubkeeperState, *, user: str, role: str, access_token: str = ""
) -> tuple[str, str, str]:
    """Start a browser session; returns (cookie name, signed cookie value, CSRF token)."""
    web_session = await asyncio.to_thread(_create, hk, user, role, access_token)
    value = serializer(hk, "session").dumps(web_session.id)
    return SESSION_COOKIE, value, web_session.csrf_token


def _load(hk: HubkeeperState, session_id: str) -> WebSession | None:
    with session_scope(hk.engine) as db:
        return db.get(WebSession, session_id)


def _save(hk: HubkeeperState, web_session: WebSession) -> None:
    with session_scope(hk.engine) as db:
        db.merge(web_session)


def _delete(hk: HubkeeperState, session_id: str) -> None:
    with session_scope(hk.engine) as db:
        found = db.get(WebSession, session_id)
        if found is not None:
            db.delete(found)


async def end_session(hk: HubkeeperState, cookie_value: str | None) -> None:
    session_id = _unsign(hk, cookie_value)
    if session_id:
        await asyncio.to_thread(_delete, hk, session_id)


def _unsign(hk: HubkeeperState, cookie_value: str | None) -> str | None:
    if not cookie_value:
        return None
    try:
        session_id = serializer(hk, "session").loads(
            cookie_value, max_age=int(SESSION_MAX_AGE.total_seconds())
        )
    except BadSignature:
        return None
    return session_id if isinstance(session_id, str) else None


async def load_session(hk: HubkeeperState, cookie_value: str | None) -> WebSession | None:
    """The live session behind a cookie, re-checked against the hub when it is due.

    The hub's word on who the person is (and which groups they are in) is re-read at least
    every `identity_recheck_seconds`; a token the hub no longer accepts ends the session, and
    one whose scopes no longer reach this service ends it with 403 `insufficient_scope`.
    If the hub cannot be reached the session keeps its last known role for now.
    """
    session_id = _unsign(hk, cookie_value)
    if not session_id:
        return None
    web_session = await asyncio.to_thread(_load, hk, session_id)
    if web_session is None:
        return None
    now = utcnow()
    if now - as_utc(web_session.created_at) > SESSION_MAX_AGE:
        await asyncio.to_thread(_delete, hk, session_id)
        return None
    access_token = open_token(hk, web_session.access_token)
    if access_token is None:
        await asyncio.to_thread(_delete, hk, session_id)
        return None
    age = (now - as_utc(web_session.checked_at)).total_seconds()
    if age >= hk.settings.identity_recheck_seconds and access_token:
        try:
            identity = await hk.hub.identify(access_token)
        except Unauthenticated:
            log.info("Hub no longer accepts %s's token; ending the session", web_session.user)
            await asyncio.to_thread(_delete, hk, session_id)
            return None
        except HubUnavailable:
            return web_session
        if not reaches_service(identity.scopes, hk.settings.access_scopes):
            # The hub now says this token may not reach Hubkeeper (its scopes changed):
            # the session ends, as for a token the hub no longer accepts.
            log.info("%s's token lost the scope to reach Hubkeeper", web_session.user)
            await asyncio.to_thread(_delete, hk, session_id)
            require_access(identity, hk.settings.access_scopes)
        role = role_for(
            admin=identity.admin,
            groups=identity.groups,
            admin_groups=hk.settings.admin_groups,
            manager_groups=hk.settings.manager_groups,
        )
        web_session.role = role
        web_session.checked_at = now
        await asyncio.to_thread(_save, hk, web_session)
    return web_session


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected, str(given))
