"""Secrets kept in the database sealed with a key derived from Hubkeeper's cookie secret
(Fernet: AES-128-CBC with an HMAC, so a changed byte fails to open): a copy of the database
is no key to the hub nor to users' servers. Each purpose derives its own key."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


def _fernet(secret: str, purpose: str) -> Fernet:
    key = hashlib.sha256(f"hubkeeper.{purpose}:".encode() + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: str, purpose: str, value: str) -> str:
    """`value` encrypted under (`secret`, `purpose`); "" stays ""."""
    return _fernet(secret, purpose).encrypt(value.encode()).decode() if value else ""


def unseal(secret: str, purpose: str, sealed: str) -> str | None:
    """What `seal` sealed, or None when it cannot be opened (another secret or purpose, or
    altered); "" stays ""."""
    if not sealed:
        return ""
    try:
        return _fernet(secret, purpose).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None
