"""Hubkeeper's side inside JupyterHub: one-server tokens, the lockdown spawn hook, the
lockdown shown on the hub's own pages, and failed spawns reported to Hubkeeper.

This module runs in the hub's process. It imports only the standard library, tornado and
jupyterhub, so it works where Hubkeeper is installed beside the hub
(`from hubkeeper.hub_plugin import configure`) and as one copied file
(`hubkeeper hub-plugin > hubkeeper_hub_plugin.py`, for z2jh's `hub.extraFiles`).

In `jupyterhub_config.py`, after Hubkeeper is listed in `c.JupyterHub.services`:

    from hubkeeper.hub_plugin import configure
    configure(c, service="hubkeeper")

and give the service's role `custom:hubkeeper:server-tokens` in place of `tokens`.

Why a plugin: the hub checks a new token's scopes against its *owner's* scopes, not the
requester's (jupyterhub/apihandlers/users.py `UserTokenListAPIHandler.post`). A service
holding `tokens` can therefore mint an admin's token with every scope the admin holds: it is
hub admin in disguise. The endpoint here can mint one thing only: a token owned by a user,
holding `access:servers!server=<user>/<server>`, living at most an hour.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timezone
from typing import Any
from urllib.parse import urlparse

# not datetime.UTC: the hub's own Python may be older than 3.11
UTC_ZONE = timezone.utc  # noqa: UP017
SCOPE = "custom:hubkeeper:server-tokens"
# Path under the hub's prefix (`<base_url>hub/`): JupyterHub prefixes `extra_handlers` with
# it (jupyterhub/app.py `init_handlers`, `add_url_prefix(self.hub_prefix, h)`).
ENDPOINT = r"/api/hubkeeper/server-tokens"
MAX_TOKEN_SECONDS = 3600  # the longest life of a token the endpoint issues
MAX_BATCH = 200  # servers per request in the list form
# Tokens whose note starts "Server at " are not counted as their owner's activity when used
# (jupyterhub/handlers/base.py `get_current_user_token`): a server checking our token with
# the hub is not the user being active.
TOKEN_NOTE = "Server at {user}/{server}: Hubkeeper reading it (logs, kernels, status)"  # noqa: S105  (a note, not a secret)
# How long (seconds) a lockdown answer is reused for the hub's pages. The pre-spawn hook
# always asks afresh.
PAGE_STATUS_SECONDS = 5.0
STATUS_TIMEOUT = 2.0  # seconds to wait for Hubkeeper's lockdown/status
UNREACHABLE_MESSAGE = (
    "Servers cannot start right now: the hub could not check whether it is locked. "
    "Try again in a minute."
)
ANNOUNCEMENT_KEYS = ("announcement", "announcement_home", "announcement_spawn")

log = logging.getLogger("hubkeeper.hub_plugin")


# --- the server-tokens endpoint ---------------------------------------------------------------
@contextlib.contextmanager
def _one_commit(db: Any) -> Iterator[None]:
    """The tokens of one list request written in one transaction: `APIToken.new` commits each
    token, and on the hub's SQLite each commit is a disk flush the hub's one thread waits for
    (~70 % of a mint, measured: 5 tokens took ~120 ms, the probe and every user waiting
    behind). Inside, the session's commit only flushes (no await, so no other request runs
    on the session meanwhile); one commit at the end, a rollback if anything raised."""
    flush_only = db.flush
    db.commit = flush_only  # an instance attribute shadows Session.commit
    try:
        yield
    except BaseException:
        del db.commit
        db.rollback()
        raise
    del db.commit
    db.commit()


def _handler_class() -> type:
    """The endpoint's handler; built on first use so that importing this module needs no
    jupyterhub (Hubkeeper imports it to print it)."""
    from jupyterhub import orm
    from jupyterhub.apihandlers.base import APIHandler
    from jupyterhub.scopes import Scope
    from tornado import web

    class ServerTokensHandler(APIHandler):
        """`POST <base_url>hub/api/hubkeeper/server-tokens {"user", "server"}` → 201
        `{"token", "expires_at"}` (ISO 8601, UTC). 400 for a malformed body; 403 without
        `custom:hubkeeper:server-tokens` (or with it filtered to other users); 404 for a
        user or named server the hub does not have. Also a list form for a pass over many
        servers, `{"servers": [...]}` (see `_post_many`)."""

        def _filters_allow(self, user: Any, server: str) -> bool:
            filters = self.parsed_scopes.get(SCOPE)
            if filters is None:
                return False
            if filters == Scope.ALL:
                return True
            if user.name in filters.get("user", ()):
                return True
            if f"{user.name}/{server}" in filters.get("server", ()):
                return True
            groups = {group.name for group in user.groups}
            return bool(groups & set(filters.get("group", ())))

        def _mint(self, name: str, server: str) -> dict[str, Any]:
            """One token, or raises HTTPError (404 unknown, 403 outside the filter)."""
            user = self.find_user(name)
            if user is None:
                # a filtered scope learns nothing of who exists
                if self.parsed_scopes.get(SCOPE) != Scope.ALL:
                    raise web.HTTPError(403, f"{SCOPE} does not cover {name}'s servers")
                raise web.HTTPError(404, f"No such user: {name}")
            if not self._filters_allow(user, server):
                raise web.HTTPError(403, f"{SCOPE} does not cover {name}'s servers")
            if server and server not in user.orm_user.orm_spawners:
                raise web.HTTPError(404, f"{name} has no server named {server}")
            lives = MAX_TOKEN_SECONDS
            cap = self.settings.get("token_expires_in_max_seconds") or 0
            if cap:
                lives = min(lives, int(cap))
            token = user.new_api_token(
                note=TOKEN_NOTE.format(user=name, server=server),
                expires_in=lives,
                scopes=[f"access:servers!server={name}/{server}"],
            )
            orm_token = orm.APIToken.find(self.db, token)
            expires_at = orm_token.expires_at if orm_token is not None else None
            return {
                "token": token,
                "expires_at": (
                    expires_at.replace(tzinfo=UTC_ZONE).isoformat()
                    if expires_at is not None
                    else None
                ),
            }

        async def post(self) -> None:
            if self.current_user is None or SCOPE not in self.parsed_scopes:
                raise web.HTTPError(403, f"Minting server tokens needs the {SCOPE} scope")
            body = self.get_json_body()
            if isinstance(body, dict) and "servers" in body:
                self._post_many(body["servers"])
                return
            if not isinstance(body, dict):
                raise web.HTTPError(400, 'Body must be {"user": <name>, "server": <name>}')
            name, server = body.get("user"), body.get("server", "")
            if not isinstance(name, str) or not name or not isinstance(server, str):
                raise web.HTTPError(400, '"user" (a name) and "server" (a name or "") needed')
            minted = self._mint(name, server)
            self.log.info("%s minted a token for %s/%s", self.current_user.name, name, server)
            self.set_status(201)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(minted))

        def _post_many(self, asked: object) -> None:
            """`{"servers": [{"user", "server"}, ...]}` (at most MAX_BATCH) → 201
            `{"tokens": [{"user", "server", "token", "expires_at"} | {"user", "server",
            "error", "status"}]}`: one request for a pass over many servers, each entry
            answered on its own."""
            if not isinstance(asked, list) or not 0 < len(asked) <= MAX_BATCH:
                raise web.HTTPError(400, f'"servers" must be a list of 1 to {MAX_BATCH} items')
            wanted: list[tuple[str, str]] = []
            for item in asked:  # all checked before any is minted: a 400 leaves no token
                name = item.get("user") if isinstance(item, dict) else None
                server = item.get("server", "") if isinstance(item, dict) else None
                if not isinstance(name, str) or not name or not isinstance(server, str):
                    raise web.HTTPError(400, 'each item needs "user" (a name) and "server"')
                wanted.append((name, server))
            answers = []
            with _one_commit(self.db):
                for name, server in wanted:
                    try:
                        minted = self._mint(name, server)
                    except web.HTTPError as exc:
                        error = exc.log_message or str(exc)
                        answers.append(
                            {
                                "user": name,
                                "server": server,
                                "error": error,
                                "status": exc.status_code,
                            }
                        )
                    else:
                        answers.append({"user": name, "server": server, **minted})
            self.log.info("%s minted %d server tokens", self.current_user.name, len(answers))
            self.set_status(201)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"tokens": answers}))

    return ServerTokensHandler


# --- the lockdown: spawn hook and pages -------------------------------------------------------
class LockdownStatus:
    """Hubkeeper's `lockdown/status` as seen from the hub: asked afresh by the pre-spawn hook,
    reused for `PAGE_STATUS_SECONDS` by the pages (which render synchronously, so a stale
    answer starts a refresh in the background)."""

    def __init__(self, status_url: str, *, timeout: float = STATUS_TIMEOUT) -> None:
        self.status_url = status_url
        self.timeout = timeout
        self.locked = False
        self.message = ""
        self.checked_at = float("-inf")  # time.monotonic()
        self._refreshing: Any = None

    async def fetch(self) -> tuple[bool, str]:
        """(locked, message), from Hubkeeper now. Raises on any failure to get an answer."""
        from tornado.httpclient import AsyncHTTPClient

        response = await AsyncHTTPClient().fetch(
            self.status_url, request_timeout=self.timeout, connect_timeout=self.timeout
        )
        status = json.loads(response.body)
        locked = status["locked"] is True
        message = str(status.get("message") or "The hub is locked by an administrator.")
        self.locked, self.message, self.checked_at = locked, message, time.monotonic()
        return locked, message

    def for_pages(self) -> tuple[bool, str]:
        """The last answer; starts a refresh when it is older than `PAGE_STATUS_SECONDS`."""
        if time.monotonic() - self.checked_at >= PAGE_STATUS_SECONDS:
            self._refresh_soon()
        return self.locked, self.message

    def _refresh_soon(self) -> None:
        import asyncio

        if self._refreshing is not None and not self._refreshing.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        async def refresh() -> None:
            try:
                await self.fetch()
            except Exception as exc:
                log.debug("lockdown status for the hub's pages: %s", exc)
                self.checked_at = time.monotonic()  # ask again later, not on every page

        self._refreshing = loop.create_task(refresh())


def _refuse(message: str) -> Exception:
    from tornado.web import HTTPError

    error = HTTPError(503, message)
    error.jupyterhub_message = message  # type: ignore[attr-defined]
    error.hubkeeper_lockdown = True  # type: ignore[attr-defined]  # see _quiet_error_hint
    return error


async def quota_refusal(
    quota_url: str, spawner: Any, wait_s: float, token: str | None = None
) -> str | None:
    """Hubkeeper's answer on the spawning user's quota: the message when the spawn is to be
    refused, None otherwise. `token`: Hubkeeper's service token (the service's `api_token`),
    which `quotas/check` requires. Raises on any failure to get an answer."""
    from urllib.parse import urlencode

    from tornado.httpclient import AsyncHTTPClient

    user = spawner.user
    query = urlencode(
        {
            "user": user.name,
            "groups": ",".join(sorted(g.name for g in getattr(user, "groups", []))),
            "admin": "true" if getattr(user, "admin", False) else "false",
        }
    )
    response = await AsyncHTTPClient().fetch(
        f"{quota_url}?{query}",
        request_timeout=wait_s,
        connect_timeout=wait_s,
        headers={"Authorization": f"token {token}"} if token else None,
    )
    answer = json.loads(response.body)
    if answer.get("allowed") is False:
        return str(answer.get("message") or "Your server-hours for this month are used up.")
    return None


def make_pre_spawn_hook(
    status: LockdownStatus,
    *,
    fail_open: bool = True,
    chained: Callable[[Any], Awaitable[None] | None] | None = None,
    quota_url: str | None = None,
    quota_token: str | None = None,
) -> Callable[[Any], Awaitable[None]]:
    """A `Spawner.pre_spawn_hook`: runs `chained` (the hook configured before) first, then
    refuses the spawn with 503 and the lockdown's message while Hubkeeper says locked, and
    (with `quota_url`, Hubkeeper's `quotas/check`, asked with `quota_token`, Hubkeeper's
    service token) when the user's monthly server-hours are used up and quotas are enforced.

    When Hubkeeper cannot be asked, the spawn goes ahead with a warning (`fail_open`), or is
    refused with `UNREACHABLE_MESSAGE` (`fail_open=False`)."""

    async def pre_spawn_hook(spawner: Any) -> None:
        # the spawn's `started` (set just before this hook, jupyterhub/user.py `spawn`): the
        # post-stop hook reports a failure under it, and the hub clears it before that hook
        started = getattr(getattr(spawner, "orm_spawner", None), "started", None)
        with contextlib.suppress(AttributeError):  # a spawner takes attributes; a stand-in may not
            spawner.hubkeeper_started = started
        if chained is not None:
            result = chained(spawner)
            if result is not None and hasattr(result, "__await__"):
                await result
        try:
            locked, message = await status.fetch()
        except Exception as exc:
            user = getattr(getattr(spawner, "user", None), "name", "?")
            if fail_open:
                log.warning("lockdown check failed (%s); letting %s's server start", exc, user)
                return
            log.warning("lockdown check failed (%s); refusing %s's server", exc, user)
            raise _refuse(UNREACHABLE_MESSAGE) from None
        if locked:
            raise _refuse(message)
        if quota_url is None:
            return
        try:
            refusal = await quota_refusal(quota_url, spawner, status.timeout, quota_token)
        except Exception as exc:
            log.warning("quota check failed (%s); letting the server start", exc)
            return
        if refusal is not None:
            raise _refuse(refusal)

    return pre_spawn_hook


# --- failed spawns ---------------------------------------------------------------------------
REPORT_TIMEOUT = 5.0  # seconds for Hubkeeper to take a failed spawn's report


def _failure_message(error: BaseException) -> str:
    message = getattr(error, "jupyterhub_message", None) or getattr(error, "log_message", None)
    return str(message or error or type(error).__name__)[:2000]


async def report_failure(
    report_url: str, token: str, spawner: Any, spawn: Awaitable[Any], wait_s: float
) -> None:
    """Wait for the spawn to end and, when it failed (not refused by this plugin's own hook:
    Hubkeeper knows its lockdowns and quotas), POST `{user, server, started, message}` to
    Hubkeeper's `spawns/failed` with its service token. Never raises: a report that cannot be
    sent is logged."""
    from tornado.httpclient import AsyncHTTPClient

    try:
        await spawn
        return  # the spawn went on (a stop hook of something else)
    except Exception as exc:  # the failure is what is reported
        error: BaseException = exc
    if getattr(error, "hubkeeper_lockdown", False):
        return
    started = getattr(spawner, "hubkeeper_started", None)
    body = {
        "user": spawner.user.name,
        "server": spawner.name or "",
        "started": (started.replace(tzinfo=None).isoformat() + "Z") if started else None,
        "message": _failure_message(error),
    }
    try:
        await AsyncHTTPClient().fetch(
            report_url,
            method="POST",
            body=json.dumps(body),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            request_timeout=wait_s,
            connect_timeout=wait_s,
        )
    except Exception as exc:
        log.warning("hubkeeper: could not report %s's failed spawn: %s", body["user"], exc)


def make_post_stop_hook(
    report_url: str,
    token: str,
    *,
    chained: Callable[[Any], Any] | None = None,
    timeout: float = REPORT_TIMEOUT,
) -> Callable[[Any], Any]:
    """A `Spawner.post_stop_hook`: runs `chained` first; then, when the stop is the hub
    cleaning up a spawn that failed, reports it to Hubkeeper (`report_failure`) in the
    background, so that `spawn.failed` is notified even for a spawn that failed too fast for
    Hubkeeper to see it pending.

    How a failed spawn is told from a plain stop (jupyterhub/user.py `spawn`, `_wait_up` and
    `stop`; handlers/base.py `spawn_single_user`): the hub stops a failed spawn from inside the
    spawn itself, so `spawner._spawn_future` (the spawn's future) is not done yet; after a
    spawn it is done or None."""

    def post_stop_hook(spawner: Any) -> Any:
        result = chained(spawner) if chained is not None else None
        spawn = getattr(spawner, "_spawn_future", None)
        if spawn is not None and not spawn.done():
            import asyncio

            task = asyncio.ensure_future(report_failure(report_url, token, spawner, spawn, timeout))
            _REPORTS.add(task)
            task.add_done_callback(_REPORTS.discard)
        return result

    return post_stop_hook


_REPORTS: set[Any] = set()  # reports under way (a task needs a reference until it is done)


def _announcement(status: LockdownStatus, previous: Any) -> Callable[[Any], str]:
    """A `template_vars` value: the lockdown's reason (escaped: it is rendered `| safe`)
    before whatever announcement was configured."""

    previous = getattr(previous, "hubkeeper_previous", previous)  # configure() called again

    def announcement(user: Any) -> str:
        earlier = previous(user) if callable(previous) else previous
        locked, message = status.for_pages()
        if not locked:
            return earlier if isinstance(earlier, str) else ""
        notice = (
            '<span style="overflow-wrap: anywhere"><strong>Locked:</strong> '
            f"{html.escape(message)}</span>"
        )
        return f"{notice}<br>{earlier}" if isinstance(earlier, str) and earlier else notice

    announcement.hubkeeper_previous = previous  # type: ignore[attr-defined]
    return announcement


def _quiet_error_hint() -> None:
    """Leave out "You can try restarting your server from the home page" under a refusal
    for a lockdown: restarting is exactly what will not work. The hub adds that hint to
    every spawn error (jupyterhub/handlers/base.py `spawn_home_error`, shown through
    `extra_error_html` in `write_error`); only errors marked `hubkeeper_lockdown` lose it."""
    from jupyterhub.handlers.base import BaseHandler

    if getattr(BaseHandler.write_error, "_hubkeeper", False):
        return
    original = BaseHandler.write_error

    def write_error(self: Any, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info and getattr(exc_info[1], "hubkeeper_lockdown", False):
            self.extra_error_html = ""
        original(self, status_code, **kwargs)

    write_error._hubkeeper = True  # type: ignore[attr-defined]
    BaseHandler.write_error = write_error


# --- configure ------------------------------------------------------------------------------


def _base_url(c: Any) -> str:
    """The hub's base_url as configured: `base_url`, else the path of `bind_url`, else /."""
    hub = c.JupyterHub
    base = hub.base_url if "base_url" in hub else None
    if not isinstance(base, str) or not base:
        bind = hub.bind_url if "bind_url" in hub else None
        base = urlparse(bind).path if isinstance(bind, str) else "/"
    return "/" + base.strip("/") + "/" if base.strip("/") else "/"


def status_url_of(c: Any, service: str) -> str:
    """Hubkeeper's `lockdown/status` URL, from the service's `url` and the hub's base_url.
    Raises ValueError when the service is not listed with a `url`."""
    services = c.JupyterHub.services if "services" in c.JupyterHub else []
    for spec in services if isinstance(services, list) else []:
        if isinstance(spec, dict) and spec.get("name") == service and spec.get("url"):
            url = str(spec["url"]).rstrip("/")
            return f"{url}{_base_url(c)}services/{service}/api/v1/lockdown/status"
    raise ValueError(
        f"configure(c, service={service!r}): list the service, with its url, in "
        "c.JupyterHub.services first (or pass status_url=)"
    )


def service_token_of(c: Any, service: str) -> str | None:
    """The service's `api_token` as the hub's config gives it (its entry in
    `c.JupyterHub.services`, else `c.JupyterHub.service_tokens`); None when neither has it."""
    hub = c.JupyterHub
    services = hub.services if "services" in hub else []
    for spec in services if isinstance(services, list) else []:
        if isinstance(spec, dict) and spec.get("name") == service and spec.get("api_token"):
            return str(spec["api_token"])
    tokens = hub.service_tokens if "service_tokens" in hub else {}
    for token, name in dict(tokens).items() if isinstance(tokens, dict) else []:
        if name == service:
            return str(token)
    return None


def configure(
    c: Any,
    service: str = "hubkeeper",
    *,
    status_url: str | None = None,
    fail_open: bool = True,
    lockdown: bool = True,
) -> None:
    """Everything the hub needs for Hubkeeper; call after the service is listed.

    - Defines `custom:hubkeeper:server-tokens` (`c.JupyterHub.custom_scopes`).
    - Serves `POST <base_url>hub/api/hubkeeper/server-tokens` (`c.JupyterHub.extra_handlers`).
    - With `lockdown` (default): a pre-spawn hook chained after the configured one, asking
      `status_url` (default: from the service's `url`, `status_url_of`) and, beside it,
      `quotas/check` with the service's `api_token` (spawns over an enforced quota are
      refused; admins never; without a token in the config, quotas are not checked); `fail_open`
      as in `make_pre_spawn_hook`; and the lockdown's reason on the hub's pages, before any
      configured announcement.
    - With `lockdown` and the service's token: a post-stop hook, chained after the configured
      one, that reports spawns that failed to Hubkeeper's `spawns/failed`
      (`make_post_stop_hook`).

    Raises ValueError when `status_url` is not given and cannot be worked out.
    """
    hub = c.JupyterHub
    scopes = dict(hub.custom_scopes) if "custom_scopes" in hub else {}
    scopes[SCOPE] = {
        "description": (
            f"Mint short-lived tokens that open one user's server only (for {service})"
        ),
    }
    hub.custom_scopes = scopes
    handlers = list(hub.extra_handlers) if "extra_handlers" in hub else []
    if not any(isinstance(h, tuple) and h and h[0] == ENDPOINT for h in handlers):
        handlers.append((ENDPOINT, _handler_class()))
    hub.extra_handlers = handlers
    if not lockdown:
        return
    status = LockdownStatus(status_url or status_url_of(c, service))
    spawner = c.Spawner
    chained = spawner.pre_spawn_hook if "pre_spawn_hook" in spawner else None
    chained = getattr(chained, "hubkeeper_chained", chained)  # configure() called again
    quota_url = None
    if status.status_url.endswith("lockdown/status"):
        quota_url = status.status_url[: -len("lockdown/status")] + "quotas/check"
    quota_token = service_token_of(c, service)
    if quota_url is not None and quota_token is None:
        log.warning(
            "hubkeeper: no api_token for the service %r in the hub's config: spawns are not "
            "checked against quotas (quotas/check needs the service's token)",
            service,
        )
        quota_url = None
    hook = make_pre_spawn_hook(
        status,
        fail_open=fail_open,
        chained=chained if callable(chained) else None,
        quota_url=quota_url,
        quota_token=quota_token,
    )
    hook.hubkeeper_chained = chained  # type: ignore[attr-defined]
    spawner.pre_spawn_hook = hook
    if quota_url is not None and quota_token is not None:
        stop_chained = spawner.post_stop_hook if "post_stop_hook" in spawner else None
        stop_chained = getattr(stop_chained, "hubkeeper_chained", stop_chained)
        stop_hook = make_post_stop_hook(
            quota_url[: -len("quotas/check")] + "spawns/failed",
            quota_token,
            chained=stop_chained if callable(stop_chained) else None,
        )
        stop_hook.hubkeeper_chained = stop_chained  # type: ignore[attr-defined]
        spawner.post_stop_hook = stop_hook
    template_vars = dict(hub.template_vars) if "template_vars" in hub else {}
    for key in ANNOUNCEMENT_KEYS:
        if key == "announcement" or key in template_vars:
            template_vars[key] = _announcement(status, template_vars.get(key))
    hub.template_vars = template_vars
    _quiet_error_hint()


__all__ = [
    "SCOPE",
    "ENDPOINT",
    "LockdownStatus",
    "configure",
    "make_pre_spawn_hook",
    "make_post_stop_hook",
]
