"""Jobs and stop intents in the database: what one replica writes, another reads."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update

from hubkeeper.actions.stop import INTENT_TTL, take_intent, write_intent
from hubkeeper.db.engine import create_db_engine, migrate, session_scope
from hubkeeper.db.models import Job as JobRow
from hubkeeper.history.recorder import Close, Open, apply_ops
from hubkeeper.jobs import store
from hubkeeper.jobs.registry import JobRegistry
from hubkeeper.jobs.store import REPLICA_LOST, Job
from hubkeeper.kit.clock import utcnow
from tests.history.factories import at, sessions_of


def test_a_job_written_by_one_replica_is_read_by_another_and_finished_when_it_dies(db_url):
    migrate(db_url)
    engines = [create_db_engine(db_url), create_db_engine(db_url)]
    try:
        running_here = JobRegistry(engines[0], replica="a", lost_after=30)
        elsewhere = JobRegistry(engines[1], replica="b", lost_after=30)
        job = Job(
            id="ops-job-1",
            kind="stop_all",
            actor="admin",
            reason="test",
            total=3,
            targets=[["u1", "", "stopped"], ["u2", "gpu", "pending"], ["u3", "", "pending"]],
            replica="a",
        )
        store.insert(engines[0], job, keep_finished=3600)
        job.done, job.stopped = 1, 1
        store.save(engines[0], job)
        seen = elsewhere.get("ops-job-1")
        assert seen is not None and seen.as_dict() == {
            "state": "running",
            "total": 3,
            "done": 1,
            "failed": [],
        }
        assert running_here.get("nope") is None
        # replica a dies: its heartbeat stops
        with session_scope(engines[0]) as session:
            session.exec(
                update(JobRow)
                .where(JobRow.id == "ops-job-1")
                .values(heartbeat_at=utcnow() - timedelta(seconds=31))
            )
        lost = elsewhere.get("ops-job-1")
        assert lost is not None and lost.state == "done" and lost.done == 3
        assert lost.failed == [
            {"user": "u2", "server": "gpu", "error": REPLICA_LOST},
            {"user": "u3", "server": "", "error": REPLICA_LOST},
        ]
        again = running_here.get("ops-job-1")  # finished once, read the same everywhere
        assert again is not None and again.as_dict() == lost.as_dict()
        # a late save of the dead replica does not undo it
        job.done = 2
        store.save(engines[0], job)
        assert elsewhere.get("ops-job-1").as_dict() == lost.as_dict()  # type: ignore[union-attr]
        with session_scope(engines[0]) as session:
            row = session.get(JobRow, "ops-job-1")
            assert row is not None and json.loads(row.targets)[1][2] == "failed"
    finally:
        for engine in engines:
            engine.dispose()


def test_a_stop_intent_from_another_replica_gives_the_session_its_reason(db_url):
    migrate(db_url)
    engine = create_db_engine(db_url)
    try:
        apply_ops(engine, [Open("ops-int-ann", "", at("2026-11-01T10:00"), ("g1",))])
        # another replica asked the hub to stop it (this process knows nothing of it)
        write_intent(engine, "ops-int-ann", "", "admin", "boss")
        apply_ops(engine, [Close("ops-int-ann", "", utcnow(), "unknown", None)])
        row = sessions_of(engine, "ops-int-ann")[0]
        assert (row.stop_reason, row.stopped_by, row.groups) == ("admin", "boss", '["g1"]')
        # used once: the next unexplained stop is "unknown"
        apply_ops(engine, [Open("ops-int-ann", "", at("2026-11-01T12:00"))])
        apply_ops(engine, [Close("ops-int-ann", "", utcnow(), "unknown", None)])
        assert sessions_of(engine, "ops-int-ann")[1].stop_reason == "unknown"
        # an expired intent is not used
        write_intent(engine, "ops-int-ann", "", "lockdown", "old")
        with session_scope(engine) as session:
            later = utcnow() + timedelta(seconds=INTENT_TTL + 1)
            assert take_intent(session, "ops-int-ann", "", later) is None
    finally:
        engine.dispose()
