"""SIGTERM with a log stream open ends `hubkeeper serve` within 5 s, and the stream's last
event tells the page to reconnect (the EventSource then finds the next process).

A real process (the command operators run) against the session hub, on a port of its own;
the stream is the live tail of a real user's server log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from hubkeeper.demo.localhub import free_port
from tests.conftest import TEST_COOKIE_SECRET
from tests.waiting import wait_for

pytestmark = pytest.mark.subprocess

USER = "steady-sigterm"
EXIT_WITHIN = 5.0  # s, the requirement


def test_sigterm_with_a_log_stream_open_ends_within_5_s_with_reconnect(hub, tmp_path: Path):
    hub.create_users([USER])
    hub.start_server(USER)
    port = free_port()
    env = {**_serve_env(hub, port, tmp_path), "HUBKEEPER_LOG_LEVEL": "warning"}
    base = f"http://127.0.0.1:{port}{hub.service_prefix}"
    log_file = tmp_path / "serve.log"
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubkeeper.cli", "serve"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    received: list[str] = []
    try:
        wait_for(lambda: _answers(base + "api/v1/lockdown/status"), 60, "hubkeeper serve")
        token = hub.user_token("admin")
        reader = threading.Thread(
            target=_read_stream,
            args=(base + f"api/v1/users/{USER}/logs/stream", token, received),
            daemon=True,
        )
        reader.start()
        wait_for(lambda: any(line.startswith("data:") for line in received), 30, "the tail")

        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            proc.wait(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running {EXIT_WITHIN} s after SIGTERM\n{log_file.read_text()[-3000:]}"
            ) from None
        took = time.monotonic() - sent
        reader.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        hub.stop_server(USER)
    assert took < EXIT_WITHIN
    assert "event: reconnect" in received, received[-5:]
    # the reconnect event is the stream's last one
    last_event = [line for line in received if line.startswith("event:")][-1]
    assert last_event == "event: reconnect"


def _serve_env(hub, port: int, tmp_path: Path) -> dict[str, str]:  # noqa: ANN001
    """`hubkeeper serve`'s environment for the session hub, on `port`: the caller's
    JUPYTERHUB_*/HUBKEEPER_* dropped."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "HUBKEEPER_"))}
    return {
        **clean,
        **hub.hubkeeper_env(),
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "HUBKEEPER_DATABASE_URL": f"sqlite:///{tmp_path / 'hk.sqlite'}",
        "HUBKEEPER_COOKIE_SECRET": TEST_COOKIE_SECRET,
    }


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _read_stream(url: str, token: str, into: list[str]) -> None:
    """Collect the stream's lines until the server ends it."""
    headers = {"Authorization": f"token {token}"}
    try:
        with httpx.stream("GET", url, headers=headers, timeout=30) as response:
            for line in response.iter_lines():
                into.append(line)
    except httpx.HTTPError as exc:
        into.append(f"! {type(exc).__name__}")


def test_sigint_ends_serve_quietly_as_the_hub_stops_a_managed_service(hub, tmp_path: Path):
    """The hub stops a managed service with SIGINT: a clean exit, no traceback in its log."""
    port = free_port()
    env = _serve_env(hub, port, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubkeeper.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: _answers(f"http://127.0.0.1:{port}{hub.service_prefix}api/v1/health/live"),
            60,
            "hubkeeper serve",
        )
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=EXIT_WITHIN + 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
