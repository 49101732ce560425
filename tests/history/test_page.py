"""The history page on the shared Hubkeeper: chart, tables, filters kept in links, escaping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from bs4 import BeautifulSoup

from hubkeeper.auth.sessions import issue_session
from hubkeeper.db.engine import create_db_engine
from tests.history.factories import add_session

EVIL = "hist-<script>alert(1)</script>"


def seed_recent(db_url: str) -> None:
    """Closed sessions over the last days (closed, so no reconcile touches them)."""
    engine = create_db_engine(db_url)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        for n in range(1, 8):
            day = today - timedelta(days=n)
            start = (day + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M")
            stop = (day + timedelta(hours=8 + n % 4 + 1)).strftime("%Y-%m-%dT%H:%M")
            add_session(engine, "hist-page-ann", start, stop, reason="admin", by="admin")
            if n % 2:
                add_session(engine, EVIL, start, stop)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def seeded(hubkeeper_server) -> None:
    seed_recent(hubkeeper_server.settings.database_url)


@pytest.fixture
def reader(hubkeeper_server, seeded) -> httpx.Client:
    hk = hubkeeper_server.app.state.hk
    name, value, _csrf = asyncio.run(issue_session(hk, user="hist-page-manager", role="manager"))
    return httpx.Client(base_url=hubkeeper_server.direct_url, cookies={name: value}, timeout=30)


def soup(response: httpx.Response) -> BeautifulSoup:
    assert response.status_code == 200, response.text[:500]
    return BeautifulSoup(response.text, "html.parser")


def test_the_page_shows_a_chart_with_its_values_and_escapes_names(reader):
    page = soup(reader.get("history"))
    assert page.select_one('nav a[aria-current="page"]').get_text() == "History"
    svg = page.select_one("svg.bar-chart")
    assert svg["role"] == "img" and svg.select_one("title").get_text().startswith(
        "Server-hours per day"
    )
    bars = svg.select("rect.chart-bar")
    assert len(bars) == 30  # the last 30 days, one bar each
    day_rows = page.select("#day-table tbody tr")
    assert len(day_rows) == 30
    assert any(float(r.select("td")[1].get_text()) > 0 for r in day_rows)
    # each name links to the user's page (a "sessions" link beside it filters below)
    users = [a.get_text() for a in page.select("#usage-table tbody th a.user-link")]
    assert "hist-page-ann" in users and EVIL in users
    assert "<script>alert(1)" not in reader.get("history").text  # escaped, never markup
    assert page.select_one("#sessions-table tbody tr")


def test_the_csv_link_and_the_filters_keep_the_view(reader):
    page = soup(reader.get("history", params={"by": "group", "reason": "admin"}))
    link = page.find("a", string="Download CSV")
    query = parse_qs(urlsplit(link["href"]).query)
    assert query["by"] == ["group"] and query["format"] == ["csv"]
    download = reader.get(link["href"].split("/services/hubkeeper/")[-1])
    assert download.status_code == 200 and download.text.startswith("key,sessions")
    reasons = {
        td.get_text(strip=True) for td in page.select("#sessions-table tbody td:nth-of-type(6)")
    }
    assert reasons == {"admin"}
    assert page.select_one('#history-window input[name="reason"]')["value"] == "admin"


def test_a_bad_date_is_reported_next_to_its_field(reader):
    page = soup(reader.get("history", params={"since": "soon"}))
    assert page.select_one("#since-error").get_text().startswith("Use a date")
    assert len(page.select("rect.chart-bar")) == 30


def test_anonymous_is_sent_to_login(hubkeeper_server):
    response = httpx.get(hubkeeper_server.direct_url + "history", follow_redirects=False)
    assert response.status_code == 302 and "login" in response.headers["location"]


def test_the_usage_table_shows_the_busiest_and_points_to_the_csv_for_the_rest(reader, monkeypatch):
    from hubkeeper.history import pages

    monkeypatch.setattr(pages, "USAGE_ROWS", 1)
    page = soup(reader.get("history"))
    assert len(page.select("#usage-table tbody tr")) == 1
    more = page.select_one("#usage-more")
    assert more.get_text().startswith("The 1 users with the most server-hours, of ")
    assert parse_qs(urlsplit(more.find("a")["href"]).query)["format"] == ["csv"]
    monkeypatch.setattr(pages, "USAGE_ROWS", 10_000)
    assert soup(reader.get("history")).select_one("#usage-more") is None


def test_with_prices_the_page_shows_cost_per_day_user_and_profile(
    reader, hubkeeper_server, monkeypatch
):
    engine = create_db_engine(hubkeeper_server.settings.database_url)
    yesterday = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday -= timedelta(days=1)
    try:  # 2 h on the gpu profile, yesterday
        start, stop = (
            (yesterday + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in (10, 12)
        )
        add_session(engine, "hist-page-gpu", start, stop, profile="gpu")
    finally:
        engine.dispose()
    unpriced = soup(reader.get("history"))
    assert "Cost" not in [th.get_text() for th in unpriced.select("#usage-table thead th")]

    hk = hubkeeper_server.app.state.hk
    monkeypatch.setattr(hk.settings, "prices", {"gpu": 3.0, "*": 1.0})
    page = soup(reader.get("history", params={"by": "profile"}))
    heads = [th.get_text() for th in page.select("#usage-table thead th")]
    assert heads == ["Profile", "Sessions", "Server-hours", "Users", "Cost"]
    rows = {
        tr.select_one("th").get_text(strip=True): [td.get_text() for td in tr.select("td")]
        for tr in page.select("#usage-table tbody tr")
    }
    assert rows["gpu"] == ["1", "2.00", "1", "6.00"]
    assert rows["(default)"][3] == f"{float(rows['(default)'][1]) * 1.0:.2f}"
    # per day: the gpu hours at 3.0, the rest at the "*" price
    day = {
        tr.select_one("th").get_text(): [td.get_text() for td in tr.select("td")]
        for tr in page.select("#day-table tbody tr")
    }[yesterday.date().isoformat()]
    assert float(day[3]) == pytest.approx(6.0 + (float(day[1]) - 2.0) * 1.0, abs=0.011)
    # the CSV link keeps the view and carries the cost
    link = page.find("a", string="Download CSV")
    assert parse_qs(urlsplit(link["href"]).query)["by"] == ["profile"]
    download = reader.get(link["href"].split("/services/hubkeeper/")[-1])
    assert download.text.startswith("key,sessions,server_hours,users,cost")
    assert "gpu,1,2.000,1,6.00" in download.text
    by_user = soup(reader.get("history"))
    cost = {
        tr.select_one("th a.user-link").get_text(): tr.select("td")[3].get_text()
        for tr in by_user.select("#usage-table tbody tr")
    }
    assert cost["hist-page-gpu"] == "6.00"
