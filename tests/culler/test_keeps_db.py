"""Keeps in the database (SQLite and PostgreSQL): counted per server start, at most
`max_keeps`, a new start begins a new count, and what a pass reads is only what is in force."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hubkeeper.culler import keeps
from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.errors import Conflict
from hubkeeper.hub.models import HubServer
from hubkeeper.kit.clock import utcnow


def test_keeps_are_counted_per_start_and_read_while_in_force(db_url):
    migrate(db_url)
    engine = create_db_engine(db_url)
    now = utcnow()
    first = HubServer(name="", ready=True, started=now - timedelta(hours=1))

    def add(server: HubServer) -> tuple[datetime, int]:
        return keeps.add(
            engine, user="ann", server=server, now=now, keep_s=600, max_keeps=2, actor="ann"
        )

    until, left = add(first)
    assert (until, left) == (now + timedelta(seconds=600), 1)
    assert add(first)[1] == 0
    with pytest.raises(Conflict) as refused:
        add(first)
    assert refused.value.code == "too_many_keeps"

    found = keeps.of(keeps.in_force(engine, now), "ann", first)
    assert found is not None and (found.count, found.until) == (2, until)
    assert keeps.in_force(engine, until) == {}  # ended: no longer postpones anything
    # a new start of the same server: a new count, and the old keeps do not apply to it
    again = HubServer(name="", ready=True, started=now)
    assert keeps.of(keeps.in_force(engine, now), "ann", again) is None
    assert add(again)[1] == 1
    mine = keeps.for_user(engine, "ann")
    assert keeps.of(mine, "ann", again) is not None and mine[("ann", "")].count == 1
    engine.dispose()
