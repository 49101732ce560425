"""The pure decisions, case by case (no hub): the rules idle-culler and jupyter_server use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hubkeeper.culler.decide import Signals, decide_kernel, decide_server, decide_user, judge_server
from hubkeeper.culler.settings import CullerSettings, KernelSettings
from hubkeeper.hub.models import HubServer, HubUser

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def user(name="u", admin=False, groups=(), last=None, created=None, **servers) -> HubUser:
    return HubUser(
        name=name,
        admin=admin,
        groups=list(groups),
        last_activity=last,
        created=created,
        servers=servers,
    )


def server(name="", ready=True, pending=None, started=ago(100), last=ago(100)) -> HubServer:
    return HubServer(name=name, ready=ready, pending=pending, started=started, last_activity=last)


CFG = CullerSettings(timeout_s=60, max_age_s=1000)


def test_idle_at_exactly_the_timeout_is_culled_as_idle_culler_does():
    s = server(last=ago(60))
    assert decide_server(CFG, user(s=s), s, NOW).reason == "idle"
    s = server(last=ago(59))
    assert decide_server(CFG, user(s=s), s, NOW) is None


def test_null_activity_falls_back_to_started_then_the_user():
    s = server(last=None, started=ago(70))
    cull = decide_server(CFG, user(s=s), s, NOW)
    assert cull.reason == "idle" and cull.inactive_s == 70
    s = server(last=None, started=None)
    assert decide_server(CFG, user(last=ago(80), s=s), s, NOW).inactive_s == 80
    assert decide_server(CFG, user(s=s), s, NOW) is None  # nothing known: left alone


def test_pending_or_not_ready_is_never_culled():
    for s in (server(pending="spawn"), server(pending="stop"), server(ready=False)):
        assert decide_server(CFG, user(s=s), s, NOW) is None


def test_max_age_culls_an_active_server():
    s = server(started=ago(1000), last=ago(1))
    assert decide_server(CFG, user(s=s), s, NOW).reason == "max_age"
    no_max = CFG.model_copy(update={"max_age_s": 0})
    assert decide_server(no_max, user(s=s), s, NOW) is None


def test_group_timeouts_take_the_longest_of_the_users_groups():
    cfg = CFG.model_copy(update={"group_timeouts": {"long": 500, "short": 10, "mid": 200}})
    assert cfg.timeout_for(["short", "long"]) == 500
    assert cfg.timeout_for(["short"]) == 10
    assert cfg.timeout_for([]) == 60
    s = server(last=ago(300))
    assert decide_server(cfg, user(groups=["long"], s=s), s, NOW) is None
    assert decide_server(cfg, user(groups=["mid"], s=s), s, NOW).reason == "idle"


def test_named_server_policies():
    s = server(name="gpu", last=ago(100), started=ago(5000))
    keep = CFG.model_copy(update={"named_servers": "keep"})
    assert decide_server(keep, user(s=s), s, NOW) is None  # max age too (idle-culler differs)
    remove = CFG.model_copy(update={"named_servers": "cull_and_remove"})
    assert decide_server(remove, user(s=s), s, NOW).remove is True
    assert decide_server(CFG, user(s=s), s, NOW).remove is False


def test_user_deletion_never_an_admin_when_cull_admin_users_is_off():
    cfg = CFG.model_copy(update={"cull_users": True, "cull_admin_users": False})
    old_admin = user(admin=True, last=ago(1), created=ago(5000))
    assert decide_user(cfg, old_admin, NOW) is None
    assert (
        decide_user(cfg.model_copy(update={"cull_admin_users": True}), old_admin, NOW).reason
        == "max_age"
    )
    assert decide_user(cfg, user(last=ago(100)), NOW).reason == "idle"
    assert decide_user(cfg, user(last=None, created=ago(100)), NOW).reason == "idle"
    assert decide_user(CFG, user(last=ago(100)), NOW) is None  # cull_users off


K = KernelSettings(timeout_s=60)


def kernel(state="idle", last=ago(100), connections=0, kid="k1") -> dict:
    return {
        "id": kid,
        "execution_state": state,
        "last_activity": None if last is None else last.isoformat(),
        "connections": connections,
    }


def test_kernel_rules_are_jupyter_servers():
    assert decide_kernel(K, "u", "", kernel(), NOW).kernel_id == "k1"
    assert decide_kernel(K, "u", "", kernel(last=ago(60)), NOW) is None  # strictly longer
    assert decide_kernel(K, "u", "", kernel(state="busy"), NOW) is None
    assert (
        decide_kernel(K.model_copy(update={"cull_busy": True}), "u", "", kernel(state="busy"), NOW)
        is not None
    )
    assert decide_kernel(K, "u", "", kernel(connections=2), NOW) is None
    assert (
        decide_kernel(
            K.model_copy(update={"cull_connected": True}), "u", "", kernel(connections=2), NOW
        )
        is not None
    )
    assert decide_kernel(K, "u", "", kernel(state="dead", last=ago(1)), NOW) is not None
    assert decide_kernel(K, "u", "", kernel(last=None), NOW) is None
    assert decide_kernel(K, "u", "", {"execution_state": "idle"}, NOW) is None
    z = {
        "id": "k2",
        "execution_state": "idle",
        "last_activity": "2026-11-30T11:00:00Z",
        "connections": 0,
    }
    assert decide_kernel(K, "u", "", z, NOW).inactive_s == 3600


def stamp(seconds: float) -> str:
    return ago(seconds).isoformat().replace("+00:00", "Z")


def test_a_busy_kernel_or_a_used_terminal_keeps_an_idle_server_but_not_past_max_age():
    s = server(last=ago(80))
    busy = Signals(kernels=({"id": "k1", "execution_state": "busy", "last_activity": stamp(900)},))
    verdict = judge_server(CFG, user(s=s), s, NOW, busy)
    assert verdict.cull is None and verdict.kept is not None and "k1" in verdict.kept
    typing = Signals(terminals=({"name": "1", "last_activity": stamp(10)},))
    assert judge_server(CFG, user(s=s), s, NOW, typing).kept is not None
    careless = CFG.model_copy(update={"keep_busy": False})
    assert decide_server(careless, user(s=s), s, NOW, busy).reason == "idle"
    old = server(started=ago(2000), last=ago(80))
    assert decide_server(CFG, user(s=old), old, NOW, busy).reason == "max_age"


def test_under_kernels_only_kernels_and_terminals_count_and_unreachable_falls_back_to_hub():
    by_kernels = CFG.model_copy(update={"idle_source": "kernels"})
    polled = server(started=ago(500), last=ago(1))  # the hub sees a polling tab
    idle = Signals(kernels=({"id": "k", "execution_state": "idle", "last_activity": stamp(70)},))
    assert decide_server(by_kernels, user(s=polled), polled, NOW, idle).reason == "idle"
    assert decide_server(CFG, user(s=polled), polled, NOW, idle) is None  # hub: kept
    used = Signals(kernels=({"id": "k", "execution_state": "idle", "last_activity": stamp(5)},))
    assert decide_server(by_kernels, user(s=polled), polled, NOW, used) is None
    young = server(started=ago(30), last=ago(1))
    assert decide_server(by_kernels, user(s=young), young, NOW, Signals()) is None
    assert decide_server(by_kernels, user(s=polled), polled, NOW, Signals()).reason == "idle"
    lost = Signals(error="no route")
    stale = server(started=ago(500), last=ago(80))
    cull = decide_server(by_kernels, user(s=stale), stale, NOW, lost)
    assert cull.reason == "idle" and "no route" in cull.note
    assert decide_server(by_kernels, user(s=polled), polled, NOW, lost) is None


def test_a_keep_postpones_the_idle_cull_but_never_max_age():
    cfg = CullerSettings(timeout_s=60, max_age_s=0)
    idle = server(started=ago(500), last=ago(100))
    owner = user(**{"": idle})
    kept = judge_server(cfg, owner, idle, NOW, kept_until=NOW + timedelta(seconds=30))
    assert kept.cull is None and kept.kept is not None and kept.kept.startswith("keep: ")
    assert kept.idle_due() == NOW + timedelta(seconds=30)
    ended = judge_server(cfg, owner, idle, NOW, kept_until=NOW)
    assert ended.cull is not None and ended.cull.reason == "idle"
    aged = CullerSettings(timeout_s=60, max_age_s=400)
    past_max = judge_server(aged, owner, idle, NOW, kept_until=NOW + timedelta(hours=1))
    assert past_max.cull is not None and past_max.cull.reason == "max_age"


def test_a_cull_decided_without_asking_the_server_says_so_in_its_record():
    from hubkeeper.culler import records
    from hubkeeper.culler.schemas import CullOut

    by_kernels = CFG.model_copy(update={"idle_source": "kernels"})
    stale = server(started=ago(500), last=ago(80))
    cull = decide_server(by_kernels, user(s=stale), stale, NOW, Signals(error="no route"))
    event = records.event_of(cull, outcome="ok", error="", settings_json="{}", actor="culler")
    event.id = 1
    out = CullOut.of(event)
    assert out.note and "could not be asked (no route)" in out.note
    assert "hub's activity decided" in out.note
    usual = decide_server(CFG, user(s=stale), stale, NOW, None)
    plain = records.event_of(usual, outcome="ok", error="", settings_json="{}", actor="culler")
    plain.id = 2
    assert CullOut.of(plain).note is None


def test_a_server_whose_kernels_were_shut_down_is_idle_from_its_last_kernel():
    import asyncio

    from hubkeeper.culler.kernels_seen import KernelsSeen
    from hubkeeper.culler.passes import read_signals

    by_kernels = CFG.model_copy(update={"idle_source": "kernels", "max_age_s": 0})
    s = server(started=ago(500), last=ago(1))  # started long ago; a tab keeps the hub busy
    stamp = lambda seconds: ago(seconds).isoformat()  # noqa: E731

    class Gateway:
        kernels = [{"id": "k", "execution_state": "idle", "last_activity": stamp(30)}]

        async def list_kernels(self, user: str, server: str) -> list[dict]:
            return list(self.kernels)

        async def list_terminals(self, user: str, server: str) -> list[dict]:
            return []

    gateway, seen = Gateway(), KernelsSeen()
    looked = asyncio.run(read_signals(gateway, "u", "", seen=seen, started=s.started))
    assert decide_server(by_kernels, user(s=s), s, NOW, looked) is None  # used 30 s ago
    gateway.kernels = []  # the user shut the kernel down
    after = asyncio.run(read_signals(gateway, "u", "", seen=seen, started=s.started))
    assert after.gone_kernels_at == ago(30)
    # idle from the last kernel (30 s < 60 s), not from the start 500 s ago
    assert decide_server(by_kernels, user(s=s), s, NOW, after) is None
    assert decide_server(by_kernels, user(s=s), s, NOW + timedelta(seconds=31), after)
    # without the memory (another culler took over), from the start, as before
    fresh = asyncio.run(read_signals(gateway, "u", "", seen=KernelsSeen(), started=s.started))
    assert decide_server(by_kernels, user(s=s), s, NOW, fresh).reason == "idle"
    # a restarted server starts afresh
    assert seen.last("u", "", ago(5)) is None
