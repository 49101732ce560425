"""What is taken from an `api/metrics/v1` answer (user-controlled code), the board, the sorts,
and the sampler's memory of servers without figures (with a stand-in gateway: the real one is
in test_sampler.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from hubkeeper.console.resources import rank
from hubkeeper.console.views import human_bytes, percent
from hubkeeper.db.engine import create_db_engine
from hubkeeper.errors import HubError
from hubkeeper.resources import sampler as sampler_module
from hubkeeper.resources import store
from hubkeeper.resources.board import ResourceBoard
from hubkeeper.resources.figures import MAX_BYTES, Figures, read_figures
from hubkeeper.resources.sampler import NA_RETRY, ResourceSampler

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
MiB = 1024 * 1024


def test_the_extension_s_answer_is_read():
    # as jupyter_resource_usage 1.3 writes it (track_cpu_percent on, MEM_LIMIT set)
    answer = {
        "rss": 96387072,
        "limits": {"memory": {"rss": 2147483648, "pss": 2147483648, "warn": False}},
        "pss": 81306624,
        "cpu_percent": 12.345,
        "cpu_count": 2,
    }
    assert read_figures(answer, AT) == Figures(96387072, 2147483648, 12.3, AT)
    # no limit (0) and no CPU tracking
    plain = {"rss": 1000, "limits": {"memory": {"rss": 0, "pss": 0}}}
    assert read_figures(plain, AT) == Figures(1000, None, None, AT)


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        [],
        "rss",
        {},
        {"rss": "96387072"},
        {"rss": True},
        {"rss": -1},
        {"rss": float("nan")},
        {"rss": float("inf")},
        {"rss": None},
        {"rss": {"nested": 1}},
    ],
)
def test_an_answer_without_a_usable_rss_gives_no_figures(garbage):
    assert read_figures(garbage, AT) is None


def test_odd_values_beside_rss_are_ignored_or_clamped():
    odd: dict[str, Any] = {
        "rss": 10**30,
        "limits": "none",
        "cpu_percent": "100",
    }
    assert read_figures(odd, AT) == Figures(MAX_BYTES, None, None, AT)
    odd = {"rss": 5.5, "limits": {"memory": {"rss": True}}, "cpu_percent": 10**12}
    figures = read_figures(odd, AT)
    assert figures is not None and figures.memory_bytes == 5
    assert figures.memory_limit_bytes is None and figures.cpu_percent == 409600.0
    odd = {"rss": 1, "limits": {"memory": []}, "cpu_percent": -3}
    assert read_figures(odd, AT) == Figures(1, None, None, AT)


def test_human_units():
    assert human_bytes(None) == "n/a" and percent(None) == "n/a"
    assert human_bytes(512) == "512 B"
    assert human_bytes(120 * MiB) == "120 MiB"
    assert human_bytes(1536 * MiB) == "1.5 GiB"
    assert percent(0.44) == "0.4 %" and percent(250.2) == "250 %"


def test_resource_sorts_put_servers_without_figures_last_both_ways():
    values = {"a": 3.0, "b": None, "c": 7.0, "d": 3.0, "e": None}
    items = sorted(values)

    def ranked(sort: str) -> list[str]:
        return rank(items, sort, lambda item, _what: values[item], lambda _item: True)

    assert ranked("memory") == ["a", "d", "c", "b", "e"]
    assert ranked("-memory") == ["c", "a", "d", "b", "e"]  # ties keep name order


def test_the_board_sums_a_user_s_servers_and_counts_changes():
    board = ResourceBoard()
    one = Figures(100, None, 5.0, AT)
    two = Figures(50, None, None, AT)
    assert board.replace({("ann", ""): one, ("ann", "gpu"): two}) and board.version == 1
    assert not board.replace({("ann", ""): one, ("ann", "gpu"): two}) and board.version == 1
    assert board.user_total("ann", "memory") == 150 and board.user_total("ann", "cpu") == 5.0
    assert board.user_total("bob", "memory") is None and board.users() == {"ann"}


class StandInTokens:
    """Stand-in for ServerTokens: every token is cached."""

    def missing(self, servers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return []

    def start_prefetch(self, servers: list[tuple[str, str]]) -> None:
        raise AssertionError("nothing is missing")

    def queued(self, key: tuple[str, str]) -> bool:
        return False

    def usable(self, key: tuple[str, str]) -> bool:
        return True


class StandInGateway:
    """Stand-in for the server gateway, for answers a real jupyter-resource-usage never gives
    (the real one is exercised in test_sampler.py)."""

    mode = "proxy_api"

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.tokens = StandInTokens()
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    async def resource_metrics(self, user: str, server: str) -> dict[str, Any] | None:
        self.asked.append((user, server))
        answer = self.answers[(user, server)]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]


async def test_garbage_404_and_failures_are_n_a_and_asked_again_only_later(make_settings):
    settings = make_settings()
    engine = create_db_engine(settings.database_url)
    started = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    gateway = StandInGateway(
        {
            ("good", ""): {"rss": 10 * MiB},
            ("garbage", ""): {"rss": "lots"},
            ("not-json", ""): HubError("x", code="server_bad_answer"),
            ("none", ""): None,  # 404: no extension
            ("broken", ""): HubError("the server answered 500"),
        }
    )
    now = [1000.0]
    running = [(user, server, started) for user, server in gateway.answers]
    board = ResourceBoard()
    sampler = ResourceSampler(
        gateway=gateway,
        engine=engine,
        board=board,
        running=lambda: running,
        interval=60,
        clock=lambda: now[0],
    )
    try:
        first = await sampler.sample_once()
        assert first is not None
        assert (first.sampled, first.unavailable, first.failed) == (1, 3, 1)
        assert board.get("good", "") is not None and board.get("garbage", "") is None
        assert set(store.load(engine)) == {("good", "")}

        gateway.asked.clear()
        second = await sampler.sample_once()
        assert second is not None and second.skipped == 3
        # n/a servers wait NA_RETRY; a failing one is retried once more before it waits too
        assert sorted(gateway.asked) == [("broken", ""), ("good", "")]
        gateway.asked.clear()
        await sampler.sample_once()
        assert gateway.asked == [("good", "")]

        now[0] += NA_RETRY + 1
        gateway.asked.clear()
        await sampler.sample_once()
        assert len(gateway.asked) == 5

        # a restart is asked at once (the new start may have the extension)
        gateway.asked.clear()
        running[1] = ("garbage", "", datetime(2026, 12, 5, 11, 30, tzinfo=UTC))
        await sampler.sample_once()
        assert sorted(gateway.asked) == [("garbage", ""), ("good", "")]
    finally:
        engine.dispose()


class MintingTokens:
    """Stand-in for ServerTokens whose bulk mint of `slow` servers is still running."""

    def __init__(self, slow: set[tuple[str, str]]) -> None:
        self.slow = slow
        self.started: list[list[tuple[str, str]]] = []
        self.tasks: list[asyncio.Task[int]] = []

    def missing(self, servers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [key for key in servers if key in self.slow]

    def start_prefetch(self, servers: list[tuple[str, str]]) -> asyncio.Task[int]:
        self.started.append(list(servers))
        self.tasks.append(asyncio.create_task(asyncio.sleep(3600, result=0)))
        return self.tasks[-1]

    def queued(self, key: tuple[str, str]) -> bool:
        return key in self.slow

    def usable(self, key: tuple[str, str]) -> bool:
        return key not in self.slow


async def test_a_server_waiting_for_its_token_is_read_later_and_keeps_its_figures(
    make_settings, monkeypatch
):
    """Tokens are minted paced in the background (minutes at 5,000 servers): a pass waits
    MINT_WAIT s at most, reads the servers that have one, and keeps the others' figures."""
    monkeypatch.setattr(sampler_module, "MINT_WAIT", 0.05)
    settings = make_settings()
    engine = create_db_engine(settings.database_url)
    started = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    gateway = StandInGateway({("ann", ""): {"rss": 10 * MiB}, ("bob", ""): {"rss": 20 * MiB}})
    board = ResourceBoard()
    minting = MintingTokens({("bob", "")})  # (from the second pass) bob's token is coming
    sampler = ResourceSampler(
        gateway=gateway,
        engine=engine,
        board=board,
        running=lambda: [("ann", "", started), ("bob", "", started)],
        interval=60,
    )
    try:
        first = await sampler.sample_once()
        assert first is not None and (first.sampled, first.waiting_for_token) == (2, 0)
        gateway.tokens = minting  # type: ignore[assignment]
        gateway.asked.clear()
        second = await sampler.sample_once()
        assert second is not None and (second.sampled, second.waiting_for_token) == (1, 1)
        assert gateway.asked == [("ann", "")] and board.get("bob", "") is not None
        third = await sampler.sample_once()  # asked again (ServerTokens queues it once)
        assert third is not None and third.waiting_for_token == 1
        minting.slow.clear()  # its batch is in
        gateway.asked.clear()
        await sampler.sample_once()
        assert sorted(gateway.asked) == [("ann", ""), ("bob", "")]
    finally:
        for task in minting.tasks:
            task.cancel()
        engine.dispose()
