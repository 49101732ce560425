"""Keeps and warnings against the real shared hub: an ordinary user's own servers and their
outlook, "keep running" (max_keeps, audited, nobody else's server), a kept server surviving a
pass that culls an idle one, and one `cull.warning` per due time however many passes and
replicas record it. Time is moved by passing `now` to the single pass."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import quote

import pytest
from bs4 import BeautifulSoup
from sqlmodel import select

from hubkeeper.auth.sessions import issue_session
from hubkeeper.culler import settings as culler_settings
from hubkeeper.culler.passes import servers_pass
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import AuditEvent, Notification
from hubkeeper.kit.actors import SystemActor
from hubkeeper.kit.clock import parse_iso, utcnow
from hubkeeper.kit.metrics import CULL_WARNINGS
from hubkeeper.outbox.record import Outbox
from tests.culler.helpers import QUIET, app_client, call, cfg, names, server_up
from tests.outbox.test_outbox import Receiver
from tests.waiting import wait_for

ADMIN = SystemActor("test-admin")


@pytest.fixture
def client(make_settings):
    with app_client(make_settings(**QUIET, HUBKEEPER_CULL_STOP_TIMEOUT=10)) as c:
        yield c


def start_all(hub, users):
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(hub.start_server, users))


def as_user(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def audits(hk, action: str):
    with session_scope(hk.engine) as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.action == action)).all()
        return [(a.actor, a.target, a.outcome) for a in rows]


def test_an_ordinary_user_sees_and_keeps_only_their_own_server(client, hub):
    hk = client.app.state.hk
    own, other, idle = names("keep", "own", "other", "idle")
    hub.create_users([own, other, idle])
    culler_settings.save(hk.engine, cfg(timeout_s=600, keep_s=3600, max_keeps=2), "test")
    start_all(hub, [own, other])
    mine = as_user(hub.user_token(own))

    assert client.get("/api/v1/me", headers=mine).json() == {"name": own, "role": "user"}
    (item,) = client.get("/api/v1/me/servers", headers=mine).json()["items"]
    assert (item["name"], item["status"], item["keeps_left"], item["keep_until"]) == (
        "",
        "running",
        2,
        None,
    )
    assert item["cull_reason"] == "idle"
    due = parse_iso(item["cull_at"])
    assert due is not None and due <= utcnow() + timedelta(seconds=600)

    kept = client.post("/api/v1/me/server/keep", headers=mine)
    assert kept.status_code == 200, kept.text
    assert kept.json()["keeps_left"] == 1
    until = parse_iso(kept.json()["keep_until"])
    assert until is not None and until > utcnow() + timedelta(seconds=3500)
    (item,) = client.get("/api/v1/me/servers", headers=mine).json()["items"]
    assert item["keep_until"] == kept.json()["keep_until"] and item["cull_at"] == item["keep_until"]
    assert item["keeps_left"] == 1
    assert (own, own, "ok") in audits(hk, "culler.keep")

    # someone else's server: the admin routes refuse, and `me/...` names only their own
    theirs = client.post(f"/api/v1/users/{quote(other)}/server/keep", headers=mine)
    assert theirs.status_code == 403 and theirs.json()["error"] == "no_role"
    named = client.post(f"/api/v1/me/servers/{quote(other)}/keep", headers=mine)
    assert named.status_code == 404 and named.json()["error"] == "server_not_found"
    assert client.get(f"/api/v1/users/{quote(other)}/idleness", headers=mine).status_code == 403

    # the page's button: a cookie session, refused without the CSRF token, in place with it
    cookie, value, csrf = call(client, issue_session, hk, user=own, role="user")
    client.cookies.set(cookie, value)
    refused = client.post("/me/server/keep", headers={"Sec-Fetch-Site": "same-origin"})
    assert refused.status_code == 403
    card = client.post(
        "/me/server/keep", headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-origin"}
    )
    client.cookies.clear()
    result = BeautifulSoup(card.text, "html.parser").select_one("article [data-keep-result]")
    assert card.status_code == 200 and result.get_text() == "Kept: 0 keep(s) left."
    # max_keeps per server start, then 409 (audited as failed); an admin keeps any server
    refused = client.post("/api/v1/me/server/keep", headers=mine)
    assert refused.status_code == 409 and refused.json()["error"] == "too_many_keeps"
    assert (own, own, "failed") in audits(hk, "culler.keep")
    admin = as_user(hub.user_token("admin"))
    by_admin = client.post(f"/api/v1/users/{quote(other)}/server/keep", headers=admin)
    assert by_admin.status_code == 200 and by_admin.json()["keeps_left"] == 1
    assert ("admin", other, "ok") in audits(hk, "culler.keep")
    # the admin's button on the user's page: a toast, and the servers region told to refresh
    cookie, value, csrf = call(client, issue_session, hk, user="admin", role="admin")
    client.cookies.set(cookie, value)

    def keep_button():  # the directory's copy shows the server running within a sync
        page = BeautifulSoup(client.get(f"/users/{quote(other)}").text, "html.parser")
        return page.select_one("[data-keep-button]")

    assert wait_for(keep_button, timeout=30, what="the Keep running button")
    same_origin = {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-origin"}
    toast = client.post(f"/users/{quote(other)}/server/keep", headers=same_origin)
    assert toast.headers["HX-Trigger"] == "servers-changed"
    text = BeautifulSoup(toast.text, "html.parser").select_one("[data-toast]").get_text(" ")
    assert "0 keep(s) left" in text, text
    page = BeautifulSoup(client.get(f"/users/{quote(other)}").text, "html.parser")
    spent_button = page.select_one("[data-keep-button]")
    assert spent_button["data-keeps-left"] == "0" and spent_button.has_attr("disabled")
    spent = client.post(f"/users/{quote(other)}/server/keep", headers=same_origin)
    text = BeautifulSoup(spent.text, "html.parser").select_one("[data-toast]").get_text(" ")
    assert "Could not keep" in text and "toast-error" in spent.text, text
    client.cookies.clear()

    # a server that is not running cannot be kept
    nothing = client.post("/api/v1/me/server/keep", headers=as_user(hub.user_token(idle)))
    assert nothing.status_code == 409 and nothing.json()["error"] == "not_running"
    for user in (own, other):
        hub.stop_server(user)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    threading.Thread(target=found.serve_forever, daemon=True).start()
    yield found
    found.shutdown()
    found.server_close()


def test_a_kept_server_survives_the_pass_that_culls_an_idle_one_and_warnings_go_once(
    make_settings, hub, receiver
):
    settings = make_settings(
        **QUIET,
        HUBKEEPER_CULL_STOP_TIMEOUT=10,
        HUBKEEPER_WEBHOOK_URLS=receiver.url,
        HUBKEEPER_LEADER_INTERVAL=1,  # the sender (a leader loop) starts within a second
    )
    with app_client(settings) as client:
        passes_warn_once_and_keeps_hold(client, hub, receiver)


def passes_warn_once_and_keeps_hold(client, hub, receiver) -> None:
    hk = client.app.state.hk
    kept, plain = names("keep", "kept", "plain")
    hub.create_users([kept, plain])
    policy = cfg(timeout_s=100, warn_before_s=200, keep_s=150)
    culler_settings.save(hk.engine, policy, "test")
    start_all(hub, [kept, plain])
    now = utcnow()
    call(client, hk.culler.keep, ADMIN, kept, "", now=now)
    users = {kept, plain}

    # due within warn_before_s: one warning each (plain: idle at start + 100 s; kept: at the
    # keep's end), however many passes and replicas record them
    warnings_before = CULL_WARNINGS._value.get()
    first = call(client, hk.culler.servers_pass, policy, now=now, users=users)
    assert not first.culled
    other_replica = Outbox(hk.engine, [receiver.url])
    for _ in range(2):
        call(
            client,
            servers_pass,
            policy,
            hub=hk.hub,
            engine=hk.engine,
            stopper=hk.stopper,
            stop_timeout=10,
            now=now,
            users=users,
            outbox=other_replica,
            page_url="https://hub.example/services/hubkeeper/me",
        )
    with session_scope(hk.engine) as s:
        rows = s.exec(select(Notification).where(Notification.event == "cull.warning")).all()
        warned = {r.user: r for r in rows if r.user in users}
    assert sorted(warned) == sorted(users)
    assert other_replica.recorded == 0
    assert CULL_WARNINGS._value.get() == warnings_before + 2

    # the webhook gets each warning once (the leader's sender), with the page's URL
    def warnings_received() -> list[dict]:
        return [m for m in receiver.received if m["event"] == "cull.warning"]

    wait_for(lambda: len(warnings_received()) >= 2, timeout=20, what="the warnings delivered")
    time.sleep(1.0)  # a second delivery would be due in the same round: it would be here
    got = warnings_received()
    assert sorted(m["user"] for m in got) == sorted(users)
    assert all(m["url"] == warned[m["user"]].link and m["reason"] == "idle" for m in got)
    text = warned[plain].text
    assert text.startswith(f"{plain}'s server stops at ") and " UTC for idleness unless" in text
    assert warned[plain].link.endswith("/services/hubkeeper/me")
    assert text.endswith(warned[plain].link)

    # past the timeout, within the keep: the idle server goes, the kept one stays (and says why)
    preview_kept: list[dict] = []
    planned, _ = call(
        client, hk.culler.preview, within=120, users=users, kernels=False, kept=preview_kept
    )
    assert [c.user for c in planned] == [plain]
    assert [(k["user"], k["kept"].split(":")[0]) for k in preview_kept] == [(kept, "keep")]
    result = call(
        client, hk.culler.servers_pass, policy, now=now + timedelta(seconds=120), users=users
    )
    assert [c.user for c in result.culled] == [plain]
    assert server_up(hub, kept) and not server_up(hub, plain)
    with session_scope(hk.engine) as s:
        done = s.exec(
            select(Notification).where(
                Notification.event == "cull.done", Notification.user == plain
            )
        ).all()
    assert [d.text for d in done] == [f"Stopped {plain}'s server after 2 min idle"]
    why = call(client, hk.culler.idleness, kept, "", now=now + timedelta(seconds=120))
    assert why["decision"] == "keep" and why["reason"].startswith("keep: kept until")
    assert parse_iso(why["cull_at"]) == now + timedelta(seconds=150)
    # the keep's end passed: culled like any idle server (max age is never postponed either)
    result = call(
        client, hk.culler.servers_pass, policy, now=now + timedelta(seconds=200), users=users
    )
    assert [c.user for c in result.culled] == [kept]
