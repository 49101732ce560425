"""Server tokens are kept in the database, sealed (hub/saved_tokens.py): a restart or a new
leader takes them instead of minting every running server's again. A stand-in hub counts the
mints; the database is real (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.hub import server_tokens
from hubkeeper.hub.saved_tokens import SavedTokens
from hubkeeper.hub.server_tokens import ServerTokens
from hubkeeper.kit.clock import utcnow
from hubkeeper.main import create_app
from tests.hub.test_token_pace import SlowHub

SECRET = "a-cookie-secret"


def servers(n: int) -> list[tuple[str, str]]:
    return [(f"u{i}", "gpu" if i % 2 else "") for i in range(n)]


async def test_a_restart_takes_the_tokens_minted_before_and_mints_none(db_url):
    migrate(db_url)
    engine = create_db_engine(db_url)
    try:
        first_hub = SlowHub()
        before = ServerTokens(first_hub)  # type: ignore[arg-type]
        assert await before.keep_in(SavedTokens(engine, SECRET)) == 0
        wanted = servers(3 * server_tokens.BATCH)
        assert await before.prefetch(wanted) == len(wanted)
        await before.saved_all()
        # nothing readable in the table without the secret
        with engine.connect() as conn:
            sealed = [r[0] for r in conn.execute(text("SELECT sealed FROM server_token"))]
        assert len(sealed) == len(wanted) and not any("t-u" in s for s in sealed)

        hub = SlowHub()
        after = ServerTokens(hub)  # type: ignore[arg-type]
        assert await after.keep_in(SavedTokens(engine, SECRET)) == len(wanted)
        assert after.missing(wanted) == []  # renewals are not due yet: nothing to mint
        assert await after.prefetch(wanted) == 0 and hub.calls == []
        assert await after.token("u1", "gpu") == "t-u1" and hub.one_by_one == []
        # their renewals are where the first left them, not all at once
        assert after._renew_at == before._renew_at or all(
            abs(after._renew_at[k] - before._renew_at[k]) < 2 for k in wanted
        )
    finally:
        engine.dispose()


async def test_tokens_sealed_under_another_secret_refused_or_expired_are_minted_anew(db_url):
    migrate(db_url)
    engine = create_db_engine(db_url)
    try:
        first = ServerTokens(SlowHub())  # type: ignore[arg-type]
        await first.keep_in(SavedTokens(engine, SECRET))
        await first.prefetch(servers(4))
        first.forget("u0", "")  # its server refused it
        await first.saved_all()
        # another secret opens none of them
        assert await ServerTokens(SlowHub()).keep_in(SavedTokens(engine, "other")) == 0  # type: ignore[arg-type]
        # one that expires within TOKEN_MARGIN is not taken either
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE server_token SET expires_at = :t WHERE \"user\" = 'u1'"),
                {"t": utcnow() + timedelta(seconds=server_tokens.TOKEN_MARGIN - 10)},
            )
        hub = SlowHub()
        again = ServerTokens(hub)  # type: ignore[arg-type]
        assert await again.keep_in(SavedTokens(engine, SECRET)) == 2  # u2, u3
        assert await again.prefetch(servers(4)) == 2 and [n for *_, n in hub.calls] == [2]
    finally:
        engine.dispose()


async def test_a_database_that_fails_costs_only_the_saving(tmp_path):
    # a database with no tables: every read and write fails
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    try:
        hub = SlowHub()
        tokens = ServerTokens(hub)  # type: ignore[arg-type]
        assert await tokens.keep_in(SavedTokens(engine, SECRET)) == 0
        assert await tokens.prefetch(servers(3)) == 3
        assert await tokens.token("u9", "") == "one-u9"
        tokens.forget("u0", "")
        await tokens.saved_all()  # none of it raised
        assert tokens.usable(("u1", "gpu"))
    finally:
        engine.dispose()


RESTARTED = "saved-token-ann"


def test_a_restarted_hubkeeper_reads_a_server_with_the_token_it_minted_before(hub, make_settings):
    """Against the real hub: the saved token still opens the server after a restart."""
    hub.create_users([RESTARTED])
    hub.start_server(RESTARTED)
    settings = make_settings()
    admin = {"Authorization": f"token {hub.user_token('admin')}"}
    try:
        minted = []
        for _run in range(2):
            with TestClient(create_app(settings)) as client:
                log = client.get(f"api/v1/users/{RESTARTED}/logs", headers=admin)
                assert log.status_code == 200, log.text
                minted.append(client.app.state.hk.servers.tokens.minted)  # type: ignore[attr-defined]
        assert minted == [1, 0]
    finally:
        hub.stop_server(RESTARTED)
