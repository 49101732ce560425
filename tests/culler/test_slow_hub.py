"""A hub whose spawner is slow on purpose: a pending server is never culled, and a slow stop
(the hub answers 202) is followed up until the server is gone, or recorded as an error. The
hub is the session's `slow_hub` (tests/conftest.py, shared with console/test_slow_hub.py)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import CullEvent
from hubkeeper.demo.localhub import LocalHub
from tests.conftest import build_settings
from tests.culler.helpers import QUIET, app_client, call, cfg, later, listed_server, names


def settings_for(hub: LocalHub, tmp_path: Path, stop_timeout: float):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return build_settings(
        hub,
        f"sqlite:///{tmp_path / 'hk.sqlite'}",
        tmp_path,
        **QUIET,
        HUBKEEPER_CULL_STOP_TIMEOUT=stop_timeout,
    )


def test_pending_server_is_not_culled(slow_hub, tmp_path):
    (user,) = names("pending", "p")
    slow_hub.create_users([user])
    slow_hub.start_server(user)
    response = slow_hub.api("POST", f"/users/{user}/servers/slowstart", json={})
    assert response.status_code == 202  # still starting
    assert listed_server(slow_hub, user, "slowstart")["pending"] == "spawn"
    with app_client(settings_for(slow_hub, tmp_path, 10)) as client:
        hk = client.app.state.hk
        plan = call(
            client, hk.culler.servers_pass, cfg(), now=later(1000), users={user}, dry_run=True
        )
        assert [(c.user, c.server) for c in plan.planned] == [(user, "")]
        result = call(client, hk.culler.servers_pass, cfg(), now=later(1000), users={user})
        assert [c.server for c in result.culled] == [""]
    assert listed_server(slow_hub, user, "slowstart")["pending"] == "spawn"


def test_slow_stop_is_followed_up_or_recorded_as_an_error(slow_hub, tmp_path):
    waited, gave_up = names("slowstop", "ok", "late")
    slow_hub.create_users([waited, gave_up])
    slow_hub.start_server(waited)
    slow_hub.start_server(gave_up)
    with app_client(settings_for(slow_hub, tmp_path / "a", 20)) as client:
        hk = client.app.state.hk
        result = call(client, hk.culler.servers_pass, cfg(), now=later(100), users={waited})
        assert [c.user for c in result.culled] == [waited]
        assert listed_server(slow_hub, waited, "") is None or not listed_server(
            slow_hub, waited, ""
        ).get("ready")
    with app_client(settings_for(slow_hub, tmp_path / "b", 1)) as client:
        hk = client.app.state.hk
        result = call(client, hk.culler.servers_pass, cfg(), now=later(100), users={gave_up})
        assert result.culled == []
        (failed,) = result.error_items()
        assert "still stopping" in failed["error"]
        with session_scope(hk.engine) as s:
            (event,) = s.exec(select(CullEvent)).all()
        assert event.outcome == "error" and "still stopping" in event.error
    slow_hub.stop_server(gave_up)
