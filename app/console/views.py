"""What the console pages show: the view a URL describes, and small helpers for templates.

The view (search, filters, sort, page) lives in the query string so a page can be shared and
reloaded; `UsersView.url()` writes only what differs from the defaults, so links stay short.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from hubkeeper.console.filters import STATES, as_state
from hubkeeper.console.resources import figures_of
from hubkeeper.directory.rows import ServerRow
from hubkeeper.kit.clock import utcnow
from hubkeeper.kit.window import BadInput
from hubkeeper.resources.board import ResourceBoard
from hubkeeper.resources.figures import Figures
from hubkeeper.web.params import choice_param, page_param, text_param
from hubkeeper.web.templating import templates

PAGE_SIZE = 50
OLD_STATE_PARAM = "status"  # the users page's name for `state` before they were one

# the API's `state` values (console/filters.py), in the API's words
STATUS_CHOICES: tuple[tuple[str, str], ...] = (
    ("any", "Any state"),
    ("active", "Not stopped"),
    ("running", "Running"),
    ("pending", "Starting or stopping"),
    ("stopped", "Stopped"),
)
SORT_CHOICES: tuple[tuple[str, str], ...] = (
    ("name", "Name, A→Z"),
    ("-name", "Name, Z→A"),
    ("-last_activity", "Recently active first"),
    ("last_activity", "Least recently active first"),
    ("-started", "Recently started first"),
    ("started", "Longest running first"),
    ("-memory", "Most memory first"),
    ("memory", "Least memory first"),
    ("-cpu", "Most CPU first"),
    ("cpu", "Least CPU first"),
)
# Clicking a column header flips between these (first click → first value).
COLUMN_SORTS: dict[str, tuple[str, str]] = {
    "name": ("name", "-name"),
    "last_activity": ("-last_activity", "last_activity"),
    "started": ("-started", "started"),
    "memory": ("-memory", "memory"),
    "cpu": ("-cpu", "cpu"),
}


class RowLike(Protocol):
    @property
    def user(self) -> str: ...
    @property
    def server(self) -> str: ...


@dataclass(frozen=True)
class UsersView:
    """Search, filters, sort and page of the users list."""

    q: str = ""
    state: str = "any"
    group: str = ""
    sort: str = "name"
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> UsersView:
        """Read a query string. The former `status=` (and its starting/stopping) is read as
        `state`. Raises BadInput (422) for a state or sort it does not know: falling back to
        "any" would show more than the URL asked for."""
        given = text_param(params, "state") or text_param(params, "status")
        state = as_state(given)
        if given and not state:
            raise BadInput(f"state must be one of {', '.join(STATES)}; got {given[:40]!r}")
        return cls(
            q=text_param(params, "q"),
            state=state or "any",
            group=text_param(params, "group"),
            sort=choice_param(params, "sort", [value for value, _ in SORT_CHOICES], "name"),
            page=page_param(params),
        )

    @classmethod
    def known(cls) -> set[str]:
        """The query parameters the users page reads (the former `status` too)."""
        return {f.name for f in fields(cls)} | {OLD_STATE_PARAM}

    @property
    def status(self) -> str:
        """The former name of `state` (templates written before the rename)."""
        return self.state

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.group or self.state != "any")

    def params(self, **changes: Any) -> dict[str, str]:
        """The query parameters that differ from the defaults (after `changes`)."""
        view = replace(self, **changes) if changes else self
        out: dict[str, str] = {}
        for field in fields(view):
            value = getattr(view, field.name)
            if value != field.default:
                out[field.name] = str(value)
        return out

    def query(self, **changes: Any) -> str:
        return urlencode(self.params(**changes))

    def url(self, base: str, path: str = "users", **changes: Any) -> str:
        query = self.query(**changes)
        return f"{base}{path}?{query}" if query else f"{base}{path}"

    def rows_url(self, base: str, since: str) -> str:
        """Where the results region polls: this view, plus the token of what it shows."""
        return f"{base}users/rows?{urlencode({**self.params(), 'since': since})}"

    def column_sort(self, column: str) -> str:
        """The sort a click on this column header asks for."""
        first, second = COLUMN_SORTS[column]
        return second if self.sort == first else first

    def sorted_by(self, column: str) -> str:
        """aria-sort value for a column header."""
        first, second = COLUMN_SORTS[column]
        if self.sort not in (first, second):
            return "none"
        return "descending" if self.sort.startswith("-") else "ascending"


def server_path(row: RowLike) -> str:
    """`users/{name}/server` or `users/{name}/servers/{server}`, every segment quoted."""
    user = quote(row.user, safe="")
    if row.server:
        return f"users/{user}/servers/{quote(row.server, safe='')}"
    return f"users/{user}/server"


def user_path(name: str) -> str:
    """`users/{name}`, the user's page (the name quoted whole: "/" too)."""
    return f"users/{quote(name, safe='')}"


def row_id(row: RowLike) -> str:
    """A DOM id for a row that any username can be turned into."""
    digest = hashlib.sha256(f"{row.user}\0{row.server}".encode()).hexdigest()[:16]
    return f"row-{digest}"


def clock(value: datetime | None) -> str:
    """'12:03 UTC' (for 'as of' notes)."""
    if value is None:
        return "an unknown time"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value.date() == utcnow().date():
        return value.strftime("%H:%M UTC")
    return value.strftime("%Y-%m-%d %H:%M UTC")


def server_label(row: RowLike) -> str:
    return row.server or "default"


templates.env.filters["server_path"] = server_path
templates.env.filters["row_id"] = row_id
templates.env.filters["user_path"] = user_path
templates.env.filters["clock"] = clock
templates.env.filters["server_label"] = server_label


def human_bytes(value: int | float | None) -> str:
    """Bytes in binary units, as people read memory: "512 KiB", "120 MiB", "1.5 GiB"."""
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(size)} B"
            return f"{size:.1f} {unit}" if size < 10 else f"{size:.0f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def percent(value: float | None) -> str:
    """CPU as people read it: "3 %", "0.4 %", "250 %" (more than one core)."""
    if value is None:
        return "n/a"
    return f"{value:.1f} %" if value < 10 else f"{value:.0f} %"


def figures(row: ServerRow, board: ResourceBoard | None) -> Figures | None:
    """The row's memory and CPU (None: stopped, pending or n/a); `board` may be undefined."""
    return figures_of(board if isinstance(board, ResourceBoard) else None, row)


templates.env.filters["human_bytes"] = human_bytes
templates.env.filters["figures"] = figures
templates.env.filters["percent"] = percent
