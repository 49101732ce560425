"""One reading of `since` / `until` for the API, the pages and the CLI.

A window is half-open, `[since, until)`, in UTC:
- a date-time is that instant (no offset = UTC; any offset is converted);
- a bare date `since=2026-11-01` starts at that day's UTC midnight;
- a bare date `until=2026-11-30` *includes* that day: the window ends at the next UTC midnight.
So `since=2026-11-01&until=2026-11-30` is the whole of November, as a person means it.
Values out of range (year 1 moved before UTC, year 9999 plus a day) are refused, not crashed on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.clock import as_utc

DEFAULT_DAYS = 30
DATE_LENGTH = len("2026-11-30")
# Accepted instants keep a day's margin from datetime's ends, so code that adds or subtracts a
# day (windows, buckets by day, offsets of ±14 h) never overflows into a 500.
MIN_WHEN = datetime(1, 1, 2, tzinfo=UTC)
MAX_WHEN = datetime(9999, 12, 30, tzinfo=UTC)


class BadInput(HubkeeperError):
    """422 `invalid_parameter` (or the code given): a value a client sent cannot be used."""

    status_code = 422
    code = "invalid_parameter"


def parse_when(raw: str | None, what: str, *, end: bool = False) -> datetime | None:
    """ISO 8601 date or date-time → aware UTC; None when empty.

    `end=True` reads a bare date as the end of that day (the next UTC midnight).
    Raises BadInput (422) naming `what` on anything else.
    """
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        value = as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
        if end and len(text) == DATE_LENGTH:
            value += timedelta(days=1)
        if not MIN_WHEN <= value <= MAX_WHEN:
            raise ValueError("out of range")
    except (ValueError, OverflowError):
        raise BadInput(
            f"{what} must be an ISO 8601 date or date-time in range, like 2026-11-01 or "
            f"2026-11-01T08:00:00Z, not {text[:40]!r}"
        ) from None
    return value


def window(
    since: str | None, until: str | None, *, now: datetime, default_days: int = DEFAULT_DAYS
) -> tuple[datetime, datetime]:
    """The `[since, until)` asked for; `until` defaults to now, `since` to `default_days`
    before it. Raises BadInput (422 `invalid_window`) when since is after until."""
    stop = parse_when(until, "until", end=True) or now
    start = parse_when(since, "since")
    if start is None:
        try:
            start = stop - timedelta(days=default_days)
        except OverflowError:
            raise BadInput(
                "until is too early for a default window", code="invalid_window"
            ) from None
    if start > stop:
        raise BadInput("since must not be after until", code="invalid_window")
    return start, stop


def bounds(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """Optional `[since, until)` for filters: either may be absent. Raises BadInput (422)."""
    start = parse_when(since, "since")
    stop = parse_when(until, "until", end=True)
    if start is not None and stop is not None and start > stop:
        raise BadInput("since must not be after until", code="invalid_window")
    return start, stop
