"""Reaching single-user servers: directly, with a credential that opens only that server.

Facts this rests on (docs/jupyterhub-facts.md, "Reaching a user's server from a service"):
- A service's JUPYTERHUB_API_URL is the hub's own port; `/user/...` is not served there (the
  hub redirects it to `/hub/user/...`, jupyterhub/handlers/pages.py PrefixRedirectHandler).
- Requests through configurable-http-proxy count as the user's activity: CHP stamps the
  route's `last_activity` on every proxied request (lib/configproxy.js), and the hub copies it
  into the server's `last_activity` (jupyterhub/app.py `update_last_activity`).
  `no_track_activity=1` only stops the single-user server's own tracking
  (jupyter_server/base/handlers.py).
- CHP's REST API (`GET <api>/api/routes`, `Authorization: token <CONFIGPROXY_AUTH_TOKEN>`)
  gives each route's `target` plus the hub's `user` / `server_name`; CHP forwards the full
  request path to the target (prependPath), so a server answers at `<target><route path>/...`.
- A user's server is code the user controls: whatever credential reaches it can be read by
  the user. So it gets a token the hub issues *for that user* with the single scope
  `access:servers!server=<user>/<server>` (hub/server_tokens.py: from the hub plugin, or
  with the `tokens` scope as a fallback), never Hubkeeper's own token: the client used here
  has no default Authorization header.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from hubkeeper.errors import Conflict, HubError, HubkeeperError, NotFound
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.server_tokens import ServerTokens
from hubkeeper.kit.actors import server_label
from hubkeeper.kit.clock import parse_iso

log = logging.getLogger(__name__)

ROUTES_MIN_AGE = 1.0  # a missing route re-reads the proxy's table at most once a second
# A route read longer ago than this is read again before a token is sent: a server that
# stopped leaves its address free for another user's server (Kubernetes reuses pod IPs, one
# host reuses ports), which must never receive this server's token. Bounds that window; costs
# at most one `GET /api/routes` per this many seconds while servers are being read (the same
# order as the directory's `state=active` poll of the hub).
ROUTES_MAX_AGE = 3.0
NOT_RUNNING_STATUSES = {"stopped", "stopping"}
REPORT_TIMEOUT = 3.0  # seconds health waits for the proxy API


# Types of the `GET api/kernels` fields callers read (besides `id`); None is allowed.
KERNEL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "last_activity": str,
    "execution_state": str,
    "connections": int,
}


def _bad_answer(what: str, why: str) -> HubError:
    return HubError(f"{what}: unexpected answer from the server ({why})", code="server_bad_answer")


class ServerUnreachable(HubkeeperError):
    """Hubkeeper has no way to reach users' servers (no proxy setting), the proxy API or the
    server does not answer, or the proxy has no route for a server the hub reports running.
    Not `hub_unavailable`: the hub itself may be answering fine."""

    status_code = 503
    code = "server_unreachable"


UNCONFIGURED = (
    "Hubkeeper cannot reach users' servers: set HUBKEEPER_PROXY_API_URL (configurable-http-"
    "proxy's REST API, e.g. http://127.0.0.1:8001; z2jh http://proxy-api:8001) with "
    "HUBKEEPER_PROXY_AUTH_TOKEN (or CONFIGPROXY_AUTH_TOKEN), or, for another proxy, "
    "HUBKEEPER_PROXY_URL (where /user/... is served; those reads count as the user's activity)."
)


@dataclass(frozen=True)
class FileRange:
    """Part of a file in a user's server: `data` starts at byte `start`; `size` is the whole
    file's size when the server said so (None if it did not)."""

    data: bytes
    start: int
    size: int | None


@dataclass(frozen=True)
class Route:
    """Where one server is served: `base` = target + the route's path (no trailing slash);
    `last_activity`: the proxy's own stamp of the last request it passed to the server (UTC;
    None when the proxy gave none)."""

    user: str
    server: str
    base: str
    last_activity: datetime | None = None


