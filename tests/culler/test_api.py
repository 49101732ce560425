"""The culler API as the contract writes it: settings (GET/PUT, 422 and nothing changed,
audited diff), preview and run, culls, exemptions, roles."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from hubkeeper.kit.clock import utcnow
from tests.culler.helpers import QUIET, app_client, later, names, server_up, set_activity
from tests.waiting import wait_for

MANAGER = "culler-api-manager"


@pytest.fixture
def client(make_settings, hub):
    hub.create_users([MANAGER])
    hub.add_to_group("managers", [MANAGER])
    with app_client(make_settings(**QUIET, HUBKEEPER_CULL_TIMEOUT=3600)) as c:
        yield c


@pytest.fixture
def admin(hub):
    return {"Authorization": f"token {hub.user_token('admin')}"}


@pytest.fixture
def manager(hub):
    return {"Authorization": f"token {hub.user_token(MANAGER)}"}


def test_settings_default_from_env_and_last_run_is_read_only(client, admin, manager):
    got = client.get("api/v1/culler", headers=manager)
    assert got.status_code == 200
    body = got.json()
    assert body["enabled"] is False and body["timeout_s"] == 3600
    assert body["max_age_s"] == 604800 and body["concurrency"] == 10
    assert body["named_servers"] == "cull" and body["group_timeouts"] == {}
    assert body["kernels"] == {
        "enabled": False,
        "timeout_s": 3600,
        "interval_s": 300,
        "cull_busy": False,
        "cull_connected": False,
    }
    assert body["last_run"] is None
    # A client may send back exactly what it read (last_run included, and ignored).
    body["timeout_s"] = 7200
    body["last_run"] = {"at": "whatever"}
    put = client.put("api/v1/culler", json=body, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["timeout_s"] == 7200 and put.json()["last_run"] is None
    assert client.put("api/v1/culler", json=body, headers=manager).status_code == 403
    audit = client.get("api/v1/audit", params={"action": "culler.settings"}, headers=admin).json()[
        "items"
    ]
    assert audit[0]["actor"] == "admin" and audit[0]["detail"] == "timeout_s: 3600 → 7200"


def test_settings_take_durations_in_human_units_and_return_seconds(client, admin):
    body = client.get("api/v1/culler", headers=admin).json()
    body.update(timeout_s="90m", max_age_s="7d", interval_s="1h 30m")
    body["group_timeouts"] = {"long-jobs": "8h"}
    body["kernels"] = {**body["kernels"], "timeout_s": "1.5h", "interval_s": 120}
    put = client.put("api/v1/culler", json=body, headers=admin)
    assert put.status_code == 200, put.text
    got = put.json()
    assert (got["timeout_s"], got["max_age_s"], got["interval_s"]) == (5400, 604800, 5400)
    assert got["group_timeouts"] == {"long-jobs": 28800}
    assert got["kernels"]["timeout_s"] == 5400 and got["kernels"]["interval_s"] == 120
    assert client.get("api/v1/culler", headers=admin).json()["timeout_s"] == 5400
    for bad in ("soon", "5 fortnights", "0m", "-5m", "1.5s", "1h30", "1,5h"):
        refused = client.put("api/v1/culler", json={**body, "timeout_s": bad}, headers=admin)
        assert refused.status_code == 422, bad
        assert refused.json()["error"] == "invalid_settings" and "timeout_s" in refused.text
        if bad not in ("0m", "1.5s"):  # read, but out of range or not whole seconds
            # the forms taken, not "Input should be a valid integer"
            assert "units s, m, h, d, w" in refused.json()["detail"], refused.text
    assert client.get("api/v1/culler", headers=admin).json()["timeout_s"] == 5400


BAD = [
    ("timeout_s", 0),
    ("timeout_s", "60"),
    ("timeout_s", 1.5),
    ("max_age_s", -1),
    ("concurrency", 0),
    ("concurrency", 101),
    ("named_servers", "remove"),
    ("enabled", "yes"),
    ("group_timeouts", {"long-jobs": 0}),
    ("group_timeouts", {" ": 60}),
    ("group_timeouts", ["long-jobs"]),
    ("kernels", {"enabled": True}),
    ("surprise", 1),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_bad_settings_are_refused_and_nothing_changes(client, admin, field, value):
    before = client.get("api/v1/culler", headers=admin).json()
    body = copy.deepcopy(before)
    body[field] = value
    response = client.put("api/v1/culler", json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_settings"
    assert field in response.json()["detail"] or field == "kernels"
    assert client.get("api/v1/culler", headers=admin).json() == before


def test_missing_fields_and_bad_bodies_are_refused(client, admin):
    before = client.get("api/v1/culler", headers=admin).json()
    partial = {k: v for k, v in before.items() if k != "concurrency"}
    response = client.put("api/v1/culler", json=partial, headers=admin)
    assert response.status_code == 422 and "concurrency: missing" in response.json()["detail"]
    nested = copy.deepcopy(before)
    del nested["kernels"]["cull_busy"]
    response = client.put("api/v1/culler", json=nested, headers=admin)
    assert response.status_code == 422 and "kernels.cull_busy" in response.json()["detail"]
    for raw in (b"not json", b"[1, 2]", b""):
        response = client.put(
            "api/v1/culler",
            content=raw,
            headers={**admin, "Content-Type": "application/json"},
        )
        assert response.status_code == 422
    kernels = copy.deepcopy(before)
    kernels["kernels"]["interval_s"] = 0
    assert client.put("api/v1/culler", json=kernels, headers=admin).status_code == 422
    assert client.get("api/v1/culler", headers=admin).json() == before


def test_preview_lists_exactly_what_the_following_pass_culls(client, admin, manager, hub):
    idle, active, later_idle = names("preview", "idle", "active", "later")
    group = f"{idle}-grp"
    hub.create_users([idle, active, later_idle])
    hub.add_to_group(group, [idle, active, later_idle])
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(hub.start_server, [idle, active, later_idle]))
    mine = {idle, active, later_idle}
    settings = client.get("api/v1/culler", headers=admin).json()
    settings.update(timeout_s=3600, max_age_s=0, group_timeouts={group: 3})
    assert client.put("api/v1/culler", json=settings, headers=admin).status_code == 200
    set_activity(hub, active, "", later(3000))
    set_activity(hub, later_idle, "", later(25))

    def preview(**params):
        response = client.get("api/v1/culler/preview", params=params, headers=manager)
        assert response.status_code == 200, response.text
        return {
            (p["user"], p["server"], p["kind"], p["reason"])
            for p in response.json()
            if p["user"] in mine
        }

    # once the idle server is past the group's 3 s timeout (the others have activity ahead)
    now = wait_for(preview, 30, "the idle server past the group's timeout", interval=0.5)
    assert now == {(idle, "", "server", "idle")}
    soon = preview(within=60)  # who goes within the next minute if they stay idle
    assert soon == {(idle, "", "server", "idle"), (later_idle, "", "server", "idle")}
    assert (
        client.get("api/v1/culler/preview", params={"within": -1}, headers=admin).status_code == 422
    )

    assert client.post("api/v1/culler/run", headers=manager).status_code == 403
    ran = client.post("api/v1/culler/run", headers=admin)
    assert ran.status_code == 200, ran.text
    culled = {
        (c["user"], c["server"], c["kind"], c["reason"])
        for c in ran.json()["culled"]
        if c["user"] in mine
    }
    assert culled == now
    assert not server_up(hub, idle) and server_up(hub, active)

    culls = client.get("api/v1/culls", params={"user": idle}, headers=manager).json()
    assert culls["total"] == 1
    (item,) = culls["items"]
    assert (item["kind"], item["reason"], item["outcome"], item["actor"]) == (
        "server",
        "idle",
        "ok",
        "admin",
    )
    assert item["inactive_s"] >= 3 and item["age_s"] >= 3 and item["at"].endswith("+00:00")
    assert item["settings"]["group_timeouts"] == {group: 3}
    for params, total in (
        ({"user": idle, "kind": "kernel"}, 0),
        ({"user": idle, "reason": "max_age"}, 0),
        ({"user": idle, "since": (utcnow() + timedelta(hours=1)).isoformat()}, 0),
        ({"user": idle, "until": utcnow().date().isoformat()}, 1),
    ):
        assert client.get("api/v1/culls", params=params, headers=admin).json()["total"] == total
    assert client.get("api/v1/culls", params={"kind": "pod"}, headers=admin).status_code == 422
    last = client.get("api/v1/culler", headers=admin).json()["last_run"]
    assert last["actor"] == "admin" and last["servers"]["culled"] >= 1
    audit = client.get("api/v1/audit", params={"action": "server.cull"}, headers=admin).json()
    assert any(a["target"] == idle and a["actor"] == "admin" for a in audit["items"])
    hub.stop_server(active)
    hub.stop_server(later_idle)


def test_exemptions_api(client, admin, manager, hub):
    (user,) = names("exapi", "u")
    hub.create_users([user])
    hub.add_to_group(f"{user}-grp", [user])
    made = client.post(
        "api/v1/exemptions",
        json={"user": user, "reason": "thesis run", "until": "2099-01-01"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["user"] == user and body["state"] == "active"
    assert body["until"] == "2099-01-02T00:00:00+00:00"  # a bare date keeps that whole day
    group = client.post(
        "api/v1/exemptions", json={"group": f"{user}-grp", "reason": "workshop"}, headers=admin
    )
    assert group.status_code == 201 and group.json()["until"] is None
    for bad, status in (
        ({"user": user, "group": "x", "reason": "r"}, 422),
        ({"reason": "r"}, 422),
        ({"user": user, "reason": "  "}, 422),
        ({"user": user, "reason": "r", "until": "2001-01-01"}, 422),
        ({"user": user, "reason": "r", "until": "Friday"}, 422),
        ({"user": "culler-nobody-here", "reason": "r"}, 404),
        ({"group": "culler-no-such-group", "reason": "r"}, 404),
    ):
        response = client.post("api/v1/exemptions", json=bad, headers=admin)
        assert response.status_code == status, (bad, response.text)
        assert "error" in response.json()
    assert (
        client.post(
            "api/v1/exemptions", json={"user": user, "reason": "r"}, headers=manager
        ).status_code
        == 403
    )
    listed = client.get("api/v1/exemptions", headers=manager).json()
    ids = [e["id"] for e in listed["items"]]
    assert body["id"] in ids and group.json()["id"] in ids
    assert client.delete(f"api/v1/exemptions/{body['id']}", headers=manager).status_code == 403
    assert client.delete(f"api/v1/exemptions/{body['id']}", headers=admin).status_code == 204
    again = client.delete(f"api/v1/exemptions/{body['id']}", headers=admin)
    assert again.status_code == 409
    assert client.delete("api/v1/exemptions/999999", headers=admin).status_code == 404
    after = client.get("api/v1/exemptions", headers=admin).json()
    assert body["id"] not in [e["id"] for e in after["items"]]
    kept = client.get("api/v1/exemptions", params={"include_deleted": 1}, headers=admin).json()
    assert [e["state"] for e in kept["items"] if e["id"] == body["id"]] == ["deleted"]
    audit = client.get("api/v1/audit", params={"action": "culler.exempt"}, headers=admin).json()
    assert any(a["target"] == f"user:{user}" and a["outcome"] == "ok" for a in audit["items"])


def test_anonymous_is_refused(client):
    for method, path in (
        ("GET", "api/v1/culler"),
        ("PUT", "api/v1/culler"),
        ("GET", "api/v1/culler/preview"),
        ("POST", "api/v1/culler/run"),
        ("GET", "api/v1/culls"),
        ("GET", "api/v1/exemptions"),
        ("POST", "api/v1/exemptions"),
        ("DELETE", "api/v1/exemptions/1"),
    ):
        assert client.request(method, path).status_code == 401, path


def test_periodic_pass_runs_when_enabled(make_settings, hub):
    (user,) = names("loop", "l")
    group = f"{user}-grp"
    hub.create_users([user])
    hub.add_to_group(group, [user])
    hub.start_server(user)
    settings = make_settings(
        HUBKEEPER_CULL_ENABLED="true",
        HUBKEEPER_CULL_INTERVAL=1,
        HUBKEEPER_CULL_TIMEOUT=100000,
        HUBKEEPER_CULL_MAX_AGE=0,
        HUBKEEPER_CULL_GROUP_TIMEOUTS=f'{{"{group}": 2}}',
        HUBKEEPER_CULL_KERNELS_ENABLED="false",
    )
    with app_client(settings) as client:
        wait_for(lambda: not server_up(hub, user), timeout=40, what="the periodic pass")
        token = {"Authorization": f"token {hub.user_token('admin')}"}
        items = wait_for(
            lambda: client.get("api/v1/culls", params={"user": user}, headers=token).json()[
                "items"
            ],
            what="the cull on record",
        )
        assert [(i["actor"], i["reason"]) for i in items] == [("culler", "idle")]
