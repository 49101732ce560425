"""The audit page: every action a person or the system took, filtered, newest first.

Filters and page live in the query string (shareable, reloadable); a bad date is reported next
to its field instead of failing the page.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import Engine
from sqlmodel import col, select
from starlette.responses import Response

from hubkeeper.actions.audit import search
from hubkeeper.audit import names  # noqa: F401 - registers the action_name filter
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import AuditEvent
from hubkeeper.deps import CurrentReader, StateDep
from hubkeeper.kit.window import BadInput, parse_when
from hubkeeper.web.pager import Pager
from hubkeeper.web.params import choice_param, page_param, text_param
from hubkeeper.web.strict import refuse_unknown, view_fields
from hubkeeper.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
OUTCOMES = ("ok", "failed", "pending")
# Offered as suggestions in the filter fields; small, so one query each is cheap.
SUGGESTIONS = 200


@dataclass(frozen=True)
class AuditView:
    actor: str = ""
    action: str = ""
    target: str = ""
    since: str = ""
    until: str = ""
    outcome: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params: Any) -> AuditView:
        def get(key: str) -> str:
            return text_param(params, key)

        page = page_param(params)
        return cls(
            actor=get("actor"),
            action=get("action"),
            target=get("target"),
            since=get("since"),
            until=get("until"),
            outcome=choice_param(params, "outcome", OUTCOMES),
            page=page,
        )

    @property
    def filtered(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name != "page")

    def params(self, **changes: Any) -> dict[str, str]:
        view = replace(self, **changes) if changes else self
        return {
            f.name: str(getattr(view, f.name))
            for f in fields(view)
            if getattr(view, f.name) != f.default
        }

    def url(self, base: str, **changes: Any) -> str:
        query = urlencode(self.params(**changes))
        return f"{base}audit?{query}" if query else f"{base}audit"


def _query(engine: Engine, view: AuditView, since: datetime | None, until: datetime | None) -> Any:
    with session_scope(engine) as session:
        events, total = search(
            session,
            actor=view.actor or None,
            action=view.action or None,
            target=view.target or None,
            since=since,
            until=until,
            outcome=view.outcome or None,
            offset=(view.page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
        actions = session.exec(
            select(AuditEvent.action).distinct().order_by(col(AuditEvent.action)).limit(SUGGESTIONS)
        ).all()
        actors = session.exec(
            select(AuditEvent.actor).distinct().order_by(col(AuditEvent.actor)).limit(SUGGESTIONS)
        ).all()
    return events, total, list(actions), list(actors)


@router.get("/audit")
async def audit_page(request: Request, who: CurrentReader, hk: StateDep) -> Response:
    """The audit trail, newest first, with filters kept in the URL."""
    refuse_unknown(request.query_params, view_fields(AuditView))
    view = AuditView.from_params(request.query_params)
    errors: dict[str, str] = {}
    bounds: dict[str, datetime | None] = {}
    for name, end in (("since", False), ("until", True)):
        try:
            bounds[name] = parse_when(getattr(view, name), name, end=end)
        except BadInput:
            bounds[name] = None
            errors[name] = "Use a date like 2026-11-26 or 2026-11-26T14:30 (UTC)."
    events, total, actions, actors = await asyncio.to_thread(
        _query, hk.engine, view, bounds["since"], bounds["until"]
    )
    context = {
        "active_nav": "audit",
        "view": view,
        "events": events,
        "pager": Pager(view.page, total, PAGE_SIZE),
        "errors": errors,
        "actions": actions,
        "actors": actors,
        "outcomes": OUTCOMES,
        "counts": hk.directory.counts(),
    }
    if (
        request.headers.get("HX-Request")
        and not request.headers.get("HX-History-Restore-Request")
        and request.headers.get("HX-Target") == "audit-results"
    ):
        return render(request, "audit/_results.html", context)
    return render(request, "audit/audit.html", context)
