"""The one vocabulary of the users list, shared by `GET api/v1/users` and the users pages.

`state` filters (any | active = not stopped | running | pending = starting or stopping |
stopped), `group` keeps members of one hub group, `sort` orders. The pages' former URLs said
`status=` (with `starting`/`stopping`); that name and those values keep working everywhere.
"""

from __future__ import annotations

from typing import Literal, get_args

from hubkeeper.kit.window import BadInput

State = Literal["any", "active", "running", "pending", "stopped"]
STATES: tuple[str, ...] = get_args(State)
# the pages' former `status=` values that are not states themselves
OLD_STATUSES = {"starting": "pending", "stopping": "pending"}
OldStatus = Literal["any", "active", "running", "pending", "stopped", "starting", "stopping"]
Sort = Literal[
    "name",
    "-name",
    "last_activity",
    "-last_activity",
    "started",
    "-started",
    "memory",
    "-memory",
    "cpu",
    "-cpu",
]
SORTS: tuple[str, ...] = get_args(Sort)

STATE_HELP = (
    "any; active = not stopped; running = a server runs; pending = one is starting or "
    "stopping; stopped = none is active"
)
STATUS_HELP = (
    "the former name of `state` (the console's old URLs); starting and stopping mean pending"
)
SORT_HELP = (
    "name, last_activity or started (the longest-running server's start), memory or cpu "
    "(jupyter-resource-usage's figures, summed over the user's servers); a leading - "
    "reverses; users without a time or a figure come last either way"
)


def as_state(value: str) -> str:
    """A state, or a former status value mapped to its state; "" if neither."""
    value = OLD_STATUSES.get(value, value)
    return value if value in STATES else ""


def resolve_state(state: str | None, status: str | None) -> str:
    """`state`, else the former `status`; 422 `invalid_parameter` if both are given and differ."""
    old = as_state(status) if status else ""
    if state and old and state != old:
        raise BadInput(
            f"state={state} and status={status} disagree; give state only (status is its "
            "former name)"
        )
    return state or old or "any"
