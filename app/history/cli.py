"""`hubkeeper report --since --until --by day|user|group|profile [--csv]`: usage (and cost,
with HUBKEEPER_PRICES) from the database.

Needs only the database, except by=group, which asks the hub for its groups (exit 3 when the
hub cannot be reached or is not configured). Bad dates, and by=day over more than MAX_DAYS
days, exit 2.
"""

from __future__ import annotations

import asyncio
import sys

from hubkeeper.config import MissingSetting, Settings
from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.errors import HubkeeperError
from hubkeeper.history.report import usage as usage_report
from hubkeeper.history.usage import MAX_DAYS, to_csv
from hubkeeper.kit.clock import utcnow
from hubkeeper.kit.window import window

HEADER = ("key", "sessions", "server-hours", "users")
COST = "cost"


async def _groups_by_user(settings: Settings) -> dict[str, list[str]]:
    from hubkeeper.hub.client import HubClient

    hub = HubClient(settings.hub_api_url, settings.hub_api_token, timeout=settings.hub_timeout)
    try:
        groups = await hub.list_groups()
    finally:
        await hub.aclose()
    members: dict[str, list[str]] = {}
    for group in groups:
        for user in group.get("users") or []:
            members.setdefault(user, []).append(str(group.get("name", "")))
    return members


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(settings: Settings, *, since: str, until: str, by: str, as_csv: bool) -> int:
    now = utcnow()
    try:
        start, end = window(since or None, until or None, now=now)
    except HubkeeperError as exc:
        print(f"hubkeeper: {exc.detail}", file=sys.stderr)
        return 2
    if by == "day" and (end - start).days > MAX_DAYS:  # as the API: one row per day
        print(f"hubkeeper: by=day covers at most {MAX_DAYS} days", file=sys.stderr)
        return 2
    groups: dict[str, list[str]] = {}
    if by == "group":
        try:
            settings.require_hub()
            groups = asyncio.run(_groups_by_user(settings))
        except (HubkeeperError, MissingSetting) as exc:
            detail = exc.detail if isinstance(exc, HubkeeperError) else str(exc)
            print(f"hubkeeper: by=group needs the hub's groups: {detail}", file=sys.stderr)
            return 3
    migrate(settings.database_url)
    engine = create_db_engine(settings.database_url)
    try:
        rows = usage_report(
            engine,
            since=start,
            until=end,
            by=by,
            now=now,
            groups_of=lambda u: groups.get(u, []),
            prices=settings.prices,
        )
    finally:
        engine.dispose()
    if as_csv:
        sys.stdout.write(to_csv(rows))
        return 0
    print(f"Usage by {by}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
    priced = bool(settings.prices)
    cells: list[tuple[str, ...]] = [(*HEADER, COST) if priced else HEADER]
    for r in rows:
        cell = (r.key, str(r.sessions), f"{r.hours:.2f}", str(r.users))
        cells.append((*cell, f"{r.cost or 0:.2f}") if priced else cell)
    total = sum(r.seconds for r in rows) / 3600
    print(table([tuple(c.replace("\n", " ") for c in row) for row in cells]))
    if by != "group":
        cost = sum(r.cost or 0 for r in rows)
        print(f"Total: {total:.2f} server-hours" + (f", cost {cost:.2f}" if priced else ""))
    return 0
