"""The history page pages its sessions and aggregates in SQL: it never turns every session of
the window into a Python object (issue #9)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from hubkeeper.auth.sessions import issue_session
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.main import create_app
from tests.history.factories import prepared

pytestmark = pytest.mark.perf

SESSIONS = 300


def test_the_history_page_loads_one_page_of_sessions_not_the_window(hub, make_settings, db_url):
    engine = prepared(db_url)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        with session_scope(engine) as session:
            for n in range(SESSIONS):
                start = today - timedelta(days=1 + n % 20, hours=n % 7)
                session.add(
                    ServerSession(
                        user=f"hist-scale-{n % 30}",
                        started_at=start,
                        stopped_at=start + timedelta(hours=1),
                        duration_s=3600,
                        stop_reason="unknown",
                        groups='["hist-scale-team"]',
                    )
                )
    finally:
        engine.dispose()
    loaded: list[object] = []

    def count(_session: Session, instance: object) -> None:
        if isinstance(instance, ServerSession):
            loaded.append(instance)

    app = create_app(make_settings(db_url))
    with TestClient(app) as client:
        name, value, _ = asyncio.run(
            issue_session(app.state.hk, user="hist-scale-manager", role="manager")
        )
        client.cookies.set(name, value)
        event.listen(Session, "loaded_as_persistent", count)
        try:
            response = client.get("history", params={"by": "group"})
        finally:
            event.remove(Session, "loaded_as_persistent", count)
    assert response.status_code == 200, response.text[:300]
    page = BeautifulSoup(response.text, "html.parser")
    assert "hist-scale-team" in page.get_text()  # the group table, from the database
    assert 0 < len(loaded) <= 50, f"{len(loaded)} sessions became Python objects"
