"""Leader election: PostgreSQL advisory locks per loop name; SQLite always leads and warns
when a second process shares the file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from hubkeeper.db.engine import create_db_engine, normalise_url
from hubkeeper.loops.leader import Leader, lock_key
from tests.waiting import wait_for_async


def test_lock_keys_are_stable_signed_64_bit():
    assert lock_key("session-recorder") == lock_key("session-recorder")
    assert lock_key("session-recorder") != lock_key("culler")
    assert -(2**63) <= lock_key("culler") < 2**63


async def _runs(
    leader: Leader, name: str, ran: list[str], tag: str, lock: str | None = None
) -> asyncio.Task[None]:
    async def loop() -> None:
        while True:
            ran.append(tag)
            await asyncio.sleep(0.05)

    return asyncio.create_task(leader.run_as_leader(name, loop, interval=0.2, lock=lock))


@pytest.fixture
async def two_leaders(db_url) -> AsyncIterator[tuple[Leader, Leader]]:
    """Replicas a and b on one PostgreSQL database (each its own engine), closed after."""
    if not db_url.startswith("postgresql"):
        pytest.skip("advisory locks: PostgreSQL only")
    engines = [create_db_engine(db_url), create_db_engine(db_url)]
    a = Leader(engines[0], replica="a", interval=0.2)
    b = Leader(engines[1], replica="b", interval=0.2)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
        for engine in engines:
            engine.dispose()


async def test_one_of_two_leads_on_postgres_and_the_other_takes_over(db_url, two_leaders):
    a, b = two_leaders
    ran: list[str] = []
    task_a = await _runs(a, "ops-test-loop", ran, "a")
    await wait_for_async(lambda: a.is_leader("ops-test-loop"), 10, "a to lead", 0.05)
    task_b = await _runs(b, "ops-test-loop", ran, "b")
    try:
        await asyncio.sleep(1.0)
        assert a.is_leader("ops-test-loop") and not b.is_leader("ops-test-loop")
        assert "b" not in ran
        # A lost connection is lost leadership: terminate a's session from outside.
        admin = make_url(normalise_url(db_url)).set(drivername="postgresql")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute(
                # this test's database only: other tests (other workers) hold advisory
                # locks of their own on the same server
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = %s)",
                (make_url(normalise_url(db_url)).database,),
            )
        await wait_for_async(lambda: b.is_leader("ops-test-loop"), 10, "b to lead", 0.05)
        # a notices at its next check (within one interval, 0.2 s) and stops its loop
        await asyncio.sleep(0.2 + 0.5)
        ran.clear()
        await asyncio.sleep(0.6)
        assert not a.is_leader("ops-test-loop")
        assert set(ran) == {"b"}, "a's loop must have stopped when it lost the lock"
    finally:
        for task in (task_a, task_b):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_loop_under_another_loop_s_lock_runs_on_that_loop_s_replica(two_leaders):
    """The resource sampler leads under the kernel culler's lock (both mint server tokens,
    kept per replica): whichever replica takes the lock first runs both, never one each."""
    a, b = two_leaders
    ran: list[str] = []
    tasks = [await _runs(a, "ops-test-kernels", ran, "a-k")]
    try:
        await wait_for_async(lambda: a.is_leader("ops-test-kernels"), 10, "a to lead", 0.05)
        # b asks for the sampler first, alone for a while: a lock of the sampler's own would
        # be free, the shared one is not
        for leader, tag in ((b, "b-s"), (a, "a-s")):
            tasks.append(await _runs(leader, "ops-test-sampler", ran, tag, lock="ops-test-kernels"))
            await asyncio.sleep(0.6)
        await wait_for_async(lambda: a.is_leader("ops-test-sampler"), 10, "a to sample", 0.05)
        await asyncio.sleep(0.6)
        assert not b.is_leader("ops-test-sampler") and not b.is_leader("ops-test-kernels")
        assert "b-s" not in ran and {"a-k", "a-s"} <= set(ran)
    finally:
        for task in tasks:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_sqlite_always_leads_and_warns_about_a_second_process(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'hk.sqlite'}"
    engines = [create_db_engine(url), create_db_engine(url)]
    first = Leader(engines[0], replica="one")
    second = Leader(engines[1], replica="two")
    try:
        first.check_sqlite()
        assert not first.shared_sqlite
        with caplog.at_level(logging.WARNING, logger="hubkeeper.loops.leader"):
            second.check_sqlite()  # flock is per open file: the same as another process
        assert second.shared_sqlite
        assert "another process is using the SQLite database" in caplog.text
        assert await first.check("x") and await second.check("x")
    finally:
        await first.close()
        await second.close()
        for engine in engines:
            engine.dispose()
