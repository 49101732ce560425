"""Hubkeeper's PostgreSQL goes down (a private cluster, stopped for real) and comes back:
503 `database_unavailable` where the database is needed, a page that says so, never a 500
or a traceback per request; a person's action is refused (nothing done, nothing to record),
the system's records are spooled and written exactly once when the database returns."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hubkeeper.actions.audit import audit, flush_spool, spool_of
from hubkeeper.auth.sessions import issue_session
from hubkeeper.db.models import AuditEvent
from hubkeeper.kit.actors import SystemActor
from hubkeeper.main import create_app
from tests.pgcluster import PrivateCluster, private_postgres
from tests.waiting import wait_for

pytestmark = pytest.mark.own_db


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    with private_postgres() as running:
        yield running


def audit_rows(hk: Any, actor: str) -> list[AuditEvent]:
    with Session(hk.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.actor == actor)).all())


def test_database_outage_answers_503_and_keeps_every_audit_record(
    cluster: PrivateCluster, hub: Any, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = f"dbout-{uuid.uuid4().hex[:6]}"
    hub.create_users([user])
    token = hub.user_token("admin")
    settings = make_settings(cluster.create_database("hubkeeper"))
    app = create_app(settings)
    hk = app.state.hk
    api = {"Authorization": f"token {token}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        cookie, value, _csrf = asyncio.run(issue_session(hk, user="admin", role="admin"))
        pages = TestClient(app, raise_server_exceptions=False, cookies={cookie: value})
        assert client.get("/api/v1/audit", headers=api).status_code == 200
        assert pages.get("/audit").status_code == 200

        cluster.stop()
        caplog.clear()
        caplog.set_level(logging.WARNING)

        # The API, where it needs the database: the contract's 503.
        # (The lockdown state is served from memory on purpose: the last one known.)
        for path in ("/api/v1/audit", "/api/v1/culler", "/api/v1/sessions", "/api/v1/lockdowns"):
            answer = client.get(path, headers=api)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["error"] == "database_unavailable"
            assert set(answer.json()) == {"error", "detail"}
        # A signed-in browser (the session lives in the database): a page that says so.
        page = pages.get("/users")
        assert page.status_code == 503
        soup = BeautifulSoup(page.text, "html.parser")
        box = soup.select_one(".error-page")
        assert box is not None and box["data-code"] == "database_unavailable"
        assert "database is unreachable" in box.get_text()
        # The session check for the API by cookie is no 500 either.
        assert pages.get("/api/v1/me").status_code == 503
        # Health: degraded, not ready.
        health = client.get("/api/v1/health").json()
        assert health["database"] == "error" and health["status"] == "degraded"
        assert client.get("/api/v1/health/ready").status_code == 503

        # A person's action cannot be recorded: refused, and the hub was not asked.
        start = client.post(f"/api/v1/users/{user}/server/start", headers=api)
        assert start.status_code == 503, start.text
        assert start.json()["error"] == "database_unavailable"
        assert hub.server_model(user) is None or not hub.server_model(user).get("ready")
        # The system's own record (as the culler or the lockdown enforcement write theirs
        # after the fact) is kept in the spool.
        system = SystemActor("culler")
        asyncio.run(audit(hk, system, "server.stop", user, detail="outage test"))
        spool = spool_of(hk)
        assert spool.pending()
        assert json.loads(spool.path.read_text().splitlines()[0])["actor"] == "culler"

        problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert problems == [], [r.getMessage() for r in problems]

        cluster.start()
        # The spool loop (every replica) writes it once the database answers.
        wait_for(lambda: not spool.pending(), timeout=60, what="the spool to be written")
        rows = audit_rows(hk, "culler")
        assert [(r.action, r.target, r.detail) for r in rows] == [
            ("server.stop", user, "outage test")
        ]
        # A replay (a crash after inserting, before the spool was cut) never doubles it.
        line = {
            "event_id": rows[0].event_id,
            "at": rows[0].at.isoformat(),
            "actor": "culler",
            "action": "server.stop",
            "target": user,
            "outcome": "ok",
            "detail": "outage test",
            "error": "",
            "via": "system",
        }
        spool.path.write_text(json.dumps(line) + "\n")
        assert asyncio.run(flush_spool(hk)) == 1
        assert len(audit_rows(hk, "culler")) == 1
        # The refused start left nothing behind; everything answers again.
        assert [r.action for r in audit_rows(hk, "admin") if r.target == user] == []
        assert client.get("/api/v1/audit", headers=api).status_code == 200
        assert pages.get("/users").status_code == 200


def test_sign_in_during_an_outage_is_a_503_page_and_tokens_still_work(
    cluster: PrivateCluster, activity_hub: Any, tmp_path: Any
) -> None:
    """Sign-in writes its audit record and its session to the database: refused with a page
    saying so; an API token is checked with the hub alone, so it keeps working."""
    import httpx

    from tests.auth.hub_login import sign_in
    from tests.serving import serve_hubkeeper

    url = cluster.create_database("hubkeeper")
    # A hub whose service port is free (the session's spare, `activity_hub`), so Hubkeeper
    # can be served there on the private cluster's database.
    hub = activity_hub
    with serve_hubkeeper(hub, tmp_path, HUBKEEPER_DATABASE_URL=url) as served:
        token = hub.user_token("admin")
        cluster.stop()
        with httpx.Client(timeout=60) as browser:
            callback = sign_in(browser, hub.origin, served.proxied_url, "admin")
        assert callback.status_code == 503
        box = BeautifulSoup(callback.text, "html.parser").select_one(".error-page")
        assert box is not None and box["data-code"] == "database_unavailable"
        me = httpx.get(served.direct_url + "api/v1/me", headers={"Authorization": f"token {token}"})
        assert me.status_code == 200 and me.json()["name"] == "admin"
        cluster.start()
        with httpx.Client(timeout=60) as browser:
            callback = sign_in(browser, hub.origin, served.proxied_url, "admin")
        assert callback.status_code in (302, 303), callback.text[:300]
