"""A page per user (`users/{name}`): servers with the culler's outlook and (admins) actions and
log links, sessions, culls, exemptions, audit entries where they are the target; user names in
the tables link to it. Over HTTP against the real session hub; HTML checked with selectors."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from bs4 import BeautifulSoup

from hubkeeper.actions.audit import record
from hubkeeper.auth.sessions import issue_session
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import CullEvent, ServerSession
from hubkeeper.kit.clock import utcnow
from tests.console.locking import locked
from tests.waiting import wait_for

ADMIN = "up-admin"
MANAGER = "up-manager"
ANN = "up-ann"
ANNIE = "up-annie"  # a name ANN's is a prefix of: never on ANN's page
MARKUP = "<b>up-bold"
GROUP = "up-group"


class Browser:
    def __init__(self, server: Any, user: str, role: str) -> None:
        hk = server.app.state.hk
        name, value, self.csrf = asyncio.run(issue_session(hk, user=user, role=role))
        self.base = server.direct_url
        self.client = httpx.Client(cookies={name: value}, timeout=30)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(self.base + path, **kw)


def soup(response: httpx.Response) -> BeautifulSoup:
    assert response.status_code == 200, response.text[:500]
    return BeautifulSoup(response.text, "html.parser")


@pytest.fixture(scope="module")
def people(hub, hubkeeper_server):
    hub.create_users([ADMIN], admin=True)
    hub.create_users([MANAGER, ANN, ANNIE, MARKUP])
    hub.add_to_group("managers", [MANAGER])
    hub.add_to_group(GROUP, [ANN])
    hub.start_server(ANN)
    hk = hubkeeper_server.app.state.hk
    engine = hk.engine
    now = utcnow()
    record(engine, actor=ADMIN, action="server.stop", target=ANN, outcome="ok", via="web")
    record(engine, actor=ADMIN, action="logs.view", target=f"{ANN}/gpu", via="web")
    record(engine, actor=ADMIN, action="server.stop", target=ANNIE, via="web")
    with session_scope(engine) as session:
        session.add(
            ServerSession(
                user=ANN,
                server="old",
                started_at=now - timedelta(hours=3),
                stopped_at=now - timedelta(hours=1),
                duration_s=7200.0,
                stop_reason="culled",
                stopped_by="culler",
            )
        )
    with session_scope(engine) as session:
        session.add(
            CullEvent(
                at=now - timedelta(hours=1),
                kind="server",
                user=ANN,
                server="old",
                reason="idle",
                inactive_s=3600.0,
                age_s=7200.0,
            )
        )
    token = hub.user_token(ADMIN)
    exempt = httpx.post(
        hubkeeper_server.direct_url + "api/v1/exemptions",
        json={"group": GROUP, "reason": "thesis run", "until": "2099-12-06"},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert exempt.status_code == 201, exempt.text
    hk.loop.call_soon_threadsafe(hk.directory.sweep_soon)
    wait_for(
        lambda: (
            hk.directory.get(MARKUP)
            and any(r.status == "running" for r in hk.directory.rows_for(ANN))
            and GROUP in hk.directory.get(ANN).groups
        ),
        timeout=60,
        what="the directory to see the users",
    )
    yield
    hub.stop_server(ANN)


@pytest.fixture
def admin(hubkeeper_server, people) -> Browser:
    return Browser(hubkeeper_server, ADMIN, "admin")


@pytest.fixture
def manager(hubkeeper_server, people) -> Browser:
    return Browser(hubkeeper_server, MANAGER, "manager")


def test_the_page_shows_servers_with_outlook_and_actions_for_admins(admin):
    page = soup(admin.get(f"users/{ANN}"))
    assert page.select_one("#user-name")["data-user"] == ANN
    assert [a.get_text() for a in page.select("[data-group]")] == [GROUP]
    row = page.select_one('#user-servers-table tr[data-server=""]')
    assert row["data-status"] == "running"
    # the group's exemption keeps it: the outlook says so, with its reason
    assert row["data-outlook"] == "exempt"
    assert "exempt: thesis run (group up-group)" in row.select_one(".cell-outlook").get_text()
    keep, stop = row.select("button[hx-post]")
    assert keep["hx-post"].endswith(f"users/{ANN}/server/keep")
    assert stop["hx-post"].endswith(f"users/{ANN}/server/stop")
    assert row.select_one("a[data-log-link]")["href"].endswith(f"logs/{ANN}")
    # the region refreshes itself, with the same parameter the page accepts
    region = page.select_one("#user-servers")
    assert region["hx-get"].endswith(f"users/{ANN}?part=servers")
    part = soup(admin.get(f"users/{ANN}", params={"part": "servers"}))
    assert part.select_one("html") is None and part.select_one("section#user-servers")


def test_sessions_culls_exemptions_and_audit_about_the_user(admin):
    page = soup(admin.get(f"users/{ANN}"))
    sessions = [tr.get_text(" ", strip=True) for tr in page.select("#user-sessions tbody tr")]
    old = [text for text in sessions if text.startswith("old ")]
    assert len(old) == 1 and "2 h" in old[0] and "culled" in old[0]
    cull = page.select_one("#user-culls tbody tr")
    assert "idle" in cull.get_text() and "1 h" in cull.get_text()
    exemption = page.select_one("#user-exemptions tbody tr")
    assert exemption["data-state"] == "active"
    assert "through 2099-12-06" in exemption.get_text(" ", strip=True)
    actions = [tr["data-action"] for tr in page.select("#user-audit tbody tr")]
    assert "server.stop" in actions and "logs.view" in actions
    targets = [td.get_text() for td in page.select("#user-audit .cell-target")]
    assert ANNIE not in targets  # exact targets only, not a substring
    stop = page.select_one('#user-audit tr[data-action="server.stop"]')
    assert stop.select_one(".action-name").get_text() == "Stopped a server"
    assert stop.select_one("a.user-link")["href"].endswith(f"users/{ADMIN}")


def test_managers_read_it_without_actions_or_logs(manager):
    page = soup(manager.get(f"users/{ANN}"))
    row = page.select_one('#user-servers-table tr[data-server=""]')
    assert row["data-status"] == "running"
    assert row.select_one("button") is None and row.select_one("[data-log-link]") is None
    assert page.select_one("#user-sessions tbody tr") is not None


def test_user_names_in_tables_link_to_the_page(admin):
    users = soup(admin.get("users", params={"q": ANN}))
    link = users.select_one(f'tr[data-user="{ANN}"] a.user-link')
    assert link["href"].endswith(f"users/{ANN}")
    audit = soup(admin.get("audit", params={"target": ANN}))
    assert audit.select_one(f'a.user-link[href$="users/{ANN}"]') is not None
    history = soup(admin.get("history", params={"user": ANN}))
    assert history.select_one(f'#sessions-table a.user-link[href$="users/{ANN}"]') is not None
    culls = soup(admin.get("culls", params={"user": ANN}))
    assert culls.select_one(f'a.user-link[href$="users/{ANN}"]') is not None
    culler = soup(admin.get("culler"))
    assert culler.select_one("#exemptions-table a.user-link") is not None  # created_by


def test_names_are_escaped_and_quoted(admin):
    response = admin.get("users/" + quote(MARKUP, safe=""))
    page = soup(response)
    assert page.select_one("#user-name").get_text(strip=True) == MARKUP
    assert page.select_one("#user-name b") is None
    assert "&lt;b&gt;up-bold" in response.text


def test_unknown_users_and_parameters(admin):
    missing = admin.get("users/up-nobody-here")
    assert missing.status_code == 404
    wrong = admin.get(f"users/{ANN}", params={"tab": "x"})
    assert wrong.status_code == 422 and 'data-code="unknown_parameter"' in wrong.text
    bad_part = admin.get(f"users/{ANN}", params={"part": "x"})
    assert bad_part.status_code == 422 and 'data-code="invalid_parameter"' in bad_part.text


def test_the_users_page_speaks_the_api_vocabulary(admin):
    """`state=` as the API; an old `status=` link is redirected to it; unknown → 422."""
    page = soup(admin.get("users", params={"state": "running", "group": GROUP}))
    assert [tr["data-user"] for tr in page.select("#results tbody tr")] == [ANN]
    assert page.select_one("#status option[selected]")["value"] == "running"
    old = admin.get("users", params={"status": "running", "group": GROUP})
    assert old.status_code == 302
    assert old.headers["location"].endswith(f"users?state=running&group={GROUP}")
    starting = admin.get("users", params={"status": "starting"})
    assert starting.headers["location"].endswith("users?state=pending")
    refused = admin.get("users", params={"staus": "running"})
    assert refused.status_code == 422 and 'data-code="unknown_parameter"' in refused.text
    rows = admin.get("users/rows", params={"state": "running", "group": GROUP, "since": "0"})
    assert [tr["data-user"] for tr in soup(rows).select("tbody tr")] == [ANN]


def test_a_manager_refused_the_logs_is_told_what_a_manager_can_do(manager):
    refused = manager.get(f"logs/{ANN}")
    assert refused.status_code == 403
    detail = BeautifulSoup(refused.text, "html.parser").select_one("[data-code]")
    text = detail.get_text(" ", strip=True)
    assert "read but not act" not in text
    assert "As a manager you can read" in text and "server logs" in text


def test_a_user_without_a_role_sees_only_their_own_page_read_only(hubkeeper_server, people):
    ann = Browser(hubkeeper_server, ANN, "")
    page = soup(ann.get(f"users/{ANN}"))
    row = page.select_one('#user-servers-table tr[data-server=""]')
    assert row["data-status"] == "running" and row["data-outlook"] == "exempt"
    assert row.select_one("button") is None and row.select_one("[data-log-link]") is None
    assert page.select_one("#user-sessions tbody tr") is not None
    assert page.select_one("#user-exemptions tbody tr") is not None
    # no audit trail, no links to pages only readers may open
    assert page.select_one("#user-audit") is None
    content = page.select_one("main")
    assert content.select_one('a[href*="history"], a[href*="culls"], a[href$="users"]') is None
    # the region's poll is a fetch: it needs the CSRF token, as every reader page's polls do
    poll = ann.get(
        f"users/{ANN}",
        params={"part": "servers"},
        headers={"HX-Request": "true", "Sec-Fetch-Mode": "cors", "X-CSRF-Token": ann.csrf},
    )
    assert poll.status_code == 200
    no_token = ann.get(
        f"users/{ANN}", params={"part": "servers"}, headers={"Sec-Fetch-Mode": "cors"}
    )
    assert no_token.status_code == 403
    # anyone else's page, and every other page, stays refused
    assert ann.get(f"users/{ANNIE}").status_code == 403
    refused = ann.get("users")
    assert refused.status_code == 403
    # the refusal points to what they may see: their own page
    own = BeautifulSoup(refused.text, "html.parser").select_one("a[data-own-page]")
    assert own is not None and own["href"].endswith("/me")


def test_start_is_greyed_out_with_the_reason_while_locked(admin, hubkeeper_server):
    """ANNIE has no server running: Start, unless the hub is locked (then the reason)."""
    reason = "User page test <lock>"
    with locked(admin, reason):
        page = soup(admin.get("users/" + quote(ANNIE, safe="")))
        row = page.select_one("#user-servers-table tbody tr[data-server='']")
        start = row.select_one("button[disabled]")
        assert start is not None and reason in start["title"] and not start.has_attr("hx-post")
    page = soup(admin.get("users/" + quote(ANNIE, safe="")))
    row = page.select_one("#user-servers-table tbody tr[data-server='']")
    assert row.select_one("button[hx-post$='/start']") is not None
