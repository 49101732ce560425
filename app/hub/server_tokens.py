"""Tokens that open one user's server, and which way Hubkeeper gets them.

A user's server runs code its user controls, so whatever credential reaches it can be read by
that user: it gets a token owned by that user holding only
`access:servers!server=<user>/<server>`, never Hubkeeper's own token. Two ways to get one:

- **plugin** (the hub runs `hubkeeper.hub_plugin`, and Hubkeeper's role holds
  `custom:hubkeeper:server-tokens`): `POST <hub>/hub/api/hubkeeper/server-tokens`. The
  endpoint can mint nothing else, so Hubkeeper's token is not hub admin.
- **tokens** (the fallback): `POST /hub/api/users/<user>/tokens`, which needs the `tokens`
  scope. The hub checks a new token's scopes against its *owner's*
  (jupyterhub/apihandlers/users.py `UserTokenListAPIHandler.post`), so a holder of `tokens`
  can mint an admin's token with every scope the admin has: hub admin in disguise. Health
  and the pages say so.

Which one is read from Hubkeeper's own scopes (`GET /hub/api/user` with its token), at most
every `SCOPES_TTL` seconds. Tokens live an hour and are reused until `TOKEN_MARGIN` seconds
before they expire, and minted only when a server is actually read: the hub's cost is about
one request per server read per hour.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from hubkeeper.errors import HubkeeperError
from hubkeeper.hub.client import HubClient
from hubkeeper.hub.saved_tokens import Saved, SavedTokens
from hubkeeper.kit.clock import utcnow

log = logging.getLogger(__name__)

PLUGIN_SCOPE = "custom:hubkeeper:server-tokens"
TOKEN_SECONDS = 3600  # life asked of a per-server token (the plugin gives at most this)
TOKEN_MARGIN = 300.0  # stop using a cached token this long (s) before it expires
# Servers per bulk mint. The hub mints a batch in one go on its single thread (4-9 ms a
# token measured, bench/hub_load.py: it expands the owner's scopes and commits per token), so
# a batch holds every other user's request for as long: small batches keep that wait short.
BATCH = 5
# Each batch waits for its turn of the hub's time that all background requests share
# (hub/pace.py, about 3 %), and for BATCH_PAUSE s at least. A user's call then rarely meets a
# mint: at 20 % a 5,000-server start tripled users' p95 for minutes (bench/hub_load.py). The
# price is time: 5,000 tokens take about half an hour. Nothing waits for all of them: a pass
# reads each server as soon as its own batch is in (`ready`), the resource sampler reads the
# servers that have a token and mints the rest in the background, and tokens are renewed
# while the old one still works (TOKEN_MARGIN). Mints go ahead of sweep and walk pages in the
# pace only if the next batch waits when a gap ends: BATCH_PAUSE must stay shorter than the
# gap a batch earns (a batch the hub answered in ~6 ms earns 0.2 s; medians measured 16-51 ms).
BATCH_PAUSE = 0.2
USABLE_FOR = 30.0  # s: a cached token with less life than this is not handed out
# A server's first bulk-minted token is renewed after a random share (RENEW_SPREAD to 1) of
# its life before TOKEN_MARGIN, later ones TOKEN_MARGIN s before they expire: the tokens of a
# start, minted within minutes, are then renewed spread over the hour (at 5,000 servers about
# 18 mint requests a minute, ~0.5 s of the hub's time) and not all again an hour later, which
# would hold a few per cent of the hub's time for minutes every hour (bench/hub_load.py).
# The price: in the first hour some tokens are renewed early (about 1.4 mints per server).
RENEW_SPREAD = 0.25
BATCH_RETRIES = 2  # a bulk mint the hub refused is tried again this many times,
RETRY_PAUSE = 10.0  # this many seconds apart, before its servers mint one by one
SCOPES_TTL = 300.0  # seconds Hubkeeper's own scopes are reused before asking the hub again
# Scopes that make Hubkeeper's token more than it needs, with why (shown in health and pages).
TOO_POWERFUL = {
    "tokens": (
        "Hubkeeper's token holds `tokens`: it can mint any user's token with all their "
        "scopes, an admin's included, so it is equivalent to hub admin. Install the hub "
        "plugin (`hubkeeper hub-plugin`) and give the role `custom:hubkeeper:server-tokens` "
        "instead."
    ),
    "admin:users": (
        "Hubkeeper's token holds `admin:users`: it can make anyone an admin. Deleting users "
        "(the culler's cull_users) needs only `delete:users`."
    ),
    "admin:servers": (
        "Hubkeeper's token holds `admin:servers`, more than it uses: "
        "`read:servers, start:servers, delete:servers` are enough."
    ),
}


class TokenMode(StrEnum):
    PLUGIN = "plugin"  # the hub plugin's endpoint: one-server tokens only
    TOKENS = "tokens"  # the `tokens` scope: works, but is hub admin in disguise
    NONE = "none"  # neither: users' servers cannot be read


@dataclass
class Credentials:
    """What Hubkeeper's token may do, as the hub said at `checked_at` (time.monotonic())."""

    scopes: frozenset[str]
    checked_at: float
    mode: TokenMode = field(init=False)
    warnings: list[str] = field(init=False)

    def __post_init__(self) -> None:
        bases = {scope.split("!", 1)[0] for scope in self.scopes}
        if PLUGIN_SCOPE in bases:
            self.mode = TokenMode.PLUGIN
        elif "tokens" in bases:
            self.mode = TokenMode.TOKENS
        else:
            self.mode = TokenMode.NONE
        self.warnings = [why for scope, why in TOO_POWERFUL.items() if scope in self.scopes]
        if self.mode is TokenMode.NONE:
            self.warnings.append(
                "Hubkeeper cannot read users' servers (logs, kernels): its role holds neither "
                f"`{PLUGIN_SCOPE}` (with the hub plugin) nor `tokens`."
            )

    def report(self) -> dict[str, object]:
        return {"mode": str(self.mode), "warnings": list(self.warnings)}


