"""The Culler page (settings: a form for admins, read-only for managers; last run; preview
with `within`; exemptions) and the Culls page (filters, culls per day as an SVG chart, the
list). Writes post with HTMX after the shared confirm dialog and carry the CSRF token."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from hubkeeper.culler import exemptions, records, service
from hubkeeper.culler.backtest_page import PARAMS as BACKTEST_PARAMS
from hubkeeper.culler.backtest_page import backtest_view
from hubkeeper.culler.deps import CullerDep
from hubkeeper.culler.policy import next_pass_at, policy_sentence
from hubkeeper.culler.service import Culler
from hubkeeper.deps import CurrentAdmin, CurrentReader, StateDep
from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.clock import as_utc, utcnow
from hubkeeper.kit.durations import compact
from hubkeeper.kit.window import BadInput, parse_when
from hubkeeper.state import HubkeeperState
from hubkeeper.web.pager import Pager
from hubkeeper.web.params import RowId, choice_param, page_param, text_param, view_url
from hubkeeper.web.strict import refuse_unknown, view_fields
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
WITHIN_CHOICES = ((0, "now"), (900, "in 15 min"), (3600, "in 1 hour"), (86400, "in 1 day"))
DAYS_SHOWN = 30
# the culler page's query: the preview's window and kernels, and a run's result to show
# and the backtest's timeout, source, rows and window (culler/backtest_page.py)
CULLER_PAGE_PARAMS = frozenset({"within", "kernels", "ran", "saved"}) | BACKTEST_PARAMS


def human(seconds: float | None) -> str:
    """3725 → "1 h 02 min"; None → "—"."""
    if seconds is None:
        return "—"
    total = int(seconds)
    if total < 60:
        return f"{total} s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _reload(request: Request, url: str) -> Response:
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _within(request: Request) -> int:
    try:
        value = int(text_param(request.query_params, "within") or "0")
    except ValueError:
        return 0
    return max(0, min(value, service.WITHIN_MAX))


async def _culler_context(hk: HubkeeperState, culler: Culler, request: Request) -> dict[str, Any]:
    cur = await culler.current()
    runs = await asyncio.to_thread(records.last_runs, hk.engine)
    within = _within(request)
    with_kernels = text_param(request.query_params, "kernels") == "1"
    preview_error = ""
    planned: list[Any] = []
    unreachable: list[dict[str, str]] = []
    kept: list[dict[str, Any]] = []
    try:
        planned, unreachable = await culler.preview(within=within, kernels=with_kernels, kept=kept)
    except HubkeeperError as exc:
        preview_error = exc.detail
    rows, _total = await asyncio.to_thread(exemptions.listing, hk.engine, limit=200)
    now = utcnow()
    ran = text_param(request.query_params, "ran")
    states = [(row, exemptions.state_of(row, now)) for row in rows]
    last_servers = runs.get("servers")
    policy = policy_sentence(
        cur.settings,
        next_pass=next_pass_at(last_servers.started_at if last_servers else None, cur.settings),
        exemptions=sum(state == "active" for _row, state in states),
        now=now,
    )
    return {
        "active_nav": "culler",
        "cfg": cur.settings,
        "updated_at": cur.updated_at,
        "updated_by": cur.updated_by,
        "runs": runs,
        "within": within,
        "with_kernels": with_kernels,
        "within_choices": WITHIN_CHOICES,
        "planned": planned,
        "kept": kept,
        "unreachable": unreachable,
        "preview_error": preview_error,
        "exemptions": states,
        "policy": policy,
        "group_lines": "\n".join(
            f"{g}={compact(s)}" for g, s in cur.settings.group_timeouts.items()
        ),
        "human": human,
        "ran": ran,
        "counts": hk.directory.counts(),
        "backtest": await backtest_view(hk, request.query_params, cur.settings.timeout_s),
    }


IDLENESS_PAGE_PARAMS = frozenset({"user", "server"})


@router.get("/culler/idleness")
async def idleness_page(request: Request, who: CurrentReader, culler: CullerDep) -> Response:
    """Why one server is idle or active: its signals and the decision a pass makes now."""
    refuse_unknown(request.query_params, IDLENESS_PAGE_PARAMS)
    user = text_param(request.query_params, "user")
    server = text_param(request.query_params, "server")
    if not user or len(user) > 255 or len(server) > 255:
        raise BadInput("Give the user (and the server, for a named one)", code="invalid_user")
    found = await culler.idleness(user, server)
    return render(
        request,
        "culler/idleness.html",
        {"active_nav": "culler", "user": user, "server": server, "found": found},
    )


@router.get("/culler")
async def culler_page(
    request: Request, who: CurrentReader, hk: StateDep, culler: CullerDep
) -> Response:
    """The culler's settings, last runs, preview and exemptions."""
    refuse_unknown(request.query_params, CULLER_PAGE_PARAMS)
    return render(request, "culler/culler.html", await _culler_context(hk, culler, request))


