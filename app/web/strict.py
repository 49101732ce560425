"""Refuse query parameters an endpoint does not know: 422 `unknown_parameter`, naming them.

FastAPI ignores unknown query parameters, so a misspelt filter (`?staus=running`) silently
widens a list: a script that loops "stop" over it would stop every server. One mechanism for
the whole API: `STRICT_QUERY` goes on each API router, and the names a route knows are read
from its own declared parameters (those of its dependencies included), so a new parameter is
known the moment it is declared. Pages check their views' fields with `refuse_unknown`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from hubkeeper.kit.window import BadInput

# Allowed everywhere: the CSRF token an EventSource carries in the query (it cannot set
# headers; see auth/dependencies.given_csrf).
ALWAYS_KNOWN = frozenset({"_csrf"})
NAMES_SHOWN = 5


class UnknownParameter(BadInput):
    """422 `unknown_parameter`."""

    code = "unknown_parameter"


def query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= query_names(sub)
    return names


def _declared(route: APIRoute) -> frozenset[str]:
    # a walk of a few dependants: cheap, and kept on the route (routes are not hashable)
    known: frozenset[str] | None = getattr(route, "_hubkeeper_query_names", None)
    if known is None:
        known = frozenset(query_names(route.dependant)) | ALWAYS_KNOWN
        route._hubkeeper_query_names = known  # type: ignore[attr-defined]
    return known


def view_fields(view: type[Any]) -> set[str]:
    """The query parameters a page's view (a dataclass of its filters) reads."""
    return {f.name for f in fields(view)}


def refuse_unknown(params: Mapping[str, Any] | Iterable[str], known: Iterable[str]) -> None:
    """Raise 422 `unknown_parameter` naming each query parameter not in `known`."""
    allowed = frozenset(known) | ALWAYS_KNOWN
    unknown = sorted({name for name in params if name not in allowed})
    if not unknown:
        return
    shown = ", ".join(repr(name[:40]) for name in unknown[:NAMES_SHOWN])
    more = f" and {len(unknown) - NAMES_SHOWN} more" if len(unknown) > NAMES_SHOWN else ""
    takes = ", ".join(sorted(allowed - ALWAYS_KNOWN)) or "no query parameters"
    noun = "parameter" if len(unknown) == 1 else "parameters"
    raise UnknownParameter(f"Unknown query {noun} {shown}{more}; this address takes: {takes}")


async def refuse_unknown_query(request: Request) -> None:
    """The router-level dependency: the route's declared query parameters, nothing else."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    refuse_unknown(request.query_params.keys(), _declared(route))


STRICT_QUERY = [Depends(refuse_unknown_query)]
