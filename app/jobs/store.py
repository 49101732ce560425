"""The `job` table: one row per job, written by the replica running it, read by any replica.

Progress is a snapshot (`targets`: [[user, server, "pending"|"stopped"|"failed"], ...] plus
the counters) saved with a heartbeat. A running job whose heartbeat is older than
`lost_after` seconds belongs to a replica that died: the first reader finishes it, reporting
the servers still pending as failed with "replica lost". All functions block (worker thread
or a quick indexed read on the loop).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, update
from sqlmodel import col, select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import Job as JobRow
from hubkeeper.kit.clock import as_utc, utcnow

REPLICA_LOST = "replica lost"


@dataclass
class Job:
    """A job as the API shows it (`as_dict()` is the contract's `GET jobs/{id}`)."""

    id: str
    kind: str
    actor: str
    reason: str = ""
    state: str = "running"  # running | done
    total: int = 0
    done: int = 0  # handled so far, failures included
    stopped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    targets: list[list[str]] = field(default_factory=list)  # [user, server, state]
    replica: str = ""
    created_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "failed": list(self.failed),
        }


def _of(row: JobRow) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        actor=row.actor,
        reason=row.reason,
        state=row.state,
        total=row.total,
        done=row.done,
        stopped=row.stopped,
        failed=json.loads(row.failed or "[]"),
        targets=json.loads(row.targets or "[]"),
        replica=row.replica,
        created_at=as_utc(row.created_at),
        finished_at=as_utc(row.finished_at) if row.finished_at else None,
    )


def insert(engine: Engine, job: Job, *, keep_finished: float) -> None:
    """Store a new job; forget jobs finished more than `keep_finished` seconds ago."""
    now = utcnow()
    with session_scope(engine) as session:
        session.exec(
            delete(JobRow).where(
                col(JobRow.state) == "done",
                col(JobRow.finished_at) < now - timedelta(seconds=keep_finished),
            )
        )
        session.add(
            JobRow(
                id=job.id,
                kind=job.kind,
                actor=job.actor,
                reason=job.reason,
                state=job.state,
                total=job.total,
                targets=json.dumps(job.targets),
                replica=job.replica,
                created_at=job.created_at,
                heartbeat_at=now,
            )
        )


def save(engine: Engine, job: Job) -> None:
    """Write the job's progress and a heartbeat. A job another replica already finished (as
    lost) stays finished."""
    values: dict[str, Any] = {
        "state": job.state,
        "done": job.done,
        "stopped": job.stopped,
        "failed": json.dumps(job.failed),
        "targets": json.dumps(job.targets),
        "heartbeat_at": utcnow(),
        "finished_at": job.finished_at,
    }
    with session_scope(engine) as session:
        session.exec(
            update(JobRow)
            .where(col(JobRow.id) == job.id, col(JobRow.state) == "running")
            .values(**values)
        )


def finish_lost(job: Job, now: datetime) -> Job:
    """The job with every pending server failed as "replica lost", done."""
    for target in job.targets:
        if target[2] == "pending":
            target[2] = "failed"
            job.failed.append({"user": target[0], "server": target[1], "error": REPLICA_LOST})
    job.done = job.total
    job.state = "done"
    job.finished_at = now
    return job


def load(engine: Engine, job_id: str, *, lost_after: float) -> Job | None:
    """The job with this id, or None; a running job without a heartbeat for `lost_after`
    seconds is finished here (once: the update only applies while it is still running)."""
    with session_scope(engine) as session:
        row = session.get(JobRow, job_id)
        if row is None:
            return None
        job = _of(row)
        now = utcnow()
        if row.state == "running" and as_utc(row.heartbeat_at) < now - timedelta(
            seconds=lost_after
        ):
            finish_lost(job, now)
            session.exec(
                update(JobRow)
                .where(col(JobRow.id) == job_id, col(JobRow.state) == "running")
                .values(
                    state="done",
                    done=job.done,
                    failed=json.dumps(job.failed),
                    targets=json.dumps(job.targets),
                    finished_at=now,
                )
            )
        return job


def recent(engine: Engine, *, limit: int = 50) -> list[Job]:
    """The newest jobs first."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(JobRow).order_by(col(JobRow.created_at).desc()).limit(limit)
        ).all()
        return [_of(r) for r in rows]