class ServerTokens:
    """Per-server tokens for the server gateway, cached; one per app (`hk.servers.tokens`).

    `token()` raises HubError (403 `hub_forbidden`: the hub refused; 503 `hub_unavailable`),
    NotFound (`user_not_found`, `server_not_found`).
    """

    def __init__(self, hub: HubClient, *, lifetime: int = TOKEN_SECONDS) -> None:
        self.hub = hub
        self.lifetime = lifetime
        self.known: Credentials | None = None  # the last answer; None until asked
        self._scopes_lock = asyncio.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # → (token, expires)
        self._renew_at: dict[tuple[str, str], float] = {}  # when a bulk mint renews it
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.minted = 0  # tokens asked of the hub (benchmarks, tests)
        # the bulk mint (`start_prefetch`): each queued server → done when its batch is in
        self._pending: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self._queue: list[tuple[str, str]] = []  # not sent yet, in order
        self._in_flight: list[tuple[str, str]] = []  # the batch being minted
        self._worker: asyncio.Task[None] | None = None
        # kept in the database (`keep_in`), so a restart or a new leader reuses them
        self.saved: SavedTokens | None = None
        self._saving: set[asyncio.Task[None]] = set()
        self._saving_lock = asyncio.Lock()

    async def credentials(self, *, fresh: bool = False) -> Credentials:
        """Hubkeeper's own scopes and what follows from them; asks the hub at most every
        SCOPES_TTL seconds unless `fresh`. Raises HubUnavailable / HubError."""
        known = self.known
        if not fresh and known and time.monotonic() - known.checked_at < SCOPES_TTL:
            return known
        async with self._scopes_lock:
            known = self.known
            if not fresh and known and time.monotonic() - known.checked_at < SCOPES_TTL:
                return known
            scopes = await self.hub.own_scopes()
            previous = self.known.mode if self.known else None
            self.known = Credentials(frozenset(scopes), time.monotonic())
            if self.known.mode != previous:
                log.info("server tokens come from: %s", self.known.mode)
                for warning in self.known.warnings:
                    log.warning("%s", warning)
            return self.known

    async def report(self) -> dict[str, object]:
        """For health: `{"mode": "plugin"|"tokens"|"none"|null, "warnings": [...]}`; mode is
        null when the hub could not be asked."""
        try:
            return (await self.credentials()).report()
        except HubkeeperError as exc:
            return {"mode": None, "warnings": [], "detail": exc.detail}

    def forget(self, user: str, server: str) -> None:
        """The server refused this token (restarted, or the token was revoked): mint anew."""
        self._tokens.pop((user, server), None)
        self._renew_at.pop((user, server), None)
        if self.saved is not None:
            self._in_background(self.saved.forget, [(user, server)], expired_before=utcnow())

    # --- kept in the database ------------------------------------------------------------
    async def keep_in(self, saved: SavedTokens) -> int:
        """Keep the tokens minted from now on in `saved`, and take those it has (`load_saved`).
        Returns how many were taken."""
        self.saved = saved
        return await self.load_saved()

    async def load_saved(self) -> int:
        """Take the saved tokens that last more than TOKEN_MARGIN s and that this replica
        does not hold a longer-lasting one for (at start, and when it comes to lead the
        loops that mint: another replica may have minted since). Returns how many."""
        if self.saved is None:
            return 0
        rows = await asyncio.to_thread(self.saved.load, utcnow(), lasting=TOKEN_MARGIN)
        mono, wall = time.monotonic(), utcnow()
        taken = 0
        for row in rows:
            key = (row.user, row.server)
            expires = mono + (row.expires_at - wall).total_seconds()
            held = self._tokens.get(key)
            if held is not None and held[1] >= expires:
                continue
            self._tokens[key] = (row.token, expires)
            self._renew_at[key] = mono + (row.renew_at - wall).total_seconds()
            taken += 1
        if taken:
            log.info("took %d saved server tokens", taken)
        return taken

    def _save(self, keys: Iterable[tuple[str, str]]) -> None:
        """Keep these servers' tokens (in the background: a mint never waits for the
        database, and a database that is down costs only the saving)."""
        if self.saved is None:
            return
        mono, wall = time.monotonic(), utcnow()
        rows = []
        for key in keys:
            token, expires = self._tokens[key]
            renew = self._renew_at.get(key, expires - TOKEN_MARGIN)
            rows.append(
                Saved(
                    *key,
                    token,
                    wall + timedelta(seconds=expires - mono),
                    wall + timedelta(seconds=renew - mono),
                )
            )
        self._in_background(self.saved.save, rows)

    def _in_background(self, work: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        async def in_turn() -> None:
            # one at a time, in the order asked (the lock is FIFO): a token forgotten just
            # after it was saved must not be saved again by a write that ran late
            async with self._saving_lock:
                await asyncio.to_thread(work, *args, **kwargs)

        task = asyncio.get_running_loop().create_task(in_turn(), name="server tokens saved")
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def saved_all(self) -> None:
        """Wait for the saving under way (tests; shutdown)."""
        while self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)

    async def token(self, user: str, server: str) -> str:
        """A token opening only `user`'s `server`; cached until TOKEN_MARGIN s before it
        expires. While a bulk mint (`start_prefetch`) has this server queued, a cached token
        that still works is used; else one is minted now (someone reading a log does not
        wait minutes for the batch, which then leaves this server out). Passes over many
        servers wait for the batch instead (`ready`)."""
        key = (user, server)
        if (still := self._usable(key)) is not None and key in self._pending:
            return still
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached and cached[1] - time.monotonic() > TOKEN_MARGIN:
                return cached[0]
            mode = (await self.credentials()).mode
            if mode is TokenMode.PLUGIN:
                token, lives = await self._from_plugin(user, server)
            else:  # TOKENS, or NONE: the hub's refusal then names the scope to add
                token, lives = await self.hub.issue_token(
                    user,
                    scopes=[f"access:servers!server={user}/{server}"],
                    expires_in=self.lifetime,
                    # Tokens whose note starts "Server at " are not counted as their owner's
                    # activity when used (jupyterhub/handlers/base.py get_current_user_token).
                    note=f"Server at {user}/{server}: Hubkeeper reading it (logs, kernels, status)",
                )
            self.minted += 1
            now = time.monotonic()
            self._tokens[key] = (token, now + lives)
            self._renew_at[key] = now + lives - TOKEN_MARGIN
            self._save([key])
            self._forget_expired(now)
            return token

    def _usable(self, key: tuple[str, str]) -> str | None:
        cached = self._tokens.get(key)
        if cached and cached[1] - time.monotonic() > USABLE_FOR:
            return cached[0]
        return None

    def usable(self, key: tuple[str, str]) -> bool:
        """Whether a cached token for this server works for USABLE_FOR s more (a renewal may
        be due, TOKEN_MARGIN, but the old token can still be used meanwhile)."""
        return self._usable(key) is not None

    async def ready(self, key: tuple[str, str]) -> None:
        """Wait until this server's token can be used: at once when one is cached, else until
        a bulk mint that has it queued has done its batch (or given up). Never raises."""
        pending = self._pending.get(key)
        if pending is not None and self._usable(key) is None:
            await asyncio.shield(pending)

    def missing(self, servers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The servers (once each) whose token is not cached or is due for renewal (see
        RENEW_SPREAD; at the latest TOKEN_MARGIN s before it expires): what `prefetch` would
        mint."""
        now = time.monotonic()
        return [
            key
            for key in dict.fromkeys(servers)
            if key not in self._tokens
            or now >= self._renew_at.get(key, self._tokens[key][1] - TOKEN_MARGIN)
        ]

    async def prefetch(self, servers: list[tuple[str, str]]) -> int:
        """Mint the tokens these servers lack (`start_prefetch`) and wait for all of them.
        Returns how many of them were minted."""
        task = self.start_prefetch(servers)
        return 0 if task is None else await task

    def start_prefetch(self, servers: list[tuple[str, str]]) -> asyncio.Task[int] | None:
        """Queue, for the one paced bulk mint (`_work`: requests of up to BATCH, each in its
        turn of `hub.pace`), the servers here whose token is missing or due and not queued
        yet: one hub request per BATCH servers, not one per server, and never more than a few
        per cent of the hub's time (at 5,000 servers about half an hour). Each is queued
        before this returns, so `ready(key)` and `queued(key)` see it at once. Only with the
        hub plugin (else tokens come one by one when used). Returns a task that ends when
        these servers' batches are in (how many were minted; it never raises; cancelling it
        stops nothing but the wait), or None when none was queued."""
        if self.known is not None and self.known.mode is not TokenMode.PLUGIN:
            return None
        missing = [key for key in self.missing(servers) if key not in self._pending]
        if not missing:
            return None
        loop = asyncio.get_running_loop()
        queued = [loop.create_future() for _ in missing]
        self._pending.update(zip(missing, queued, strict=True))
        self._queue.extend(missing)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="server-token mints")
            self._worker.add_done_callback(self._worker_ended)
        return asyncio.create_task(_count_minted(queued))

    def drop_queue(self) -> int:
        """Stop the bulk mint and forget what it had queued; returns how many servers were
        still waiting. For a replica that stops leading the loops that queue (the kernel
        culler and the resource sampler, under one lock): the new leader mints its own, and
        this one would otherwise go on minting the same servers, up to half an hour at 5,000,
        doubling that load on the hub. Whoever waits for a dropped server mints it when it
        reads it, one by one, as without the plugin."""
        left = len(self._queue) + len(self._in_flight)
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()  # `_worker_ended` lets every waiter go
            if left:
                log.info("stopped minting %d server tokens: no longer leading", left)
        return left

    def queued(self, key: tuple[str, str]) -> bool:
        """Whether this server waits for the bulk mint."""
        return key in self._pending

    async def _work(self) -> None:
        """Mint the queue, a batch at a time, paced; a batch that fails is tried again
        (BATCH_RETRIES, RETRY_PAUSE s apart) before the queue is given up (its waiters then
        mint one by one, as without the plugin)."""
        try:
            if (await self.credentials()).mode is not TokenMode.PLUGIN:
                return
        except HubkeeperError:
            return
        failures = 0
        while self._queue:
            self._in_flight = self._queue[:BATCH]
            del self._queue[:BATCH]
            batch = self.missing(self._in_flight)  # those minted one by one meanwhile: out
            try:
                if batch:
                    async with self.hub.pace.turn(first=True):
                        got = await self.hub.issue_server_tokens(batch)
                else:
                    got = {}
            except HubkeeperError as exc:
                failures += 1
                if failures > BATCH_RETRIES:
                    log.info("could not mint server tokens in bulk: %s", exc.detail)
                    return
                self._queue[:0] = self._in_flight  # the same batch again, after a pause
                await asyncio.sleep(RETRY_PAUSE)
                continue
            failures = 0
            now = time.monotonic()
            for key, (token, lives) in got.items():
                renewal = lives - TOKEN_MARGIN
                if key not in self._tokens:  # its first: spread the renewals (see above)
                    renewal *= random.uniform(RENEW_SPREAD, 1.0)
                self._tokens[key] = (token, now + lives)
                self._renew_at[key] = now + renewal
            self.minted += len(got)
            self._save(got)
            self._release(self._in_flight, minted=set(got))
            self._in_flight = []
            if batch and self._queue:
                await asyncio.sleep(BATCH_PAUSE)
        self._forget_expired(time.monotonic())
        if self.saved is not None:  # and those of servers no longer read, in the database
            self._in_background(self.saved.forget, [], expired_before=utcnow())

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        """Done, given up, failed or cancelled (even before it began): whoever still waits
        is let go, to mint on its own."""
        if not task.cancelled() and task.exception() is not None:
            log.error("server-token mints failed", exc_info=task.exception())
        left, self._queue, self._in_flight = [*self._in_flight, *self._queue], [], []
        self._release(left, minted=set())

    def _release(self, keys: list[tuple[str, str]], *, minted: set[tuple[str, str]]) -> None:
        for key in keys:
            future = self._pending.pop(key, None)
            if future is not None and not future.done():
                future.set_result(key in minted)

    def _forget_expired(self, now: float) -> None:
        """Tokens of servers no longer read (the hub purges them itself)."""
        for old in [k for k, (_t, until) in self._tokens.items() if until <= now]:
            del self._tokens[old]
            self._renew_at.pop(old, None)
            self._locks.pop(old, None)

    async def _from_plugin(self, user: str, server: str) -> tuple[str, float]:
        try:
            return await self.hub.issue_server_token(user, server)
        except HubkeeperError as exc:
            if exc.code == "hub_forbidden":  # the role changed: look again next time
                self.known = None
            raise


async def _count_minted(queued: list[asyncio.Future[bool]]) -> int:
    """How many of these servers' batches minted their token (shielded: a waiter cancelled
    leaves the futures to others)."""
    return sum([await asyncio.shield(future) for future in queued])
