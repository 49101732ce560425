"""The users and audit pages over HTTP, against the real hub; HTML checked with selectors."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from bs4 import BeautifulSoup

from hubkeeper.actions.audit import record
from hubkeeper.auth.sessions import issue_session
from hubkeeper.console.views import PAGE_SIZE
from hubkeeper.hub.client import HubClient
from hubkeeper.main import create_app
from tests.console.locking import locked
from tests.waiting import wait_for, wait_for_async

SCRIPT_USER = "<script>alert('hk')"  # the hub refuses "/" in names, so no closing tag
ATTR_USER = '"><img src=x onerror=alert(1)>'
MANAGER = "pages-manager"
ADMIN = "pages-admin"
NOBODY = "pages-nobody"
WORKER = "pages-worker"
PAGED_GROUP = "pages-paged"
PAGED_USERS = [f"pages-paged-{i:02d}" for i in range(PAGE_SIZE + 7)]


def soup(response: httpx.Response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


@pytest.fixture(scope="module")
def people(hub, hubkeeper_server):
    hub.create_users([ADMIN], admin=True)
    hub.create_users([MANAGER, NOBODY, WORKER, SCRIPT_USER, ATTR_USER])
    hub.add_to_group("managers", [MANAGER])
    hub.create_users(PAGED_USERS)
    hub.add_to_group(PAGED_GROUP, PAGED_USERS)
    hk = hubkeeper_server.app.state.hk
    directory = hk.directory
    # The 3 s syncs see new users, but group changes of users beyond the 50 newest only at a
    # full sweep (every 10 min, or when the user count changes): ask for one now.
    hk.loop.call_soon_threadsafe(directory.sweep_soon)
    wait_for(
        lambda: (
            all(directory.get(n) for n in (WORKER, SCRIPT_USER, ATTR_USER, *PAGED_USERS))
            and len(directory.query_rows(group=PAGED_GROUP, limit=1000)[0]) == len(PAGED_USERS)
        ),
        timeout=60,
        what="the directory to see the new users",
    )


class Browser:
    """A signed-in person, as far as Hubkeeper's session cookie and CSRF token go."""

    def __init__(self, server: Any, user: str, role: str) -> None:
        hk = server.app.state.hk
        name, value, self.csrf = asyncio.run(issue_session(hk, user=user, role=role))
        self.base = server.direct_url
        self.client = httpx.Client(cookies={name: value}, timeout=30)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(self.base + path, **kw)

    def post(self, path: str, *, csrf: bool = True, htmx: bool = True, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.post(self.base + path, headers=headers, **kw)


@pytest.fixture
def admin(hubkeeper_server, people) -> Browser:
    return Browser(hubkeeper_server, ADMIN, "admin")


@pytest.fixture
def manager(hubkeeper_server, people) -> Browser:
    return Browser(hubkeeper_server, MANAGER, "manager")


def row_of(page: BeautifulSoup, user: str, server: str = "") -> Any:
    for row in page.select("#results tbody tr"):
        if row.get("data-user") == user and row.get("data-server") == server:
            return row
    return None


# --- escaping --------------------------------------------------------------------------------
def test_username_with_markup_is_escaped(admin):
    response = admin.get("users", params={"q": "<"})
    assert response.status_code == 200
    page = soup(response)
    # The names arrive as text, not as elements.
    names = [el.get_text() for el in page.select("#results tbody .user-name")]
    assert SCRIPT_USER in names
    assert ATTR_USER in names
    assert not any("alert" in (s.string or "") for s in page.find_all("script"))
    assert not page.select("img[onerror]")
    # ... and in attributes they stay whole values, not new attributes.
    row = row_of(page, ATTR_USER)
    assert row is not None
    assert row["data-user"] == ATTR_USER
    start = row.select_one("button[hx-post]")
    assert start["hx-post"].endswith(f"users/{quote(ATTR_USER, safe='')}/server/start")
    assert "&lt;script&gt;" in response.text


def test_csrf_header_on_body_is_valid_json(admin):
    page = soup(admin.get("users"))
    headers = json.loads(page.body["hx-headers"])
    assert headers == {"X-CSRF-Token": admin.csrf}
    assert page.select_one("form[action$='logout'] input[name=_csrf]")["value"] == admin.csrf


# --- roles -----------------------------------------------------------------------------------
def test_admin_sees_actions(admin):
    page = soup(admin.get("users", params={"q": WORKER}))
    row = row_of(page, WORKER)
    assert row.select_one("button[hx-post$='/start']") is not None
    assert page.select_one("button[hx-get$='users/stop-all']") is not None


def test_manager_sees_no_action_buttons(manager):
    response = manager.get("users")
    assert response.status_code == 200
    page = soup(response)
    assert page.select("#results tbody tr"), "the manager still sees the list"
    assert page.select("[hx-post]") == []
    assert page.select("form[action$='/access']") == []
    assert page.select(".cell-actions") == []
    assert page.select_one("button[hx-get$='users/stop-all']") is None
    assert page.select_one(".role-badge").get_text(strip=True) == "manager"


def test_manager_action_post_is_forbidden(manager, hub):
    response = manager.post(f"users/{WORKER}/server/start")
    assert response.status_code == 403
    # An HTMX request gets its error as a toast for #toasts.
    assert response.headers["HX-Retarget"] == "#toasts"
    toast = soup(response).select_one(".toast.toast-error")
    assert toast is not None and "admins" in toast.get_text()
    assert soup(response).select_one("html") is None
    assert hub.server_model(WORKER) is None or not hub.server_model(WORKER).get("ready")
    assert manager.post("users/stop-all", data={"reason": "x"}).status_code == 403


def test_user_without_role_gets_a_403_page_not_a_redirect(hubkeeper_server, people):
    nobody = Browser(hubkeeper_server, NOBODY, "")
    response = nobody.get("users", follow_redirects=False)
    assert response.status_code == 403
    page = soup(response)
    assert page.select_one(".error-page")["data-code"] == "no_role"
    detail = page.select_one(".error-detail").get_text(" ", strip=True)
    assert f"signed in as {NOBODY}" in detail
    assert "Hubkeeper is for hub admins and managers" in detail
    logout = page.select_one(".error-page form[action$='logout']")
    assert logout["method"] == "post"
    assert logout.select_one("input[name=_csrf]")["value"] == nobody.csrf
    assert page.select_one(".error-page a[href$='/hub/home']") is not None
    # their only link: their own page (role `user`, issue #16)
    assert [a["href"] for a in page.select(".mainnav a")] == [
        hubkeeper_server.settings.service_prefix + "me"
    ]


def test_unknown_page_is_a_404_page(admin):
    response = admin.get("no/such/page")
    assert response.status_code == 404
    page = soup(response)
    assert page.select_one(".error-page h1").get_text(strip=True) == "Not found"


# --- CSRF ------------------------------------------------------------------------------------
def test_action_without_csrf_is_refused(admin, hub):
    refused = admin.post(f"users/{WORKER}/server/start", csrf=False, htmx=False)
    assert refused.status_code == 403
    assert soup(refused).select_one(".error-page")["data-code"] == "csrf_failed"
    wrong = admin.post(
        f"users/{WORKER}/server/start", csrf=False, headers={"X-CSRF-Token": "forged"}
    )
    assert wrong.status_code == 403
    form = admin.client.post(admin.base + f"users/{WORKER}/server/access", data={"_csrf": "forged"})
    assert form.status_code == 403
    assert hub.server_model(WORKER) is None or not hub.server_model(WORKER).get("ready")


# --- actions ---------------------------------------------------------------------------------
def test_start_and_stop_answer_the_row_and_a_toast(admin, hub):
    started = admin.post(f"users/{WORKER}/server/start")
    assert started.status_code == 200, started.text[:500]
    page = soup(started)
    row = page.select_one("tr")
    assert row["data-user"] == WORKER
    assert row["data-status"] in ("running", "starting")
    toast = page.select_one("[hx-swap-oob] .toast")
    assert toast is not None and WORKER in toast.get_text()
    assert page.select_one("#counts[hx-swap-oob]") is not None
    wait_for(lambda: (hub.server_model(WORKER) or {}).get("ready"), 60, "the server to run")

    again = admin.post(f"users/{WORKER}/server/start")
    assert again.status_code == 409
    assert soup(again).select_one(".toast-error") is not None

    stopped = admin.post(f"users/{WORKER}/server/stop")
    assert stopped.status_code == 200, stopped.text[:500]
    assert soup(stopped).select_one("tr")["data-status"] in ("stopped", "stopping")
    wait_for(lambda: hub.server_model(WORKER) is None, 30, "the server to stop")


def test_access_is_a_post_that_redirects_to_the_server(admin, hubkeeper_server, hub):
    hub.start_server(WORKER)
    try:
        response = admin.client.post(
            admin.base + f"users/{WORKER}/server/access",
            data={"_csrf": admin.csrf},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert urlsplit(response.headers["location"]).path == f"/user/{WORKER}/"
    finally:
        hub.stop_server(WORKER)


def test_stop_all_dialog_names_the_count_and_wants_a_reason(admin):
    page = soup(admin.get("users/stop-all", headers={"HX-Request": "true"}))
    heading = page.select_one("#stop-all-title").get_text(strip=True)
    assert heading.startswith(("Stop", "Stop all"))
    no_reason = admin.post("users/stop-all", data={"reason": "  "})
    assert no_reason.status_code == 200
    again = soup(no_reason)
    if again.select_one("textarea[name=reason]") is not None:  # something was running
        assert again.select_one("#stop-all-error") is not None


def test_stop_all_opened_directly_is_a_page(admin):
    page = soup(admin.get("users/stop-all"))
    assert page.select_one("header.topbar") is not None  # the whole frame, styled
    body = page.select_one("main #stop-all-body")
    assert body is not None and body.select_one("#stop-all-title") is not None
    assert body.select_one("[data-close-dialog]") is None  # no dialog to close here
    assert body.select_one("a[href$='users']") is not None


def test_start_is_greyed_out_with_the_reason_while_locked(admin, hubkeeper_server):
    directory = hubkeeper_server.app.state.hk.directory
    # An earlier test may have left the worker's server stopping: Start shows once stopped.
    wait_for(
        lambda: [r.status for r in directory.rows_for(WORKER)] == ["stopped"],
        timeout=30,
        what="the worker's server to be stopped",
    )
    reason = "Pages test <lock>"
    with locked(admin, reason):
        page = soup(admin.get("users", params={"q": WORKER}))
        start = row_of(page, WORKER).select_one("button[disabled]")
        assert start is not None and start.has_attr("disabled")
        assert reason in start["title"] and not start.has_attr("hx-post")
        assert row_of(page, WORKER).select_one(".lock-note").get_text(strip=True) == "locked"
    page = soup(admin.get("users", params={"q": WORKER}))
    start = row_of(page, WORKER).select_one("button[hx-post$='/start']")
    assert start is not None and not start.has_attr("disabled")


def test_every_page_tells_a_manager_it_is_read_only(manager, admin):
    for path in ("users", "history", "audit", "culler", "culls", "lockdown"):
        note = soup(manager.get(path)).select_one("#role-note")
        assert note is not None and "Read-only" in note.get_text(), path
        assert soup(admin.get(path)).select_one("#role-note") is None, path


def test_audit_shows_readable_action_names(admin, hubkeeper_server):
    engine = hubkeeper_server.app.state.hk.engine
    record(engine, actor=ADMIN, action="server.stop", target="pages-readable")
    page = soup(admin.get("audit", params={"target": "pages-readable"}))
    cell = page.select_one("#audit-results tbody tr .action-name")
    assert cell is not None and cell.get_text(strip=True) == "Stopped a server"
    option = page.select_one("#action option[value='server.stop']")
    assert option.get_text(strip=True) == "Stopped a server (server.stop)"


# --- the view in the URL ---------------------------------------------------------------------
def test_filters_are_kept_in_pagination_links(admin):
    params = {"q": "pages-paged", "group": PAGED_GROUP, "sort": "-name", "state": "stopped"}
    page = soup(admin.get("users", params=params))
    assert page.select_one("#q")["value"] == "pages-paged"
    assert page.select_one("#group option[selected]")["value"] == PAGED_GROUP
    next_link = page.select_one(".pager a[rel=next]")
    assert next_link is not None
    for attr in ("href", "hx-get"):
        query = parse_qs(urlsplit(next_link[attr]).query)
        assert query == {
            "q": ["pages-paged"],
            "group": [PAGED_GROUP],
            "sort": ["-name"],
            "state": ["stopped"],
            "page": ["2"],
        }
    # The first row is the last name: the sort applied.
    first = page.select_one("#results tbody tr")["data-user"]
    assert first == PAGED_USERS[-1]
    # Page 2 keeps them too, and polling asks for the same view.
    second = soup(admin.get("users", params={**params, "page": "2"}))
    rows = second.select("#results tbody tr")
    assert len(rows) == len(PAGED_USERS) - PAGE_SIZE
    results = second.select_one("#results")
    poll = parse_qs(urlsplit(results["hx-get"]).query)
    assert poll["page"] == ["2"] and poll["group"] == [PAGED_GROUP]
    # The version it shows is read by users.js at each poll (the region is morphed, not
    # replaced, so a version fixed in hx-get would never move).
    assert "since" not in poll and results["data-since"]
    prev = parse_qs(urlsplit(second.select_one(".pager a[rel=prev]")["href"]).query)
    assert "page" not in prev and prev["q"] == ["pages-paged"]


def test_empty_search_says_so(admin):
    page = soup(admin.get("users", params={"q": "nobody-has-this-name"}))
    assert page.select("#results tbody tr") == []
    empty = page.select_one("#results .empty-state")
    assert "No servers match" in empty.get_text(" ", strip=True)
    assert "nobody-has-this-name" in empty.get_text(" ", strip=True)


def test_htmx_search_gets_only_the_results(admin):
    response = admin.get(
        "users",
        params={"q": WORKER, "state": "any", "group": "", "sort": "name"},
        headers={"HX-Request": "true", "HX-Target": "results"},
    )
    # The address bar gets the view without its defaults.
    assert response.headers["HX-Push-Url"] == f"/services/hubkeeper/users?q={WORKER}"
    page = soup(response)
    assert page.select_one("html") is None
    assert page.select_one("section#results") is not None
    assert page.select_one("#counts[hx-swap-oob]") is not None


def test_rows_poll_answers_204_until_something_changes(admin):
    page = soup(admin.get("users", params={"q": WORKER}))
    poll = page.select_one("#results")["hx-get"]  # absolute path, with the service prefix
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(admin.base))
    unchanged = admin.client.get(origin + poll)
    assert unchanged.status_code in (200, 204)  # 200 only if the minute rolled over
    stale = admin.get("users/rows", params={"q": WORKER, "since": "0.0.0"})
    assert stale.status_code == 200
    assert soup(stale).select_one("section#results") is not None


# --- the hub goes away -----------------------------------------------------------------------
async def test_hub_down_shows_a_banner_and_the_last_known_list(make_settings, people, hub):
    settings = make_settings(HUBKEEPER_ACTIVE_SYNC_INTERVAL=0.2)
    app = create_app(settings)
    hk = app.state.hk
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        # ready (the first full sweep) and synced_at (the first active sync) are set by two
        # loops, in either order: the banner's "as of" needs the active sync's time
        await wait_for_async(
            lambda: hk.directory.ready and hk.directory.synced_at and hk.directory.get(WORKER),
            30,
            "the directory's first sweep and sync",
        )
        # The hub stops answering: point the directory at a port nothing listens on.
        dead = HubClient("http://127.0.0.1:9/hub/api", "x", timeout=1.0)
        real = hk.directory.hub
        hk.directory.hub = dead
        try:
            await wait_for_async(lambda: hk.directory.stale, 30, "the directory to notice")
            name, value, _ = await issue_session(hk, user=ADMIN, role="admin")
            async with httpx.AsyncClient(
                transport=transport, base_url="http://hubkeeper", cookies={name: value}
            ) as client:
                response = await client.get(settings.service_prefix + "users", params={"q": WORKER})
                partial = await client.get(settings.service_prefix + "users/rows")
        finally:
            hk.directory.hub = real
            await dead.aclose()
    assert response.status_code == 200
    page = soup(response)
    banner = page.select_one("#results .banner-warning")
    assert banner is not None
    assert "Hub unreachable — showing the list as of" in banner.get_text(" ", strip=True)
    assert "is-stale" in page.select_one("#results")["class"]
    assert row_of(page, WORKER) is not None, "the last known list is still shown"
    assert partial.status_code == 200
    assert soup(partial).select_one(".banner-warning") is not None


# --- audit -----------------------------------------------------------------------------------
def test_audit_page_filters_and_keeps_them_in_pagination(admin, hubkeeper_server):
    engine = hubkeeper_server.app.state.hk.engine
    for i in range(55):
        record(engine, actor="audit-pager", action="test.thing", target=f"t{i}", outcome="ok")
    record(
        engine,
        actor="audit-pager",
        action="test.thing",
        target="<b>bad</b>",
        outcome="failed",
        error="<script>no</script>",
    )
    page = soup(admin.get("audit", params={"actor": "audit-pager", "outcome": "ok"}))
    rows = page.select("#audit-results tbody tr")
    assert len(rows) == 50
    assert {r.select_one(".pill").get_text(strip=True) for r in rows} == {"ok"}
    next_query = parse_qs(urlsplit(page.select_one(".pager a[rel=next]")["href"]).query)
    assert next_query == {"actor": ["audit-pager"], "outcome": ["ok"], "page": ["2"]}

    failed = soup(admin.get("audit", params={"actor": "audit-pager", "outcome": "failed"}))
    (row,) = failed.select("#audit-results tbody tr")
    assert row.select_one(".cell-target").get_text(strip=True) == "<b>bad</b>"
    assert row.select_one(".cell-detail .text-danger").get_text() == "<script>no</script>"
    assert row.select("b, script") == []


def test_audit_page_reports_a_bad_date_instead_of_failing(admin):
    response = admin.get("audit", params={"since": "yesterday-ish"})
    assert response.status_code == 200
    assert soup(response).select_one("#since-error") is not None


def test_manager_may_read_the_audit_page(manager):
    assert manager.get("audit").status_code == 200
