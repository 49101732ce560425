"""The periodic kernel pass leaves alone the servers where nothing could have changed
(culler/quiet.py), and looks again as soon as something could have."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hubkeeper.culler.quiet import QuietServers
from hubkeeper.culler.settings import KernelSettings
from tests.culler.helpers import QUIET, app_client, call, cfg, names
from tests.waiting import wait_for

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
KEY = ("ann", "")
KERNELS = KernelSettings(timeout_s=600)


def _seen(quiet: QuietServers, kernels: list[dict[str, str]], *, at: datetime = T0) -> None:
    quiet.remember(KEY, started=T0, cfg=KERNELS, kernels=kernels, now=at)


def _skips(quiet: QuietServers, *, route: datetime | None, now: datetime, **kw: object) -> bool:
    options = {"started": T0, "cfg": KERNELS, **kw}
    return quiet.may_skip(KEY, route_activity=route, now=now, **options)  # type: ignore[arg-type]


def test_no_traffic_and_no_deadline_reached_skips():
    quiet = QuietServers()
    idle = {"id": "k", "execution_state": "idle", "last_activity": T0.isoformat()}
    long_ago = T0 - timedelta(hours=2)
    assert not _skips(quiet, route=T0, now=T0, started=long_ago)  # never looked, old enough
    _seen(quiet, [idle])
    assert _skips(quiet, route=T0 - timedelta(seconds=1), now=T0 + timedelta(seconds=599))
    # traffic since the look, the deadline reached, no route, a restart, other settings
    assert not _skips(quiet, route=T0 + timedelta(seconds=1), now=T0 + timedelta(seconds=60))
    assert not _skips(quiet, route=T0, now=T0 + timedelta(seconds=600))
    assert not _skips(quiet, route=None, now=T0 + timedelta(seconds=60))
    restarted = T0 + timedelta(seconds=5)
    assert not _skips(quiet, route=T0, now=T0 + timedelta(seconds=60), started=restarted)
    other = KernelSettings(timeout_s=600, cull_busy=True)
    assert not _skips(quiet, route=T0, now=T0 + timedelta(seconds=60), cfg=other)


def test_a_busy_kernel_is_looked_at_every_pass_once_its_deadline_has_passed():
    """A long cell in a closed tab: no traffic, last_activity frozen when it went busy."""
    quiet = QuietServers()
    busy = {"id": "k", "execution_state": "busy", "last_activity": T0.isoformat()}
    after = T0 + timedelta(seconds=700)
    _seen(quiet, [busy], at=after)  # looked after its deadline: still busy, kept
    assert not _skips(quiet, route=T0, now=after + timedelta(seconds=300))


def test_dead_or_undated_kernels_and_empty_servers():
    quiet = QuietServers()
    _seen(quiet, [{"id": "k", "execution_state": "dead", "last_activity": T0.isoformat()}])
    assert not _skips(quiet, route=T0, now=T0 + timedelta(seconds=1))
    _seen(quiet, [{"id": "k", "execution_state": "idle"}])
    assert not _skips(quiet, route=T0, now=T0 + timedelta(seconds=1))
    _seen(quiet, [])  # no kernels: nothing becomes cullable without traffic
    assert _skips(quiet, route=T0, now=T0 + timedelta(days=30))


def test_first_sight_skips_until_a_kernel_could_be_due():
    """Never looked at: no kernel can be due before the server's start + timeout_s."""
    quiet = QuietServers()
    assert _skips(quiet, route=T0, now=T0 + timedelta(seconds=599))
    # the look as of then holds: still skipped without traffic, looked at after it
    assert _skips(quiet, route=T0, now=T0 + timedelta(seconds=599))
    assert not _skips(quiet, route=T0 + timedelta(seconds=700), now=T0 + timedelta(seconds=599))
    other = QuietServers()
    assert not _skips(other, route=T0, now=T0 + timedelta(seconds=600))  # could be due
    assert not _skips(other, route=T0, now=T0, started=None)  # start unknown
    assert not _skips(other, route=None, now=T0)  # no route read
    # first seen, then the deadline passes without traffic: looked at
    third = QuietServers()
    assert _skips(third, route=T0, now=T0 + timedelta(seconds=10))
    assert not _skips(third, route=T0, now=T0 + timedelta(seconds=600))


@pytest.fixture
def client(hub, make_settings):
    with app_client(make_settings(**QUIET)) as c:
        yield c


def test_the_periodic_pass_skips_a_quiet_server_until_it_is_used(client, hub):
    hk = client.app.state.hk
    (user,) = names("quiet", "q")
    hub.create_users([user])
    hub.start_server(user)
    try:
        # the periodic pass lists running servers from the directory's copy
        wait_for(
            lambda: [r for r in hk.directory.rows_for(user) if r.status == "running"],
            10,
            "the server in the directory",
        )
        settings = cfg(kernels={"enabled": True, "timeout_s": 3600})
        pass_ = hk.culler.kernels_pass
        # just started: no kernel can be due for an hour, so the first pass leaves it
        first = call(client, pass_, settings, users={user}, skip_quiet=True)
        assert not first.errors and hk.culler.quiet.skipped == 1
        assert [(e["user"]) for e in first.exempt] == [] and first.planned == []
        call(client, pass_, settings, users={user})  # run/preview: never skip
        assert hk.culler.quiet.skipped == 1
        # a request through the proxy (a browser tab) is traffic on the route
        token = hub.user_token(user)
        response = httpx.get(
            f"{hub.url}/user/{user}/api/status",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        time.sleep(1.0)  # the proxy stamps the route as the response ends: let it, then look
        looked = call(client, pass_, settings, users={user}, skip_quiet=True)
        assert hk.culler.quiet.skipped == 1 and not looked.errors  # looked at
        call(client, pass_, settings, users={user}, skip_quiet=True)
        assert hk.culler.quiet.skipped == 2  # nothing could have changed since
    finally:
        hub.stop_server(user)
