"""API callers authenticate with a hub token; the hub says whose it is (cached briefly)."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict

from hubkeeper.hub.client import HubClient
from hubkeeper.hub.models import HubIdentity

MAX_CACHED_TOKENS = 10_000


class TokenCache:
    """token → identity for `ttl` seconds. Keys are hashes: raw tokens are never kept."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, HubIdentity]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    async def identify(self, hub: HubClient, token: str) -> HubIdentity:
        key = self._key(token)
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached and cached[0] > now:
            return cached[1]
        identity = await hub.identify(token)
        if self.ttl > 0:
            self._entries[key] = (now + self.ttl, identity)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_CACHED_TOKENS:
                self._entries.popitem(last=False)
        return identity


def token_from_header(value: str | None) -> str | None:
    """`Authorization: token X` or `Bearer X` → X."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and token.strip():
        return token.strip()
    return None