# What jupyterhub.utils.url_escape_path leaves unescaped in a user's or server's URL segment.
HUB_URL_SAFE = "@~"


def _path_of(routespec: str) -> str:
    """The path a server answers at, from its CHP route key (`/user/alice`, or
    `host/user/alice` on a subdomain hub).

    configurable-http-proxy keeps route keys *decoded* (lib/configproxy.js decodes the API
    path: `/user/ann+x@example.org`), while the server's base URL is the hub's escaped one
    (jupyterhub/user.py: `url_escape_path(name)`, `/user/ann%2Bx@example.org/`) and it answers
    404 elsewhere. So each segment is escaped again the way the hub escapes it."""
    path = routespec if routespec.startswith("/") else "/" + routespec.partition("/")[2]
    segments = path.rstrip("/").split("/")
    return "/".join(quote(segment, safe=HUB_URL_SAFE) for segment in segments)


def _refuse_all_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that keeps nothing (an empty `allowed_domains` refuses every domain)."""
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def quote_path(path: str) -> str:
    return "/".join(quote(part, safe="") for part in path.strip("/").split("/"))


class ServerGateway:
    """Talks to single-user servers directly at their proxy route target, with a token that
    opens only that server; never through the proxy when a proxy API is configured.

    One per app (`hk.servers`), safe to share between tasks. Every call carries
    `no_track_activity=1`. Errors: ServerUnreachable (503, no proxy setting, or no route for a
    server the hub reports running), Conflict `server_not_running` (no route and the hub says
    it is not running), NotFound (`user_not_found`, `file_not_found`, `file_hidden`,
    `kernel_not_found`), ServerUnreachable also when the proxy API or the server does not
    answer (the hub may be fine), HubUnavailable (the hub not answering), HubError.
    """

    def __init__(
        self,
        hub: HubClient,
        *,
        proxy_api_url: str = "",
        proxy_token: str = "",
        proxy_url: str = "",
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.hub = hub
        self.proxy_api_url = proxy_api_url.rstrip("/")
        parts = urlsplit(proxy_url)
        self.proxy_url = f"{parts.scheme}://{parts.netloc}" if parts.scheme else ""
        timeouts = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        # No default headers: each request to a user's server carries that server's own token.
        # No cookies kept either: servers on one host share a cookie domain (ports do not
        # separate cookies), so a cookie one user's server sets would go to the others.
        self._http = httpx.AsyncClient(
            timeout=timeouts, transport=transport, cookies=_refuse_all_cookies()
        )
        self._proxy_api = httpx.AsyncClient(
            headers={"Authorization": f"token {proxy_token}"} if proxy_token else {},
            timeout=timeouts,
            transport=transport,
        )
        self._routes: dict[tuple[str, str], Route] = {}
        # The proxy's last answer, and each route key's raw entry with the Route made of it:
        # the directory reads the table every second, and at 1,000 servers building every
        # Route again (quoting paths, parsing times) was most of its idle CPU. An unchanged
        # answer is not parsed; an unchanged entry keeps its Route (the same object, so the
        # directory's comparison of two tables is a matter of identity).
        self._routes_body = b""
        self._route_entries: dict[str, tuple[dict[str, Any], Route]] = {}
        self._urls: dict[tuple[str, str], str] = {}  # HUBKEEPER_PROXY_URL mode: hub's paths
        self._routes_read_at = float("-inf")
        self._routes_lock = asyncio.Lock()
        self.tokens = ServerTokens(hub)  # one-server tokens: hub plugin or `tokens`

    @classmethod
    def from_settings(cls, hub: HubClient, settings: Any) -> ServerGateway:
        return cls(
            hub,
            proxy_api_url=settings.proxy_api_url,
            proxy_token=settings.proxy_token,
            proxy_url=settings.proxy_url,
            timeout=settings.hub_timeout,
        )

    # --- what this gateway can do ------------------------------------------------------------
    @property
    def mode(self) -> str:
        """ "proxy_api" (direct to the route target), "proxy" (through the proxy), or ""."""
        if self.proxy_api_url:
            return "proxy_api"
        return "proxy" if self.proxy_url else ""

    @property
    def counts_as_activity(self) -> bool:
        """True only in the HUBKEEPER_PROXY_URL fallback: reads pass the proxy, which records
        them as the user's activity."""
        return self.mode == "proxy"

    @property
    def notice(self) -> str:
        """A sentence for people about how servers are reached ("" when all is well)."""
        if self.mode == "proxy":
            return (
                f"Hubkeeper reaches users' servers through the proxy at {self.proxy_url} "
                "(HUBKEEPER_PROXY_URL): every read there counts as the user's activity, so a "
                "watched server is never idle. Set HUBKEEPER_PROXY_API_URL to avoid this."
            )
        if not self.mode:
            return UNCONFIGURED
        return ""

    async def report(self) -> dict[str, Any]:
        """For health: `{"reachable", "via", "counts_as_activity", "detail"}` (detail null
        when there is nothing to say); checks the proxy API answers (`GET /api/routes`) when
        one is configured."""
        reachable = bool(self.mode)
        detail = self.notice
        if self.mode == "proxy_api":
            try:
                await asyncio.wait_for(
                    self._refresh_routes(newer_than=time.monotonic()), REPORT_TIMEOUT
                )
            except (HubkeeperError, TimeoutError) as exc:
                reachable = False
                detail = getattr(exc, "detail", "") or "the proxy API did not answer in time"
        return {
            "reachable": reachable,
            "via": self.mode or None,
            "counts_as_activity": self.counts_as_activity,
            "detail": detail or None,  # null when all is well, as `changes.detail`
        }

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._proxy_api.aclose()

    # --- routes ------------------------------------------------------------------------------
    async def _refresh_routes(self, *, newer_than: float | None = None) -> None:
        """Read the proxy's routing table. Without `newer_than`, at most once per
        ROUTES_MIN_AGE seconds; with it, unless it was read after that moment already (many
        requests failing at once read it once)."""
        async with self._routes_lock:
            if newer_than is None:
                if time.monotonic() - self._routes_read_at < ROUTES_MIN_AGE:
                    return
            elif self._routes_read_at >= newer_than:
                return
            url = self.proxy_api_url + "/api/routes"
            try:
                response = await self._proxy_api.get(url)
            except httpx.TimeoutException as exc:  # its text is often empty
                raise ServerUnreachable(
                    f"The proxy API at {self.proxy_api_url} (HUBKEEPER_PROXY_API_URL) did not "
                    f"answer within {self._proxy_api.timeout.read or 0:g} s"
                ) from exc
            except httpx.HTTPError as exc:
                raise ServerUnreachable(
                    f"The proxy API at {self.proxy_api_url} (HUBKEEPER_PROXY_API_URL) is "
                    f"unreachable: {str(exc) or type(exc).__name__}"
                ) from exc
            if response.status_code in (401, 403):
                raise HubError(
                    f"The proxy API at {self.proxy_api_url} refused Hubkeeper's token: set "
                    "HUBKEEPER_PROXY_AUTH_TOKEN (or CONFIGPROXY_AUTH_TOKEN) to the proxy's token",
                    code="proxy_forbidden",
                )
            if response.status_code != 200:
                raise ServerUnreachable(
                    f"The proxy API at {self.proxy_api_url} (HUBKEEPER_PROXY_API_URL) answered "
                    f"{response.status_code}"
                )
            if response.content == self._routes_body:
                self._routes_read_at = time.monotonic()
                return
            routes: dict[tuple[str, str], Route] = {}
            entries: dict[str, tuple[dict[str, Any], Route]] = {}
            known = self._route_entries
            for spec, data in (response.json() or {}).items():
                if not isinstance(data, dict) or "user" not in data or not data.get("target"):
                    continue  # the hub's own route, services' routes
                seen = known.get(spec)
                if seen is not None and seen[0] == data:
                    route = seen[1]
                else:
                    route = Route(
                        str(data["user"]),
                        str(data.get("server_name") or ""),
                        str(data["target"]).rstrip("/") + _path_of(spec),
                        parse_iso(data.get("last_activity")),
                    )
                entries[spec] = (data, route)
                routes[(route.user, route.server)] = route
            self._routes = routes
            self._route_entries = entries
            self._routes_body = response.content
            self._routes_read_at = time.monotonic()

    async def read_routes(self) -> dict[tuple[str, str], Route]:
        """The proxy's routing table read now (the hub's servers only), keyed by (user,
        server). Costs the hub nothing: it is configurable-http-proxy's own API.

        Raises ServerUnreachable (no proxy API configured, or it does not answer), HubError
        `proxy_forbidden`."""
        if self.mode != "proxy_api":
            raise ServerUnreachable("No proxy API is configured (HUBKEEPER_PROXY_API_URL)")
        await self._refresh_routes(newer_than=time.monotonic())
        return dict(self._routes)

    async def _hub_status(self, user: str, server: str) -> tuple[str, str]:
        """(status, url) of the server as the hub reports it now; NotFound for no user."""
        model = (await self.hub.get_user(user)).servers.get(server)
        if model is None:
            return "stopped", ""
        return model.status, model.url

    async def _not_routed(self, user: str, server: str) -> HubkeeperError:
        """Why a server has no route: not running (409), or the proxy lags the hub (503)."""
        status, _url = await self._hub_status(user, server)
        label = server_label(user, server)
        if status in NOT_RUNNING_STATUSES:
            return Conflict(f"{label} is {status}", code="server_not_running")
        return ServerUnreachable(
            f"The hub reports {label} {status}, but the proxy at {self.proxy_api_url} has no "
            "route for it (yet): try again in a moment"
        )

    async def _base(self, user: str, server: str, *, failed_at: float | None = None) -> str:
        """`<where the server answers><its base URL>`, no trailing slash. `failed_at`: a
        request sent there failed at that moment, so read where it is again."""
        key = (user, server)
        if self.mode == "proxy_api":
            if failed_at is not None:
                await self._refresh_routes(newer_than=failed_at)
            elif (
                key not in self._routes or time.monotonic() - self._routes_read_at > ROUTES_MAX_AGE
            ):
                await self._refresh_routes()
            route = self._routes.get(key)
            if route is None:
                asked = time.monotonic()
                error = await self._not_routed(user, server)
                if isinstance(error, ServerUnreachable):
                    # The hub says it runs: the table read may predate its route.
                    await self._refresh_routes(newer_than=asked)
                    route = self._routes.get(key)
                if route is None:
                    raise error
            return route.base
        if self.mode == "proxy":
            # Through the proxy, at the path the hub gives the server (kept until a failure).
            url = self._urls.get(key) if failed_at is None else None
            if url is None:
                status, url = await self._hub_status(user, server)
                if status in NOT_RUNNING_STATUSES or not url:
                    self._urls.pop(key, None)
                    raise Conflict(
                        f"{server_label(user, server)} is {status}", code="server_not_running"
                    )
                self._urls[key] = url
            return self.proxy_url + url.rstrip("/")
        raise ServerUnreachable(UNCONFIGURED)

    # --- requests ----------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        user: str,
        server: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request to the server; on a failure the route and token are read again once."""
        label = server_label(user, server)
        query = {**(params or {}), "no_track_activity": "1"}  # never the server's own activity
        failed_at: float | None = None
        for attempt in (0, 1):
            base = await self._base(user, server, failed_at=failed_at)
            try:
                here = await self._serves_here(base)
            except httpx.HTTPError:
                here = False
            if not here:
                # The route is stale: the address may serve another user's server now (a
                # restart, a reused pod IP or port). Read the routes again; send no token.
                if attempt == 0:
                    failed_at = time.monotonic()
                    continue
                status, _url = await self._hub_status(user, server)
                if status in NOT_RUNNING_STATUSES:
                    raise Conflict(f"{label} is {status}", code="server_not_running")
                raise ServerUnreachable(f"{label} does not answer at {base}")
            token = await self.tokens.token(user, server)
            try:
                response = await self._http.request(
                    method,
                    f"{base}/{path}",
                    params=query,
                    headers={**(headers or {}), "Authorization": f"token {token}"},
                )
            except httpx.HTTPError as exc:
                if attempt == 0:
                    failed_at = time.monotonic()
                    continue
                status, _url = await self._hub_status(user, server)
                if status in NOT_RUNNING_STATUSES:
                    raise Conflict(f"{label} is {status}", code="server_not_running") from exc
                raise ServerUnreachable(f"{label} did not answer at {base}: {exc}") from exc
            refused = response.status_code in (401, 403) or 300 <= response.status_code < 400
            if refused or response.status_code in (424, 502, 503, 504):
                if attempt == 0:
                    self.tokens.forget(user, server)
                    failed_at = time.monotonic()
                    continue
                status, _url = await self._hub_status(user, server)
                if status in NOT_RUNNING_STATUSES:
                    raise Conflict(f"{label} is {status}", code="server_not_running")
                if refused:
                    raise HubError(
                        f"{label} refused the token the hub issued for it ({response.status_code})",
                        code="server_refused",
                    )
                raise ServerUnreachable(f"{label} answered {response.status_code}")
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _serves_here(self, base: str) -> bool:
        """Does the server at `base` answer under this base URL? Asked before every request
        that carries a token, so a user's token never reaches an address that serves another
        user's server now (a restart, a reused pod IP or port). Both probes need no token and
        exist only under the server's own base URL (404 from any other user's server):
        - `HEAD <base_url>static/favicon.ico`, jupyter_server's own static file
          (`FileFindHandler.head` is `allow_unauthenticated`, jupyter_server/base/handlers.py);
          a static-file success is logged at debug level (jupyterhub/log.py `log_request`), so
          it never lands in the log file being followed;
        - else `GET <base_url>api`, its version (`APIVersionHandler`, unauthenticated, not
          counted as activity; logged at info level, so only the fallback).
        """
        probe = await self._http.head(f"{base}/static/favicon.ico")
        if probe.status_code == 200:
            return True
        version = await self._http.get(f"{base}/api", params={"no_track_activity": "1"})
        return version.status_code == 200

    @staticmethod
    def _fail(response: httpx.Response, what: str) -> None:
        if response.status_code >= 400:
            raise HubError(f"{what}: the server answered {response.status_code}")

    @staticmethod
    def _json(response: httpx.Response, what: str, shape: type) -> Any:
        """The answer's JSON when it is a `shape` (dict or list). A user's server is code the
        user controls (a web app of their own may answer at api/...), so anything else is
        HubError `server_bad_answer`, never an exception out of a caller's pass."""
        try:
            data = response.json()
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise _bad_answer(what, "not JSON") from exc
        if not isinstance(data, shape):
            raise _bad_answer(what, f"not a JSON {'object' if shape is dict else 'list'}")
        return data

    async def server_status(self, user: str, server: str = "") -> dict[str, Any]:
        """`GET api/status` of the server (jupyter_server/services/api/handlers.py): started,
        last_activity, connections, kernels."""
        response = await self._call("GET", user, server, "api/status")
        what = f"status of {server_label(user, server)}"
        self._fail(response, what)
        return dict(self._json(response, what, dict))

    async def resource_metrics(self, user: str, server: str = "") -> dict[str, Any] | None:
        """`GET api/metrics/v1` of jupyter-resource-usage (jupyter_resource_usage/api.py
        `ApiHandler`): `rss` (bytes), `limits.memory.rss` (bytes, 0 = none), `cpu_percent`
        (only with `track_cpu_percent`), ... as the server wrote them: the caller checks each
        value (hubkeeper.resources.figures). None when the server answers 404 (no such
        extension). HubError `server_bad_answer` when the answer is not a JSON object."""
        what = f"resource usage of {server_label(user, server)}"
        response = await self._call("GET", user, server, "api/metrics/v1")
        if response.status_code == 404:
            return None
        self._fail(response, what)
        return dict(self._json(response, what, dict))

    async def list_kernels(self, user: str, server: str = "") -> list[dict[str, Any]]:
        """`GET api/kernels`: each kernel's id, name, last_activity, execution_state,
        connections (jupyter_server/services/kernels/kernelmanager.py `kernel_model`). Every
        field read is checked: HubError `server_bad_answer` for any other shape."""
        what = f"kernels of {server_label(user, server)}"
        response = await self._call("GET", user, server, "api/kernels")
        self._fail(response, what)
        kernels: list[dict[str, Any]] = []
        for item in self._json(response, what, list):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                raise _bad_answer(what, "a kernel without a string id")
            for name, types in KERNEL_FIELDS.items():
                value = item.get(name)
                if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                    raise _bad_answer(what, f"kernel {item['id']!r} has a {name} of the wrong type")
            kernels.append(item)
        return kernels

    async def list_terminals(self, user: str, server: str = "") -> list[dict[str, Any]]:
        """`GET api/terminals`: each terminal's name and last_activity (jupyter_server_terminals
        `TerminalManager.get_terminal_model`). A server without terminals enabled answers 404:
        that is no terminals. HubError `server_bad_answer` for any other shape."""
        what = f"terminals of {server_label(user, server)}"
        response = await self._call("GET", user, server, "api/terminals")
        if response.status_code == 404:
            return []
        self._fail(response, what)
        terminals: list[dict[str, Any]] = []
        for item in self._json(response, what, list):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise _bad_answer(what, "a terminal without a string name")
            stamp = item.get("last_activity")
            if stamp is not None and not isinstance(stamp, str):
                raise _bad_answer(what, f"terminal {item['name']!r} has a bad last_activity")
            terminals.append(item)
        return terminals

    async def delete_kernel(self, user: str, server: str, kernel_id: str) -> None:
        """`DELETE api/kernels/{id}` (shuts the kernel down). NotFound `kernel_not_found`."""
        response = await self._call(
            "DELETE", user, server, f"api/kernels/{quote(kernel_id, safe='')}"
        )
        if response.status_code == 404:
            raise NotFound(
                f"{server_label(user, server)} has no kernel {kernel_id!r}",
                code="kernel_not_found",
            )
        self._fail(response, f"delete kernel {kernel_id!r}")

    async def read_file_range(
        self,
        user: str,
        server: str,
        path: str,
        start: int | None = None,
        *,
        end: int | None = None,
        last: int | None = None,
    ) -> FileRange:
        """Bytes `start`..`end` (inclusive; to the end of the file when None), or the `last`
        bytes, of a file relative to the server's root, with the file's current size.

        Uses the server's `files/` handler with a Range header (only those bytes cross the
        wire). A `start` at or past the end gives no data and the size. A 404 is told apart:
        a hidden path refused because `ContentsManager.allow_hidden` is off → NotFound
        `file_hidden`; a missing file → NotFound `file_not_found` naming the path tried.
        """
        # Any Range on an empty file is answered 416, which the server logs as a warning into
        # the log being read (tornado's StaticFileHandler), so a watcher of an empty or
        # just-truncated log would fill it with its own requests. A HEAD (200, logged at debug
        # level) tells the size first when reading from the start or the end.
        if (last is not None or not start) and await self.file_size(user, server, path) == 0:
            return FileRange(b"", 0, 0)
        if last is not None:
            wanted = f"bytes=-{max(last, 1)}"
        else:
            first = max(start or 0, 0)
            wanted = f"bytes={first}-" + ("" if end is None else str(max(end, first)))
        response = await self._call(
            "GET", user, server, f"files/{quote_path(path)}", headers={"Range": wanted}
        )
        status = response.status_code
        if status == 404:
            raise await self._missing(user, server, path)
        content_range = response.headers.get("Content-Range", "")
        total = content_range.rsplit("/", 1)[-1]
        size = int(total) if total.isdigit() else None
        if status == 416:  # nothing at or past `start`, or an empty file
            return FileRange(b"", size if size is not None else 0, size)
        self._fail(response, f"read {path!r}")
        data = response.content
        if status == 206:
            head = content_range.removeprefix("bytes ").split("-", 1)[0]
            return FileRange(data, int(head) if head.isdigit() else 0, size)
        # 200: the server ignored the Range and sent the whole file.
        size = len(data)
        if last is not None:
            cut = max(size - last, 0)
            return FileRange(data[cut:], cut, size)
        first = max(start or 0, 0)
        stop = size if end is None else min(end + 1, size)
        return FileRange(data[first:stop], min(first, size), size)

    async def file_size(self, user: str, server: str, path: str) -> int | None:
        """The size in bytes of a file relative to the server's root, from a HEAD request
        (None when the server does not say).

        Raises NotFound `file_hidden` / `file_not_found` as `read_file_range` does.
        """
        response = await self._call("HEAD", user, server, f"files/{quote_path(path)}")
        if response.status_code == 404:
            raise await self._missing(user, server, path)
        if response.status_code in (405, 501):  # a server without HEAD: size unknown
            return None
        self._fail(response, f"read the size of {path!r}")
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else None

    async def _missing(self, user: str, server: str, path: str) -> NotFound:
        """Why `files/<path>` answered 404. jupyter_server refuses a hidden file with the same
        bare 404 page as a missing one, before looking for it (files/handlers.py: `if not
        cm.allow_hidden and cm.is_hidden(path)`). What tells them apart: with allow_hidden on,
        a directory listing shows hidden entries (filemanager.py `_dir_model`); with it off,
        never. So for a hidden path the parent directory is listed once."""
        label = server_label(user, server)
        parts = path.strip("/").split("/")
        if any(part.startswith(".") for part in parts):
            parent = "/".join(parts[:-1])
            listing = await self._call(
                "GET",
                user,
                server,
                f"api/contents/{quote_path(parent)}".rstrip("/"),
                params={"content": "1", "type": "directory"},
            )
            # Only a listing that worked tells: a server that cannot list the directory either
            # (404 at another base URL, an error) is not one that refuses hidden files.
            names = []
            if listing.status_code == 200:
                model = self._json(listing, f"listing of {parent or '/'} in {label}", dict)
                content = model.get("content")
                items = content if isinstance(content, list) else []
                names = [str(item.get("name", "")) for item in items if isinstance(item, dict)]
            if listing.status_code == 200 and not any(name.startswith(".") for name in names):
                return NotFound(
                    f"{label} answers 404 for {path!r}, a hidden path (a name starting with "
                    "'.'), and lists no hidden files: it refuses to serve hidden files. Start "
                    "the servers with `--ContentsManager.allow_hidden=True` "
                    "(c.ContentsManager.allow_hidden = True), or point Hubkeeper at a file "
                    "that is not hidden.",
                    code="file_hidden",
                )
        return NotFound(
            f"There is no file {path!r} in {label} (tried files/{quote_path(path)} relative to "
            "the server's root directory)",
            code="file_not_found",
        )
