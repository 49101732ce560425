"""One worker for each loop: the loops that record or change things run on one replica.

On PostgreSQL each loop name maps to a session-level advisory lock
(`pg_try_advisory_lock(key)`, key = the first 8 bytes of sha256("hubkeeper:" + name) as a
signed bigint), held on one dedicated connection of this replica. Every `interval` seconds a
replica that holds a lock checks its connection (`SELECT 1`: a live session still holds its
session locks); one that does not tries to take it. A lost connection is lost leadership: the
loop's task is cancelled at once and the replica tries again on a fresh connection. PostgreSQL
releases a dead session's locks when its connection closes, so another replica takes over
within one interval of the holder dying.

SQLite is single-process: this replica is always the leader. At start it takes an exclusive
`fcntl` lock on `<database>.lock` beside the file and logs a warning when another process
holds it (two Hubkeepers on one SQLite file would record every session twice).

Usage: `await hk.leader.run_as_leader("session-recorder", lambda: recorder.run(...))` as a
lifespan task (never returns; cancel it to stop), `hk.leader.is_leader(name)` for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, text

from hubkeeper.loops.retry import cancel_and_wait

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """The advisory lock key of a loop name: a signed 64-bit integer, stable across releases."""
    digest = hashlib.sha256(f"hubkeeper:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def sqlite_path(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


class Leader:
    """Leader election per loop name; `hk.leader`."""

    def __init__(self, engine: Engine, *, replica: str, interval: float = 5.0) -> None:
        self.engine = engine
        self.replica = replica
        self.interval = interval
        self.postgres = engine.dialect.name == "postgresql"
        self._held: dict[str, bool] = {}
        # a loop led under another loop's lock (`run_as_leader(lock=...)`): name -> lock name
        self._lock_of: dict[str, str] = {}
        self._conn: Connection | None = None
        self._db_lock = threading.Lock()  # the dedicated connection serves one call at a time
        self._sqlite_lock: IO[bytes] | None = None
        self.shared_sqlite = False  # another process held the SQLite file at start

    # --- reading ---------------------------------------------------------------------
    def is_leader(self, name: str) -> bool:
        return self._held.get(name, False)

    def loops(self) -> dict[str, bool]:
        """Every loop name this replica runs for, and whether it leads it now."""
        return dict(self._held)

    # --- SQLite ----------------------------------------------------------------------
    def check_sqlite(self) -> None:
        """Take the SQLite lock file; warn (once, at start) when another process has it."""
        path = sqlite_path(self.engine)
        if path is None or self._sqlite_lock is not None:
            return
        import fcntl

        try:
            handle = open(path.with_name(path.name + ".lock"), "wb")  # noqa: SIM115 - held
        except OSError as exc:  # a read-only directory: nothing to check against
            log.warning("cannot create the SQLite lock file beside %s: %s", path, exc)
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.shared_sqlite = True
            log.warning(
                "another process is using the SQLite database %s: SQLite is single-process, "
                "so both will record every session and run every loop; run one Hubkeeper on "
                "SQLite, or several on PostgreSQL",
                path,
            )
        self._sqlite_lock = handle

    # --- PostgreSQL (blocking: worker thread) ------------------------------------------
    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        for name in self._held:
            self._held[name] = False

    def _try(self, name: str) -> bool:
        with self._db_lock:
            try:
                if self._conn is None:
                    self._conn = self.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT"
                    )
                if self._held.get(name):
                    self._conn.execute(text("SELECT 1"))
                    return True
                # Session-level advisory locks are re-entrant: two loops of this replica
                # under one lock both hold it; another replica holds neither.
                key = lock_key(self._lock_of.get(name, name))
                got = self._conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
                ).scalar()
                return bool(got)
            except Exception as exc:
                if any(self._held.values()):
                    log.warning("lost the leader connection (%s): leading nothing now", exc)
                self._drop_connection()
                return False

    def _release_all(self) -> None:
        with self._db_lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            self._drop_connection()

    async def check(self, name: str) -> bool:
        """Hold (or take) the lock of `name` now; False when another replica holds it or the
        database cannot be reached."""
        if not self.postgres:
            self._held[name] = True
            return True
        held = await asyncio.to_thread(self._try, name)
        was = self._held.get(name, False)
        self._held[name] = held
        if held and not was:
            log.info("replica %s now leads %s", self.replica, name)
        elif was and not held:
            log.warning("replica %s no longer leads %s", self.replica, name)
        return held

    # --- running a loop ------------------------------------------------------------------
    async def run_as_leader(
        self,
        name: str,
        loop_factory: Callable[[], Awaitable[Any]],
        interval: float | None = None,
        otherwise: Callable[[], Awaitable[Any]] | None = None,
        lock: str | None = None,
    ) -> None:
        """Run `loop_factory()` while this replica leads `name`, and `otherwise()` (if given)
        while another replica does; never returns. `lock`: lead under that loop's lock
        instead of one of its own, so both loops run on the same replica.

        Checked every `interval` seconds (default: the leader interval). Leadership lost or
        won → the running task is cancelled and the other one started; a task ending on its
        own (a crash) → logged and started again at the next check.
        """
        every = interval or self.interval
        self._held.setdefault(name, False)
        if lock is not None:
            self._lock_of[name] = lock
        task: asyncio.Task[Any] | None = None
        task_leads = False
        try:
            while True:
                leading = await self.check(name)
                if task is not None and task.done():
                    if not task.cancelled() and task.exception() is not None:
                        log.error("loop %s ended: %r; restarting it", name, task.exception())
                    task = None
                if task is not None and task_leads != leading:
                    await cancel_and_wait(task)
                    task = None
                if task is None:
                    factory = loop_factory if leading else otherwise
                    if factory is not None:
                        task, task_leads = asyncio.ensure_future(factory()), leading
                await asyncio.sleep(every)
        finally:
            if task is not None:
                await cancel_and_wait(task)
            self._held[name] = False

    async def close(self) -> None:
        """Give every lock back (at shutdown), so another replica takes over at once."""
        if self.postgres:
            await asyncio.to_thread(self._release_all)
        if self._sqlite_lock is not None:
            self._sqlite_lock.close()
            self._sqlite_lock = None
