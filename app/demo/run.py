"""`hubkeeper demo`: a real local JupyterHub with Hubkeeper as a managed service and demo users.

State (the hub's database, Hubkeeper's database and cookie secret, users' homes) stays in
`--dir` between runs, so sessions and the audit trail carry over.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

import httpx

from hubkeeper.demo.localhub import MANAGERS_GROUP, LocalHub, free_port, port_is_free

ADMIN = "admin"
MANAGER = "manager"
USERS = ["alice", "bob", "carol", "dave"]
# Course groups, so the console's group filter has something to filter.
GROUPS = {"physics-101": ["alice", "bob", "carol"], "data-science": ["carol", "dave"]}
# (user, server name): started at every run so the console has something to show.
RUNNING_SERVERS = [("alice", ""), ("bob", ""), ("bob", "gpu")]


def _say(message: str = "") -> None:
    print(message, flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _wait_for_hubkeeper(hub: LocalHub, timeout: float = 30.0) -> bool:
    url = hub.origin + hub.service_prefix + "api/v1/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=3.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def build_hub(state_dir: Path, port: int) -> LocalHub:
    service_env = {
        "HUBKEEPER_DATABASE_URL": f"sqlite:///{state_dir / 'hubkeeper.sqlite'}",
        "HUBKEEPER_ADMIN_GROUPS": "",
        "HUBKEEPER_MANAGER_GROUPS": MANAGERS_GROUP,
        "HUBKEEPER_COOKIE_SECRET_FILE": str(state_dir / "hubkeeper_cookie_secret"),
        "HUBKEEPER_LOG_LEVEL": "info",
    }
    return LocalHub(
        state_dir,
        port=port,
        managed=True,
        service_env=service_env,
        admin_users=(ADMIN,),
        start_timeout=60.0,
    )


def populate(hub: LocalHub) -> None:
    # ADMIN exists already: LocalHub lists it in the hub's admin_users.
    hub.create_users([MANAGER, *USERS])
    hub.add_to_group(MANAGERS_GROUP, [MANAGER])
    for group, members in GROUPS.items():
        hub.add_to_group(group, members)
    with ThreadPoolExecutor(max_workers=len(RUNNING_SERVERS)) as pool:
        futures = [
            pool.submit(hub.start_server, user, server, timeout=90.0)
            for user, server in RUNNING_SERVERS
        ]
        for future in futures:
            future.result()


def run_demo(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per health poll
    state_dir = Path(args.dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    port = int(args.port or 0)
    if port and not port_is_free(port):
        chosen = free_port()
        _say(f"Port {port} is taken; using {chosen} instead.")
        port = chosen
    hub = build_hub(state_dir, port or free_port())

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _say(f"Starting JupyterHub at {hub.url} (state in {state_dir}) ...")
        started = time.monotonic()
        hub.start()
        if not _wait_for_hubkeeper(hub):
            _say("Hubkeeper did not answer its health check; the hub log says:")
            _say(hub.log_tail())
            return 1
        _say("Creating demo users and starting a few servers ...")
        populate(hub)
        _say(
            "\n".join(
                [
                    "",
                    f"Hubkeeper demo is ready ({time.monotonic() - started:.0f} s).",
                    "",
                    f"  JupyterHub:  {hub.url}/hub/",
                    f"  Hubkeeper:   {hub.origin}{hub.service_prefix}",
                    "",
                    "  Sign in with any password (the hub uses the dummy authenticator):",
                    f"    {ADMIN:<8} hub admin: everything in Hubkeeper",
                    f"    {MANAGER:<8} in group '{MANAGERS_GROUP}': read-only Hubkeeper",
                    f"    {', '.join(USERS)}: ordinary users (their own page only)",
                    "  Running servers: "
                    + ", ".join(f"{u}/{s}" if s else f"{u} (default)" for u, s in RUNNING_SERVERS),
                    "",
                    f"  API: sign in as admin, make a token at {hub.url}/hub/token, then",
                    '    curl -H "Authorization: token $TOKEN" '
                    f"{hub.origin}{hub.service_prefix}api/v1/users",
                    f"  (API docs: {hub.origin}{hub.service_prefix}api/docs)",
                    "",
                    "  Hubkeeper reads users' servers directly at their proxy routes (proxy",
                    f"  API {hub.proxy_api_url}), so watching a log is nobody's activity.",
                    "",
                    f"  Logs: {hub.log_path}",
                    "",
                    "Ctrl-C to stop.",
                ]
            )
        )
        while hub.running:
            time.sleep(0.5)
        _say("JupyterHub exited unexpectedly; the end of its log:")
        _say(hub.log_tail())
        return 1
    except KeyboardInterrupt:
        _say("\nStopping ...")
        return 0
    finally:
        # A second Ctrl-C or SIGTERM during shutdown (a supervisor, `timeout`, an impatient
        # user) must not cut the clean-up short and leave the hub and its servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            hub.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        _say("Stopped.")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_demo(argparse.Namespace(dir=".demo", port=8000)))
