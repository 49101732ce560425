"""Slow and vanishing clients against Hubkeeper served by uvicorn as `hubkeeper serve` runs
it (HeaderTimeoutH11Protocol, BodyTimeoutMiddleware), over real sockets, with the bounds
shortened to a second."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from hubkeeper.main import create_app
from hubkeeper.web import timeouts

PREFIX = "/services/hubkeeper"


class QuickHeaders(timeouts.HeaderTimeoutH11Protocol):
    header_timeout = 1.0


@pytest.fixture
def served(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(timeouts, "BODY_TIMEOUT", 1.0)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = uvicorn.Config(
        create_app(make_settings()),
        host="127.0.0.1",
        port=port,
        log_level="info",
        http=QuickHeaders,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)


def read_all(sock: socket.socket, limit: float = 10.0) -> bytes:
    """Everything until the server closes (or `limit` seconds)."""
    sock.settimeout(limit)
    got = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return got
        if not chunk:
            return got
        got += chunk


def test_headers_dribbled_a_byte_at_a_time_are_cut_off(served):
    sock = socket.create_connection(("127.0.0.1", served))
    started = time.monotonic()
    closed = False
    try:
        request = f"GET {PREFIX}/api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode()
        for byte in request + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 5:
                break
        if not closed:
            closed = read_all(sock, 3) == b""
    finally:
        sock.close()
    assert closed, "the connection stayed open while its headers dribbled in"
    assert time.monotonic() - started < 5


def test_a_body_dribbled_too_slowly_is_answered_408(served):
    sock = socket.create_connection(("127.0.0.1", served))
    try:
        sock.sendall(
            f"POST {PREFIX}/api/v1/exemptions HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        started = time.monotonic()
        sock.settimeout(10)
        answer = sock.recv(65536)
        waited = time.monotonic() - started
        answer += read_all(sock, 2)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    assert waited < 5


def test_a_client_gone_mid_body_is_a_quiet_line(served, hub, caplog):
    token = hub.user_token("admin")
    caplog.set_level(logging.DEBUG)
    sock = socket.create_connection(("127.0.0.1", served))
    sock.sendall(
        f"PUT {PREFIX}/api/v1/culler HTTP/1.1\r\nHost: x\r\nAuthorization: token {token}\r\n"
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"enab'.encode()
    )
    time.sleep(0.3)
    sock.close()
    deadline = time.monotonic() + 10
    while not any("disconnected" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.1)
    time.sleep(0.3)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
