"""The figures in the database, shared by every replica.

`server_resource` holds the last pass's figures (one row per server that gave some); the
open `server_session` of each sampled server keeps its peak memory, its memory limit and a
running mean of its CPU (`cpu_samples` samples so far). Both are written in one transaction
per pass by the sampling replica (`save_pass`); the others `load` the table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, bindparam, case, delete, func, insert, select, update

from hubkeeper.db.models import ServerResource, ServerSession
from hubkeeper.kit.clock import as_utc
from hubkeeper.resources.board import Key
from hubkeeper.resources.figures import Figures

_table = ServerResource.__table__  # type: ignore[attr-defined]
_sessions = ServerSession.__table__  # type: ignore[attr-defined]

_open = (
    (_sessions.c.user == bindparam("b_user"))
    & (_sessions.c.server == bindparam("b_server"))
    & _sessions.c.stopped_at.is_(None)
)
_peak = case(
    (
        _sessions.c.peak_memory_bytes.is_(None)
        | (_sessions.c.peak_memory_bytes < bindparam("b_memory")),
        bindparam("b_memory"),
    ),
    else_=_sessions.c.peak_memory_bytes,
)
_limit: Any = func.coalesce(bindparam("b_limit"), _sessions.c.memory_limit_bytes)
# the mean over n samples and one more: (mean * n + x) / (n + 1)
_mean = (
    func.coalesce(_sessions.c.mean_cpu_percent, 0.0) * _sessions.c.cpu_samples + bindparam("b_cpu")
) / (_sessions.c.cpu_samples + 1)
MEMORY_ONLY = (
    update(_sessions).where(_open).values(peak_memory_bytes=_peak, memory_limit_bytes=_limit)
)
WITH_CPU = (
    update(_sessions)
    .where(_open)
    .values(
        peak_memory_bytes=_peak,
        memory_limit_bytes=_limit,
        mean_cpu_percent=_mean,
        cpu_samples=_sessions.c.cpu_samples + 1,
    )
)


def save_pass(
    engine: Engine, figures: dict[Key, Figures], kept: dict[Key, Figures] | None = None
) -> None:
    """Make `server_resource` exactly these figures and `kept` (earlier figures of servers
    not asked this pass), and add `figures` alone to each server's open session (a kept one
    counted again would weigh twice in the session's mean), in one transaction."""
    rows = [
        {"user": user, "server": server, **found.as_dict()}
        for (user, server), found in {**(kept or {}), **figures}.items()
    ]
    with engine.begin() as conn:
        conn.execute(delete(_table))
        if rows:
            conn.execute(insert(_table), rows)
        for with_cpu, statement in ((False, MEMORY_ONLY), (True, WITH_CPU)):
            params = [
                {
                    "b_user": user,
                    "b_server": server,
                    "b_memory": found.memory_bytes,
                    "b_limit": found.memory_limit_bytes,
                    **({"b_cpu": found.cpu_percent} if with_cpu else {}),
                }
                for (user, server), found in figures.items()
                if (found.cpu_percent is not None) == with_cpu
            ]
            if params:
                conn.execute(statement, params)


def load(engine: Engine) -> dict[Key, Figures]:
    """The figures of the last pass, as the sampling replica saved them."""
    with engine.connect() as conn:
        rows = conn.execute(select(_table)).all()
    figures: dict[Key, Figures] = {}
    for row in rows:
        figures[(row.user, row.server)] = Figures(
            memory_bytes=int(row.memory_bytes),
            memory_limit_bytes=None
            if row.memory_limit_bytes is None
            else int(row.memory_limit_bytes),
            cpu_percent=None if row.cpu_percent is None else float(row.cpu_percent),
            at=as_utc(row.at),
        )
    return figures
