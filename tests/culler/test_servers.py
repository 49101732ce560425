"""Server culling against the real hub. Time is moved by passing `now` to the single pass;
activity is reported to the hub the way a single-user server reports it."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import AuditEvent, CullEvent, CullRun
from hubkeeper.demo.localhub import free_port
from hubkeeper.kit.actors import SystemActor
from tests.culler.helpers import (
    QUIET,
    app_client,
    call,
    cfg,
    delete_user,
    later,
    listed_server,
    names,
    server_up,
    set_activity,
)
from tests.waiting import wait_for


@pytest.fixture
def client(make_settings):
    with app_client(make_settings(**QUIET, HUBKEEPER_CULL_STOP_TIMEOUT=10)) as c:
        yield c


def start_all(hub, pairs):
    """Start several servers at once (each takes seconds on this machine)."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: hub.start_server(*p), pairs))


def events(hk, user):
    with session_scope(hk.engine) as s:
        return s.exec(select(CullEvent).where(CullEvent.user == user)).all()


def test_idle_server_culled_and_recorded_active_kept_then_max_age(client, hub):
    hk = client.app.state.hk
    idle, active = names("idle", "a", "b")
    hub.create_users([idle, active])
    start_all(hub, [(idle,), (active,)])
    set_activity(hub, active, "", later(90))
    # The session history opens a session once Hubkeeper's directory has seen it running.
    wait_for(
        lambda: [r.status for r in hk.directory.rows_for(idle)] == ["running"],
        timeout=30,
        what="the directory to see the server running",
    )
    now = later(100)
    result = call(client, hk.culler.servers_pass, cfg(timeout_s=60), now=now, users={idle, active})
    assert [(c.user, c.reason) for c in result.culled] == [(idle, "idle")]
    assert not result.error_items()
    assert not server_up(hub, idle) and server_up(hub, active)

    (event,) = events(hk, idle)
    assert (event.kind, event.server, event.reason, event.outcome, event.actor) == (
        "server",
        "",
        "idle",
        "ok",
        "culler",
    )
    assert event.inactive_s is not None and event.inactive_s >= 100
    assert event.age_s is not None and event.age_s >= 100
    assert json.loads(event.settings)["timeout_s"] == 60
    with session_scope(hk.engine) as s:
        audits = s.exec(select(AuditEvent).where(AuditEvent.action == "server.cull")).all()
    assert [(a.actor, a.target, a.via) for a in audits] == [("culler", idle, "system")]
    # The session history closes the server's session with reason `culled`.
    token = hub.user_token("admin")
    wait_for(
        lambda: (
            [
                s["stop_reason"]
                for s in client.get(
                    "/api/v1/sessions",
                    params={"user": idle},
                    headers={"Authorization": f"token {token}"},
                ).json()["items"]
            ]
            == ["culled"]
        ),
        timeout=30,
        what="the session closed as culled",
    )

    # Past max age an active server goes too, however recent its activity.
    result = call(
        client, hk.culler.servers_pass, cfg(timeout_s=3600, max_age_s=50), now=now, users={active}
    )
    assert [(c.user, c.reason) for c in result.culled] == [(active, "max_age")]
    assert not server_up(hub, active)


def test_exemption_until_it_expires_and_group_timeout(client, hub):
    hk = client.app.state.hk
    by_user, by_group, long_job = names("exempt", "u", "g", "long")
    group, long_group = f"{by_group}-grp", f"{long_job}-grp"
    hub.create_users([by_user, by_group, long_job])
    hub.add_to_group(group, [by_group])
    hub.add_to_group(long_group, [long_job])
    admin = SystemActor("test-admin")
    call(
        client,
        hk.culler.add_exemption,
        admin,
        user=by_user,
        group=None,
        reason="keep alive until the run ends",
        until=later(300),
    )
    call(
        client,
        hk.culler.add_exemption,
        admin,
        user=None,
        group=group,
        reason="workshop",
        until=None,
    )
    start_all(hub, [(by_user,), (by_group,), (long_job,)])
    settings = cfg(timeout_s=5, group_timeouts={long_group: 1000})
    mine = {by_user, by_group, long_job}

    soon = call(client, hk.culler.servers_pass, settings, now=later(100), users=mine)
    assert soon.culled == []
    assert {e["user"] for e in soon.exempt} == {by_user, by_group}

    # After the user's exemption has expired (and past the group's long timeout):
    after = call(client, hk.culler.servers_pass, settings, now=later(2000), users=mine)
    assert sorted(c.user for c in after.culled) == sorted([by_user, long_job])
    assert server_up(hub, by_group)
    hub.stop_server(by_group)


