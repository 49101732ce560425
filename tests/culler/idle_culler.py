"""Run jupyterhub-idle-culler 2.0's `cull_idle` and Hubkeeper's server pass on the same hub
state and compare what each decides. Used by tests/culler/test_equivalence.py and bench/culler.py.

`HubLens` is a stand-in at one edge only, named as such: a pass-through in front of the real
hub. Reads (`GET`) go to the real hub (optionally with one user's model rewritten, for states a
real hub will not hold still: a pending spawn, a null activity, a server started days ago);
writes (`DELETE`) are recorded and answered 204 without reaching the hub, so both cullers
decide on exactly the same state and nothing changes (a dry run for idle-culler, which has
none). Both are pointed at the lens.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

Decision = tuple[str, str, str]  # (user, server, "stop" | "stop+remove" | "delete_user")
Rewrite = Callable[[dict[str, Any]], None]  # edits one user model in place


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HubLens:
    """`await lens.start()`; point a culler at `lens.api_url`; read `lens.decisions`."""

    def __init__(self, hub_api_url: str, rewrites: dict[str, Rewrite] | None = None) -> None:
        self.hub_api_url = hub_api_url.rstrip("/")
        self.rewrites = rewrites or {}
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/hub/api"
        self.decisions: set[Decision] = set()
        self._http = httpx.AsyncClient(timeout=60)
        self._server: HTTPServer | None = None

    async def start(self) -> HubLens:
        lens = self

        class Handler(RequestHandler):
            async def get(self, path: str) -> None:
                upstream = await lens._http.get(
                    lens.hub_api_url + "/" + path,
                    params={k: v[-1].decode() for k, v in self.request.query_arguments.items()},
                    headers={
                        k: v
                        for k, v in self.request.headers.items()
                        if k.lower() in ("authorization", "accept")
                    },
                )
                body = upstream.content
                if upstream.status_code == 200 and path.startswith("users"):
                    body = lens._rewrite(upstream.json())
                self.set_status(upstream.status_code)
                self.set_header("Content-Type", upstream.headers.get("content-type", "text/plain"))
                self.finish(body)

            def delete(self, path: str) -> None:
                parts = [unquote(p) for p in path.split("/")]
                payload = json.loads(self.request.body or b"{}") if self.request.body else {}
                if parts[0] == "users" and len(parts) == 2:
                    lens.decisions.add((parts[1], "", "delete_user"))
                elif parts[0] == "users" and len(parts) >= 3:
                    server = parts[3] if parts[2] == "servers" and len(parts) > 3 else ""
                    action = "stop+remove" if payload.get("remove") else "stop"
                    lens.decisions.add((parts[1], server, action))
                self.set_status(204)
                self.finish()

        app = Application([(r"/hub/api/(.*)", Handler)])
        self._server = HTTPServer(app)
        self._server.listen(self.port, "127.0.0.1")
        return self

    def _rewrite(self, body: Any) -> bytes:
        items = body.get("items") if isinstance(body, dict) else body
        if isinstance(items, list):
            for user in items:
                if user.get("name") in self.rewrites:
                    self.rewrites[user["name"]](user)
            if isinstance(body, dict) and (body.get("_pagination") or {}).get("next"):
                # Keep idle-culler's next page on the lens (it follows the absolute URL).
                nxt = body["_pagination"]["next"]
                if nxt.get("url"):
                    parts = urlsplit(nxt["url"])
                    nxt["url"] = f"http://127.0.0.1:{self.port}{parts.path}?{parts.query}"
        elif isinstance(body, dict) and body.get("name") in self.rewrites:
            self.rewrites[body["name"]](body)
        return json.dumps(body).encode()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.stop()
        await self._http.aclose()


async def idle_culler_decisions(
    lens: HubLens,
    token: str,
    *,
    now: datetime,
    timeout: int,  # noqa: ASYNC109 - idle-culler's inactive limit (seconds), not a deadline
    max_age: int,
    cull_users: bool,
    cull_admin_users: bool,
    remove_named_servers: bool,
    cull_named_servers: bool = True,
    concurrency: int = 10,
) -> set[Decision]:
    """What `jupyterhub_idle_culler.cull_idle` (2.0) does at `now` (its module-level `utcnow`,
    "a standalone function for mocking purposes", is set to return `now` for the call)."""
    import jupyterhub_idle_culler as idle_culler

    lens.decisions.clear()
    original = idle_culler.utcnow
    idle_culler.utcnow = lambda: now
    try:
        await idle_culler.cull_idle(
            url=lens.api_url,
            api_token=token,
            inactive_limit=timeout,
            logger=logging.getLogger("idle-culler"),
            cull_users=cull_users,
            remove_named_servers=remove_named_servers,
            max_age=max_age,
            concurrency=concurrency,
            cull_admin_users=cull_admin_users,
            cull_named_servers=cull_named_servers,
        )
    finally:
        idle_culler.utcnow = original
    return set(lens.decisions)


def hubkeeper_decisions(result: Any) -> set[Decision]:
    """The same shape from a Hubkeeper dry-run `PassResult`."""
    found: set[Decision] = {
        (c.user, c.server, "stop+remove" if c.remove else "stop") for c in result.planned
    }
    found |= {(u.user, "", "delete_user") for u in result.planned_users}
    return found
