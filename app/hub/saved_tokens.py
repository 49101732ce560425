"""Server tokens kept in the database, sealed (hubkeeper.kit.sealed), so that a restart, a
deploy or a new leader reuses the tokens minted before rather than minting every running
server's again: at 5,000 servers those paced mints take about half an hour, during which
the kernel culler and the resource sampler cannot read the servers still waiting.

Only an optimisation: every call here is blocking (run it in a thread), and a database that
fails costs nothing but the saving (logged at debug; the tokens stay in memory). A token
opens one user's server as that user, so it is sealed with a key from the cookie secret: a
copy of the database alone opens nothing, and a token sealed under another secret is
skipped (minted anew when used)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import SQLAlchemyError

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerToken
from hubkeeper.kit.clock import as_utc
from hubkeeper.kit.sealed import seal, unseal

log = logging.getLogger(__name__)

PURPOSE = "server-token"


class Saved(NamedTuple):
    """One server's token: when it expires and when it is to be renewed (UTC)."""

    user: str
    server: str
    token: str
    expires_at: datetime
    renew_at: datetime


class SavedTokens:
    """The `server_token` table, sealed with `secret` (Hubkeeper's cookie secret)."""

    def __init__(self, engine: Engine, secret: str) -> None:
        self.engine = engine
        self.secret = secret

    def load(self, now: datetime, *, lasting: float) -> list[Saved]:
        """The tokens that last `lasting` s after `now` (UTC) and open under this secret;
        [] when the database fails."""
        try:
            with session_scope(self.engine) as db:
                rows = db.execute(
                    select(ServerToken).where(
                        ServerToken.expires_at > now + timedelta(seconds=lasting)  # type: ignore[arg-type]
                    )
                ).scalars()
                found = [(r.user, r.server, r.sealed, r.expires_at, r.renew_at) for r in rows]
        except SQLAlchemyError as exc:
            log.debug("saved server tokens not read: %s", exc)
            return []
        kept = []
        for user, server, sealed, expires_at, renew_at in found:
            token = unseal(self.secret, PURPOSE, sealed)
            if token:  # None: sealed under another cookie secret
                kept.append(Saved(user, server, token, as_utc(expires_at), as_utc(renew_at)))
        if len(kept) < len(found):  # they are replaced as their servers are read
            log.info(
                "%d saved server tokens were sealed under another cookie secret: minted anew",
                len(found) - len(kept),
            )
        return kept

    def save(self, tokens: Iterable[Saved]) -> None:
        """Keep these (replacing what was kept for the same servers)."""
        rows = list(tokens)
        if not rows:
            return
        try:
            with session_scope(self.engine) as db:
                for row in rows:
                    db.merge(
                        ServerToken(
                            user=row.user,
                            server=row.server,
                            sealed=seal(self.secret, PURPOSE, row.token),
                            expires_at=row.expires_at,
                            renew_at=row.renew_at,
                        )
                    )
        except SQLAlchemyError as exc:  # another replica saved the same server first: fine
            log.debug("server tokens not saved: %s", exc)

    def forget(self, servers: Iterable[tuple[str, str]], *, expired_before: datetime) -> None:
        """Drop these servers' tokens (refused by their server), and every token expired by
        `expired_before` (UTC)."""
        try:
            with session_scope(self.engine) as db:
                for user, server in servers:
                    db.execute(
                        delete(ServerToken).where(
                            ServerToken.user == user,  # type: ignore[arg-type]
                            ServerToken.server == server,  # type: ignore[arg-type]
                        )
                    )
                db.execute(
                    delete(ServerToken).where(
                        ServerToken.expires_at <= expired_before  # type: ignore[arg-type]
                    )
                )
        except SQLAlchemyError as exc:
            log.debug("server tokens not forgotten: %s", exc)
