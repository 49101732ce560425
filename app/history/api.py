"""`api/v1/sessions` (server sessions) and `api/v1/usage` (aggregates, JSON or CSV)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from hubkeeper.deps import CurrentReader, StateDep
from hubkeeper.history import service
from hubkeeper.history.report import usage as usage_report
from hubkeeper.history.schemas import SessionList, SessionOut, UsageOut, UsageRowOut
from hubkeeper.history.usage import MAX_DAYS, UsageRow, to_csv
from hubkeeper.kit.clock import utcnow
from hubkeeper.kit.window import BadInput, bounds, window
from hubkeeper.state import HubkeeperState
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["history"], dependencies=STRICT_QUERY)


@router.get("/sessions", response_model=SessionList)
async def sessions(
    who: CurrentReader,
    hk: StateDep,
    user: Annotated[str, Query(max_length=255)] = "",
    since: str | None = None,
    until: str | None = None,
    stop_reason: Literal["", "user", "admin", "culled", "lockdown", "unknown"] = "",
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SessionList:
    """Server sessions overlapping [since, until), newest first."""
    start, end = bounds(since, until)
    rows, total = await asyncio.to_thread(
        service.list_sessions,
        hk.engine,
        user=user,
        since=start,
        until=end,
        stop_reason=stop_reason,
        offset=offset,
        limit=limit,
    )
    now = utcnow()
    return SessionList(
        items=[SessionOut.of(r, now) for r in rows], total=total, offset=offset, limit=limit
    )


async def usage_rows(
    hk: HubkeeperState, since: str | None, until: str | None, by: str
) -> tuple[datetime, datetime, list[UsageRow]]:
    """The window and its rows (shared by the API and the page); 422 on bad input."""
    now = utcnow()
    start, end = window(since, until, now=now)
    if by == "day" and (end - start).days > MAX_DAYS:
        raise BadInput(f"by=day covers at most {MAX_DAYS} days", code="invalid_window")

    def groups_of(user: str) -> list[str]:
        # only for sessions recorded before their groups were kept (no hub call: a thread)
        known = hk.directory.get(user)
        return list(known.groups) if known else []

    rows = await asyncio.to_thread(
        usage_report,
        hk.engine,
        since=start,
        until=end,
        by=by,
        now=now,
        groups_of=groups_of,
        prices=hk.settings.prices,
    )
    return start, end, rows


@router.get("/usage", response_model=UsageOut)
async def usage(
    who: CurrentReader,
    hk: StateDep,
    since: str | None = None,
    until: str | None = None,
    by: Literal["day", "user", "group", "profile"] = "day",
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the contract's name
) -> Response | UsageOut:
    """Sessions, server-hours, distinct users and cost per day, user, group or server profile
    (default: last 30 days by day). by=group uses the groups a user was in when the session
    started (current groups for sessions recorded before those were kept): a user in two
    groups counts in both. `cost` = server-hours × HUBKEEPER_PRICES's price of each session's
    profile ("*" for the others), null when no prices are set. `format=csv` answers a CSV
    attachment."""
    start, end, rows = await usage_rows(hk, since, until, by)
    if format == "csv":
        return csv_response(rows, start, end, by)
    return UsageOut(
        since=start,
        until=end,
        by=by,
        rows=[UsageRowOut.model_validate(r.as_dict()) for r in rows],
    )


def csv_response(rows: list[UsageRow], start: datetime, end: datetime, by: str) -> Response:
    """The rows as a CSV attachment named for the window."""
    body = to_csv(rows)
    # named for the first and the last day in it (`end` is exclusive: a bare-date until's
    # next midnight)
    last = end - timedelta(microseconds=1) if end > start else end
    name = f"hubkeeper-usage-{by}-{start:%Y%m%d}-{last:%Y%m%d}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
