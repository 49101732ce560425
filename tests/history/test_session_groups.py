"""A session keeps the groups its user was in when it started (usage by group at the time)."""

from __future__ import annotations

import json

from hubkeeper.db.engine import create_db_engine
from tests.history.factories import sessions_of
from tests.waiting import wait_for

USER = "hist-grp-ann"


def test_a_recorded_session_keeps_the_groups_at_its_start(hub, hubkeeper_server):
    hub.create_users([USER])
    hub.add_to_group("hist-grp-then", [USER])
    engine = create_db_engine(hubkeeper_server.settings.database_url)
    try:
        hub.start_server(USER)
        row = wait_for(
            lambda: next((r for r in sessions_of(engine, USER) if r.stopped_at is None), None),
            30,
            "an open session",
        )
        assert json.loads(row.groups) == ["hist-grp-then"]
    finally:
        if (hub.server_model(USER) or {}).get("ready"):
            hub.stop_server(USER)
        engine.dispose()
