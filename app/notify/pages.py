"""The Notifications page (admins): every webhook delivery, newest first, filtered by event
and `since` (the API's names and values: a day or an ISO date-time, UTC; a bad one is a 422),
with how many webhook URLs are configured. Filters and page live in the query string."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hubkeeper.deps import CurrentAdmin, StateDep
from hubkeeper.kit.window import parse_when
from hubkeeper.notify.service import deliveries
from hubkeeper.outbox.events import EVENTS
from hubkeeper.web.pager import Pager
from hubkeeper.web.params import choice_param, page_param, text_param, view_url
from hubkeeper.web.strict import refuse_unknown, view_fields
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


@dataclass(frozen=True)
class NotificationsView:
    event: str = ""
    since: str = ""  # as the API's `since`: 2026-12-01 or an ISO date-time (UTC)
    page: int = 1

    @classmethod
    def from_params(cls, params: Any) -> NotificationsView:
        return cls(
            event=choice_param(params, "event", EVENTS),
            since=text_param(params, "since"),
            page=page_param(params),
        )

    @property
    def filtered(self) -> bool:
        return bool(self.event or self.since)

    def url(self, base: str, **changes: Any) -> str:
        return view_url(self, base, "notifications", **changes)


@router.get("/notifications")
async def notifications_page(request: Request, who: CurrentAdmin, hk: StateDep) -> Response:
    """Webhook deliveries, newest first, with the event filter kept in the URL."""
    refuse_unknown(request.query_params, view_fields(NotificationsView))
    view = NotificationsView.from_params(request.query_params)
    since = parse_when(view.since or None, "since")  # BadInput (422) as the API
    rows, total = await asyncio.to_thread(
        deliveries,
        hk.engine,
        event=view.event or None,
        since=since,
        offset=(view.page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    context = {
        "active_nav": "notifications",
        "view": view,
        "rows": rows,
        "pager": Pager(view.page, total, PAGE_SIZE),
        "events": EVENTS,
        # the outbox's (HUBKEEPER_WEBHOOK_URLS): what new events are delivered to
        "webhook_count": len(hk.outbox.urls) if hk.outbox else 0,
        "counts": hk.directory.counts(),
    }
    if (
        request.headers.get("HX-Request")
        and not request.headers.get("HX-History-Restore-Request")
        and request.headers.get("HX-Target") == "notification-results"
    ):
        response = render(request, "notify/_results.html", context)
        # the canonical URL (empty filters left out), not the form's `?event=&since=`
        response.headers["HX-Push-Url"] = view.url(hk.settings.service_prefix)
        return response
    return render(request, "notify/notifications.html", context)
