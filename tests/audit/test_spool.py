"""The audit spool: events kept while the database is down are written once it answers,
exactly once however often they are replayed; lines appended during a drain are kept."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlmodel import Session, select

from hubkeeper.actions.audit import audit, spool_of
from hubkeeper.actions.spool import AuditSpool
from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.db.models import AuditEvent
from hubkeeper.kit.actors import SystemActor
from hubkeeper.kit.clock import utcnow


def event(action: str = "server.stop", **changes: Any) -> dict[str, Any]:
    values = {
        "event_id": uuid.uuid4().hex,
        "at": utcnow(),
        "actor": "culler",
        "action": action,
        "target": "ann",
        "outcome": "ok",
        "detail": "",
        "error": "",
        "via": "system",
    }
    return values | changes


def actions(engine: Any) -> list[str]:
    with Session(engine) as session:
        rows = session.exec(select(AuditEvent).order_by(AuditEvent.at)).all()  # type: ignore[arg-type]
        return [row.action for row in rows]


def test_a_drain_writes_each_event_once_and_keeps_a_torn_line(db_url, tmp_path: Path):
    migrate(db_url)
    engine = create_db_engine(db_url)
    spool = AuditSpool(tmp_path / "spool.jsonl")
    first, second = event("server.stop"), event("user.cull")
    spool.append(first)
    spool.append(second)
    assert spool.path.stat().st_mode & 0o777 == 0o600
    with open(spool.path, "ab") as handle:  # a crash in the middle of an append
        handle.write(b'{"event_id": "torn')
    assert spool.drain(engine) == 2
    assert actions(engine) == ["server.stop", "user.cull"]
    assert spool.path.read_bytes() == b'{"event_id": "torn'
    # Replayed (a crash after inserting, before the cut): still once each.
    spool.path.write_text("")
    spool.append(first)
    spool.append(second)
    assert spool.drain(engine) == 2
    assert actions(engine) == ["server.stop", "user.cull"]
    assert not spool.pending()
    engine.dispose()


def test_lines_appended_during_a_drain_wait_for_the_next(db_url, tmp_path: Path):
    migrate(db_url)
    engine = create_db_engine(db_url)
    spool = AuditSpool(tmp_path / "spool.jsonl")
    spool.append(event("server.stop"))
    insert = spool._insert_line
    late = event("lockdown.on")

    def insert_and_append(engine: Any, raw: bytes) -> None:
        insert(engine, raw)
        spool.append(late)  # another thread writes while this drain runs

    spool._insert_line = insert_and_append  # type: ignore[method-assign]
    assert spool.drain(engine) == 1
    assert json.loads(spool.path.read_text())["event_id"] == late["event_id"]
    spool._insert_line = insert  # type: ignore[method-assign]
    assert spool.drain(engine) == 1
    assert actions(engine) == ["server.stop", "lockdown.on"]
    engine.dispose()


def test_an_unreadable_line_is_set_aside_not_blocking(db_url, tmp_path: Path):
    migrate(db_url)
    engine = create_db_engine(db_url)
    spool = AuditSpool(tmp_path / "spool.jsonl")
    spool.path.write_text("not json\n")
    spool.append(event("server.start"))
    assert spool.drain(engine) == 2
    assert actions(engine) == ["server.start"]
    assert spool.path.with_name("spool.jsonl.rejected").read_text() == "not json\n"
    engine.dispose()


def test_audit_spools_while_sqlite_cannot_open_and_writes_later(db_url, tmp_path: Path):
    """SQLite's own outage: its file cannot be opened (here: a directory not there yet)."""
    good = create_db_engine(db_url)
    migrate(db_url)
    missing = create_db_engine(f"sqlite:///{tmp_path / 'gone' / 'hubkeeper.sqlite'}")
    settings = SimpleNamespace(audit_spool_path=tmp_path / "spool.jsonl")
    hk: Any = SimpleNamespace(engine=missing, settings=settings)
    asyncio.run(audit(hk, SystemActor("lockdown"), "server.stop", "ann", detail="locked"))
    assert spool_of(hk).pending()
    hk.engine = good  # the database is back: the next write brings the spool along
    asyncio.run(audit(hk, SystemActor("lockdown"), "server.stop", "bob"))
    assert not spool_of(hk).pending()
    assert sorted(actions(good)) == ["server.stop", "server.stop"]
    missing.dispose()
    good.dispose()
