"""Hub OAuth (authorization code + PKCE S256, client_secret_post) with authlib."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from hubkeeper.state import HubkeeperState


def safe_next(value: str | None, prefix: str) -> str:
    """Only paths under the service prefix (else the prefix itself): no scheme, no host, no
    `//` or backslash tricks, no `..` segments (also percent-encoded) that a browser would
    resolve to a user's server on the same origin."""
    if not value:
        return prefix
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return prefix
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return prefix
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return prefix
    path = unquote(parts.path)
    if "\\" in path or any(seg in (".", "..") for seg in path.split("/")):
        return prefix
    if not (path + "/").startswith(prefix) and path != prefix.rstrip("/"):
        return prefix
    return value


def callback_url(hk: HubkeeperState) -> str:
    return hk.settings.oauth_callback_url or hk.settings.service_prefix + "oauth_callback"


def oauth_client(hk: HubkeeperState) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=hk.settings.client_id,
        client_secret=hk.settings.hub_api_token,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
        redirect_uri=callback_url(hk),
        code_challenge_method="S256",
        timeout=hk.settings.hub_timeout,
    )


def authorize_url(hk: HubkeeperState, state: str, code_verifier: str) -> str:
    """The hub's authorize page, as the browser reaches it (public URL or same origin)."""
    endpoint = hk.settings.browser_hub_url + "/hub/api/oauth2/authorize"
    url, _ = oauth_client(hk).create_authorization_url(
        endpoint, state=state, code_verifier=code_verifier
    )
    return str(url)


def new_state() -> tuple[str, str]:
    """A random OAuth state and a PKCE code verifier."""
    return generate_token(32), generate_token(64)


async def exchange_code(hk: HubkeeperState, code: str, code_verifier: str) -> str:
    """Trade the code for an access token at the hub's (internal) token endpoint."""
    async with oauth_client(hk) as client:
        token = await client.fetch_token(
            hk.settings.hub_api_url.rstrip("/") + "/oauth2/token",
            grant_type="authorization_code",
            code=code,
            code_verifier=code_verifier,
        )
    return str(token["access_token"])
