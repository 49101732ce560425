"""The Culler page's backtest section: the recorded history replayed under a timeout typed
on the page (`bt_timeout`, `bt_source`, `bt_by`, `bt_days` in the page's query), as a table
per group or user. Bad values are said on the page, next to the form; nothing is changed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.datastructures import QueryParams

from hubkeeper.culler import backtest
from hubkeeper.culler.backtest_api import parse_timeout, replays
from hubkeeper.culler.backtest_chart import timeouts_to_try, trade_off
from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.clock import utcnow
from hubkeeper.kit.window import BadInput
from hubkeeper.state import HubkeeperState
from hubkeeper.web.params import choice_param, text_param

PARAMS = frozenset({"bt_timeout", "bt_source", "bt_by", "bt_days"})
DAY_CHOICES = ((7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "a year"))
SOURCES = (("hub", "Hub activity"), ("kernels", "Kernel activity"))
BYS = (("group", "Group"), ("user", "User"))


def form_timeout(seconds: int) -> str:
    """The form's starting timeout: the current policy's (seconds), moved into the range a
    backtest takes (5 min to 30 d), so the form never starts with a value it refuses (a
    45 s policy gave "0m"); whole minutes as "90m", else seconds."""
    seconds = min(max(seconds, backtest.MIN_TIMEOUT), backtest.MAX_TIMEOUT)
    return f"{seconds // 60}m" if seconds % 60 == 0 else str(seconds)


async def backtest_view(
    hk: HubkeeperState, params: QueryParams, default_timeout: int
) -> dict[str, Any]:
    """The section's context: the form's values, and — when a timeout was asked for — the
    rows and total (`result`) and the trade-off chart over the candidate timeouts beside the
    current policy's (`chart`), or the reason there are none (`error`). One read of the
    window replays every candidate (backtest_api.replays: the summary, the rest replayed)."""
    raw = text_param(params, "bt_timeout")
    # fixed choices: a value the form cannot send is a 422 page (web/params.choice_param),
    # never a form that silently shows its first option instead
    source = choice_param(params, "bt_source", [v for v, _label in SOURCES], "hub")
    by = choice_param(params, "bt_by", [v for v, _label in BYS], "group")
    days_raw = choice_param(params, "bt_days", [str(d) for d, _label in DAY_CHOICES], "30")
    view: dict[str, Any] = {
        "timeout": raw or form_timeout(default_timeout),
        "source": source,
        "by": by,
        "days": days_raw,
        "day_choices": DAY_CHOICES,
        "sources": SOURCES,
        "bys": BYS,
        "result": None,
        "chart": None,
        "error": "",
    }
    if not raw:
        return view
    try:
        timeout = parse_timeout(raw, "The idle timeout")
        if source not in dict(SOURCES):
            raise BadInput("The activity source must be hub or kernels")
        if by not in dict(BYS):
            raise BadInput("Rows are per group or per user")
        if days_raw not in {str(d) for d, _label in DAY_CHOICES}:
            raise BadInput("The window must be 7, 30, 90 or 365 days")
        now = utcnow()
        found = await replays(
            hk,
            timeouts_to_try(timeout, default_timeout),
            since=now - timedelta(days=int(days_raw)),
            until=now,
            source=source,
            by=by,
        )
        result = found[timeout]
    except HubkeeperError as exc:
        view["error"] = exc.detail
        return view
    view["result"] = backtest.items(result)
    view["timeout_s"] = timeout
    view["chart"] = trade_off(found, typed=timeout, current=default_timeout)
    return view
