"""One error family: a status, a snake_case code and a sentence for a human.

The API renders these as `{"error": code, "detail": sentence}`; pages render them with
`error.html`. Anything raised here is something a client or the hub caused, never a bug.
"""

from __future__ import annotations


class HubkeeperError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        # sent with the error answer (a 429's Retry-After)
        self.headers: dict[str, str] = dict(headers or {})


class HubBusy(HubkeeperError):
    """429 `hub_busy`: the hub refused a spawn for load: its `concurrent_spawn_limit` (with a
    `Retry-After` in seconds, which `headers` pass on) or its `active_server_limit` (without
    one). Read in jupyterhub/handlers/base.py, `BaseHandler.spawn_single_user`."""

    status_code = 429
    code = "hub_busy"


class BadRequest(HubkeeperError):
    status_code = 400
    code = "bad_request"


class Unauthenticated(HubkeeperError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(HubkeeperError):
    status_code = 403
    code = "forbidden"


class NotFound(HubkeeperError):
    status_code = 404
    code = "not_found"


class Conflict(HubkeeperError):
    status_code = 409
    code = "conflict"


class HubUnavailable(HubkeeperError):
    """The hub did not answer (connection refused, timeout, 5xx from its proxy)."""

    status_code = 503
    code = "hub_unavailable"


class HubError(HubkeeperError):
    """The hub answered, but with an error we have no better name for. `hub_message`: the
    hub's own message, when it gave one (what a user would read on the hub's pages)."""

    status_code = 502
    code = "hub_error"
    hub_message: str | None = None


class DatabaseUnavailable(HubkeeperError):
    """Hubkeeper's own database did not answer (connection refused or lost, pool timeout)."""

    status_code = 503
    code = "database_unavailable"
