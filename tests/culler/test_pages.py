"""The Culler and Culls pages: what admins and managers see, and the writes behind the forms."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from sqlmodel import select

from hubkeeper.auth.sessions import issue_session
from hubkeeper.culler import records
from hubkeeper.culler.decide import Cull
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import CullExemption
from tests.culler.helpers import QUIET, app_client, call, names


@pytest.fixture
def client(make_settings):
    with app_client(make_settings(**QUIET)) as c:
        yield c


def sign_in(client, role: str, user: str = "admin") -> str:
    hk = client.app.state.hk
    name, value, csrf = call(client, issue_session, hk, user=user, role=role)
    client.cookies.set(name, value)
    return csrf


def soup(response) -> BeautifulSoup:
    assert response.status_code == 200, response.text[:500]
    return BeautifulSoup(response.text, "html.parser")


def test_culler_page_admin_form_manager_read_only(client):
    sign_in(client, "manager", "culler-page-manager")
    page = soup(client.get("culler"))
    assert page.select_one("#culler-settings fieldset[disabled]") is not None
    assert page.select_one("#cull-now-form") is None
    assert page.select_one("#exemption-form") is None
    assert [a.text for a in page.select("nav.mainnav a[aria-current=page]")] == ["Culler"]
    assert page.select_one("#last-runs") is not None and page.select_one("#preview-heading")

    sign_in(client, "admin")
    page = soup(client.get("culler"))
    assert page.select_one("#culler-settings fieldset[disabled]") is None
    form = page.select_one("#cull-now-form")
    assert form is not None and form.get("hx-confirm") and form.get("data-confirm-title")


def test_settings_form_saves_and_bad_values_are_refused(client):
    csrf = sign_in(client, "admin")
    form = {
        "_csrf": csrf,
        "enabled": "1",
        "timeout_s": "1800",
        "max_age_s": "0",
        "interval_s": "300",
        "concurrency": "20",
        "named_servers": "keep",
        "group_timeouts": "long-jobs=28800\n",
        "kernels_enabled": "1",
        "kernels_timeout_s": "900",
        "kernels_interval_s": "120",
    }
    assert (
        client.post(
            "culler/settings", data={**form, "_csrf": ""}, follow_redirects=False
        ).status_code
        == 403
    )
    saved = client.post("culler/settings", data=form, headers={"HX-Request": "true"})
    assert saved.status_code == 204 and saved.headers["HX-Redirect"].endswith("culler?saved=1")
    got = client.get("api/v1/culler").json()
    assert got["timeout_s"] == 1800 and got["group_timeouts"] == {"long-jobs": 28800}
    assert got["named_servers"] == "keep" and got["cull_admin_users"] is False
    for bad in ({"timeout_s": "soon"}, {"concurrency": "500"}, {"group_timeouts": "x"}):
        refused = client.post(
            "culler/settings", data={**form, **bad}, headers={"HX-Request": "true"}
        )
        assert refused.status_code == 422
    assert client.get("api/v1/culler").json()["timeout_s"] == 1800
    page = soup(client.get("culler"))
    # shown in human units, which the form reads back to the same seconds
    assert page.select_one("#timeout_s")["value"] == "30m"
    assert "long-jobs=8h" in page.select_one("#group_timeouts").text


def test_settings_take_human_units_and_the_policy_is_stated_in_words(client):
    csrf = sign_in(client, "admin")
    form = {
        "_csrf": csrf,
        "enabled": "1",
        "timeout_s": "90m",
        "max_age_s": "7d",
        "interval_s": "10 min",
        "concurrency": "10",
        "named_servers": "cull",
        "group_timeouts": "long-jobs=1h30m\n",
        "kernels_enabled": "1",
        "kernels_timeout_s": "1h",
        "kernels_interval_s": "300",
    }
    saved = client.post("culler/settings", data=form, headers={"HX-Request": "true"})
    assert saved.status_code == 204, saved.text
    got = client.get("api/v1/culler").json()
    assert (got["timeout_s"], got["max_age_s"], got["interval_s"]) == (5400, 604800, 600)
    assert got["group_timeouts"] == {"long-jobs": 5400}
    assert got["kernels"]["timeout_s"] == 3600 and got["kernels"]["interval_s"] == 300
    refused = client.post(
        "culler/settings",
        data={**form, "timeout_s": "90 fortnights"},
        headers={"HX-Request": "true"},
    )
    assert refused.status_code == 422 and "timeout_s" in refused.text
    page = soup(client.get("culler"))
    policy = page.select_one("#culler-policy").get_text(" ", strip=True)
    assert policy.startswith("on · idle 1 h 30 min · 1 group timeout(s) · max age 7 d")
    assert "kernels 1 h" in policy and "next pass" in policy
    assert policy.endswith("0 exemptions")
    assert page.select_one("#max_age_s")["value"] == "7d"


def test_the_work_and_warnings_settings_are_on_the_form_and_an_older_form_keeps_them(client):
    csrf = sign_in(client, "admin")
    page = soup(client.get("culler"))
    form = {
        field["name"]: field.get("value", "")
        for field in page.select("#culler-settings input[name], #culler-settings textarea")
        if field.get("type") != "checkbox" or field.has_attr("checked")
    }
    form.update({"_csrf": csrf, "named_servers": "cull", "group_timeouts": ""})
    newer = {
        "idle_source": "kernels",
        "keep_busy": "1",
        "warn_before_s": "15m",
        "keep_s": "1h",
        "max_keeps": "2",
    }
    saved = client.post("culler/settings", data={**form, **newer}, headers={"HX-Request": "true"})
    assert saved.status_code == 204, saved.text
    got = client.get("api/v1/culler").json()
    assert (got["idle_source"], got["keep_busy"], got["warn_before_s"]) == ("kernels", True, 900)
    assert (got["keep_s"], got["max_keeps"]) == (3600, 2)
    page = soup(client.get("culler"))
    assert page.select_one("#warn_before_s")["value"] == "15m"
    assert page.select_one("#idle_source option[selected]")["value"] == "kernels"
    # a form without them (a page loaded before they existed) keeps what is saved
    older = {k: v for k, v in form.items() if k not in newer}
    assert (
        client.post("culler/settings", data=older, headers={"HX-Request": "true"}).status_code
        == 204
    )
    got = client.get("api/v1/culler").json()
    assert (got["idle_source"], got["warn_before_s"], got["max_keeps"]) == ("kernels", 900, 2)
    reset = {**form, "idle_source": "hub", "keep_busy": "1", "warn_before_s": "0"}
    assert (
        client.post("culler/settings", data=reset, headers={"HX-Request": "true"}).status_code
        == 204
    )
    assert client.get("api/v1/culler").json()["warn_before_s"] == 0


def test_culler_pages_refuse_unknown_parameters(client):
    sign_in(client, "admin")
    for path in ("culler?withn=60", "culls?usr=ann"):
        refused = client.get(path)
        assert refused.status_code == 422
        page = BeautifulSoup(refused.text, "html.parser")
        assert page.select_one("[data-code]")["data-code"] == "unknown_parameter"
    assert client.get("culler?within=900&kernels=1&saved=1").status_code == 200


def test_exemption_form_adds_and_ends_one(client, hub):
    (user,) = names("page", "ex")
    hub.create_users([user])
    csrf = sign_in(client, "admin")
    added = client.post(
        "culler/exemptions",
        data={
            "_csrf": csrf,
            "kind": "user",
            "name": user,
            "reason": "<b>thesis</b>",
            "until": "2099-01-01",
        },
        follow_redirects=False,
    )
    assert added.status_code == 303
    page = soup(client.get("culler"))
    row = page.select_one("#exemptions-table tbody tr")
    assert user in row.text and "<b>thesis</b>" in row.text  # escaped, shown as text
    assert row.select_one("b") is None
    assert "through 2099-01-01" in row.text  # the last day given, not the exclusive end
    with session_scope(client.app.state.hk.engine) as s:
        (ex,) = s.exec(select(CullExemption).where(CullExemption.user == user)).all()
    ended = client.post(
        f"culler/exemptions/{ex.id}/delete", data={"_csrf": csrf}, follow_redirects=False
    )
    assert ended.status_code == 303
    page = soup(client.get("culler"))
    assert page.select_one(f"tr[data-exemption='{ex.id}']") is None


def test_culls_page_filters_and_chart(client):
    hk = client.app.state.hk
    for user, kind, reason in (
        ("page-ann", "server", "idle"),
        ("page-ann", "kernel", "idle"),
        ("page-ben", "server", "max_age"),
    ):
        records.add_event(
            hk.engine,
            Cull(
                kind,
                user,
                "",
                reason,
                4000.0,
                9000.0 if kind == "server" else None,
                kernel_id="k-123456789" if kind == "kernel" else None,
            ),
            outcome="ok",
            error="",
            settings_json="{}",
            actor="culler",
        )
    sign_in(client, "manager", "culler-page-manager")
    page = soup(client.get("culls"))
    assert len(page.select("#culls-table tbody tr")) == 3
    assert len(page.select("#culls-chart rect.chart-bar")) == 2  # today: servers + kernels
    assert "3 in total" in page.select_one("#chart-heading").text
    page = soup(client.get("culls", params={"user": "page-ann", "kind": "kernel"}))
    (row,) = page.select("#culls-table tbody tr")
    assert "kernel" in row.text and "1 h 06 min" in row.text
    page = soup(client.get("culls", params={"reason": "max_age", "since": "nonsense"}))
    assert len(page.select("#culls-table tbody tr")) == 1
    assert page.select_one(".field-error") is not None
