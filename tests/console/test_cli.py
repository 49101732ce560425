"""`hubkeeper stop-all` against the real hub: stops what runs, audits it as the CLI user."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from hubkeeper.db.engine import create_db_engine
from hubkeeper.db.models import AuditEvent
from tests.cli import run_cli

pytestmark = pytest.mark.subprocess


def test_stop_all_command_stops_running_servers_and_audits(hub, tmp_path):
    hub.create_users(["cli-ann", "cli-ben"])
    hub.start_server("cli-ann")
    hub.start_server("cli-ben")
    db_url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    env = {
        **hub.hubkeeper_env(),
        "HUBKEEPER_DATABASE_URL": db_url,
    }
    result = run_cli("stop-all", "--reason", "maintenance window", env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Stopped" in result.stdout
    for name in ("cli-ann", "cli-ben"):
        model = hub.server_model(name)
        assert model is None or not model.get("ready")
    engine = create_db_engine(db_url)
    with Session(engine) as db:
        events = db.exec(select(AuditEvent).where(AuditEvent.action == "servers.stop_all")).all()
    engine.dispose()
    assert len(events) == 1
    assert events[0].actor.startswith("cli:")
    assert events[0].via == "cli"
    assert "maintenance window" in events[0].detail


def test_stop_all_command_with_the_hub_down_says_so(tmp_path):
    env = {
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_API_TOKEN": "x",
        "HUBKEEPER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
    }
    result = run_cli("stop-all", "--yes", env=env, timeout=60)
    assert result.returncode == 3
    assert "unreachable" in result.stderr
    assert "Traceback" not in result.stderr
