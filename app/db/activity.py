"""Server activity in 5-minute buckets: one `server_activity` row per server per UTC day.

Each row holds two bitmaps of the day's 288 buckets (bit i = the bucket starting i * 300 s
after midnight UTC): `hub`, activity the hub or the proxy route reported (a server's
`last_activity` moving), and `kernels`, kernel activity the culler's kernel pass saw (a
kernel's `last_activity`, or a busy kernel). Stored little-endian with trailing zero bytes
dropped: at most 36 bytes each, so a year of a 10,000-user hub stays small (figures in
docs/performance.md).

`ActivityRecorder` (`hk.activity`) takes marks on the event loop (cheap: a set of buckets
already marked is kept, so a mark seen again costs nothing) and writes them in a worker
thread when flushed; it records only while `recording` (the replica leading the session
recorder sets it), so replicas that do not lead queue nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, insert, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import BacktestStale, ServerActivity
from hubkeeper.db.outage import is_unavailable, summary

log = logging.getLogger(__name__)

BUCKET = 300  # s per bucket
PER_DAY = 86400 // BUCKET  # 288 buckets a UTC day
HUB = "hub"
KERNELS = "kernels"
SOURCES = (HUB, KERNELS)
# s: a mark for a bucket older than this is late (the recorder was down with its marks
# kept, or history written after the fact): noted in `backtest_stale`
LATE_MARK = 1800
MARKED_MAX = 200_000  # remembered (server, source, bucket) marks before the memory is reset

Key = tuple[str, str, int]  # (user, server, day)


def bucket_of(at: datetime) -> int:
    """The bucket (5-minute steps since 1970-01-01 UTC) holding `at` (naive = UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp()) // BUCKET


def to_bytes(bits: int) -> bytes:
    """A day's bitmap as stored: little-endian, trailing zero bytes dropped (0 → b"")."""
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def from_bytes(data: bytes | None) -> int:
    return int.from_bytes(data or b"", "little")


@dataclass(slots=True)
class Marks:
    hub: int = 0
    kernels: int = 0


def write_marks(engine: Engine, marks: dict[Key, Marks]) -> None:
    """OR the marks into their rows (blocking: call in a worker thread). One transaction."""
    keys = list(marks)
    with session_scope(engine) as session:
        found: dict[Key, ServerActivity] = {}
        for start in range(0, len(keys), 300):  # bounded IN lists
            chunk = keys[start : start + 300]
            query = select(ServerActivity).where(
                tuple_(ServerActivity.user, ServerActivity.server, ServerActivity.day).in_(chunk)
            )
            for row in session.scalars(query):
                found[(row.user, row.server, row.day)] = row
        late: set[tuple[str, str, int]] = set()
        first_recent = (int(time.time()) - LATE_MARK) // BUCKET
        for key, mark in marks.items():
            row = found.get(key) or ServerActivity(user=key[0], server=key[1], day=key[2])
            old_hub, old_kernels = from_bytes(row.hub), from_bytes(row.kernels)
            new = (mark.hub & ~old_hub) | (mark.kernels & ~old_kernels)
            row.hub = to_bytes(old_hub | mark.hub)
            row.kernels = to_bytes(old_kernels | mark.kernels)
            session.add(row)
            base = key[2] * PER_DAY
            while new and base < first_recent:  # new marks in buckets over LATE_MARK old
                bit = new & -new
                bucket = base + bit.bit_length() - 1
                if bucket < first_recent:
                    late.add((key[0], key[1], bucket))
                new ^= bit
        if late:
            # the backtest summary of a closed session may have been built without them
            # (culler/backtest_summary.py builds it again)
            session.execute(
                insert(BacktestStale)
                .values([{"user": u, "server": s, "bucket": b} for u, s, b in sorted(late)])
                .prefix_with("OR IGNORE", dialect="sqlite")
                if session.get_bind().dialect.name == "sqlite"
                else pg_insert(BacktestStale)
                .values([{"user": u, "server": s, "bucket": b} for u, s, b in sorted(late)])
                .on_conflict_do_nothing()
            )


def read_days(
    engine: Engine, first_day: int, last_day: int, source: str
) -> Iterator[tuple[str, str, int, bytes]]:
    """(user, server, day, bitmap of `source`) for every row with `first_day <= day <=
    last_day`, as stored (blocking). Only the columns needed, not ORM objects: a year of a
    large hub is a million rows."""
    column = ServerActivity.__table__.c[source]  # type: ignore[attr-defined]
    table = ServerActivity.__table__  # type: ignore[attr-defined]
    query = select(table.c.user, table.c.server, table.c.day, column).where(
        and_(table.c.day >= first_day, table.c.day <= last_day, column != b"")
    )
    with engine.connect() as conn:
        for row in conn.execute(query).yield_per(20_000):
            yield row[0], row[1], row[2], row[3]


def delete_servers(engine: Engine, servers: Iterable[tuple[str, str]]) -> None:
    """Forget the activity of these (user, server) pairs (tests and tools)."""
    table = ServerActivity.__table__  # type: ignore[attr-defined]
    pairs = list(servers)
    if not pairs:
        return
    with engine.begin() as conn:
        conn.execute(
            table.delete().where(
                or_(*(and_(table.c.user == u, table.c.server == s) for u, s in pairs))
            )
        )


class ActivityRecorder:
    """Batches activity marks and writes them off the event loop; `hk.activity`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.recording = False
        self._queue: dict[Key, Marks] = {}
        self._marked: set[tuple[str, str, str, int]] = set()
        self._inflight: asyncio.Future[None] | None = None

    def note(self, user: str, server: str, at: datetime | None, source: str = HUB) -> None:
        """`user`'s `server` was used at `at` (UTC), as `source` (hub or kernels) saw it.
        Cheap and idempotent: a bucket already marked is not queued again."""
        if not self.recording or at is None:
            return
        bucket = bucket_of(at)
        seen = (user, server, source, bucket)
        if seen in self._marked:
            return
        if len(self._marked) >= MARKED_MAX:
            self._marked.clear()  # a mark seen again is then only written again (an OR)
        self._marked.add(seen)
        day, bit = divmod(bucket, PER_DAY)
        mark = self._queue.setdefault((user, server, day), Marks())
        if source == KERNELS:
            mark.kernels |= 1 << bit
        else:
            mark.hub |= 1 << bit

    def stop_recording(self) -> None:
        """This replica no longer leads: drop what is queued (the next leader records on)."""
        self.recording = False
        self._queue.clear()
        self._marked.clear()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def flush(self) -> None:
        """Write what is queued in a worker thread (shielded, like the session recorder's:
        a cancelled loop does not lose a batch being written). Failures keep the marks."""
        if self._inflight is not None and not self._inflight.done():
            await asyncio.shield(self._inflight)
        if not self._queue:
            return
        batch, self._queue = self._queue, {}
        self._inflight = asyncio.ensure_future(self._write(batch))
        await asyncio.shield(self._inflight)

    async def _write(self, batch: dict[Key, Marks]) -> None:
        try:
            await asyncio.to_thread(write_marks, self.engine, batch)
        except Exception as exc:
            if isinstance(exc, IntegrityError):
                log.warning("server activity: a concurrent write won; retrying")
            elif is_unavailable(exc):
                log.warning(
                    "database unavailable (%s): %d activity row(s) wait", summary(exc), len(batch)
                )
            else:
                log.exception("could not record %d activity row(s); will retry", len(batch))
            for key, mark in batch.items():  # merge back under what came meanwhile
                mine = self._queue.setdefault(key, Marks())
                mine.hub |= mark.hub
                mine.kernels |= mark.kernels
