"""The sampling loop: every running server's memory and CPU, every `interval` seconds.

One replica samples (a leader loop, `hubkeeper.main`); the others load what it saved. Each
pass:
- lists the running servers from the user directory (never a walk of the hub);
- mints the tokens it lacks in bulk (`ServerTokens.start_prefetch`: one hub request per 5
  servers, hub plugin, paced to a few per cent of the hub's time) in the background, and
  none when they are cached (1 h tokens): a pass costs the hub nothing but token renewals.
  A server waiting for its token is asked in a later pass (its last figures stand);
- asks each server's `api/metrics/v1` DIRECTLY at its proxy route's target (the server
  gateway, `no_track_activity=1`): never through the proxy, so never the user's activity;
  `CONCURRENCY` at once, `TIMEOUT` s each;
- a server without the endpoint (404), with an unusable answer or failing gets no figures
  ("n/a") and is asked again only after `NA_RETRY` s (or when it restarts), so servers
  without jupyter-resource-usage cost one request per 10 minutes, not one per pass;
- saves the figures (store.py) and shows them (board.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from hubkeeper.db.outage import summary
from hubkeeper.errors import Conflict, HubkeeperError
from hubkeeper.kit.clock import utcnow
from hubkeeper.loops.retry import retry_pause
from hubkeeper.resources import store
from hubkeeper.resources.board import Key, ResourceBoard
from hubkeeper.resources.figures import Figures, read_figures

log = logging.getLogger(__name__)

CONCURRENCY = 10  # servers asked at once
TIMEOUT = 5.0  # s a server has to answer (the route check, the token and the request)
MINT_WAIT = 10.0  # s a pass waits for tokens being minted before it reads the servers
NA_RETRY = 600.0  # s before a server without usable figures is asked again
FAILURES_BEFORE_PAUSE = 2  # failing passes in a row (not a 404) before NA_RETRY applies
FOLLOW_EVERY = 10.0  # s between loads of the table on the replicas that do not sample
PAUSE_AFTER_ERROR = 10.0  # s
NOT_READY_PAUSE = 1.0  # s between looks while the directory has not finished its first sweep


class Tokens(Protocol):
    """What the sampler needs of `ServerTokens` (app/hub/server_tokens.py)."""

    def missing(self, servers: list[tuple[str, str]]) -> list[tuple[str, str]]: ...

    def start_prefetch(self, servers: list[tuple[str, str]]) -> asyncio.Task[int] | None: ...

    def queued(self, key: tuple[str, str]) -> bool: ...

    def usable(self, key: tuple[str, str]) -> bool: ...


class MetricsGateway(Protocol):
    """What the sampler needs of the server gateway (`hk.servers`, app/hub/servers.py)."""

    @property
    def mode(self) -> str: ...  # must be "proxy_api": direct, never through the proxy

    @property
    def tokens(self) -> Tokens: ...

    async def resource_metrics(self, user: str, server: str) -> dict[str, Any] | None: ...


# (user, server, started) of each running server; None while the directory is not ready
RunningServers = Callable[[], list[tuple[str, str, datetime | None]] | None]


@dataclass
class _NotAvailable:
    started: datetime | None  # the server's start when it was found so: a restart asks again
    retry_at: float  # time.monotonic()
    failures: int = 0


@dataclass
class PassReport:
    """One pass: servers with figures, without (n/a: 404 or an unusable answer), failed,
    left alone (n/a, not yet due again), and what it took."""

    sampled: int = 0
    unavailable: int = 0
    failed: int = 0
    skipped: int = 0
    waiting_for_token: int = 0  # not asked: their token is being minted (ServerTokens)
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)


class ResourceSampler:
    """Samples every running server (`sample_once`), led by one replica (`lead`); the others
    `follow` the table. `gateway`: None or one that goes through the proxy → no sampling."""

    def __init__(
        self,
        *,
        gateway: MetricsGateway | None,
        engine: Engine,
        board: ResourceBoard,
        running: RunningServers,
        interval: float,
        concurrency: int = CONCURRENCY,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.engine = engine
        self.board = board
        self.running = running
        self.interval = interval
        self.concurrency = concurrency
        self.timeout = timeout
        self.clock = clock
        self._na: dict[Key, _NotAvailable] = {}
        self.passes = 0
        self.last: PassReport | None = None
        self._said_no_gateway = False

    @property
    def direct(self) -> bool:
        """Can servers be reached without the proxy (else nothing is sampled)?"""
        return self.gateway is not None and getattr(self.gateway, "mode", "") == "proxy_api"

    async def sample_once(self) -> PassReport | None:
        """One pass (see the module docstring); None when it could not run (the directory not
        ready yet, or no direct way to the servers). Never raises for a server's failure."""
        if not self.direct:
            if not self._said_no_gateway:
                log.info(
                    "resources: not sampled (servers are reached directly only with "
                    "HUBKEEPER_PROXY_API_URL; through the proxy it would be the users' activity)"
                )
                self._said_no_gateway = True
            return None
        gateway = self.gateway
        assert gateway is not None
        listed = self.running()
        if listed is None:
            return None
        started_at = self.clock()
        report = PassReport()
        now = self.clock()
        running = {(user, server): started for user, server, started in listed}
        # forget servers that stopped or restarted (a new start may have the extension now)
        for key in list(self._na):
            if key not in running or running[key] != self._na[key].started:
                del self._na[key]
        due = [k for k in running if k not in self._na or self._na[k].retry_at <= now]
        # Tokens are minted paced, in the background (about half an hour for 5,000 servers): this
        # pass reads the servers that have one, the next passes the others as they come.
        tokens = gateway.tokens
        if tokens.missing(due):  # queued behind any mint under way (never minted twice)
            minting = tokens.start_prefetch(due)
            if minting is not None and not minting.done():
                # a small hub's tokens are all in by then: its first pass shows every server
                await asyncio.wait({minting}, timeout=MINT_WAIT)
        waiting = {k for k in due if tokens.queued(k) and not tokens.usable(k)}
        targets = [k for k in due if k not in waiting]
        report.skipped = len(running) - len(due)
        report.waiting_for_token = len(waiting)
        limit = asyncio.Semaphore(self.concurrency)
        figures: dict[Key, Figures] = {}

        def note_failure(key: Key, exc: Exception) -> None:
            report.failed += 1
            why = (
                exc.detail if isinstance(exc, HubkeeperError) else (str(exc) or type(exc).__name__)
            )
            report.errors.append(f"{key[0]}/{key[1]}: {why}")
            self._unavailable(key, running[key], failed=True)

        async def one(key: Key) -> None:
            async with limit:
                try:
                    data = await asyncio.wait_for(
                        gateway.resource_metrics(*key), timeout=self.timeout
                    )
                except Conflict:  # stopped meanwhile: nothing to show, nothing to remember
                    return
                except HubkeeperError as exc:
                    if exc.code != "server_bad_answer":
                        note_failure(key, exc)
                        return
                    data = None  # not a JSON object: as unusable as any other garbage
                except Exception as exc:  # one user's server: its own n/a, never the pass's end
                    note_failure(key, exc)
                    return
            found = read_figures(data, utcnow()) if data is not None else None
            if found is None:
                report.unavailable += 1
                self._unavailable(key, running[key], failed=False)
                return
            self._na.pop(key, None)
            figures[key] = found

        await asyncio.gather(*(one(k) for k in targets))
        report.sampled = len(figures)
        kept = {  # not asked this time: what they last said still stands
            key: last for key in waiting if (last := self.board.get(*key)) is not None
        }
        self.board.replace({**kept, **figures})
        try:
            await asyncio.to_thread(store.save_pass, self.engine, figures, kept)
        except Exception as exc:  # the database down: shown here, saved next pass
            report.errors.append(f"database: {summary(exc)}")
            log.warning("resources: could not save the figures: %s", summary(exc))
        report.duration_s = self.clock() - started_at
        self.passes += 1
        self.last = report
        log.debug("resources: %s", report)
        return report

    def _unavailable(self, key: Key, started: datetime | None, *, failed: bool) -> None:
        known = self._na.get(key)
        failures = (known.failures + 1 if known else 1) if failed else 0
        wait = 0.0 if failed and failures < FAILURES_BEFORE_PAUSE else NA_RETRY
        self._na[key] = _NotAvailable(started, self.clock() + wait, failures)

    async def lead(self) -> None:
        """The sampling loop (while this replica leads it): a pass, then `interval` s."""
        while True:
            try:
                report = await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("resources: the sampling pass failed")
                await retry_pause(PAUSE_AFTER_ERROR)
                continue
            # the directory not ready yet: look again soon rather than a whole interval later
            not_ready = report is None and self.direct
            await asyncio.sleep(min(self.interval, NOT_READY_PAUSE) if not_ready else self.interval)

    async def follow(self) -> None:
        """While another replica samples: load its figures every FOLLOW_EVERY s."""
        while True:
            try:
                self.board.replace(await asyncio.to_thread(store.load, self.engine))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("resources: could not load the figures: %s", summary(exc))
            await asyncio.sleep(min(FOLLOW_EVERY, max(self.interval, 1.0)))
