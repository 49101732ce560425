"""The log pages over HTTP (HTML checked with selectors) and in real Chromium: a line appears
live, and a log line holding markup stays text."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup
from playwright.sync_api import expect

from hubkeeper.auth.sessions import issue_session
from hubkeeper.demo.localhub import MANAGERS_GROUP
from tests.waiting import wait_for

ADMIN = "logs-page-admin"
MANAGER = "logs-page-manager"
EVE = "logs-eve"  # running for the module
FAY = "logs-fay"  # never started
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


def log_file(hub: Any, name: str) -> Path:
    return Path(hub.state_dir) / "homes" / name / ".jupyter-server-log.txt"


def append(hub: Any, name: str, *lines: str) -> None:
    with log_file(hub, name).open("a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


@pytest.fixture(scope="module")
def people(hub: Any, hubkeeper_server: Any) -> Any:
    hub.create_users([ADMIN], admin=True)
    hub.create_users([MANAGER, EVE, FAY])
    hub.add_to_group(MANAGERS_GROUP, [MANAGER])
    hub.start_server(EVE)
    yield
    hub.stop_server(EVE)


def session(server: Any, user: str, role: str) -> tuple[str, str]:
    # In a thread of its own: a browser test runs with Playwright's loop in this one.
    with ThreadPoolExecutor(1) as pool:
        coro = issue_session(server.app.state.hk, user=user, role=role)
        name, value, _ = pool.submit(asyncio.run, coro).result()
    return name, value


def get(server: Any, path: str, user: str = ADMIN, role: str = "admin") -> httpx.Response:
    name, value = session(server, user, role)
    with httpx.Client(cookies={name: value}, timeout=30) as client:
        return client.get(server.direct_url + path)


def soup(response: httpx.Response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def wait_for_directory(server: Any, user: str) -> None:
    directory = server.app.state.hk.directory
    wait_for(
        lambda: any(r.status == "running" for r in directory.rows_for(user)),
        20,
        f"the directory to see {user} running",
    )


def test_picker_lists_running_servers_with_links(hubkeeper_server, people):
    wait_for_directory(hubkeeper_server, EVE)
    page = soup(get(hubkeeper_server, "logs?q=logs-"))
    rows = page.select("#log-picker tbody tr")
    users = [row["data-user"] for row in rows]
    assert EVE in users and FAY not in users
    link = page.select_one(f'#log-picker tr[data-user="{EVE}"] .cell-actions a')
    assert link is not None and link["href"].endswith(f"logs/{EVE}")
    assert page.select_one('.mainnav a[aria-current="page"]').get_text() == "Logs"


def test_log_page_frames_the_stream(hubkeeper_server, people):
    page = soup(get(hubkeeper_server, f"logs/{EVE}"))
    view = page.select_one("[data-log-view]")
    assert view is not None
    assert view["data-stream-url"].endswith(f"api/v1/users/{EVE}/logs/stream")
    assert page.select_one("[data-log-pane]").get_text() == ""  # filled by JS only
    download = page.find("a", string="Download")
    assert download["href"].endswith(f"api/v1/users/{EVE}/logs?lines=5000&format=text")
    assert "running" in page.select_one(".page-sub .pill").get_text()


def test_stopped_server_shows_an_empty_state(hubkeeper_server, people):
    response = get(hubkeeper_server, f"logs/{FAY}")
    assert response.status_code == 200
    page = soup(response)
    assert page.select_one("[data-log-view]") is None
    assert "This server is stopped." in page.select_one(".log-empty").get_text()


def test_unknown_user_or_server_is_a_404_page(hubkeeper_server, people):
    assert get(hubkeeper_server, "logs/logs-no-such-user").status_code == 404
    assert get(hubkeeper_server, f"logs/{FAY}/nope").status_code == 404


def test_managers_get_403_and_no_nav_link_anonymous_is_sent_to_login(hubkeeper_server, people):
    response = get(hubkeeper_server, f"logs/{EVE}", MANAGER, "manager")
    assert response.status_code == 403
    users = soup(get(hubkeeper_server, "users", MANAGER, "manager"))
    assert "Logs" not in [a.get_text() for a in users.select(".mainnav a")]
    anonymous = httpx.get(hubkeeper_server.direct_url + "logs", follow_redirects=False)
    assert anonymous.status_code == 302 and "login?next=" in anonymous.headers["location"]


def test_console_rows_link_to_the_log_for_admins(hubkeeper_server, people):
    wait_for_directory(hubkeeper_server, EVE)
    row = soup(get(hubkeeper_server, f"users?q={EVE}")).select_one(f'tr[data-user="{EVE}"]')
    link = row.select_one("a.button[href*='/logs/']")
    assert link["href"].endswith(f"logs/{EVE}")
    # "Logs", and for a screen reader whose: "Logs of eve’s server".
    assert link.get_text(" ", strip=True).startswith("Logs")
    as_manager = get(hubkeeper_server, f"users?q={EVE}", MANAGER, "manager")
    row = soup(as_manager).select_one(f'tr[data-user="{EVE}"]')
    assert row.select_one("a[href*='/logs/']") is None


@pytest.mark.browser
def test_browser_shows_lines_live_and_markup_as_text(page, hub, hubkeeper_server, people):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    append(hub, EVE, "<script>alert(1)</script>", '<img src=x onerror="alert(2)">')
    name, value = session(hubkeeper_server, ADMIN, "admin")
    page.context.add_cookies([{"name": name, "value": value, "url": hubkeeper_server.direct_url}])
    page.goto(hubkeeper_server.direct_url + f"logs/{EVE}")

    pane = page.locator("[data-log-pane]")
    expect(page.locator("[data-log-state]")).to_have_attribute("data-log-state", "live")
    expect(pane.locator(".log-line", has_text="<script>alert(1)</script>")).to_have_count(1)
    expect(pane.locator("script")).to_have_count(0)
    expect(pane.locator("img")).to_have_count(0)

    append(hub, EVE, "a line written after the page opened")
    expect(pane.locator(".log-line").last).to_have_text(
        "a line written after the page opened", timeout=8_000
    )
    expect(page.locator("[data-log-count]")).to_contain_text("lines")

    # Pause holds new lines back; resume shows them.
    page.get_by_role("button", name="Pause").click()
    append(hub, EVE, "held while paused")
    expect(page.locator("[data-log-count]")).to_contain_text("1 waiting", timeout=8_000)
    expect(pane.locator(".log-line", has_text="held while paused")).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(pane.locator(".log-line").last).to_have_text("held while paused")

    page.mouse.move(0, 0)
    shots = ARTIFACTS / "logs"
    shots.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # buttons' colour transitions
    page.screenshot(path=str(shots / "view-light.png"))
    page.emulate_media(color_scheme="dark")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "view-dark.png"))
    page.get_by_role("button", name="Clear view").click()
    expect(pane.locator(".log-line")).to_have_count(0)
    assert dialogs == []

    # The other states, for people to look at (test-artifacts/logs/).
    for path, shot in [("logs", "picker"), (f"logs/{FAY}", "stopped"), (f"users?q={EVE}", "row")]:
        page.goto(hubkeeper_server.direct_url + path)
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / f"{shot}-dark.png"))


@pytest.mark.browser
def test_browser_says_when_the_server_stops(page, hub, hubkeeper_server, people):
    user = "logs-gus"
    hub.create_users([user])
    hub.start_server(user)
    try:
        name, value = session(hubkeeper_server, ADMIN, "admin")
        page.context.add_cookies(
            [{"name": name, "value": value, "url": hubkeeper_server.direct_url}]
        )
        page.goto(hubkeeper_server.direct_url + f"logs/{user}")
        state = page.locator("[data-log-state]")
        expect(state).to_have_attribute("data-log-state", "live")
    finally:
        hub.stop_server(user)
    expect(state).to_have_attribute("data-log-state", "stopped", timeout=15_000)
    expect(state).to_have_text("server stopped")
    expect(page.locator("[data-log-status]")).to_have_text("not running")
    expect(page.locator("[data-log-notice]")).to_contain_text("read through the running server")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "logs" / "stopped-live-light.png"))
