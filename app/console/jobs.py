"""Long actions that outlive a request: "stop every running server" as a job with progress.

Jobs live in memory (a restart forgets them; the audit trail keeps what they did). Finished
jobs are kept for an hour so a client can still read the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hubkeeper.audit.service import audit
from hubkeeper.console.service import stop_recorded
from hubkeeper.errors import Conflict, HubkeeperError, NotFound
from hubkeeper.kit.actors import Actor, target_of
from hubkeeper.kit.clock import utcnow

if TYPE_CHECKING:
    from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)

KEEP_FINISHED = 3600.0  # s
STOP_CONCURRENCY = 8
STOP_WAIT = 60.0  # s to wait for a 202 stop to finish before calling it failed
STOP_POLL = 0.5
SHUT_DOWN = "Hubkeeper shut down before it could stop this server"


@dataclass
class Job:
    id: str
    kind: str
    actor: str
    reason: str = ""
    state: str = "running"  # running | done
    total: int = 0
    done: int = 0  # handled so far, failures included
    stopped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    _finished_mono: float | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "failed": list(self.failed),
        }


class JobRegistry:
    """The jobs of one Hubkeeper; `hk.jobs`."""

    def __init__(
        self,
        *,
        stop_concurrency: int = STOP_CONCURRENCY,
        stop_wait: float = STOP_WAIT,
        keep_finished: float = KEEP_FINISHED,
    ) -> None:
        self._jobs: dict[str, Job] = {}
        # Servers a job (from its snapshot on, queued ones included) or the lockdown
        # enforcement is stopping: whoever comes second leaves them alone instead of
        # stopping (and auditing) them twice.
        self.stopping: set[tuple[str, str]] = set()
        self._closing = False  # shutting down: no new stops
        self.stop_concurrency = stop_concurrency
        self.stop_wait = stop_wait
        self.keep_finished = keep_finished

    def get(self, job_id: str) -> Job | None:
        self._prune()
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        self._prune()
        return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def _prune(self) -> None:
        now = time.monotonic()
        for job_id, job in list(self._jobs.items()):
            if job._finished_mono is not None and now - job._finished_mono > self.keep_finished:
                del self._jobs[job_id]

    def _new_id(self) -> str:
        while True:
            job_id = secrets.token_urlsafe(6)
            if job_id not in self._jobs:
                return job_id

    async def start_stop_all(self, hk: HubkeeperState, who: Actor, reason: str) -> Job:
        """Snapshot the running and starting servers (fresh from the hub) and stop them all."""
        try:
            await hk.directory.refresh_active()
        except HubkeeperError as exc:
            await audit(
                hk,
                who,
                "servers.stop_all",
                "*",
                outcome="failed",
                detail=f"reason: {reason}",
                error=exc.detail,
            )
            raise
        rows, _ = hk.directory.query_rows(status="active", limit=10**9)
        targets = [(r.user, r.server) for r in rows if r.status in ("running", "starting")]
        job = Job(id=self._new_id(), kind="stop_all", actor=who.name, reason=reason)
        job.total = len(targets)
        self.stopping.update(targets)
        self._prune()
        self._jobs[job.id] = job
        job.task = asyncio.create_task(
            self._stop_all(hk, who, job, targets), name=f"hubkeeper-job-{job.id}"
        )
        return job

    async def _stop_all(
        self, hk: HubkeeperState, who: Actor, job: Job, targets: list[tuple[str, str]]
    ) -> None:
        limit = asyncio.Semaphore(self.stop_concurrency)

        async def one(user: str, server: str) -> None:
            try:
                async with limit:
                    if self._closing:
                        job.failed.append({"user": user, "server": server, "error": SHUT_DOWN})
                        job.done += 1
                        return
                    error = await self._stop_one(hk, who, job, user, server)
            finally:
                self.stopping.discard((user, server))
            if error:
                job.failed.append({"user": user, "server": server, "error": error})
            else:
                job.stopped += 1
            job.done += 1

        try:
            await asyncio.gather(*(one(u, s) for u, s in targets))
        finally:
            job.state = "done"
            job.finished_at = utcnow()
            job._finished_mono = time.monotonic()
            detail = (
                f"reason: {job.reason}; stopped {job.stopped} of {job.total}; "
                f"failed {len(job.failed)}"
            )
            errors = "; ".join(
                f"{target_of(f['user'], f['server'])}: {f['error']}" for f in job.failed
            )
            await audit(
                hk,
                who,
                "servers.stop_all",
                "*",
                outcome="failed" if job.failed or job.done < job.total else "ok",
                detail=detail,
                error=errors[:4000],
            )

    async def _stop_one(
        self, hk: HubkeeperState, who: Actor, job: Job, user: str, server: str
    ) -> str:
        """Stop one server and wait for a pending stop; returns an error text or ""."""
        target = target_of(user, server)
        try:
            try:
                reason = "lockdown" if job.reason.startswith("lockdown:") else "admin"
                result = await stop_recorded(hk, who, user, server, reason=reason, bulk=True)
            except Conflict as exc:
                if exc.code != "already_stopped":
                    raise
                result = "stopped"  # stopped meanwhile: that is what we wanted
            except NotFound as exc:
                if exc.code != "server_not_found":
                    raise
                result = "stopped"
            if result != "stopped":
                await self._wait_stopped(hk, user, server)
        except HubkeeperError as exc:
            await audit(
                hk,
                who,
                "server.stop",
                target,
                outcome="failed",
                error=exc.detail,
                detail="stop-all",
            )
            return exc.detail
        except Exception as exc:  # one server's surprise must not end the job
            log.exception("stop-all: stopping %s failed", target)
            await audit(
                hk, who, "server.stop", target, outcome="failed", error=str(exc), detail="stop-all"
            )
            return f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(HubkeeperError):
                await hk.directory.refresh_user(user, bulk=True)
        await audit(hk, who, "server.stop", target, detail="stop-all")
        return ""

    async def _wait_stopped(self, hk: HubkeeperState, user: str, server: str) -> None:
        deadline = time.monotonic() + self.stop_wait
        while time.monotonic() < deadline:
            await asyncio.sleep(STOP_POLL)
            try:
                fresh = await hk.hub.bulk.get_user(user)
            except NotFound:
                return
            found = fresh.servers.get(server)
            if found is None or found.status == "stopped":
                return
        raise HubkeeperError(
            f"the hub did not finish stopping it within {self.stop_wait:.0f} s",
            code="stop_timeout",
            status_code=504,
        )

    async def shutdown(self, grace: float = 0.0) -> None:
        """At app shutdown: start no more stops (the rest of a job is counted failed, so the
        job ends and is audited), give the stops under way `grace` s to finish, then cancel."""
        self._closing = True
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
