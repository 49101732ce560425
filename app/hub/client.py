"""An async client for the JupyterHub REST API (single-user servers: see hub/servers.py).

Rules it keeps (see docs/jupyterhub-facts.md):
- every path segment built from a name is URL-quoted;
- paged listings follow `_pagination.next` and never stop on a short page (the hub filters
  `state=ready` after cutting the page);
- connection failures, timeouts and 502/503/504 become `HubUnavailable`; idempotent reads are
  retried on connection errors before giving up.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from hubkeeper.errors import BadRequest, Conflict, HubBusy, HubError, HubUnavailable, NotFound
from hubkeeper.hub.models import HubIdentity, HubUser, ProgressEvent
from hubkeeper.hub.pace import HubPace, note_request, paced
from hubkeeper.kit.clock import parse_iso

log = logging.getLogger(__name__)

PAGINATION_ACCEPT = "application/jupyterhub-pagination+json"
READ_RETRIES = 2
RETRY_PAUSE = 0.3
UNAVAILABLE_STATUSES = {502, 503, 504, 599}
# Room in the connection pool for a budget of its own (`budget()`), e.g. a cull pass (1-100).
MAX_PASS_CONCURRENCY = 100


class UserPage(list[HubUser]):
    """A page of users with `fetched_at`: `time.monotonic()` when its request was sent.

    The hub's answer shows its state at some moment after that, so an answer whose request
    was sent earlier than another's may be older than it, never newer: the user directory
    orders what it applies by this stamp (an older answer arriving late is dropped).
    """

    fetched_at: float = 0.0

    @classmethod
    def of(cls, users: list[HubUser], fetched_at: float) -> UserPage:
        page = cls(users)
        page.fetched_at = fetched_at
        return page


def q(segment: str) -> str:
    """Quote one path segment, slashes included."""
    return quote(segment, safe="")


def server_path(user: str, server: str = "") -> str:
    return f"/users/{q(user)}/servers/{q(server)}" if server else f"/users/{q(user)}/server"


class HubClient:
    """One instance per app; safe to share between tasks.

    Two concurrency budgets, so that sign-ins, token checks and page reads never queue
    behind bulk work: calls made through this client use the *interactive* budget
    (`concurrency` requests at once); calls made through `hub.bulk` — the same client and
    connection pool with the *bulk* budget (`bulk_concurrency`) — are for work on many
    servers at once (stop-all, lockdown enforcement, the full sweep, culling). A stop-all
    of hundreds of servers, each held open by the hub up to its `slow_stop_timeout` (10 s),
    then fills only the bulk budget.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        concurrency: int = 8,
        bulk_concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: Callable[[float, str], None] | None = None,
    ) -> None:
        """`on_request(seconds, outcome)` is told of every call (outcome: ok | unavailable):
        the metrics, passed in by `hubkeeper.main` so this layer imports no capability."""
        self.api_url = api_url.rstrip("/")
        self._on_request = on_request
        # For messages: where the hub answers (its own port for a service; never /user/...).
        self.hub_origin = str(httpx.URL(self.api_url).copy_with(path="/", query=None)).rstrip("/")
        self._token = token
        # The hub holds a start/stop request open up to its slow_spawn/stop_timeout (10 s)
        # before answering 202: give actions room beyond that.
        self._action_timeout = httpx.Timeout(max(timeout, 10.0) + 20.0, connect=min(timeout, 5.0))
        self._limit = asyncio.Semaphore(concurrency)
        # Both budgets together stay within the pool, so neither waits for a connection.
        pool = httpx.Limits(
            max_connections=concurrency + bulk_concurrency + MAX_PASS_CONCURRENCY,
            max_keepalive_connections=20,
        )
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"token {token}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            follow_redirects=False,
            limits=pool,
        )
        # Background work (mints, the reconciliation walk, sweeps) shares one slice of the
        # hub's time: every view of this client holds the same pace.
        self.pace = HubPace()
        self.is_bulk = False
        # The bulk view: this client with the other semaphore (it shares the connections).
        self.bulk: HubClient = copy.copy(self)
        self.bulk._limit = asyncio.Semaphore(bulk_concurrency)
        self.bulk.is_bulk = True
        self.bulk.bulk = self.bulk

    def budget(self, concurrency: int) -> HubClient:
        """A view of this client (same connections) with a budget of its own, for one bulk task
        that needs `concurrency` requests at once (a cull pass with its `concurrency`): apart
        from the interactive budget, and neither limited by nor limiting other bulk work."""
        view = copy.copy(self)
        view._limit = asyncio.Semaphore(concurrency)
        view.is_bulk = True
        view.bulk = view
        return view

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing ------------------------------------------------------------------------
    def _unreachable(self, exc: httpx.HTTPError) -> HubUnavailable:
        # httpx's text is empty for some errors (a read timeout, a closed stream): the name then
        return HubUnavailable(
            f"The hub at {self.hub_origin} is unreachable: {str(exc) or type(exc).__name__}"
        )

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP call, timed into hubkeeper_hub_request_seconds{outcome}."""
        async with self._limit:
            began = time.perf_counter()
            outcome = "unavailable"
            try:
                response = await self._http.request(method, url, **kwargs)
                if response.status_code not in UNAVAILABLE_STATUSES:
                    outcome = "ok"
                return response
            finally:
                took = time.perf_counter() - began
                note_request(took)  # background work's turn, if this is one (hub/pace.py)
                if self._on_request is not None:
                    self._on_request(took, outcome)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        retries: int = 0,
        **kwargs: Any,
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._send(method, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                if attempt < retries:
                    attempt += 1
                    await asyncio.sleep(RETRY_PAUSE * attempt)
                    continue
                raise self._unreachable(exc) from exc
            except httpx.TimeoutException as exc:
                raise HubUnavailable(
                    f"The hub at {self.hub_origin} did not answer in time"
                ) from exc
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from exc
            if response.status_code in UNAVAILABLE_STATUSES:
                if attempt < retries:
                    attempt += 1
                    await asyncio.sleep(RETRY_PAUSE * attempt)
                    continue
                raise HubUnavailable(
                    f"The hub at {self.hub_origin} answered {response.status_code}"
                )
            return response

    async def _api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        retries = READ_RETRIES if method == "GET" else 0
        return await self._request(method, self.api_url + path, retries=retries, **kwargs)

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            body = response.json()
            return str(body.get("message") or body)
        except ValueError:
            return response.text[:300] or response.reason_phrase

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        message = self._message(response)
        if status == 404:
            raise NotFound(f"{what}: not found on the hub", code="not_found")
        if status == 400:
            raise BadRequest(f"{what}: {message}", code="hub_rejected")
        if status == 409:
            raise Conflict(f"{what}: {message}")
        if status == 429:
            retry_after = response.headers.get("Retry-After", "")
            raise HubBusy(
                f"{what}: the hub is busy: {message}",
                # passed on only when it is what the standard allows here: delay-seconds
                headers={"Retry-After": retry_after} if retry_after.isdigit() else None,
            )
        error = HubError(f"{what}: the hub answered {status}: {message}")
        error.hub_message = message or None
        raise error

    # --- hub -----------------------------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        """`GET /hub/api/` — the hub's version; also the cheapest reachability check."""
        response = await self._api("GET", "/")
        self._raise_for(response, "hub info")
        return dict(response.json())

    async def identify(self, token: str) -> HubIdentity:
        """Who holds `token`? 401/403 from the hub → NotFound-free `None` is not used: raise."""
        response = await self._request(
            "GET",
            self.api_url + "/user",
            retries=READ_RETRIES,
            headers={"Authorization": f"token {token}"},
        )
        if response.status_code in (401, 403):
            from hubkeeper.errors import Unauthenticated

            raise Unauthenticated("The hub does not accept this token", code="invalid_token")
        self._raise_for(response, "identify token")
        return HubIdentity.model_validate(response.json())

    async def own_scopes(self) -> list[str]:
        """The scopes Hubkeeper's own token holds (`GET /hub/api/user` with it: a service's
        model lists its expanded scopes, jupyterhub/apihandlers/users.py SelfAPIHandler).
        Raises HubUnavailable, HubError."""
        response = await self._api("GET", "/user")
        self._raise_for(response, "read Hubkeeper's own scopes")
        scopes = response.json().get("scopes")
        return [str(scope) for scope in scopes] if isinstance(scopes, list) else []

    async def issue_server_token(self, user: str, server: str) -> tuple[str, float]:
        """A token owned by `user` opening only that server, from the hub plugin
        (`POST /hub/api/hubkeeper/server-tokens`, hubkeeper/hub_plugin.py); returns (token,
        seconds it lives, from its `expires_at`). Raises HubError 403 `hub_forbidden` (the
        role lacks `custom:hubkeeper:server-tokens`), NotFound (`user_not_found`: the hub has
        no such user or server), HubUnavailable."""
        response = await self._api(
            "POST", "/hubkeeper/server-tokens", json={"user": user, "server": server}
        )
        if response.status_code == 404:
            raise NotFound(
                f"The hub has no server {server!r} of user {user!r}: {self._message(response)}",
                code="user_not_found",
            )
        if response.status_code == 403:
            raise HubError(
                f"The hub refused a server token for {user!r}: Hubkeeper's role needs "
                f"`custom:hubkeeper:server-tokens` ({self._message(response)})",
                code="hub_forbidden",
            )
        self._raise_for(response, f"issue a server token for {user!r}")
        body = response.json()
        return str(body["token"]), _lives(body.get("expires_at"))

    async def issue_server_tokens(
        self, servers: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, float]]:
        """Tokens for many servers in one request (the hub plugin's list form, at most 200):
        {(user, server): (token, seconds it lives)} for those the hub minted; a server the
        hub does not have is left out. Raises HubError 403 `hub_forbidden`, HubUnavailable."""
        response = await self._api(
            "POST",
            "/hubkeeper/server-tokens",
            json={"servers": [{"user": u, "server": s} for u, s in servers]},
        )
        if response.status_code == 403:
            raise HubError(
                "The hub refused server tokens: Hubkeeper's role needs "
                f"`custom:hubkeeper:server-tokens` ({self._message(response)})",
                code="hub_forbidden",
            )
        self._raise_for(response, f"issue {len(servers)} server tokens")
        minted: dict[tuple[str, str], tuple[str, float]] = {}
        for item in response.json().get("tokens") or []:
            if isinstance(item, dict) and item.get("token"):
                key = (str(item["user"]), str(item["server"]))
                minted[key] = (str(item["token"]), _lives(item.get("expires_at")))
        return minted

    async def issue_token(
        self, user: str, *, scopes: list[str], expires_in: int, note: str
    ) -> tuple[str, int]:
        """A new API token for `user` with only `scopes`, expiring after `expires_in` seconds;
        returns (token, seconds it lives).

        `POST /users/{user}/tokens` (jupyterhub/apihandlers/users.py UserTokenListAPIHandler):
        the caller needs the `tokens` scope on that user (403 otherwise); the scopes must be
        ones the user holds (400 "Not assigning requested scopes ..."); a hub with
        `token_expires_in_max_seconds` refuses a longer life (400 "must not exceed N"), and
        then the token is asked again with N. Raises HubError (403/400), NotFound
        (user_not_found), HubUnavailable.
        """
        body: dict[str, Any] = {"scopes": scopes, "expires_in": expires_in, "note": note}
        response = await self._api("POST", f"/users/{q(user)}/tokens", json=body)
        if response.status_code == 400:
            capped = re.search(r"must not exceed (\d+)", self._message(response))
            if capped and int(capped.group(1)) > 0:
                body["expires_in"] = int(capped.group(1))
                response = await self._api("POST", f"/users/{q(user)}/tokens", json=body)
        if response.status_code == 404:
            raise NotFound(f"The hub has no user named {user!r}", code="user_not_found")
        if response.status_code == 403:
            raise HubError(
                f"The hub refused to issue a token for {user!r}: Hubkeeper's service token "
                "needs the `tokens` scope (see README, registering Hubkeeper)",
                code="hub_forbidden",
            )
        if response.status_code == 400:
            raise HubError(
                f"The hub refused a token for {user!r} with scopes {scopes}: "
                f"{self._message(response)}",
                code="hub_rejected",
            )
        self._raise_for(response, f"issue a token for {user!r}")
        return str(response.json()["token"]), int(body["expires_in"])

    # --- users ---------------------------------------------------------------------------
    async def iter_user_pages(
        self,
        *,
        state: str | None = None,
        name_filter: str | None = None,
        sort: str | None = None,
        include_stopped_servers: bool = True,
        page_size: int = 200,
        pause: float = 0.0,
        pace: HubPace | None = None,
    ) -> AsyncIterator[tuple[UserPage, int]]:
        """Yield (users, total) page by page, following `_pagination.next` to the end;
        `pause` s between pages at least, each page in its turn of `pace` (background work)."""
        params: dict[str, Any] = {"offset": 0, "limit": page_size}
        if state:
            params["state"] = state
        if name_filter:
            params["name_filter"] = name_filter
        if sort:
            params["sort"] = sort
        if include_stopped_servers:
            params["include_stopped_servers"] = "1"
        first = True
        while True:
            if not first and pause:
                await asyncio.sleep(pause)
            first = False
            sent = time.monotonic()
            async with paced(pace):
                response = await self._api(
                    "GET", "/users", params=params, headers={"Accept": PAGINATION_ACCEPT}
                )
            self._raise_for(response, "list users")
            body = response.json()
            if isinstance(body, list):  # a hub too old for pagination: one bare page
                yield UserPage.of([HubUser.from_api(u) for u in body], sent), len(body)
                return
            pagination = body.get("_pagination") or {}
            yield (
                UserPage.of([HubUser.from_api(u) for u in body.get("items", [])], sent),
                int(pagination.get("total") or 0),
            )
            next_page = pagination.get("next")
            if not next_page:
                return
            params["offset"] = next_page.get("offset", params["offset"] + page_size)
            params["limit"] = next_page.get("limit", page_size)

    async def list_users(self, **kwargs: Any) -> list[HubUser]:
        users: list[HubUser] = []
        async for page, _total in self.iter_user_pages(**kwargs):
            users.extend(page)
        return users

    async def user_page(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        sort: str | None = None,
        state: str | None = None,
        name_filter: str | None = None,
    ) -> tuple[UserPage, int]:
        """One page as the hub cuts it, with the hub's total."""
        params: dict[str, Any] = {
            "offset": offset,
            "limit": limit,
            "include_stopped_servers": "1",
        }
        if sort:
            params["sort"] = sort
        if state:
            params["state"] = state
        if name_filter:
            params["name_filter"] = name_filter
        sent = time.monotonic()
        response = await self._api(
            "GET", "/users", params=params, headers={"Accept": PAGINATION_ACCEPT}
        )
        self._raise_for(response, "list users")
        body = response.json()
        return (
            UserPage.of([HubUser.from_api(u) for u in body.get("items", [])], sent),
            int((body.get("_pagination") or {}).get("total") or 0),
        )

    async def get_user(self, name: str) -> HubUser:
        response = await self._api(
            "GET", f"/users/{q(name)}", params={"include_stopped_servers": "1"}
        )
        if response.status_code == 404:
            raise NotFound(f"The hub has no user named {name!r}", code="user_not_found")
        self._raise_for(response, f"read user {name!r}")
        return HubUser.from_api(response.json())

    async def create_users(self, names: list[str], *, admin: bool = False) -> list[HubUser]:
        response = await self._api("POST", "/users", json={"usernames": names, "admin": admin})
        self._raise_for(response, "create users")
        return [HubUser.from_api(u) for u in response.json()]

    async def delete_user(self, name: str) -> None:
        response = await self._api("DELETE", f"/users/{q(name)}")
        self._raise_for(response, f"delete user {name!r}")

    # --- groups --------------------------------------------------------------------------
    async def list_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = []
        params: dict[str, Any] = {"offset": 0, "limit": 200}
        while True:
            response = await self._api(
                "GET", "/groups", params=params, headers={"Accept": PAGINATION_ACCEPT}
            )
            self._raise_for(response, "list groups")
            body = response.json()
            if isinstance(body, list):
                return body
            groups.extend(body.get("items", []))
            next_page = (body.get("_pagination") or {}).get("next")
            if not next_page:
                return groups
            params["offset"] = next_page["offset"]

    async def get_group(self, name: str) -> dict[str, Any]:
        response = await self._api("GET", f"/groups/{q(name)}")
        if response.status_code == 404:
            raise NotFound(f"The hub has no group named {name!r}", code="group_not_found")
        self._raise_for(response, f"read group {name!r}")
        return dict(response.json())

    async def add_group_users(self, group: str, users: list[str]) -> None:
        response = await self._api("POST", f"/groups/{q(group)}", json={})
        if response.status_code not in (201, 409):
            self._raise_for(response, f"create group {group!r}")
        response = await self._api("POST", f"/groups/{q(group)}/users", json={"users": users})
        self._raise_for(response, f"add users to group {group!r}")

    # --- servers -------------------------------------------------------------------------
    async def start_server(
        self, user: str, server: str = "", options: dict[str, Any] | None = None
    ) -> str:
        """Ask the hub to start a server: "running" (201) or "starting" (202).

        Raises NotFound (no such user), Conflict `already_running`, HubBusy (429 `hub_busy`,
        with the hub's Retry-After), HubUnavailable, HubError."""
        what = f"start server {server!r} of {user!r}" if server else f"start the server of {user!r}"
        response = await self._api(
            "POST", server_path(user, server), json=options or {}, timeout=self._action_timeout
        )
        if response.status_code == 404:
            raise NotFound(f"The hub has no user named {user!r}", code="user_not_found")
        if response.status_code == 400:
            message = self._message(response)
            if "already running" in message or "pending" in message:
                raise Conflict(f"{what}: {message}", code="already_running")
            raise BadRequest(f"{what}: {message}", code="hub_rejected")
        self._raise_for(response, what)
        return "running" if response.status_code == 201 else "starting"

    async def stop_server(self, user: str, server: str = "", *, remove: bool = False) -> str:
        """Ask the hub to stop a server: "stopped" (204) or "stopping" (202)."""
        what = f"stop server {server!r} of {user!r}" if server else f"stop the server of {user!r}"
        kwargs: dict[str, Any] = {"json": {"remove": True}} if remove else {}
        response = await self._api(
            "DELETE", server_path(user, server), timeout=self._action_timeout, **kwargs
        )
        if response.status_code == 404:
            message = self._message(response)
            if "no such server" in message.lower() or server:
                raise NotFound(f"{what}: no such server", code="server_not_found")
            raise NotFound(f"The hub has no user named {user!r}", code="user_not_found")
        if response.status_code == 400:
            message = self._message(response)
            if "not running" in message:
                raise Conflict(f"{what}: it is not running", code="already_stopped")
            raise BadRequest(f"{what}: {message}", code="hub_rejected")
        self._raise_for(response, what)
        return "stopped" if response.status_code == 204 else "stopping"

    async def progress(self, user: str, server: str = "") -> AsyncIterator[ProgressEvent]:
        """The hub's spawn-progress stream, event by event, until ready or failed."""
        url = self.api_url + server_path(user, server) + "/progress"
        try:
            async with self._http.stream(
                "GET",
                url,
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(None, connect=5.0),
            ) as response:
                if response.status_code == 404:
                    raise NotFound(f"No such server for {user!r}", code="server_not_found")
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for(response, "spawn progress")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    try:
                        event = ProgressEvent.model_validate(json.loads(line[5:].strip()))
                    except ValueError:
                        continue
                    yield event
                    if event.ready or event.failed:
                        return
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc


def _lives(expires_at: object) -> float:
    """Seconds until an `expires_at` the hub gave (ISO 8601); 600 when it gave none."""
    when = parse_iso(expires_at)
    return 600.0 if when is None else max(0.0, (when - datetime.now(UTC)).total_seconds())