def _flag(form: Any, name: str) -> bool:
    return form.get(name) in ("1", "on", "true")


def _seconds(form: Any, name: str) -> object:
    raw = str(form.get(name, "")).strip()
    try:
        return int(raw)
    except ValueError:
        # durations in human units ("90m", "7d") are read by settings.parse_put; other text
        # is named and refused by validation
        return raw


def _group_timeouts(text: str) -> object:
    found: dict[str, object] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        name, sep, value = line.rpartition("=")
        if not sep or not name.strip():
            raise BadInput(
                f"Group timeouts, line {number}: write group=duration, like long-jobs=8h",
                code="invalid_settings",
            )
        try:
            found[name.strip()] = int(value.strip())
        except ValueError:
            found[name.strip()] = value.strip()
    return found


@router.post("/culler/settings")
async def save_settings(
    request: Request, who: CurrentAdmin, hk: StateDep, culler: CullerDep
) -> Response:
    """Save the settings form (the whole object, validated; 422 shows what is wrong)."""
    form = await request.form()
    body = {
        "enabled": _flag(form, "enabled"),
        "timeout_s": _seconds(form, "timeout_s"),
        "max_age_s": _seconds(form, "max_age_s"),
        "interval_s": _seconds(form, "interval_s"),
        "concurrency": _seconds(form, "concurrency"),
        "cull_admin_users": _flag(form, "cull_admin_users"),
        "named_servers": str(form.get("named_servers", "")),
        "cull_users": _flag(form, "cull_users"),
        "group_timeouts": _group_timeouts(str(form.get("group_timeouts", ""))),
        "kernels": {
            "enabled": _flag(form, "kernels_enabled"),
            "timeout_s": _seconds(form, "kernels_timeout_s"),
            "interval_s": _seconds(form, "kernels_interval_s"),
            "cull_busy": _flag(form, "kernels_cull_busy"),
            "cull_connected": _flag(form, "kernels_cull_connected"),
        },
    }
    # the newer settings, when the form has them (a page loaded before they existed keeps
    # their current values, as a PUT without them does)
    if "idle_source" in form:
        body.update(
            idle_source=str(form.get("idle_source", "")),
            keep_busy=_flag(form, "keep_busy"),
            warn_before_s=_seconds(form, "warn_before_s"),
            keep_s=_seconds(form, "keep_s"),
            max_keeps=_seconds(form, "max_keeps"),
        )
    await culler.update_settings(who, body)
    return _reload(request, hk.settings.service_prefix + "culler?saved=1")


@router.post("/culler/run")
async def run_now(request: Request, who: CurrentAdmin, hk: StateDep, culler: CullerDep) -> Response:
    """Cull now (after the confirm dialog): one pass, then back to the page with the result."""
    result = await culler.run_once(who)
    ran = f"{len(result.culled())}-{len(result.errors())}"
    return _reload(request, hk.settings.service_prefix + f"culler?ran={ran}")


@router.post("/culler/exemptions")
async def add_exemption(
    request: Request, who: CurrentAdmin, hk: StateDep, culler: CullerDep
) -> Response:
    """Exempt a user or a group (reason required, until optional: a day or a date-time)."""
    form = await request.form()
    kind = str(form.get("kind", "user"))
    name = str(form.get("name", "")).strip()
    until = parse_when(str(form.get("until", "")), "until", end=True)
    await culler.add_exemption(
        who,
        user=name if kind == "user" else None,
        group=name if kind == "group" else None,
        reason=str(form.get("reason", "")),
        until=until,
    )
    return _reload(request, hk.settings.service_prefix + "culler#exemptions-heading")


@router.post("/culler/exemptions/{exemption_id}/delete")
async def delete_exemption(
    request: Request, exemption_id: RowId, who: CurrentAdmin, hk: StateDep, culler: CullerDep
) -> Response:
    """End an exemption now."""
    await culler.delete_exemption(who, exemption_id)
    return _reload(request, hk.settings.service_prefix + "culler#exemptions-heading")


