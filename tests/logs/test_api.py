"""The logs API against a real hub: real log files of real user servers, read through the
server (Range requests), roles, errors, the text download and the live stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import AuditEvent
from hubkeeper.demo.localhub import MANAGERS_GROUP

ADMIN = "logs-admin"
MANAGER = "logs-manager"
ANN = "logs-ann"  # default server running for the whole module
BEN = "logs-ben"  # never started
CAT = "logs-cat"  # a named server, started and stopped by one test
DAN = "logs-dan"  # log file deleted by one test


def log_file(hub: Any, name: str) -> Path:
    return Path(hub.state_dir) / "homes" / name / ".jupyter-server-log.txt"


def append(hub: Any, name: str, *lines: str) -> None:
    with log_file(hub, name).open("a", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


@pytest.fixture(scope="module")
def people(hub: Any, hubkeeper_server: Any) -> dict[str, str]:
    hub.create_users([ADMIN], admin=True)
    hub.create_users([MANAGER, ANN, BEN, CAT, DAN])
    hub.add_to_group(MANAGERS_GROUP, [MANAGER])
    return {"admin": hub.user_token(ADMIN), "manager": hub.user_token(MANAGER)}


@pytest.fixture(scope="module")
def ann_running(hub: Any, people: dict[str, str]) -> Any:
    hub.start_server(ANN)
    yield ANN
    hub.stop_server(ANN)


@pytest.fixture
async def api(hubkeeper_server: Any, people: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=hubkeeper_server.direct_url + "api/v1/",
        headers={"Authorization": f"token {people['admin']}"},
        timeout=60,
    ) as client:
        yield client


def audit_events(hubkeeper_server: Any, action: str, target: str) -> list[AuditEvent]:
    engine = hubkeeper_server.app.state.hk.engine
    with session_scope(engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.target == target)
        return list(session.exec(query).all())


async def test_returns_the_real_log_lines_of_a_running_server(api, ann_running, hubkeeper_server):
    before = len(audit_events(hubkeeper_server, "logs.view", ANN))
    response = await api.get(f"users/{ANN}/logs")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"lines", "source", "truncated"}
    assert any("Jupyter Server" in line for line in body["lines"]), body["lines"][-20:]
    assert body["source"] == f".jupyter-server-log.txt in {ANN}'s server"
    assert body["truncated"] is False
    events = audit_events(hubkeeper_server, "logs.view", ANN)
    assert len(events) == before + 1
    assert events[-1].actor == ADMIN and events[-1].outcome == "ok"


async def test_lines_is_respected_and_truncated_says_more_came_before(api, hub, ann_running):
    append(hub, ANN, *[f"numbered line {i}" for i in range(300)])
    response = await api.get(f"users/{ANN}/logs", params={"lines": 5})
    body = response.json()
    assert body["lines"] == [f"numbered line {i}" for i in range(295, 300)]
    assert body["truncated"] is True
    everything = (await api.get(f"users/{ANN}/logs", params={"lines": 5000})).json()
    assert everything["truncated"] is False
    assert everything["lines"][-300:] == [f"numbered line {i}" for i in range(300)]


async def test_the_byte_window_grows_for_long_lines(api, hub, ann_running):
    # 40 lines of 10 KiB: more than the first 64 KiB read holds.
    append(hub, ANN, *[f"wide {i} " + "x" * 10_000 for i in range(40)])
    body = (await api.get(f"users/{ANN}/logs", params={"lines": 30})).json()
    assert len(body["lines"]) == 30
    assert body["lines"][0].startswith("wide 10 ") and body["lines"][-1].startswith("wide 39 ")
    assert body["truncated"] is True


async def test_undecodable_bytes_and_markup_come_back_as_plain_strings(api, hub, ann_running):
    with log_file(hub, ANN).open("ab") as f:
        f.write(b"bad \xff\xfe bytes\n<script>alert(1)</script>\n")
    lines = (await api.get(f"users/{ANN}/logs", params={"lines": 2})).json()["lines"]
    assert lines == ["bad \ufffd\ufffd bytes", "<script>alert(1)</script>"]


async def test_text_download(api, ann_running):
    response = await api.get(f"users/{ANN}/logs", params={"lines": 5000, "format": "text"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert f'filename="{ANN}-server-log.txt"' in response.headers["content-disposition"]
    assert "Jupyter Server" in response.text
    assert response.text.endswith("\n")


@pytest.mark.parametrize("lines", [0, 5001, -1])
async def test_lines_out_of_range_is_422(api, lines):
    response = await api.get(f"users/{ANN}/logs", params={"lines": lines})
    assert response.status_code == 422


async def test_stopped_server_is_409(api, people):
    response = await api.get(f"users/{BEN}/logs")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "server_not_running"
    assert "read through the running server" in body["detail"]
    stream = await api.get(f"users/{BEN}/logs/stream")
    assert stream.status_code == 409


async def test_unknown_user_and_unknown_named_server_are_404(api, people):
    response = await api.get("users/logs-nobody-at-all/logs")
    assert response.status_code == 404
    assert response.json()["error"] == "user_not_found"
    response = await api.get(f"users/{BEN}/logs", params={"server": "nope"})
    assert response.status_code == 404
    assert response.json()["error"] == "server_not_found"


async def test_named_server_log_and_409_once_it_stops(api, hub, people):
    await asyncio.to_thread(hub.start_server, CAT, "gpu")
    try:
        body = (await api.get(f"users/{CAT}/logs", params={"server": "gpu"})).json()
        assert body["source"] == f".jupyter-server-log.txt in {CAT}'s server 'gpu'"
        assert any("Jupyter Server" in line for line in body["lines"])
    finally:
        await asyncio.to_thread(hub.stop_server, CAT, "gpu")
    response = await api.get(f"users/{CAT}/logs", params={"server": "gpu"})
    assert response.status_code == 409
    assert response.json()["error"] == "server_not_running"


async def test_missing_log_file_is_404_log_not_found(api, hub, people):
    await asyncio.to_thread(hub.start_server, DAN)
    try:
        log_file(hub, DAN).unlink()
        response = await api.get(f"users/{DAN}/logs")
        assert response.status_code == 404
        body = response.json()
        assert body["error"] == "log_not_found"
        assert ".jupyter-server-log.txt" in body["detail"]
        assert "HUBKEEPER_SERVER_LOG_PATH" in body["detail"]
    finally:
        await asyncio.to_thread(hub.stop_server, DAN)


async def test_managers_get_403_and_anonymous_401(hubkeeper_server, people):
    url = hubkeeper_server.direct_url + f"api/v1/users/{ANN}/logs"
    async with httpx.AsyncClient(timeout=30) as client:
        manager = {"Authorization": f"token {people['manager']}"}
        assert (await client.get(url, headers=manager)).status_code == 403
        assert (await client.get(url + "/stream", headers=manager)).status_code == 403
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url + "/stream")).status_code == 401


# --- the live stream -----------------------------------------------------------------------------
async def read_events(response: httpx.Response) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """(event, id, data) for each event of a real SSE response."""
    event, event_id, data = "message", "", ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line == "":
            if data:
                yield event, event_id, json.loads(data)
            event, event_id, data = "message", "", ""


async def test_stream_sends_the_tail_then_lines_appended_afterwards(
    api, hub, ann_running, hubkeeper_server
):
    before = len(audit_events(hubkeeper_server, "logs.stream", ANN))
    append(hub, ANN, "before the stream opened")
    async with api.stream("GET", f"users/{ANN}/logs/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "no-cache" in response.headers["cache-control"]
        events = read_events(response)
        event, first_id, data = await asyncio.wait_for(anext(events), 10)
        assert event == "message"
        assert data["lines"][-1] == "before the stream opened"
        assert 1 < len(data["lines"]) <= 200
        assert int(first_id) == log_file(hub, ANN).stat().st_size

        started = time.monotonic()
        append(hub, ANN, "appended while streaming 1", "appended while streaming 2")
        event, later_id, data = await asyncio.wait_for(anext(events), 10)
        assert time.monotonic() - started < 5
        assert data == {"lines": ["appended while streaming 1", "appended while streaming 2"]}
        assert int(later_id) == log_file(hub, ANN).stat().st_size
    assert len(audit_events(hubkeeper_server, "logs.stream", ANN)) == before + 1


async def test_stream_resumes_from_last_event_id_without_repeating(api, hub, ann_running):
    offset = log_file(hub, ANN).stat().st_size
    append(hub, ANN, "written while the client was away")
    headers = {"Last-Event-ID": str(offset)}
    async with api.stream("GET", f"users/{ANN}/logs/stream", headers=headers) as response:
        events = read_events(response)
        _, _, data = await asyncio.wait_for(anext(events), 10)
        assert data == {"lines": ["written while the client was away"]}


async def test_stream_notices_a_truncated_file_and_ends_when_the_server_stops(api, hub, people):
    await asyncio.to_thread(hub.start_server, DAN)
    stopped = False
    try:
        async with api.stream("GET", f"users/{DAN}/logs/stream") as response:
            events = read_events(response)
            await asyncio.wait_for(anext(events), 10)  # the tail
            log_file(hub, DAN).write_text("")  # truncated (the server keeps appending to it)
            event, _, data = await asyncio.wait_for(anext(events), 10)
            assert event == "notice" and "shorter" in data["message"]
            append(hub, DAN, "after truncation")
            # The read that found the file shorter was answered 416, which the server logs
            # into this very file: that line may come in an event of its own first.
            got: list[str] = []
            while "after truncation" not in got:
                event, _, data = await asyncio.wait_for(anext(events), 10)
                got += data.get("lines", [])
            # besides it, only the server's own access lines (the 416, before or after it)
            assert [line for line in got if " GET /user/" not in line] == ["after truncation"], got

            await asyncio.to_thread(hub.stop_server, DAN)
            stopped = True
            async for event, _, data in events:  # the server's own shutdown lines may come
                if event == "error":
                    assert data["error"] == "server_not_running"
                    assert "detail" in data
                    break
            else:
                raise AssertionError("the stream ended without an error event")
    finally:
        if not stopped:
            await asyncio.to_thread(hub.stop_server, DAN)
