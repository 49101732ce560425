"""Security headers on every response: no framing, no sniffing, scripts only from us.

The pages load no inline script (htmx, common.js, each page's own script and theme.js are
files under static/), so the Content-Security-Policy can forbid inline and injected scripts
outright: an escaping mistake cannot turn into script execution. Inline styles stay allowed
for htmx's indicator styles and progress-bar widths.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(hub_url: str) -> str:
    # The access-server form redirects to the user's server on the hub's origin.
    parts = urlsplit(hub_url)
    hub_origin = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            f"form-action 'self'{hub_origin}",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, hub_url: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", content_security_policy(hub_url).encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                present = {name.lower() for name, _ in message["headers"]}
                message["headers"] = list(message["headers"]) + [
                    header for header in self.headers if header[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
