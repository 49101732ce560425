"""API callers authenticate with a hub token; the hub says whose it is (cached briefly).

A token is accepted only when the hub reports a scope for it that reaches this service, as
JupyterHub's own `HubAuth` does (jupyterhub/services/auth.py `HubAuth.access_scopes` and
`check_scopes`): `access:services!service=<name>` or the unfiltered `access:services`.
An admin's token limited to reading its own activity, or the per-server token a user's
server holds, says `"admin": true` at `/hub/api/user` but carries no such scope: 403.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from hubkeeper.errors import Forbidden, Unauthenticated
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.models import HubIdentity

MAX_CACHED_TOKENS = 10_000
# Tokens the hub refused are remembered this long (seconds), so a flood of bad tokens costs
# the hub one request per distinct token per interval; short, so a token created a moment
# after a typo'd request is not refused for long.
NEGATIVE_TTL_SECONDS = 10.0


def reaches_service(scopes: Iterable[str], access_scopes: Iterable[str]) -> bool:
    """Does a token holding `scopes` (as `/hub/api/user` reports them) reach this service?

    Like jupyterhub/scopes.py `_intersect_expanded_scopes` for this case: a held scope
    matches a required one when equal, or when it is the required scope without its filter
    (`access:services` covers `access:services!service=hubkeeper`). A filter other than the
    required one (another service's name) does not match.
    """
    held = set(scopes)
    return any(req in held or req.split("!", 1)[0] in held for req in access_scopes)


def require_access(identity: HubIdentity, access_scopes: Iterable[str]) -> None:
    """Raise 403 `insufficient_scope` unless the identity's token may reach this service."""
    if not reaches_service(identity.scopes, access_scopes):
        raise Forbidden(
            f"This token of {identity.name} lacks the scope to use Hubkeeper "
            "(access:services!service=<name>); ask the hub for a token that has it",
            code="insufficient_scope",
        )


class TokenCache:
    """token → identity for `ttl` seconds, refusals for `negative_ttl` seconds.

    Keys are hashes: raw tokens are never kept. Both maps are bounded (oldest out first), so
    a flood of random tokens cannot grow memory.
    """

    def __init__(self, ttl: float, negative_ttl: float = NEGATIVE_TTL_SECONDS) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._entries: OrderedDict[str, tuple[float, HubIdentity]] = OrderedDict()
        self._refused: OrderedDict[str, float] = OrderedDict()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    async def identify(self, hub: HubClient, token: str) -> HubIdentity:
        """The hub's identity for `token`; raises Unauthenticated (`invalid_token`, 401)
        when the hub refuses it (also from the negative cache) and HubUnavailable (503)."""
        key = self._key(token)
        now = time.monotonic()
        refused_until = self._refused.get(key)
        if refused_until is not None:
            if refused_until > now:
                raise Unauthenticated("The hub does not accept this token", code="invalid_token")
            del self._refused[key]
        cached = self._entries.get(key)
        if cached and cached[0] > now:
            return cached[1]
        try:
            identity = await hub.identify(token)
        except Unauthenticated:
            if self.negative_ttl > 0:
                self._refused[key] = now + self.negative_ttl
                _trim(self._refused)
            raise
        if self.ttl > 0:
            self._entries[key] = (now + self.ttl, identity)
            self._entries.move_to_end(key)
            _trim(self._entries)
        return identity


def _trim(entries: OrderedDict[str, Any]) -> None:
    while len(entries) > MAX_CACHED_TOKENS:
        entries.popitem(last=False)


def token_from_header(value: str | None) -> str | None:
    """`Authorization: token X` or `Bearer X` → X."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and token.strip():
        return token.strip()
    return None
