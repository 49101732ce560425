"""The periodic server pass takes its candidates from the directory and reads from the hub
only the users it could cull, one by one, deciding from that answer (issue #14); the hub's
own request log says what it was asked."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hubkeeper.culler.keeps import KeepState, start_key
from hubkeeper.culler.passes import may_cull
from hubkeeper.culler.settings import CullerSettings
from hubkeeper.hub.models import HubServer, HubUser
from tests.culler.helpers import QUIET, app_client, call, cfg, later, names, set_activity
from tests.waiting import wait_for


@pytest.fixture
def client(hub, make_settings):
    with app_client(make_settings(**QUIET)) as c:
        yield c


def _requests_since(hub, offset: int) -> list[str]:
    with Path(hub.log_path).open() as log:
        log.seek(offset)
        return [line for line in log if "/hub/api/users" in line and " GET " in line]


def test_only_candidates_are_read_from_the_hub(client, hub):
    hk = client.app.state.hk
    idle, busy = names("cands", "idle", "busy")
    hub.create_users([idle, busy])
    hub.start_server(idle)
    hub.start_server(busy)
    try:
        set_activity(hub, busy, "", later(1800))  # active half an hour from now
        wait_for(lambda: hk.directory.ready, 30, "the directory's first sweep")
        for name in (idle, busy):  # the copies as the directory's sync would take them
            call(client, hk.directory.refresh_user, name)

        def copied() -> bool:
            rows = {r.user: r for r in hk.directory.rows_for(idle) + hk.directory.rows_for(busy)}
            ann = rows.get(busy)
            return (
                idle in rows
                and rows[idle].status == "running"
                and ann is not None
                and ann.status == "running"
                and ann.last_activity is not None
                and ann.last_activity > later(600)
            )

        wait_for(copied, 10, "both servers, and the busy one's activity, in the directory")
        # the routes watch has seen both servers start (and re-read their users): settled
        wait_for(
            lambda: {(idle, ""), (busy, "")} <= set(hk.directory._route_table or {}),
            10,
            "both routes watched",
        )
        time.sleep(2 * hk.settings.routes_interval + 0.5)
        offset = Path(hub.log_path).stat().st_size
        result = call(
            client,
            hk.culler.servers_pass,
            cfg(timeout_s=300),
            now=later(900),
            users={idle, busy},
            from_directory=True,
        )
        assert [c.user for c in result.culled] == [idle]
        asked = _requests_since(hub, offset)
        assert any(f"/hub/api/users/{idle}?" in line for line in asked), asked
        assert not any(f"/hub/api/users/{busy}" in line for line in asked), asked
        assert not any("state=ready" in line for line in asked), asked  # no walk of the hub
    finally:
        hub.stop_server(idle)
        hub.stop_server(busy)


def test_may_cull_on_copies():
    """Pure: which directory copies make a user a candidate of the periodic pass."""
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

    def ago(s: float) -> datetime:
        return now - timedelta(seconds=s)

    def one(started: float, last: float, **kw: object) -> HubUser:
        s = HubServer(ready=True, started=ago(started), last_activity=ago(last))
        return HubUser(name="u", servers={"": s}, **kw)  # type: ignore[arg-type]

    hub = CullerSettings(timeout_s=600, max_age_s=0)
    assert may_cull(hub, one(700, 650), now)  # idle past the timeout
    assert not may_cull(hub, one(700, 10), now)  # used: kept on its copy, not asked
    assert may_cull(CullerSettings(timeout_s=600, max_age_s=500), one(700, 10), now)  # max age
    # idle_source kernels: a kernel is younger than its server, so only age tells
    kernels = CullerSettings(timeout_s=600, max_age_s=0, idle_source="kernels")
    assert not may_cull(kernels, one(300, 10), now)
    assert may_cull(kernels, one(700, 10), now)
    # cull_users: a stopped server in the copy is no server kept; a user who left long ago goes
    gone = HubServer(stopped=True, started=None, last_activity=ago(9000))
    users = CullerSettings(timeout_s=600, max_age_s=0, cull_users=True)
    left = HubUser(name="u", servers={"": gone}, last_activity=ago(9000), created=ago(9999))
    assert may_cull(users, left, now)
    assert not may_cull(hub, left, now)


def test_may_cull_looks_warn_before_s_ahead_and_heeds_keeps():
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    started = now - timedelta(seconds=700)
    server = HubServer(ready=True, started=started, last_activity=now - timedelta(seconds=500))
    user = HubUser(name="u", servers={"": server})
    plain = CullerSettings(timeout_s=600, max_age_s=0)
    assert not may_cull(plain, user, now)  # due in 100 s
    warned = CullerSettings(timeout_s=600, max_age_s=0, warn_before_s=300)
    assert may_cull(warned, user, now)  # due within warn_before_s: read, to be warned
    kept = {("u", ""): KeepState(start_key(server), 1, now + timedelta(hours=1))}
    late = HubUser(
        name="u",
        servers={"": server.model_copy(update={"last_activity": now - timedelta(seconds=900)})},
    )
    assert may_cull(plain, late, now)
    assert not may_cull(plain, late, now, kept)  # kept for an hour: not read every pass
