"""Hubkeeper as a separate process beside a LocalHub, with a signed-in admin session."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from itsdangerous import URLSafeTimedSerializer

from hubkeeper.db.engine import create_db_engine, migrate, session_scope
from hubkeeper.db.models import WebSession
from hubkeeper.demo.localhub import LocalHub

VENV_BIN = Path(sys.executable).parent
SESSION_COOKIE = "hubkeeper-session"  # app/auth/sessions.py


class Hubkeeper:
    """`hubkeeper serve` on the LocalHub's service port, its db and log in `state_dir`."""

    def __init__(self, hub: LocalHub, state_dir: Path) -> None:
        self.hub = hub
        self.state_dir = state_dir
        self.db_url = f"sqlite:///{state_dir / 'hubkeeper.sqlite'}"
        self.cookie_secret = secrets.token_hex(32)
        self.log_path = state_dir / "hubkeeper.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.up_at = 0.0

    def session_cookie(self, user: str = "admin", role: str = "admin") -> str:
        """A browser session written straight into Hubkeeper's db, signed as sessions.py does."""
        migrate(self.db_url)
        engine = create_db_engine(self.db_url)
        web_session = WebSession(
            id=secrets.token_urlsafe(32),
            user=user,
            role=role,
            access_token="",  # no hub token: the session is never re-checked against the hub
            csrf_token=secrets.token_urlsafe(32),
        )
        with session_scope(engine) as db:
            db.add(web_session)
        engine.dispose()
        value = URLSafeTimedSerializer(self.cookie_secret, salt="hubkeeper.session").dumps(
            web_session.id
        )
        return f"{SESSION_COOKIE}={value}"

    def start(self, timeout: float = 60.0) -> None:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "HUBKEEPER_"))
        }
        env.update(self.hub.hubkeeper_env())
        env.update(
            {
                "HUBKEEPER_DATABASE_URL": self.db_url,
                "HUBKEEPER_COOKIE_SECRET": self.cookie_secret,
                # uvicorn's access log is at info: keep it out of the measured path
                "HUBKEEPER_LOG_LEVEL": "warning",
                "PYTHONUNBUFFERED": "1",
            }
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "hubkeeper"), "serve"],
            cwd=self.state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hubkeeper exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.hub.service_url + "/api/v1/health", timeout=2).status_code:
                    self.up_at = time.monotonic()
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hubkeeper did not answer in {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
