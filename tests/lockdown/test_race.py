"""Two locks at the same instant: exactly one active lockdown and one 409, decided by the
database's unique index on the active row (no check-then-insert), on SQLite and PostgreSQL.

Each racer is its own Hubkeeper state (own engine, own event loop, own thread), as two
replicas or two CLI invocations would be; a barrier releases them together.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from hubkeeper.config import Settings
from hubkeeper.db.engine import create_db_engine, migrate, session_scope
from hubkeeper.db.models import Lockdown
from hubkeeper.errors import Conflict
from hubkeeper.kit.actors import SystemActor
from hubkeeper.lockdown import service
from hubkeeper.state import cli_state

ROUNDS = 5


def settings_for(db_url: str) -> Settings:
    # No hub is asked: the locks keep servers, so only the database is used.
    return Settings(
        JUPYTERHUB_API_URL="http://127.0.0.1:9/hub/api",
        JUPYTERHUB_API_TOKEN="unused",
        HUBKEEPER_DATABASE_URL=db_url,
    )


def race(db_url: str, action: str, racers: int = 2) -> list[Any]:
    """Run `action` ("lock" | "unlock") in `racers` threads at once; each result or error."""
    barrier = threading.Barrier(racers)
    results: list[Any] = [None] * racers

    async def one(i: int) -> None:
        hk = cli_state(settings_for(db_url))
        who = SystemActor(f"lock-racer-{i}", via="api")
        try:
            await asyncio.to_thread(barrier.wait)
            if action == "lock":
                results[i] = await service.lock(hk, who, f"race {i}", stop_servers=False)
            else:
                results[i] = await service.unlock(hk, who)
        except Exception as exc:  # a Conflict is expected; anything else shows in the assert
            results[i] = exc
        finally:
            await hk.hub.aclose()
            hk.engine.dispose()

    threads = [threading.Thread(target=asyncio.run, args=(one(i),)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def active_rows(db_url: str) -> list[Lockdown]:
    engine = create_db_engine(db_url)
    try:
        with session_scope(engine) as session:
            query = select(Lockdown).where(col(Lockdown.ended_at).is_(None))
            return list(session.exec(query).all())
    finally:
        engine.dispose()


def test_two_locks_at_once_give_one_lockdown_and_one_conflict(db_url):
    migrate(db_url)
    for _ in range(ROUNDS):
        results = race(db_url, "lock")
        conflicts = [r for r in results if isinstance(r, Conflict)]
        locked = [r for r in results if isinstance(r, service.LockResult)]
        assert len(locked) == 1 and len(conflicts) == 1, results
        assert conflicts[0].code == "already_locked" and conflicts[0].status_code == 409
        rows = active_rows(db_url)
        assert [r.id for r in rows] == [locked[0].state.id]

        lifted = race(db_url, "unlock")
        assert sorted(type(r).__name__ for r in lifted) == ["Conflict", "Lockdown"]
        assert active_rows(db_url) == []


def test_the_database_refuses_a_second_active_row(db_url):
    """The guard is the index itself: even a writer that skips the service cannot add one."""
    migrate(db_url)
    engine = create_db_engine(db_url)
    try:
        with session_scope(engine) as session:
            session.add(Lockdown(reason="first", started_by="lock-test"))
        with pytest.raises(IntegrityError), session_scope(engine) as session:
            session.add(Lockdown(reason="second", started_by="lock-test"))
    finally:
        engine.dispose()


def test_lifting_ends_every_active_row(db_url):
    """Rows left active by an older version (before the index) are all ended by one lift."""
    migrate(db_url)
    engine = create_db_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX uq_lockdown_active")
        with session_scope(engine) as session:
            session.add(Lockdown(reason="old one", started_by="lock-test"))
            session.add(Lockdown(reason="old two", started_by="lock-test"))
        ended = asyncio.run(_unlock(db_url))
        assert ended.ended_by == "lock-lifter"
        assert active_rows(db_url) == []
    finally:
        engine.dispose()


async def _unlock(db_url: str) -> Lockdown:
    hk = cli_state(settings_for(db_url))
    try:
        return await service.unlock(hk, SystemActor("lock-lifter", via="api"))
    finally:
        await hk.hub.aclose()
        hk.engine.dispose()
