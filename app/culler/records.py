"""What the culler did, in the database: one `cull_event` per server or kernel, one `cull_run`
per pass. Plain functions on an engine (call them in a thread from async code)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from hubkeeper.culler.decide import Cull
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import AuditEvent, CullEvent, CullRun
from hubkeeper.db.paging import fetch_page
from hubkeeper.kit.clock import as_utc, iso_utc


def event_of(cull: Cull, *, outcome: str, error: str, settings_json: str, actor: str) -> CullEvent:
    return CullEvent(
        kind=cull.kind,
        user=cull.user,
        server=cull.server,
        kernel_id=cull.kernel_id,
        reason=cull.reason,
        inactive_s=cull.inactive_s,
        age_s=cull.age_s,
        outcome=outcome,
        error=error,
        settings=settings_json,
        actor=actor,
        note=cull.note,
    )


def add_event(
    engine: Engine, cull: Cull, *, outcome: str, error: str, settings_json: str, actor: str
) -> CullEvent:
    event = event_of(cull, outcome=outcome, error=error, settings_json=settings_json, actor=actor)
    with session_scope(engine) as session:
        session.add(event)
    return event


# What a cull's record says until its outcome is known: written just before the hub (or the
# server) is asked, so a culler that dies mid-pass (a killed leader) leaves this, not nothing.
INTERRUPTED = "interrupted: the culler ended before the answer came (the stop may have happened)"


SETTLED_STOPPED = ""  # settled as ok: the hub, asked after a restart, had the server stopped
NOT_STOPPED = "interrupted: the culler ended before stopping it; the hub still ran it afterwards"
SETTLE_WINDOW = timedelta(days=1)  # interrupted records younger than this are settled
SETTLE_LIMIT = 500


def interrupted_server_culls(engine: Engine, now: datetime) -> list[CullEvent]:
    """Server culls still marked INTERRUPTED (their culler died before the answer), of the
    last `SETTLE_WINDOW`, oldest first, at most `SETTLE_LIMIT`."""
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(CullEvent)
                .where(
                    CullEvent.kind == "server",
                    CullEvent.error == INTERRUPTED,
                    col(CullEvent.at) >= now - SETTLE_WINDOW,
                )
                .order_by(col(CullEvent.at), col(CullEvent.id))
                .limit(SETTLE_LIMIT)
            ).all()
        )


def settle(engine: Engine, event_id: int, *, stopped: bool) -> bool:
    """Give an interrupted record its outcome from the hub's answer now: ok when the server
    is stopped, else an error saying it was not. False if another replica settled it first."""
    with session_scope(engine) as session:
        found = session.get(CullEvent, event_id)
        if found is None or found.error != INTERRUPTED:
            return False
        found.outcome = "ok" if stopped else "error"
        found.error = SETTLED_STOPPED if stopped else NOT_STOPPED
        session.add(found)
        return True


def add_pending(engine: Engine, event: CullEvent) -> int:
    """Write a cull's record before acting on it (outcome error, INTERRUPTED); its id."""
    with session_scope(engine) as session:
        session.add(event)
        session.flush()
        return int(event.id or 0)


def settle_batch(engine: Engine, rows: list[tuple[int | None, CullEvent, AuditEvent]]) -> None:
    """The outcomes of culls, in one transaction: each written-ahead record (by id) gets its
    outcome and error; a cull without one gets a new record. With their audit entries."""
    with session_scope(engine) as session:
        for row_id, event, entry in rows:
            found = session.get(CullEvent, row_id) if row_id else None
            if found is not None:
                found.outcome, found.error = event.outcome, event.error
                session.add(found)
            else:
                session.add(event)
            session.add(entry)


def add_batch(engine: Engine, rows: list[tuple[CullEvent, AuditEvent]]) -> None:
    """Cull events and their audit entries, in one transaction."""
    with session_scope(engine) as session:
        for event, entry in rows:
            session.add(event)
            session.add(entry)


def add_run(engine: Engine, run: CullRun) -> None:
    with session_scope(engine) as session:
        session.add(run)


def last_runs(engine: Engine) -> dict[str, CullRun | None]:
    """The newest recorded (not dry-run) pass of each kind: {"servers": ..., "kernels": ...}."""
    found: dict[str, CullRun | None] = {}
    with session_scope(engine) as session:
        for kind in ("servers", "kernels"):
            found[kind] = session.exec(
                select(CullRun)
                .where(CullRun.kind == kind, col(CullRun.dry_run).is_(False))
                .order_by(col(CullRun.started_at).desc(), col(CullRun.id).desc())
                .limit(1)
            ).first()
    return found


def run_dict(run: CullRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "kind": run.kind,
        "at": iso_utc(run.started_at),
        "finished_at": iso_utc(run.finished_at),
        "duration_s": round(run.duration_s, 3),
        "actor": run.actor,
        "culled": run.culled,
        "errors": run.errors,
        "error": run.error or None,
    }


def last_run_dict(engine: Engine) -> dict[str, Any] | None:
    """The contract's `last_run`: the newest pass (servers or kernels), with both kinds'
    newest passes under `servers` / `kernels`."""
    runs = last_runs(engine)
    newest = max(
        (r for r in runs.values() if r is not None),
        key=lambda r: as_utc(r.started_at),
        default=None,
    )
    if newest is None:
        return None
    out = run_dict(newest) or {}
    out["servers"] = run_dict(runs["servers"])
    out["kernels"] = run_dict(runs["kernels"])
    return out


def _filtered(
    *,
    user: str | None,
    kind: str | None,
    reason: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Any:
    query = select(CullEvent)
    if user:
        query = query.where(CullEvent.user == user)
    if kind:
        query = query.where(CullEvent.kind == kind)
    if reason:
        query = query.where(CullEvent.reason == reason)
    if outcome:
        query = query.where(CullEvent.outcome == outcome)
    if since:
        query = query.where(CullEvent.at >= since)
    if until:
        query = query.where(CullEvent.at < until)
    return query


def search(
    engine: Engine,
    *,
    user: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[CullEvent], int]:
    """Cull events, newest first, in `[since, until)`."""
    query = _filtered(
        user=user, kind=kind, reason=reason, outcome=outcome, since=since, until=until
    )
    with session_scope(engine) as session:
        return fetch_page(
            session,
            query,
            col(CullEvent.at).desc(),
            col(CullEvent.id).desc(),
            offset=offset,
            limit=limit,
        )


def per_day(
    engine: Engine,
    *,
    since: datetime,
    until: datetime,
    user: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
    outcome: str | None = None,
) -> list[tuple[date, int, int]]:
    """(UTC day, servers culled, kernels culled) for every day of `[since, until)`."""
    query = _filtered(
        user=user, kind=kind, reason=reason, outcome=outcome, since=since, until=until
    )
    counts: Counter[tuple[date, str]] = Counter()
    with session_scope(engine) as session:
        for event in session.exec(query).all():
            counts[(as_utc(event.at).date(), event.kind)] += 1
    days: list[tuple[date, int, int]] = []
    day = as_utc(since).date()
    last = (as_utc(until) - timedelta(microseconds=1)).date()
    while day <= last and len(days) < 400:
        days.append((day, counts[(day, "server")], counts[(day, "kernel")]))
        day += timedelta(days=1)
    return days