def test_named_server_policies(client, hub):
    hk = client.app.state.hk
    (user,) = names("named", "n")
    hub.create_users([user])
    start_all(hub, [(user,), (user, "work")])
    now = later(100)
    keep = call(client, hk.culler.servers_pass, cfg(named_servers="keep"), now=now, users={user})
    assert [(c.server) for c in keep.culled] == [""]
    assert server_up(hub, user, "work")

    cull = call(client, hk.culler.servers_pass, cfg(named_servers="cull"), now=now, users={user})
    assert [c.server for c in cull.culled] == ["work"]
    model = listed_server(hub, user, "work")
    assert model is not None and model["stopped"]  # stopped, still listed

    hub.start_server(user, "work")
    gone = call(
        client,
        hk.culler.servers_pass,
        cfg(named_servers="cull_and_remove"),
        now=later(100),
        users={user},
    )
    assert [(c.server, c.remove) for c in gone.culled] == [("work", True)]
    assert listed_server(hub, user, "work") is None  # removed after it stopped


@pytest.fixture
def client_deleting_users(make_settings, hub):
    """Hubkeeper with the documented opt-in extra for `cull_users`: its role plus
    `delete:users` (a token the hub limits to exactly those scopes; no `admin:users`)."""
    from hubkeeper.demo.localhub import SERVICE_SCOPES

    response = hub.api(
        "POST",
        "/users/admin/tokens",
        token=hub.admin_token,
        json={"scopes": [*SERVICE_SCOPES, "delete:users"], "expires_in": 600},
    )
    assert response.status_code == 201, response.text
    settings = make_settings(
        **QUIET, HUBKEEPER_CULL_STOP_TIMEOUT=10, JUPYTERHUB_API_TOKEN=response.json()["token"]
    )
    with app_client(settings) as c:
        yield c


def test_cull_users_without_the_opt_in_scope_records_the_refusal(client, hub):
    """Without `delete:users` (not in the least-privilege role) a user is not deleted and the
    pass says why, instead of failing."""
    hk = client.app.state.hk
    (plain,) = names("users-noscope", "plain")
    hub.create_users([plain])
    try:
        start_all(hub, [(plain,)])
        settings = cfg(timeout_s=50, cull_users=True)
        result = call(client, hk.culler.servers_pass, settings, now=later(100), users={plain})
        assert [(c.user, c.reason) for c in result.culled] == [(plain, "idle")]
        assert result.deleted_users == []
        assert [e["user"] for e in result.errors] == [plain]
        assert hub.api("GET", f"/users/{plain}").status_code == 200
    finally:
        delete_user(hub, plain)


def test_admin_users_and_cull_users(client_deleting_users, hub):
    client = client_deleting_users
    hk = client.app.state.hk
    admin_name, plain = names("users", "admin", "plain")
    hub.create_users([admin_name], admin=True)
    hub.create_users([plain])
    try:
        start_all(hub, [(admin_name,), (plain,)])
        # The admin is active, so only max age (on the user's `created`) would delete them:
        # jupyterhub-idle-culler 2.0 does; Hubkeeper never deletes an admin with
        # cull_admin_users off.
        set_activity(hub, admin_name, "", later(90))
        settings = cfg(timeout_s=50, max_age_s=60, cull_users=True, cull_admin_users=False)
        result = call(
            client, hk.culler.servers_pass, settings, now=later(100), users={admin_name, plain}
        )
        assert sorted((c.user, c.reason) for c in result.culled) == sorted(
            [(admin_name, "max_age"), (plain, "idle")]
        )
        assert result.deleted_users == [plain]
        assert hub.api("GET", f"/users/{plain}").status_code == 404
        assert hub.api("GET", f"/users/{admin_name}").status_code == 200
    finally:
        delete_user(hub, admin_name)
        delete_user(hub, plain)


def test_user_deleted_mid_pass_does_not_end_it(client, hub):
    hk = client.app.state.hk
    doomed, other = names("midpass", "gone", "stays")
    hub.create_users([doomed, other])
    start_all(hub, [(doomed,), (other,)])

    def delete_after_planning(done: int, total: int) -> None:
        if done == 0:  # planned, nothing stopped yet: the user vanishes now
            delete_user(hub, doomed)

    result = call(
        client,
        hk.culler.servers_pass,
        cfg(),
        now=later(100),
        users={doomed, other},
        progress=delete_after_planning,
    )
    assert [c.user for c in result.culled] == [other]
    (failed,) = result.error_items()
    assert failed["user"] == doomed
    (event,) = events(hk, doomed)
    assert event.outcome == "error" and event.error
    assert not server_up(hub, other)


def test_hub_down_skips_the_pass_with_a_recorded_error(make_settings):
    dead = f"http://127.0.0.1:{free_port()}/hub/api"
    settings = make_settings(**QUIET, JUPYTERHUB_API_URL=dead, HUBKEEPER_HUB_TIMEOUT=1)
    with app_client(settings) as client:
        hk = client.app.state.hk
        result = call(client, hk.culler.servers_pass, cfg())
        assert result.error and result.culled == []
        with session_scope(hk.engine) as s:
            (run,) = s.exec(select(CullRun)).all()
        assert run.kind == "servers" and run.error
        last = call(client, hk.culler.last_run)
        assert last is not None and last["error"]
