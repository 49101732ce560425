"""Memory and CPU of real servers: jupyter-resource-usage in the session hub's servers (the
venv's jupyterhub-singleuser), read directly at the route target by the sampler.

Two servers for the module: one with the extension, one without (`nometrics-*`: 404).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from hubkeeper.auth.sessions import issue_session
from hubkeeper.db.engine import create_db_engine
from hubkeeper.demo.localhub import NO_METRICS_PREFIX
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.servers import ServerGateway
from hubkeeper.kit.clock import parse_iso
from hubkeeper.main import create_app
from hubkeeper.resources.board import ResourceBoard
from hubkeeper.resources.sampler import ResourceSampler
from tests.waiting import wait_for

ANN = "res-ann"
BARE = f"{NO_METRICS_PREFIX}res"
MiB = 1024 * 1024
LIMIT = 2 * 1024**3  # the test hub's c.Spawner.mem_limit = "2G" (MEM_LIMIT)


@pytest.fixture(scope="module")
def servers(hub) -> Iterator[list[tuple[str, str, datetime | None]]]:
    hub.create_users([ANN, BARE])
    with ThreadPoolExecutor(2) as pool:  # both at once: a start takes seconds
        list(pool.map(hub.start_server, (ANN, BARE)))
    try:
        yield [(name, "", parse_iso(hub.server_model(name)["started"])) for name in (ANN, BARE)]
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(hub.stop_server, (ANN, BARE)))


def test_api_and_page_show_memory_and_the_session_records_its_peak(hub, servers, make_settings):
    app = create_app(make_settings(HUBKEEPER_RESOURCES_INTERVAL=1))
    admin = {"Authorization": f"token {hub.user_token('admin')}"}
    with TestClient(app) as client:

        def figures(name: str) -> Any:
            body = client.get(f"api/v1/users/{name}", headers=admin).json()
            return body["servers"][0]["resources"]

        found = wait_for(lambda: figures(ANN), 30, "the server's memory in the API")
        assert found["memory_bytes"] > 20 * MiB and found["memory_limit_bytes"] == LIMIT
        assert isinstance(found["cpu_percent"], float) and found["cpu_percent"] >= 0
        assert found["at"].endswith("+00:00")
        assert figures(BARE) is None  # no extension: n/a

        # the open session keeps the peak, the mean CPU and the limit
        def sampled_session() -> Any:
            items = client.get("api/v1/sessions", params={"user": ANN}, headers=admin).json()
            open_ = [i for i in items["items"] if i["stopped_at"] is None]
            return open_[0] if open_ and open_[0]["peak_memory_bytes"] else None

        session = wait_for(sampled_session, 30, "the session's peak memory")
        assert session["peak_memory_bytes"] >= 20 * MiB
        assert session["memory_limit_bytes"] == LIMIT and session["mean_cpu_percent"] >= 0

        # sorted by memory, largest first: the server without figures comes last
        listed = client.get(
            "api/v1/users",
            params={"q": "res", "state": "running", "sort": "-memory"},
            headers=admin,
        ).json()
        names = [u["name"] for u in listed["items"]]
        assert names.index(ANN) < names.index(BARE)

        # the users page: Memory and CPU columns, n/a where there is nothing
        name, value, _csrf = asyncio.run(
            issue_session(app.state.hk, user="admin", role="admin", access_token="x")
        )
        page = client.get(
            "users", params={"q": "res", "sort": "-memory"}, headers={"Cookie": f"{name}={value}"}
        )
        assert page.status_code == 200, page.text
        soup = BeautifulSoup(page.text, "html.parser")
        headings = [th.get_text(strip=True) for th in soup.select("table.users-table thead th")]
        assert "Memory" in headings and "CPU" in headings
        rows = {tr["data-user"]: tr for tr in soup.select("table.users-table tbody tr")}
        memory = rows[ANN].select_one("td.cell-memory")
        assert memory is not None and int(memory["data-memory-bytes"]) > 20 * MiB
        assert "MiB" in memory.get_text() and "/ 2.0 GiB" in memory.get_text()
        assert rows[ANN].select_one("td.cell-cpu[data-cpu-percent]") is not None
        bare = rows[BARE].select_one("td.cell-memory")
        assert bare is not None and bare.get_text(strip=True) == "n/a"
        assert list(rows).index(ANN) < list(rows).index(BARE)

        # the user's page: the server's memory and CPU, the session's peak
        own = client.get(f"users/{ANN}", headers={"Cookie": f"{name}={value}"})
        assert own.status_code == 200, own.text
        soup = BeautifulSoup(own.text, "html.parser")
        cell = soup.select_one("#user-servers-table td.cell-resource[data-memory-bytes]")
        assert cell is not None and "MiB" in cell.get_text() and "%" in cell.get_text()
        peaks = [td.get_text(strip=True) for td in soup.select("#user-sessions td.num")]
        assert any(text.endswith("MiB") for text in peaks), peaks


async def test_a_pass_with_cached_tokens_asks_the_hub_nothing_and_is_no_activity(
    hub, servers, make_settings
):
    settings = make_settings()
    hub_requests: list[str] = []
    client = HubClient(
        settings.hub_api_url,
        settings.hub_api_token,
        on_request=lambda _seconds, outcome: hub_requests.append(outcome),
    )
    gateway = ServerGateway.from_settings(client, settings)
    engine = create_db_engine(settings.database_url)
    board = ResourceBoard()
    sampler = ResourceSampler(
        gateway=gateway, engine=engine, board=board, running=lambda: servers, interval=60
    )
    try:
        status_before = await gateway.server_status(ANN)
        routes_before = await gateway.read_routes()
        first = await sampler.sample_once()
        assert first is not None and (first.sampled, first.unavailable) == (1, 1), first
        assert board.get(ANN, "") is not None and board.get(BARE, "") is None

        hub_requests.clear()
        minted = gateway.tokens.minted
        second = await sampler.sample_once()
        assert second is not None and second.sampled == 1
        assert second.skipped == 1  # the server without the extension waits 10 minutes
        assert hub_requests == [] and gateway.tokens.minted == minted

        # never the user's activity: neither the server's own nor the proxy route's moved
        status_after = await gateway.server_status(ANN)
        assert status_after["last_activity"] == status_before["last_activity"]
        routes_after = await gateway.read_routes()
        assert routes_after[(ANN, "")].last_activity == routes_before[(ANN, "")].last_activity
    finally:
        await gateway.aclose()
        await client.aclose()
        engine.dispose()
