"""The published OpenAPI document says what a client meets: how to authenticate, the error
shape, and every status a route answers.

FastAPI's own document knows none of it: no security scheme (authentication is a plain
dependency reading the Authorization header), only 200 and its validation-error shape, which
Hubkeeper never sends. `install_openapi(app)` completes it from the routes themselves:
- `token` (`Authorization: token <hub API token>`, JupyterHub's own form) and `bearer`
  (`Authorization: Bearer <token>`) security schemes, required by every route that depends on
  `require_reader` / `require_admin` (Swagger UI's Authorize then works);
- the errors every route of a kind answers: 422 everywhere (an unknown query parameter is
  refused on every API route), 401/403/502/503 where a token is checked (the hub is asked who
  holds it), 404 where the path names something, 400 where a body is read;
- route-specific ones declared beside the route with `errors(409, ...)`;
- a description for every parameter (shared ones from `COMMON_PARAMS` when a route gives
  none).
Every error response is `{"error": "<code>", "detail": "<sentence>"}` (ErrorOut).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    """Every error Hubkeeper answers, whatever the status."""

    error: str = Field(description="a snake_case code, e.g. user_not_found, unknown_parameter")
    detail: str = Field(description="a sentence for a human")


ERROR_DESCRIPTIONS = {
    400: "Bad request: a body that cannot be read (not JSON, another content type: "
    "`bad_request`), or values the hub refused (`hub_rejected`)",
    401: "No token or session (`login_required`), or the hub does not know the token "
    "(`invalid_token`)",
    403: "Not allowed: no Hubkeeper role (`no_role`), a token without the scope to reach this "
    "service (`insufficient_scope`), a manager on an admin route (`forbidden`), or a "
    "cookie request without its CSRF token (`csrf_failed`)",
    404: "No such user, server or item (`user_not_found`, `server_not_found`, ...)",
    409: "Conflicts with the current state (`already_running`, `already_stopped`, "
    "`action_pending`, `locked`, `already_locked`, `server_not_running`, `hub_busy`, ...)",
    422: "A value that cannot be used: `invalid_parameter` (a bad query or path value), "
    "`unknown_parameter` (a query parameter this route does not take), `invalid_request` "
    "(a bad body), or a code of the route's own (`invalid_window`, `invalid_settings`, ...)",
    502: "The hub answered with an error Hubkeeper has no better name for (`hub_error`)",
    503: "The hub cannot be reached (`hub_unavailable`), Hubkeeper's database cannot "
    "(`database_unavailable`), or a user's server cannot (`server_unreachable`)",
}
SECURED = (401, 403, 502, 503)

AUTH_HELP = (
    "A JupyterHub API token, as `Authorization: token <token>` (JupyterHub's form; in the "
    "Authorize dialog type `token ` before it) or `Authorization: Bearer <token>`. The token "
    "must carry the scope to reach this service (`access:services` or "
    "`access:services!service=<service name>`), and its owner must be a hub admin or in a "
    "manager group (managers may read, not act)."
)
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "token": {"type": "apiKey", "in": "header", "name": "Authorization", "description": AUTH_HELP},
    "bearer": {"type": "http", "scheme": "bearer", "description": AUTH_HELP},
}
SECURITY: list[dict[str, list[str]]] = [{"token": []}, {"bearer": []}]

# Descriptions of parameters many routes share, for routes that give none of their own.
COMMON_PARAMS = {
    "name": "hub user name",
    "server": "a named server; empty for the default server",
    "job_id": "the job's id, as POST servers/stop-all answered it",
    "exemption_id": "the exemption's id",
    "offset": "items to skip (paging)",
    "limit": "items per page, 1 to 500",
    "since": "ISO 8601 date or date-time (UTC when it has no offset); the window's start",
    "until": "ISO 8601 date or date-time (UTC when it has no offset); the window's end, "
    "exclusive; a bare date includes that day",
    "user": "only this user (exact hub user name)",
    "kind": "only culls of this kind",
    "reason": "only culls for this reason",
    "outcome": "only entries with this outcome",
    "stop_reason": "only sessions that ended this way",
    "by": "one row per day, user or group",
    "format": "json, or a file download (csv / text)",
    "actor": "only actions by this person or system actor",
    "action": "only this action code (e.g. server.stop)",
    "target": "only targets containing this text",
    "include_deleted": "also list exemptions ended by DELETE",
    "lines": "how many of the log's last lines",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's own error statuses (the shared ones are added for it)."""
    return {status: _error_response(status) for status in statuses}


def _error_response(status: int) -> dict[str, Any]:
    return {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[status]}


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


SECURES_ROUTE = "_hubkeeper_secures_route"


def secures_route(dependency: Any) -> Any:
    """Mark a dependency that checks a token or session (hubkeeper.auth's `require_reader`
    and `require_admin`): routes using it are documented with the security schemes and 401/403.
    A mark, not an import, so this layer does not depend on auth."""
    setattr(dependency, SECURES_ROUTE, True)
    return dependency


def is_secured(route: APIRoute) -> bool:
    """Does the route check a token or session (admins and managers, or admins only)?"""
    return any(getattr(call, SECURES_ROUTE, False) for call in _calls(route.dependant))


def route_statuses(route: APIRoute) -> set[int]:
    """The error statuses every route of this kind answers."""
    statuses = {422}
    if is_secured(route):
        statuses |= set(SECURED)
    if route.dependant.path_params:
        statuses.add(404)
    if route.body_field is not None:  # FastAPI answers 400 to a body it cannot parse
        statuses.add(400)
    return statuses


def _ref() -> dict[str, str]:
    return {"$ref": "#/components/schemas/ErrorOut"}


def complete(schema: dict[str, Any], routes: list[tuple[str, APIRoute]]) -> dict[str, Any]:
    """Add security, error responses and parameter descriptions to FastAPI's document."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    schemas = components.setdefault("schemas", {})
    schemas["ErrorOut"] = ErrorOut.model_json_schema()
    for path, route in routes:
        item = schema.get("paths", {}).get(path)
        if item is None:
            continue
        for method in route.methods or ():
            operation = item.get(method.lower())
            if operation is None:
                continue
            if is_secured(route):
                operation["security"] = SECURITY
            responses = operation.setdefault("responses", {})
            for status in route_statuses(route):
                # FastAPI's own 422 (a shape never sent) is replaced; a route's own stays
                known = responses.get(str(status))
                if known is None or "HTTPValidationError" in str(known):
                    responses[str(status)] = {
                        "description": ERROR_DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": _ref()}},
                    }
            for param in operation.get("parameters", ()):
                if not param.get("description") and param["name"] in COMMON_PARAMS:
                    param["description"] = COMMON_PARAMS[param["name"]]
    # FastAPI's validation-error shapes are never sent: drop them with their last reference.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at the app's openapi_url (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete(schema, list(api_routes(app.routes)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def api_routes(routes: list[Any]) -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) of every documented route, included routers opened up (FastAPI
    wraps an included route in a context holding its full path and the route itself)."""
    for entry in routes:
        if hasattr(entry, "effective_candidates"):  # a router FastAPI included lazily
            yield from api_routes(entry.effective_candidates())
            continue
        route = getattr(entry, "original_route", entry)
        if isinstance(route, APIRoute) and getattr(entry, "include_in_schema", True):
            yield getattr(entry, "path_format", route.path_format), route
