"""`hubkeeper cull [--dry-run]` as a real process against the real hub."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from sqlmodel import Session, select

from hubkeeper.culler import keeps
from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.db.models import AuditEvent, CullEvent
from hubkeeper.hub.models import HubServer
from hubkeeper.kit.clock import utcnow
from tests.cli import run_cli
from tests.culler.helpers import later, names, server_up, set_activity
from tests.waiting import wait_for

pytestmark = pytest.mark.subprocess


def test_cull_dry_run_then_cull_with_a_summary(hub, tmp_path):
    idle, active, kept = names("cli", "idle", "active", "kept")
    group = f"{idle}-grp"
    hub.create_users([idle, active, kept])
    hub.add_to_group(group, [idle, active, kept])
    hub.start_server(idle)
    hub.start_server(active)
    hub.start_server(kept)
    set_activity(hub, active, "", later(3000))

    def idle_for(name: str) -> float:
        stamp = (hub.server_model(name) or {})["last_activity"]
        return (utcnow() - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()

    # past the group's 2 s timeout by the hub's own record (not a fixed sleep); `kept` too,
    # or it is not a candidate at all and so not listed as kept (a flake: it started last)
    wait_for(
        lambda: idle_for(idle) > 3 and idle_for(kept) > 3,
        30,
        "the idle and kept servers to be idle for 3 s",
        interval=0.2,
    )
    db_url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    env = {
        **hub.hubkeeper_env(),
        "HUBKEEPER_DATABASE_URL": db_url,
        "HUBKEEPER_CULL_TIMEOUT": "100000",
        "HUBKEEPER_CULL_MAX_AGE": "0",
        "HUBKEEPER_CULL_GROUP_TIMEOUTS": json.dumps({group: 2}),
    }
    # `kept` was kept running (as its owner's button does): listed as kept, with why
    migrate(db_url)
    engine = create_db_engine(db_url)
    server = HubServer.model_validate(hub.server_model(kept))
    keeps.add(engine, user=kept, server=server, now=utcnow(), keep_s=3600, max_keeps=3, actor=kept)
    dry = run_cli("cull", "--dry-run", env=env, timeout=120)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert idle in dry.stdout and active not in dry.stdout
    would, _, kept_table = dry.stdout.partition("Kept")
    assert kept not in would and kept in kept_table and "keep: kept until" in kept_table
    assert server_up(hub, idle)  # a dry run changes nothing

    wet = run_cli("cull", env=env, timeout=120)
    assert wet.returncode == 0, wet.stdout + wet.stderr
    assert "Culling:" in wet.stdout  # the progress (plain lines when not on a terminal)
    assert "Culled 1 server(s)" in wet.stdout and idle in wet.stdout
    assert not server_up(hub, idle) and server_up(hub, active) and server_up(hub, kept)
    with Session(engine) as db:
        (event,) = db.exec(select(CullEvent)).all()
        audits = db.exec(select(AuditEvent).where(AuditEvent.action == "server.cull")).all()
    engine.dispose()
    assert event.user == idle and event.actor.startswith("cli:")
    assert [a.target for a in audits] == [idle]
    hub.stop_server(active)
    hub.stop_server(kept)
