"""A webhook receiver for tests: a real HTTP server on a free 127.0.0.1 port that keeps what it
is POSTed. The `receivers` fixture (tests/conftest.py imports it) and `start`:

    from tests.webhooks import Receiver, start

    def test_x(receivers):
        hook = start(receivers)             # answers 200
        broken = start(receivers, status=500)
        ... HUBKEEPER_WEBHOOK_URLS=hook.url ...
        hook.wait_for_event("lockdown.on")  # the payload, once it arrived
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.waiting import wait_for


class Receiver(ThreadingHTTPServer):
    """A webhook receiver answering `status` (after `delay` s) and keeping what it got."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.received: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        """Its URL, with a path that stands for the secret incoming-webhook URLs carry."""
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/secret-part"

    def events(self, event: str) -> list[dict[str, Any]]:
        """The payloads of `event` received so far."""
        return [got for got in list(self.received) if got.get("event") == event]

    def wait_for_event(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first payload of `event`, waiting up to `timeout` s for it."""
        found = wait_for(lambda: self.events(event), timeout=timeout, what=f"a {event} POST")
        return found[0]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.server.delay)
        self.server.received.append(json.loads(body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """The receivers a test started (with `start`), shut down afterwards."""
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.shutdown()
        receiver.server_close()


def start(receivers: list[Receiver], **kw: Any) -> Receiver:
    """A receiver serving in a thread, shut down with the `receivers` fixture."""
    receiver = Receiver(**kw)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    receivers.append(receiver)
    return receiver
