"""Serve the same app under the service prefix (through the hub's proxy) and at / (own port).

JupyterHub's proxy does not strip `/services/<name>/`; setting `root_path` lets Starlette
match routes either way and makes `url_for` produce prefixed links.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class ServicePrefixMiddleware:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.root_path = prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.root_path:
            scope = dict(scope)
            scope["root_path"] = self.root_path
        await self.app(scope, receive, send)
