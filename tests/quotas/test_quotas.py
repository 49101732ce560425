"""Server-hour quotas: which applies, what a month used, the API, and enforcement at spawn by
the hub plugin's hook on the real hub."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hubkeeper.kit.window import BadInput
from hubkeeper.quotas.settings import Quotas, parse_put
from hubkeeper.quotas.usage import next_month, used_hours
from tests.history.factories import add_session, at, prepared

ANN, BEN, MANAGER = "quota-ann", "quota-ben", "quota-manager"


def test_a_user_s_own_quota_else_their_largest_group_s():
    quotas = Quotas(users={"ann": 5.0}, groups={"physics": 10.0, "maths": 20.0})
    assert quotas.hours_for("ann", ["maths"]) == 5.0
    assert quotas.hours_for("ben", ["physics", "maths"]) == 20.0
    assert quotas.hours_for("cy", ["biology"]) is None


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"users": {"ann": -1}},
        {"users": {"": 3}},
        {"groups": {"g": "lots"}},
        {"enforce": "yes"},
        {"users": {}, "surprise": 1},
    ],
)
def test_bad_quotas_are_refused_naming_the_problem(body):
    with pytest.raises(BadInput) as refused:
        parse_put(body)
    assert refused.value.code == "invalid_quotas"


def test_whole_hours_are_hours():
    assert parse_put({"users": {"ann": 3}, "groups": {}, "enforce": True}).users == {"ann": 3.0}


def test_a_month_counts_only_its_own_part_of_each_session(tmp_path):
    engine = prepared(f"sqlite:///{tmp_path / 'q.sqlite'}")
    now = at("2026-12-05T12:00")
    add_session(engine, "ann", "2026-11-30T22:00", "2026-12-01T02:00")  # 2 h in December
    add_session(engine, "ann", "2026-12-02T10:00", "2026-12-02T13:30")  # 3.5 h
    add_session(engine, "ann", "2026-12-05T11:00")  # open: 1 h so far
    add_session(engine, "ann", "2026-11-01T10:00", "2026-11-02T10:00")  # last month
    add_session(engine, "ben", "2026-12-03T10:00", "2026-12-03T20:00")  # someone else
    assert used_hours(engine, "ann", now) == pytest.approx(6.5)
    assert next_month(now) == at("2027-01-01T00:00")
    assert next_month(at("2026-11-30T23:59")) == at("2026-12-01T00:00")


@pytest.fixture(scope="module")
def people(hub, hubkeeper_server):
    hub.create_users([ANN, BEN, MANAGER])
    hub.add_to_group("managers", [MANAGER])
    hub.add_to_group("quota-course", [ANN, BEN])


def _client(hub, hubkeeper_server, name: str) -> httpx.Client:
    return httpx.Client(
        base_url=hubkeeper_server.direct_url,
        headers={"Authorization": f"token {hub.user_token(name)}"},
        timeout=30,
    )


@pytest.fixture(scope="module")
def admin(hub, hubkeeper_server, people) -> Iterator[httpx.Client]:
    with _client(hub, hubkeeper_server, "admin") as client:
        yield client
    client = _client(hub, hubkeeper_server, "admin")
    client.put("api/v1/quotas", json={"users": {}, "groups": {}, "enforce": False})
    client.close()


def test_managers_read_admins_write_and_it_is_audited(hub, hubkeeper_server, admin):
    body = {"users": {ANN: 0}, "groups": {"quota-course": 40}, "enforce": False}
    with _client(hub, hubkeeper_server, MANAGER) as manager:
        assert manager.put("api/v1/quotas", json=body).status_code == 403
        assert manager.get("api/v1/quotas").status_code == 200
    bad = admin.put("api/v1/quotas", json={"users": {ANN: -3}})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_quotas"
    saved = admin.put("api/v1/quotas", json=body)
    assert saved.status_code == 200, saved.text
    got = admin.get("api/v1/quotas").json()
    assert got["users"] == {ANN: 0.0} and got["groups"] == {"quota-course": 40.0}
    assert got["updated_by"] == "admin"
    events = admin.get("api/v1/audit", params={"action": "quotas.update"}).json()["items"]
    assert events[0]["outcome"] == "ok" and f"users.{ANN}: null → 0.0" in events[0]["detail"]
    assert events[1]["outcome"] == "failed"


def test_enforced_quotas_refuse_spawns_at_the_hub_admins_exempt(hub, hubkeeper_server, admin):
    body = {"users": {ANN: 0, "admin": 0}, "groups": {}, "enforce": True}
    assert admin.put("api/v1/quotas", json=body).status_code == 200
    try:
        refused = hub.api("POST", f"/users/{ANN}/server", json={}, token=hub.admin_token)
        assert refused.status_code == 503, refused.text
        assert "server-hours for this month are used up: 0 of 0 hours" in refused.text
        check_url = hubkeeper_server.direct_url + "api/v1/quotas/check"
        own = {"Authorization": f"token {hubkeeper_server.settings.hub_api_token}"}
        check = httpx.get(check_url, params={"user": BEN}, headers=own, timeout=30).json()
        assert check == {"allowed": True, "message": ""}  # no quota applies to ben
        # only the hub plugin (Hubkeeper's own token) learns a user's hours
        anyone = httpx.get(check_url, params={"user": ANN}, timeout=30)
        assert anyone.status_code == 401 and "used up" not in anyone.text
        person = httpx.get(
            check_url,
            params={"user": ANN},
            headers={"Authorization": f"token {hub.user_token(BEN)}"},
            timeout=30,
        )
        assert person.status_code == 403 and "used up" not in person.text
        started = hub.api("POST", "/users/admin/server", json={}, token=hub.admin_token)
        assert started.status_code in (201, 202), started.text  # admins are exempt
    finally:
        hub.stop_server("admin")
        admin.put("api/v1/quotas", json={"users": {}, "groups": {}, "enforce": False})


def test_my_quota(hub, hubkeeper_server, admin):
    admin.put("api/v1/quotas", json={"users": {"admin": 12.5}, "groups": {}, "enforce": False})
    mine = admin.get("api/v1/me/quota").json()
    assert mine["quota_hours"] == 12.5 and mine["used_hours"] >= 0
    assert mine["resets_at"].endswith("T00:00:00+00:00")


def test_the_user_page_shows_use_against_the_quota(hub, hubkeeper_server, admin):
    from tests.auth.hub_login import sign_in

    admin.put("api/v1/quotas", json={"users": {ANN: 7}, "groups": {}, "enforce": False})
    with httpx.Client(timeout=30) as browser:
        sign_in(browser, hub.url, hubkeeper_server.proxied_url, "admin")
        page = browser.get(hubkeeper_server.proxied_url + f"users/{ANN}", follow_redirects=True)
    assert page.status_code == 200
    assert "Server-hours this month" in page.text and "of 7 hours used" in page.text


def test_a_user_sees_their_quota_on_their_own_page(hub, hubkeeper_server, admin):
    """The page a user lands on (`me`) shows their use against their group's quota, as
    users/{name} does: an over-quota user refused a spawn can see why."""
    from tests.auth.hub_login import sign_in

    admin.put("api/v1/quotas", json={"users": {}, "groups": {"quota-course": 9}, "enforce": False})
    try:
        with httpx.Client(timeout=30) as browser:
            sign_in(browser, hub.url, hubkeeper_server.proxied_url, BEN)
            page = browser.get(hubkeeper_server.proxied_url + "me", follow_redirects=True)
        assert page.status_code == 200
        assert "Server-hours this month" in page.text and "of 9 hours used" in page.text
    finally:
        admin.put("api/v1/quotas", json={"users": {}, "groups": {}, "enforce": False})
