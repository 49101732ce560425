"""Jinja environment shared by every page. Autoescape is on for everything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from hubkeeper.kit.clock import utcnow
from hubkeeper.paths import TEMPLATES_DIR

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.autoescape = True


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """'12 min ago' — coarse on purpose: the hub's activity is only minute-accurate."""
    if value is None:
        return "never"
    now = now or utcnow()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        return "just now"
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''} ago"


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def exact(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def through(value: datetime | None) -> str:
    """An exclusive end (`until`) as people say it: midnight UTC starting 2026-12-07 →
    "through 2026-12-06" (its last whole day); any other time → "until <exact time>"."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
        return f"through {(value - timedelta(days=1)).date().isoformat()}"
    return f"until {exact(value)}"


templates.env.filters["ago"] = ago
templates.env.filters["through"] = through
templates.env.filters["iso"] = iso
templates.env.filters["exact"] = exact


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """Render a template with what every page needs (prefix, the signed-in person, CSRF)."""
    ctx: dict[str, Any] = {
        "base": request.app.state.settings.service_prefix,
        "hub_url": request.app.state.settings.browser_hub_url,
        "principal": getattr(request.state, "principal", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
    }
    # What every page shows beside (the lockdown banner): given by `hubkeeper.main` as
    # `app.state.page_context(request) -> dict`, so this layer imports no capability.
    page_context = getattr(request.app.state, "page_context", None)
    if page_context is not None:
        ctx.update(page_context(request))
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
