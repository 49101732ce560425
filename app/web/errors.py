"""Render errors as the contract's JSON for the API and as a page for browsers."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubkeeper.db import outage
from hubkeeper.errors import HubkeeperError
from hubkeeper.web.templating import render

log = logging.getLogger(__name__)

# Set when an expired session's HTMX request was told to sign in, so the next polls of the
# same page do not each send the browser off on another flow (seconds). Here, not in auth:
# the error handlers set it, and this layer imports no capability.
LOGIN_PENDING_COOKIE = "hubkeeper-login-pending"
LOGIN_PENDING_SECONDS = 30

STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    422: "invalid_request",
    503: "hub_unavailable",
}


def database_unavailable(request: Request, error: BaseException) -> Response:
    """503 `database_unavailable` (JSON, or error.html saying so), logged as one warning line:
    an outage would otherwise fill the log with one traceback per request."""
    log.warning(
        "database unavailable on %s %s: %s", request.method, request.url.path, outage.summary(error)
    )
    return error_response(request, 503, "database_unavailable", outage.UNREACHABLE)


def wants_json(request: Request) -> bool:
    """API paths answer JSON, under the service prefix too: outside our middleware (Starlette's
    last-resort handler) `root_path` is not set yet, so the prefix is stripped here as well."""
    path = request.scope.get("path", "")
    root = request.scope.get("root_path", "")
    prefix = request.app.state.settings.service_prefix.rstrip("/")
    for lead in (root, prefix):
        if lead and path.startswith(lead + "/"):
            path = path[len(lead) :]
            break
    if path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(request: Request, status: int, code: str, detail: str) -> Response:
    headers = {"WWW-Authenticate": "token"} if status == 401 else None
    if wants_json(request):
        return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)
    response = render(
        request,
        "error.html",
        {"status": status, "code": code, "detail": detail},
        status_code=status,
    )
    if request.headers.get("HX-Request"):
        # Let HTMX swap the error into the page's toast area instead of dropping it.
        response.headers["HX-Retarget"] = "#toasts"
        response.headers["HX-Reswap"] = "beforeend"
    return response


def login_redirect(request: Request, next_url: str) -> Response:
    """Anonymous browsers go to `login?next=<this page>`; HTMX is told to go there whole.

    HTMX is told once: the answer sets a short-lived marker cookie, and while it lives further
    HTMX requests (the other polls of an expired page) get a bare 204, which HTMX ignores,
    instead of each sending the browser off on a sign-in of its own.
    """
    settings = request.app.state.settings
    target = f"{settings.service_prefix}login?{urlencode({'next': next_url})}"
    if request.headers.get("HX-Request"):
        if request.cookies.get(LOGIN_PENDING_COOKIE):
            return Response(status_code=204)
        response = Response(status_code=204, headers={"HX-Redirect": target})
        response.set_cookie(
            LOGIN_PENDING_COOKIE,
            "1",
            max_age=LOGIN_PENDING_SECONDS,
            path=settings.service_prefix,
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
        )
        return response
    return RedirectResponse(target, status_code=302)


INTERNAL_DETAIL = "Something went wrong inside Hubkeeper; it is logged."


class UnexpectedErrorMiddleware:
    """A bug becomes the contract's error, not a bare 500: `{"error": "internal_error", ...}`
    JSON on API paths (also under the service prefix), error.html for pages.

    Installed inside the prefix and security-header middlewares, so the answer has the right
    paths and the CSP; Starlette's own last-resort handler sits outside all middleware. A
    response already under way (a stream) cannot be replaced: that error is re-raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as error:
            if started:
                raise
            request = Request(scope, receive)
            if outage.is_unavailable(error):  # raised outside the routes' handlers
                await database_unavailable(request, error)(scope, receive, send)
                return
            log.exception("Unhandled error on %s %s", request.method, request.url.path)
            response = error_response(request, 500, "internal_error", INTERNAL_DETAIL)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubkeeperError)
    async def _hubkeeper_error(request: Request, exc: HubkeeperError) -> Response:
        next_url = getattr(exc, "next_url", None)
        if next_url is not None and not wants_json(request):
            return login_redirect(request, next_url)
        response = error_response(request, exc.status_code, exc.code, exc.detail)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p not in ('query', 'body'))}: "
            f"{err.get('msg', 'invalid')}"
            for err in exc.errors()
        )
        # One code per kind of mistake, whoever finds it: a bad query, path or header value
        # is `invalid_parameter` (as the kit's since/until parsing says); a bad body is
        # `invalid_request`.
        in_body = any(err.get("loc", ("body",))[:1] == ("body",) for err in exc.errors())
        code = "invalid_request" if in_body else "invalid_parameter"
        return error_response(request, 422, code, problems or "Invalid request")

    @app.exception_handler(DataError)
    async def _unstorable_value(request: Request, exc: DataError) -> Response:
        # A database "data exception" (SQLSTATE class 22: a NUL byte in text, a number out of
        # the column's range) comes from a value the client sent; its transaction was rolled
        # back, so nothing changed: the client's error, not ours.
        log.info("refused a value the database cannot store on %s: %s", request.url.path, exc.orig)
        return error_response(
            request,
            422,
            "invalid_value",
            "A value in this request cannot be stored (text with a NUL character, or a number "
            "out of range); nothing was changed",
        )

    @app.exception_handler(sa_exc.DBAPIError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def _database_error(request: Request, exc: Exception) -> Response:
        # OperationalError/InterfaceError (and any error that lost its connection) mean the
        # database is not answering: see hubkeeper.db.outage. Anything else here is a bug.
        if outage.is_unavailable(exc):
            return database_unavailable(request, exc)
        log.exception("Unhandled database error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal_error", INTERNAL_DETAIL)

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client went away before its body was complete (Starlette's Request.form/body):
        # nothing went wrong here and nobody reads the answer.
        log.info(
            "client disconnected during its request body: %s %s", request.method, request.url.path
        )
        return Response(status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = STATUS_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(request, exc.status_code, code, detail)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal_error", INTERNAL_DETAIL)
