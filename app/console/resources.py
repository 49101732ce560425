"""Memory and CPU in the users list: each server's figures and the `memory` / `cpu` sorts.

The figures are the resource board's (hubkeeper.resources: sampled by one replica, loaded by
the others). Sorting by them is done here, over the directory's filtered list in name order:
items with the figure first (by value; ties keep name order), then the rest (no figure: a
stopped server, or "n/a") in name order, whichever the direction, as the time sorts put
users without a time last. A user's figure is the sum over their sampled servers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hubkeeper.directory.rows import ServerRow
from hubkeeper.directory.store import UserDirectory
from hubkeeper.hub.models import HubUser
from hubkeeper.resources.board import ResourceBoard
from hubkeeper.resources.figures import Figures

RESOURCE_SORTS = ("memory", "-memory", "cpu", "-cpu")
ALL = 10**9

T = TypeVar("T")


def rank(
    items: list[T], sort: str, value: Callable[[T, str], float | None], has: Callable[[T], bool]
) -> list[T]:
    """`items` (in name order) by `sort`: those with a value first, by value (`-` =
    largest first), then the rest in name order."""
    what = sort.lstrip("-")
    known: list[tuple[float, T]] = []
    rest: list[T] = []
    for item in items:
        figure = value(item, what) if has(item) else None
        if figure is None:
            rest.append(item)
        else:
            known.append((figure, item))
    known.sort(key=lambda pair: pair[0], reverse=sort.startswith("-"))  # stable both ways
    return [item for _figure, item in known] + rest


def ranked_users(
    directory: UserDirectory,
    board: ResourceBoard,
    *,
    q: str,
    state: str,
    group: str,
    sort: str,
    offset: int,
    limit: int,
) -> tuple[list[HubUser], int]:
    """`directory.query_users` with a resource sort: (page, total)."""
    users, total = directory.query_users(q=q, state=state, group=group, sort="name", limit=ALL)
    sampled = board.users()
    ordered = rank(
        users,
        sort,
        lambda user, what: board.user_total(user.name, what),
        lambda user: user.name in sampled,
    )
    return ordered[offset : offset + limit], total


def ranked_rows(
    directory: UserDirectory,
    board: ResourceBoard,
    *,
    q: str,
    status: str,
    group: str,
    sort: str,
    offset: int,
    limit: int,
) -> tuple[list[ServerRow], int]:
    """`directory.query_rows` with a resource sort: (page, total)."""
    rows, total = directory.query_rows(q=q, status=status, group=group, sort="name", limit=ALL)
    sampled = board.users()
    ordered = rank(
        rows,
        sort,
        lambda row, what: board.value(row.user, row.server, what),
        lambda row: row.status == "running" and row.user in sampled,
    )
    return ordered[offset : offset + limit], total


def figures_of(board: ResourceBoard | None, row: ServerRow) -> Figures | None:
    """A running server's last figures; None when stopped, pending or not sampled (n/a)."""
    if board is None or row.status != "running":
        return None
    return board.get(row.user, row.server)
