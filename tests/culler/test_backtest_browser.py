"""The Culler page's Backtest section in real Chromium through the real hub: a manager runs
a backtest and reads the table per group, escaped, at 414 px without sideways scrolling."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from hubkeeper.db.activity import PER_DAY, Marks, bucket_of, write_marks
from hubkeeper.db.engine import create_db_engine, session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.kit.clock import utcnow
from tests.browsing import shot, sign_in
from tests.culler.helpers import names

pytestmark = pytest.mark.browser

GROUP = "<b>bt-lab</b>"  # a group name with markup: shown as text


def test_a_manager_runs_a_backtest_on_a_phone(page, hub, hubkeeper_server):
    manager, user = names("btb", "manager", "user")
    hub.create_users([manager, user])
    hub.add_to_group("managers", [manager])
    engine = create_db_engine(hubkeeper_server.settings.database_url)
    try:
        # yesterday: 4 h, active the first 30 min: a 30 min timeout saves 3 h
        start = (utcnow() - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
        with session_scope(engine) as session:
            session.add(
                ServerSession(
                    user=user,
                    server="",
                    started_at=start,
                    stopped_at=start + timedelta(hours=4),
                    duration_s=4 * 3600,
                    stop_reason="unknown",
                    groups=json.dumps([GROUP]),
                )
            )
        marks: dict = {}
        for k in range(6):
            day, bit = divmod(bucket_of(start) + k, PER_DAY)
            marks.setdefault((user, "", day), Marks()).hub |= 1 << bit
        write_marks(engine, marks)
    finally:
        engine.dispose()

    page.set_viewport_size({"width": 414, "height": 900})
    sign_in(page, hub, hubkeeper_server, manager)
    page.goto(hubkeeper_server.proxied_url + "culler")
    section = page.locator("section", has=page.get_by_role("heading", name="Backtest"))
    section.get_by_label("Idle timeout").fill("30m")
    section.get_by_label("Over the last").select_option("7")
    section.get_by_role("button", name="Run backtest").click()
    row = page.locator("#backtest-table tbody tr", has_text=GROUP)
    expect(row).to_be_visible()
    expect(row.locator("th")).to_have_text(GROUP)  # the markup as text, not a bold element
    assert page.locator("#backtest-table b").count() == 0
    expect(row.locator("[data-label='Saved hours']")).to_have_text("3.0")
    expect(page.locator("#backtest-summary")).to_contain_text("30 min timeout")
    # the trade-off chart: the candidates, the typed one marked, its saving and regret shown
    typed = page.locator("#backtest-chart li.is-typed")
    expect(typed).to_have_attribute("data-timeout", "1800")
    expect(typed).to_contain_text("▶ 30 min")
    expect(typed).to_contain_text("regretted")
    assert page.locator("#backtest-chart li.trade-off-row").count() >= 6
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 414, f"the Culler page is {width} px wide at 414 px"
    shot(page, "culler", "backtest-414")

    # a bad timeout is said next to the form, nothing else happens
    section.get_by_label("Idle timeout").fill("soon")
    section.get_by_role("button", name="Run backtest").click()
    expect(page.locator("#backtest-error")).to_contain_text(
        "The idle timeout: 'soon' is not a duration"
    )
