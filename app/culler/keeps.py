"""Keeps: "keep running" postpones a server's idle culling by `keep_s` seconds, at most
`max_keeps` times per server start (the count's key is the hub's `started` of that server,
so a new start begins a new count). Stored in `cull_keep`, shared by every replica; numbered
per start with a unique index, so two replicas never both give the last keep. Max age is
never postponed (decide.py applies keeps to the idle path only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from hubkeeper.db.models import CullKeep
from hubkeeper.errors import Conflict
from hubkeeper.hub.models import HubServer
from hubkeeper.kit.clock import as_utc


@dataclass(frozen=True)
class KeepState:
    """The keeps of one server start: how many were given, and the latest one's end (UTC)."""

    started: str
    count: int
    until: datetime | None


Keeps = dict[tuple[str, str], KeepState]  # (user, server) → the keeps of its current start


def start_key(server: HubServer) -> str:
    """The count's key: the server's start as ISO 8601 UTC ("" when the hub gives none)."""
    return "" if server.started is None else as_utc(server.started).isoformat()


def of(keeps: Keeps | None, user: str, server: HubServer) -> KeepState | None:
    """The keeps of `server`'s current start (None: none, or given to an earlier start)."""
    found = (keeps or {}).get((user, server.name))
    if found is None or found.started != start_key(server):
        return None
    return found


def _grouped(session: Session, *where: object) -> Keeps:
    rows = session.exec(
        select(  # type: ignore[call-overload]
            CullKeep.user,
            CullKeep.server,
            CullKeep.started,
            func.max(CullKeep.n),
            func.max(CullKeep.until),
        )
        .where(*where)
        .group_by(CullKeep.user, CullKeep.server, CullKeep.started)
    ).all()
    found: Keeps = {}
    for user, server, started, count, until in rows:
        state = KeepState(started, int(count), as_utc(until) if until is not None else None)
        old = found.get((user, server))
        # several starts with keeps in force: the latest start is the running one
        if old is None or started > old.started:
            found[(user, server)] = state
    return found


def in_force(engine: Engine, now: datetime) -> Keeps:
    """The keeps still postponing a cull at `now` (UTC), by (user, server): what a pass reads."""
    with Session(engine) as session:
        return _grouped(session, col(CullKeep.until) > now)


def for_user(engine: Engine, user: str) -> Keeps:
    """Every start's keeps of `user`'s servers (the latest start of each server)."""
    with Session(engine) as session:
        return _grouped(session, col(CullKeep.user) == user)


def add(
    engine: Engine,
    *,
    user: str,
    server: HubServer,
    now: datetime,
    keep_s: int,
    max_keeps: int,
    actor: str,
) -> tuple[datetime, int]:
    """Give `server` of `user` one keep: idle culling waits until now + `keep_s` seconds.
    Returns (keep_until UTC, keeps left in this start). Raises Conflict `too_many_keeps` when
    `max_keeps` were given since the server started (also when another replica gave the last
    one at the same moment)."""
    started = start_key(server)
    until = as_utc(now) + timedelta(seconds=keep_s)
    with Session(engine) as session:
        used = session.exec(
            select(func.count())
            .select_from(CullKeep)
            .where(
                col(CullKeep.user) == user,
                col(CullKeep.server) == server.name,
                col(CullKeep.started) == started,
            )
        ).one()
        if used >= max_keeps:
            raise too_many(max_keeps)
        session.add(
            CullKeep(
                user=user,
                server=server.name,
                started=started,
                n=used + 1,
                at=now,
                until=until,
                actor=actor,
            )
        )
        try:
            session.commit()
        except IntegrityError:
            raise too_many(max_keeps) from None
    return until, max(0, max_keeps - used - 1)


def too_many(max_keeps: int) -> Conflict:
    return Conflict(
        f"This server was already kept {max_keeps} time(s) since it started (max_keeps); "
        "use it, or start it again",
        code="too_many_keeps",
    )
