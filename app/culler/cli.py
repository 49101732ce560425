"""`hubkeeper cull [--dry-run]`: one culler pass from a terminal, audited as `cli:<user>`.

A progress bar (rich) while servers and kernels are handled, then a summary table. With
`--dry-run` it prints what a pass would cull now, and the servers a rule keeps (busy, kept)
with why, and changes nothing. The settings are the
ones in force (saved on the Culler page, else `HUBKEEPER_CULL_*`); `enabled` does not matter.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from hubkeeper.config import Settings
from hubkeeper.culler.decide import Cull
from hubkeeper.culler.service import Culler
from hubkeeper.db.engine import migrate
from hubkeeper.errors import HubkeeperError
from hubkeeper.kit.actors import SystemActor
from hubkeeper.kit.progress import ProgressBar
from hubkeeper.state import cli_state


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    value = int(value)
    if value >= 86400:
        return f"{value // 86400}d {value % 86400 // 3600}h"
    if value >= 3600:
        return f"{value // 3600}h {value % 3600 // 60}m"
    if value >= 60:
        return f"{value // 60}m {value % 60}s"
    return f"{value}s"


def _table(title: str, culls: list[Cull], errors: dict[tuple[str, str, str], str] | None) -> Table:
    """One row per cull; `errors` None = a dry run (no outcome column)."""
    table = Table(title=title)
    columns = ["user", "server", "kind", "kernel", "reason", "idle", "age"]
    for column in columns + ([] if errors is None else ["outcome"]):
        table.add_column(column, overflow="fold")
    for cull in culls:
        row = [
            cull.user,
            cull.server or "(default)",
            cull.kind,
            cull.kernel_id or "",
            cull.reason,
            _seconds(cull.inactive_s),
            _seconds(cull.age_s),
        ]
        if errors is not None:
            error = errors.get((cull.user, cull.server, cull.kernel_id or ""))
            row.append("error: " + error if error else "ok")
        table.add_row(*row)
    return table


def _kept_table(kept: list[dict[str, Any]]) -> Table:
    """The servers a rule keeps (a busy kernel, a terminal in use, a keep), and why: what
    `culler/preview?include_kept=1` lists."""
    table = Table(title="Kept (would be culled for idleness but for)")
    for column in ("user", "server", "idle", "age", "why"):
        table.add_column(column, overflow="fold")
    for item in kept:
        table.add_row(
            str(item["user"]),
            str(item["server"]) or "(default)",
            _seconds(item.get("inactive_s")),
            _seconds(item.get("age_s")),
            str(item.get("kept") or ""),
        )
    return table


async def cull(settings: Settings, *, dry_run: bool) -> int:
    """Exit codes: 0 done, 1 some culls failed, 3 the hub or the database could not be used."""
    await asyncio.to_thread(migrate, settings.database_url)
    hk = cli_state(settings)
    culler = Culler.of(hk)
    who = SystemActor(name=f"cli:{getpass.getuser()}", via="cli")
    console = Console()
    if not console.is_terminal:  # a pipe or a file: do not wrap names at 80 columns
        console = Console(width=max(console.width, 200))
    try:
        if dry_run:
            kept: list[dict[str, Any]] = []
            planned, errors = await culler.preview(kept=kept)
            if not planned:
                console.print("Nothing would be culled now.")
            else:
                console.print(_table("Would be culled now (dry run)", planned, None))
            if kept:
                console.print(_kept_table(kept))
            for error in errors:
                where = f"{error['user']}/{error['server']}: " if error["user"] else ""
                console.print(f"  could not check {where}{error['error']}", markup=False)
            return 0
        with ProgressBar("Culling", console=console) as bar:
            result = await culler.run_once(who, progress=bar.update)
        if result.servers.error:
            print(f"hubkeeper: {result.servers.error}", file=sys.stderr)
            return 3
        failed = {
            (o.cull.user, o.cull.server, o.cull.kernel_id or ""): o.error
            for r in (result.servers, result.kernels)
            for o in r.outcomes
            if not o.ok
        }
        everything = [o.cull for r in (result.servers, result.kernels) for o in r.outcomes]
        if everything:
            console.print(_table("Culled", everything, failed))
        culled = result.culled()
        console.print(
            f"Culled {sum(c.kind == 'server' for c in culled)} server(s) and "
            f"{sum(c.kind == 'kernel' for c in culled)} kernel(s); "
            f"{len(result.errors())} error(s); "
            f"took {result.servers.duration_s + result.kernels.duration_s:.1f} s.",
            markup=False,
        )
        if result.kernels.not_checked:
            console.print(f"  {result.kernels.not_checked}", markup=False)
        for user in result.servers.deleted_users:
            console.print(f"  deleted user {user}", markup=False)
        for error in result.errors():
            where = f"{error['user']}/{error['server']}" if error["user"] else "pass"
            console.print(f"  error: {where}: {error['error']}", markup=False)
        return 1 if result.errors() else 0
    except HubkeeperError as exc:
        print(f"hubkeeper: {exc.detail}", file=sys.stderr)
        return 3
    finally:
        await hk.servers.aclose()
        await hk.hub.aclose()
        hk.engine.dispose()
