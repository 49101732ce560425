"""With HUBKEEPER_COOKIE_SECRET unset, replicas sharing a PostgreSQL database generate one
cookie secret between them (kept in `stored_secret`), so a cookie one issued is accepted by
the others; on SQLite the secret stays in its file, as documented."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hubkeeper.auth.secret import COOKIE_SECRET, shared_secret
from hubkeeper.auth.sessions import issue_session
from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.main import create_app


def replica(make_settings: Any, db_url: str, secret_file: Path) -> Any:
    settings = make_settings(
        db_url, HUBKEEPER_COOKIE_SECRET="", HUBKEEPER_COOKIE_SECRET_FILE=str(secret_file)
    )
    return create_app(settings)


def test_a_cookie_from_one_replica_is_accepted_by_another(db_url, make_settings, tmp_path):
    postgres = db_url.startswith("postgresql")
    # Each PostgreSQL replica has a disk of its own (a pod); on SQLite they share the file.
    files = [tmp_path / "a" / "secret", tmp_path / ("b" if postgres else "a") / "secret"]
    one, two = (replica(make_settings, db_url, path) for path in files)
    with TestClient(one) as first, TestClient(two) as second:
        secret = one.state.hk.cookie_secret
        assert len(secret) == 64 and two.state.hk.cookie_secret == secret
        assert [path.exists() for path in files] == [not postgres, not postgres]
        name, value, _ = asyncio.run(issue_session(one.state.hk, user="ann", role="admin"))
        for client in (first, second):
            client.cookies.set(name, value)
            me = client.get("/api/v1/me")
            assert me.status_code == 200, me.text
            assert me.json() == {"name": "ann", "role": "admin"}


def test_an_existing_secret_file_is_still_used_and_shared(db_url, make_settings, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("the file form on SQLite is tests/test_config.py's")
    old = tmp_path / "old" / "secret"
    old.parent.mkdir()
    old.write_text("f" * 64 + "\n")
    with_file = replica(make_settings, db_url, old)
    without = replica(make_settings, db_url, tmp_path / "new" / "secret")
    with TestClient(with_file), TestClient(without):
        assert with_file.state.hk.cookie_secret == "f" * 64
        assert without.state.hk.cookie_secret == "f" * 64  # seeded from the file


def test_replicas_racing_to_create_the_secret_agree(db_url):
    migrate(db_url)
    engines = [create_db_engine(db_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            got = list(
                pool.map(
                    lambda i: shared_secret(engines[i], COOKIE_SECRET, f"candidate-{i}"), range(4)
                )
            )
        assert len(set(got)) == 1 and got[0].startswith("candidate-")
        assert shared_secret(engines[0], COOKIE_SECRET, "late") == got[0]
    finally:
        for engine in engines:
            engine.dispose()
