"""The audit spool: audit events that could not be written because the database was down,
kept in a local append-only JSON-lines file until it answers again.

Each line is one event with its `event_id` and the time it happened. `append` fsyncs before
it returns, so an event the process has acknowledged survives a crash; `drain` inserts the
lines with "insert unless this event_id is there" and only then cuts them from the file, so
a drain interrupted anywhere (a crash, the database going away again) is replayed without
doubling a record. The file holds only what the database missed: on a healthy system it is
empty or absent.

One file per Hubkeeper process directory (`Settings.audit_spool_path`); a thread lock and an
`fcntl` lock beside it keep threads and processes sharing it from interleaving.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from hubkeeper.db.models import AuditEvent
from hubkeeper.db.outage import is_unavailable

log = logging.getLogger(__name__)

FIELDS = ("event_id", "at", "actor", "action", "target", "outcome", "detail", "error", "via")


class AuditSpool:
    """Append-only, fsynced JSON lines at `path`; `drain(engine)` moves them into audit_event."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._draining = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_name(self.path.name + ".lock"), "wb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                yield

    def append(self, event: dict[str, Any]) -> None:
        """Keep one event (FIELDS; `at` a datetime) on disk; returns once it is fsynced."""
        line = json.dumps({**event, "at": event["at"].isoformat()}, separators=(",", ":"))
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)

    def pending(self) -> bool:
        """Are there events waiting (a stat, cheap enough to ask after every audit write)?"""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def drain(self, engine: Engine) -> int:
        """Insert every spooled event not in the database yet; returns how many lines were
        handled. Raises the database's error (lines kept) when it is still unavailable. One
        drain at a time; a second caller returns 0 at once."""
        if not self._draining.acquire(blocking=False):
            return 0
        try:
            with self._locked():
                try:
                    data = self.path.read_bytes()
                except FileNotFoundError:
                    return 0
            done = data.rfind(b"\n") + 1  # a torn last line (a crash mid-append) waits
            lines = data[:done].splitlines()
            for raw in lines:
                self._insert_line(engine, raw)
            self._cut(done)
            if lines:
                log.info("wrote %d audit event(s) kept while the database was down", len(lines))
            return len(lines)
        finally:
            self._draining.release()

    def _insert_line(self, engine: Engine, raw: bytes) -> None:
        try:
            event = json.loads(raw)
            values = {key: event.get(key) or "" for key in FIELDS}
            values["at"] = datetime.fromisoformat(event["at"])
        except (ValueError, KeyError, TypeError):
            log.error("audit spool %s: unreadable line kept aside: %r", self.path, raw[:200])
            self._reject(raw)
            return
        try:
            insert_once(engine, values)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            # A value the database refuses would block every later line forever.
            log.exception("audit spool %s: the database refused an event; kept aside", self.path)
            self._reject(raw)

    def _reject(self, raw: bytes) -> None:
        rejected = self.path.with_name(self.path.name + ".rejected")
        with open(rejected, "ab") as handle:
            handle.write(raw + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _cut(self, done: int) -> None:
        """Drop the first `done` bytes (inserted), keeping lines appended meanwhile."""
        if done == 0:
            return
        with self._locked():
            rest = self.path.read_bytes()[done:]
            fresh = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, rest)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(fresh, self.path)


def insert_once(engine: Engine, values: dict[str, Any]) -> None:
    """INSERT the event unless one with its event_id is there (both databases' ON CONFLICT)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(AuditEvent.__table__)  # type: ignore[attr-defined]
        .values(**values)
        .on_conflict_do_nothing(index_elements=["event_id"])
    )
    with engine.begin() as conn:
        conn.execute(statement)


_spools: dict[Path, AuditSpool] = {}
_spools_lock = threading.Lock()


def spool_at(path: Path) -> AuditSpool:
    """The one spool object for a file (its thread lock must be shared by all writers)."""
    key = path.absolute()
    with _spools_lock:
        found = _spools.get(key)
        if found is None:
            found = _spools[key] = AuditSpool(key)
        return found
