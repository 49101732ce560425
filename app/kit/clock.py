"""Time, always aware and in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive value (as SQLite gives them back) is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with an explicit offset (`+00:00`), or None."""
    return None if value is None else as_utc(value).isoformat()


def parse_iso(value: object) -> datetime | None:
    """An ISO 8601 time as JupyterHub, jupyter_server and CHP write them (`Z` or an offset;
    naive = UTC) as an aware UTC datetime; None when absent or not a time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None