# --- the Culls page ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CullsView:
    user: str = ""
    kind: str = ""
    reason: str = ""
    outcome: str = ""
    since: str = ""
    until: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params: Any) -> CullsView:
        return cls(
            user=text_param(params, "user"),
            kind=choice_param(params, "kind", ("server", "kernel")),
            reason=choice_param(params, "reason", ("idle", "max_age")),
            outcome=choice_param(params, "outcome", ("ok", "error")),
            since=text_param(params, "since"),
            until=text_param(params, "until"),
            page=page_param(params),
        )

    def url(self, base: str, **changes: Any) -> str:
        return view_url(self, base, "culls", **changes)


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    y_server: float
    h_server: float
    y_kernel: float
    h_kernel: float
    day: str
    servers: int
    kernels: int
    label: str


def chart(days: list[tuple[Any, int, int]]) -> dict[str, Any]:
    """Geometry of the culls-per-day chart (servers and kernels stacked), drawn as inline SVG
    by the template, like the History page's chart."""
    width, height, left, right, top, bottom = 800, 200, 40, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((s + k for _d, s, k in days), default=0)
    ceiling = max(1, peak)
    if ceiling > 5:
        power = 10 ** math.floor(math.log10(ceiling))
        ceiling = next(step * power for step in (1, 2, 5, 10) if ceiling <= step * power)
    slot = plot_w / max(1, len(days))
    every = max(1, math.ceil(len(days) / 10))
    bars = []
    for i, (day, servers, kernels) in enumerate(days):
        h_server = plot_h * servers / ceiling
        h_kernel = plot_h * kernels / ceiling
        base_y = top + plot_h
        bars.append(
            Bar(
                x=round(left + i * slot + slot * 0.15, 2),
                width=round(max(1.0, slot * 0.7), 2),
                y_server=round(base_y - h_server, 2),
                h_server=round(h_server, 2),
                y_kernel=round(base_y - h_server - h_kernel, 2),
                h_kernel=round(h_kernel, 2),
                day=day.isoformat(),
                servers=servers,
                kernels=kernels,
                label=day.isoformat()[5:] if i % every == 0 else "",
            )
        )
    ticks = [
        {"y": round(top + plot_h - plot_h * f, 2), "label": f"{ceiling * f:g}"}
        for f in (0.0, 0.5, 1.0)
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "bottom": top + plot_h,
        "bars": bars,
        "ticks": ticks,
        "peak": peak,
    }


def _culls_window(view: CullsView, now: datetime) -> tuple[datetime, datetime, str]:
    """The chart's days: the filter's window (whole UTC days), else the last 30 days."""
    error = ""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        start = parse_when(view.since, "since")
        end = parse_when(view.until, "until", end=True)
    except BadInput as exc:
        start, end, error = None, None, exc.detail
    end = end or today + timedelta(days=1)
    start = start or end - timedelta(days=DAYS_SHOWN)
    if start >= end or (end - start).days > 366:
        error = error or "Show a window of 1 to 366 days; showing the last 30."
        end = today + timedelta(days=1)
        start = end - timedelta(days=DAYS_SHOWN)
    start = as_utc(start).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, as_utc(end), error


@router.get("/culls")
async def culls_page(request: Request, who: CurrentReader, hk: StateDep) -> Response:
    """Every cull (server or kernel), filtered, with culls per day."""
    refuse_unknown(request.query_params, view_fields(CullsView))
    view = CullsView.from_params(request.query_params)
    start, end, error = _culls_window(view, utcnow())
    filters = {
        "user": view.user or None,
        "kind": view.kind or None,
        "reason": view.reason or None,
        "outcome": view.outcome or None,
    }
    days = await asyncio.to_thread(records.per_day, hk.engine, since=start, until=end, **filters)
    rows, total = await asyncio.to_thread(
        records.search,
        hk.engine,
        **filters,
        since=start,
        until=end,
        offset=(view.page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    return render(
        request,
        "culler/culls.html",
        {
            "active_nav": "culls",
            "view": view,
            "rows": rows,
            "pager": Pager(page=view.page, total=total, size=PAGE_SIZE),
            "chart": chart(days),
            "first_day": start.date().isoformat(),
            "last_day": (end - timedelta(microseconds=1)).astimezone(UTC).date().isoformat(),
            "window_error": error,
            "human": human,
            "total_culls": sum(s + k for _d, s, k in days),
        },
    )
