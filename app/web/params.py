"""Reading a page's view (search, filters, page number) from its query string.

Pages keep their view in the URL so it can be shared and reloaded. Free text and page numbers
are read forgivingly (capped, nonsense → page 1); a filter with a fixed set of values refuses
one it does not know (`choice_param`: 422, as the API), because falling back to "any" would
quietly show a wider list than the URL asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Path

from hubkeeper.kit.window import BadInput

MAX_TEXT = 200
MAX_PAGE = 1_000_000
NAME_MAX = 255  # user and server names in paths

UserName = Annotated[str, Path(min_length=1, max_length=NAME_MAX, description="hub user name")]
ServerName = Annotated[str, Path(min_length=1, max_length=NAME_MAX, description="named server")]
# A row id in a path: within the integer column's range on every database (PostgreSQL's
# `integer` ends at 2**31 - 1; a larger id is a 422, not a database error).
RowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the row's id")]


def text_param(params: Mapping[str, Any], key: str, limit: int = MAX_TEXT) -> str:
    """A text field, stripped and capped; absent or not text → ""."""
    value = params.get(key, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def choice_param(
    params: Mapping[str, Any], key: str, allowed: Sequence[str], default: str = ""
) -> str:
    """A filter with a fixed set of values: absent or empty → `default`. Raises BadInput (422
    `invalid_parameter`, naming the values allowed) for anything else: a misspelt filter must
    never widen a list."""
    value = text_param(params, key)
    if not value:
        return default
    if value not in allowed:
        raise BadInput(f"{key} must be one of {', '.join(allowed)}; got {value[:40]!r}")
    return value


def page_param(params: Mapping[str, Any], key: str = "page") -> int:
    """A 1-based page number; absent or nonsense → 1."""
    try:
        return max(1, min(int(text_param(params, key) or "1"), MAX_PAGE))
    except ValueError:
        return 1


def view_url(view: Any, base: str, path: str, /, **changes: Any) -> str:
    """The URL of the page at `path` showing `view` (a frozen dataclass of the page's filters,
    `page` number included) with `changes`; only fields that differ from their defaults go in
    the query string."""
    shown = replace(view, **changes) if changes else view
    query = urlencode(
        {
            f.name: str(getattr(shown, f.name))
            for f in fields(shown)
            if getattr(shown, f.name) != f.default
        }
    )
    return f"{base}{path}?{query}" if query else f"{base}{path}"
