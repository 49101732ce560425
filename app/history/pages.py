"""The history page: server-hours per day (an SVG chart and its table), usage by user, group
or profile, with cost where HUBKEEPER_PRICES sets prices, a CSV download, and the sessions,
newest first. The view lives in the query string."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from hubkeeper.deps import CurrentReader, StateDep
from hubkeeper.history import service
from hubkeeper.history.api import usage_rows
from hubkeeper.history.chart import bar_chart
from hubkeeper.history.recorder import aware
from hubkeeper.kit.clock import utcnow
from hubkeeper.web.pager import Pager
from hubkeeper.web.params import choice_param, page_param, text_param, view_url
from hubkeeper.web.strict import refuse_unknown, view_fields
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
USAGE_ROWS = 100  # users or groups with the most server-hours shown; the CSV has them all
MAX_PAGE_DAYS = 366
REASONS = ("admin", "lockdown", "culled", "unknown", "user")


@dataclass(frozen=True)
class HistoryView:
    since: str = ""  # YYYY-MM-DD, first day shown
    until: str = ""  # YYYY-MM-DD, last day shown (inclusive)
    by: str = "user"
    user: str = ""
    reason: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params: Any) -> HistoryView:
        def get(key: str) -> str:
            return text_param(params, key)

        page = page_param(params)
        return cls(
            since=get("since"),
            until=get("until"),
            by=choice_param(params, "by", ("user", "group", "profile"), "user"),
            user=get("user"),
            reason=choice_param(params, "reason", REASONS),
            page=page,
        )

    def url(self, base: str, **changes: Any) -> str:
        return view_url(self, base, "history", **changes)


def _day(raw: str) -> datetime | None:
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    # The page steps back up to MAX_PAGE_DAYS and forward one day from the dates it is given:
    # dates that close to datetime's ends are refused like malformed ones, not crashed on.
    margin = timedelta(days=MAX_PAGE_DAYS + 1)
    return (
        day
        if datetime.min.replace(tzinfo=UTC) + margin
        <= day
        <= datetime.max.replace(tzinfo=UTC) - margin
        else None
    )


def _window(view: HistoryView, now: datetime) -> tuple[datetime, datetime, dict[str, str]]:
    """[first day 00:00, day after the last 00:00); bad fields fall back, with a message."""
    errors: dict[str, str] = {}
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    last = _day(view.until) if view.until else today
    if last is None:
        errors["until"] = "Use a date like 2026-11-26."
        last = today
    first = _day(view.since) if view.since else last - timedelta(days=29)
    if first is None:
        errors["since"] = "Use a date like 2026-11-01."
        first = last - timedelta(days=29)
    if first > last:
        errors["since"] = "The first day must not be after the last."
        first = last - timedelta(days=29)
    if (last - first).days >= MAX_PAGE_DAYS:
        errors["since"] = f"Show at most {MAX_PAGE_DAYS} days; showing the last 30."
        first = last - timedelta(days=29)
    return first, last + timedelta(days=1), errors


def duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min" if minutes else f"{int(seconds)} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@router.get("/history")
async def history_page(request: Request, who: CurrentReader, hk: StateDep) -> Response:
    """Server usage over time, by user or group, and the server sessions."""
    refuse_unknown(request.query_params, view_fields(HistoryView))
    view = HistoryView.from_params(request.query_params)
    now = utcnow()
    start, end, errors = _window(view, now)
    iso = {"since": start.isoformat(), "until": end.isoformat()}
    _, _, days = await usage_rows(hk, iso["since"], iso["until"], "day")
    _, _, table = await usage_rows(hk, iso["since"], iso["until"], view.by)
    rows, total = await asyncio.to_thread(
        service.list_sessions,
        hk.engine,
        user=view.user,
        since=start,
        until=end,
        stop_reason=view.reason,
        offset=(view.page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    sessions = [
        {
            "row": r,
            "started": aware(r.started_at),
            "stopped": aware(r.stopped_at) if r.stopped_at else None,
            "duration": duration(
                r.duration_s
                if r.duration_s is not None
                else (now - aware(r.started_at)).total_seconds()
            ),
        }
        for r in rows
    ]
    csv_query = urlencode({**iso, "by": view.by, "format": "csv"})
    context = {
        "active_nav": "history",
        "view": view,
        "errors": errors,
        "first_day": start.date().isoformat(),
        "last_day": (end - timedelta(days=1)).date().isoformat(),
        "days": days,
        "chart": bar_chart(days),
        # Two decimals, as the rows beside it: a total of 0.0 next to rows of 0.02 reads wrong.
        "total_hours": f"{sum(r.seconds for r in days) / 3600:.2f}",
        # Cost columns only where HUBKEEPER_PRICES sets prices (cost is None otherwise).
        "priced": bool(hk.settings.prices),
        "total_cost": f"{sum(r.cost or 0 for r in days):.2f}",
        "table": table[:USAGE_ROWS],
        "table_total": len(table),
        "csv_url": f"api/v1/usage?{csv_query}",
        "sessions": sessions,
        "pager": Pager(view.page, total, PAGE_SIZE),
        "reasons": REASONS,
        "counts": hk.directory.counts(),
    }
    return render(request, "history/history.html", context)
