"""Durations in human units: "90m", "7d", "1h30m" → seconds, and seconds → "1 h 30 min".

Settings keep whole seconds (the API returns integers); people may type either.
"""

from __future__ import annotations

import re

UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
# ASCII digits only: float() would read other scripts' digits too.
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)", re.IGNORECASE | re.ASCII)
MAX_TEXT = 40  # longer text is not a duration anyone typed


def parse_duration(text: str) -> int:
    """Whole seconds from "3600", "90m", "1.5h", "7d", "1h 30m", "2 days" (a bare number is
    seconds). Raises ValueError with a sentence naming the forms accepted."""
    raw = text.strip()
    if not raw or len(raw) > MAX_TEXT:
        raise ValueError(_help(text))
    total = 0.0
    at = 0
    while at < len(raw):
        match = _PART.match(raw, at)
        if match is None or match.end() == at:
            raise ValueError(_help(text))
        number, unit = match.groups()
        if not unit and (at > 0 or match.end() < len(raw)):
            # A number without a unit is seconds only on its own: "1h30" (meant 1h30m) and
            # "1,5h" (a decimal comma, meant 1.5h) would otherwise quietly become 1h 30s and 5h 1s.
            raise ValueError(_help(text))
        factor = UNITS.get(unit.lower() or "s")
        if factor is None:
            raise ValueError(_help(text))
        total += float(number) * factor
        at = match.end()
        while at < len(raw) and raw[at] in " ,":
            at += 1
    seconds = round(total)
    if seconds != total:
        raise ValueError(f"{text!r} is not a whole number of seconds")
    return seconds


def _help(text: str) -> str:
    return (
        f"{text[:MAX_TEXT]!r} is not a duration: give seconds (3600) or a number with a unit "
        "(90m, 1.5h, 7d, 1h 30m; units s, m, h, d, w)"
    )


def as_seconds(value: object) -> object:
    """A duration written with a unit ("90m", "7d") becomes whole seconds; anything else is
    returned as it came, for validation to name: numbers stay numbers, and a number sent as
    text ("60") stays text, as strict JSON settings have always refused it."""
    if isinstance(value, str) and not value.strip().isdigit():
        try:
            return parse_duration(value)
        except ValueError:
            return value
    return value


def short(seconds: int | float | None) -> str:
    """3600 → "1 h", 5400 → "1 h 30 min", 604800 → "7 d", 45 → "45 s"; exact, biggest
    units first, at most two parts where that is exact."""
    if seconds is None:
        return "—"
    left = int(seconds)
    if left <= 0:
        return "0 s"
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts)


def compact(seconds: int) -> str:
    """The form a settings field shows: "1h", "90m", "7d", "45s", "1h30m" (parse_duration
    reads it back to the same seconds)."""
    return short(seconds).replace(" min", "m").replace(" ", "")
