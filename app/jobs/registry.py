"""Long actions that outlive a request: "stop every running server" as a job with progress.

Jobs live in the database (`hubkeeper.jobs.store`): the replica that starts a job runs it and
saves its progress with a heartbeat every `HEARTBEAT` seconds; any replica answers
`GET jobs/{id}`; a job whose replica died is finished by the first reader ("replica lost").
Finished jobs are kept for an hour so a client can still read the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from hubkeeper.actions.stop import ServerStopper, StopReason
from hubkeeper.errors import HubkeeperError
from hubkeeper.jobs import store
from hubkeeper.jobs.store import Job
from hubkeeper.kit.actors import Actor, target_of
from hubkeeper.kit.clock import utcnow
from hubkeeper.outbox.events import Event
from hubkeeper.outbox.record import Outbox

if TYPE_CHECKING:
    from hubkeeper.directory.store import UserDirectory

log = logging.getLogger(__name__)

KEEP_FINISHED = 3600.0  # s
STOP_CONCURRENCY = 8
STOP_WAIT = 60.0  # s to wait for a 202 stop to finish before calling it failed
HEARTBEAT = 1.0  # s between progress saves of a running job
LOST_AFTER = 30.0  # s without a heartbeat before a running job counts as lost
SHUT_DOWN = "Hubkeeper shut down before it could stop this server"

__all__ = ["Job", "JobRegistry"]


def done_event(job: Job) -> Event:
    """The `stop_all.done` notification of a finished stop-all job (keyed by the job's id)."""
    failed = len(job.failed)
    text = f"Stop-all by {job.actor} finished: stopped {job.stopped} of {job.total} server" + (
        "s" if job.total != 1 else ""
    )
    if failed:
        text += f", {failed} failed"
    if job.done < job.total:
        text += f", {job.total - job.done} not handled"
    return Event(
        "stop_all.done",
        key=f"stop_all.done:{job.id}",
        text=f"{text} (reason: {job.reason})",
        reason=job.reason,
    )


class JobRegistry:
    """Jobs shared through the database; `hk.jobs`.

    `stopper` and `directory` run the stop-all jobs (which servers run, stopping them); a
    registry built without them only reads jobs (`get`, `all`) and refuses to start one.
    `outbox`: where a finished stop-all's `stop_all.done` notification is recorded (once per
    job). Times in seconds."""

    def __init__(
        self,
        engine: Engine,
        *,
        stopper: ServerStopper | None = None,
        directory: UserDirectory | None = None,
        outbox: Outbox | None = None,
        replica: str = "",
        stop_concurrency: int = STOP_CONCURRENCY,
        stop_wait: float = STOP_WAIT,
        keep_finished: float = KEEP_FINISHED,
        lost_after: float = LOST_AFTER,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.engine = engine
        self.stopper = stopper
        self.directory = directory
        self.outbox = outbox
        self.replica = replica
        self.stop_concurrency = stop_concurrency
        self.stop_wait = stop_wait
        self.keep_finished = keep_finished
        self.lost_after = lost_after
        self.heartbeat = heartbeat
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Servers a job of this replica (from its snapshot on, queued ones included) or the
        # lockdown enforcement is stopping: whoever comes second leaves them alone instead of
        # stopping (and auditing) them twice.
        self.stopping: set[tuple[str, str]] = set()
        self._closing = False  # shutting down: no new stops

    def get(self, job_id: str) -> Job | None:
        """The job from the database (any replica's); None if unknown. A quick primary-key
        read; a lost job is finished on the way (see `store.load`)."""
        if len(job_id) > 64:
            return None
        return store.load(self.engine, job_id, lost_after=self.lost_after)

    def all(self) -> list[Job]:
        return store.recent(self.engine)

    @staticmethod
    def _new_id() -> str:
        return secrets.token_urlsafe(9)

    def _runner(self) -> tuple[ServerStopper, UserDirectory]:
        if self.stopper is None or self.directory is None:
            raise RuntimeError("this JobRegistry reads jobs only: built without a stopper")
        return self.stopper, self.directory

    async def start_stop_all(
        self,
        who: Actor,
        reason: str,
        *,
        stop_reason: StopReason = StopReason.ADMIN,
    ) -> Job:
        """Snapshot the running and starting servers (fresh from the hub) and stop them all.

        `reason`: the person's words (audited, shown with the job); `stop_reason`: what the
        sessions record (`lockdown` when a lockdown stops every server).

        Raises DatabaseUnavailable (503) when a person's action cannot be audited, and what
        reading the hub's active servers raises (503 `hub_unavailable`, audited); RuntimeError
        on a registry built without a stopper."""
        stopper, directory = self._runner()
        await stopper.trail.require_recordable(who)
        try:
            await directory.refresh_active()
        except HubkeeperError as exc:
            await stopper.trail.write(
                who,
                "servers.stop_all",
                "*",
                outcome="failed",
                detail=f"reason: {reason}",
                error=exc.detail,
            )
            raise
        rows, _ = directory.query_rows(status="active", limit=10**9)
        targets = [(r.user, r.server) for r in rows if r.status in ("running", "starting")]
        job = Job(
            id=self._new_id(),
            kind="stop_all",
            actor=who.name,
            reason=reason,
            total=len(targets),
            targets=[[u, s, "pending"] for u, s in targets],
            replica=self.replica,
        )
        self.stopping.update(targets)
        await asyncio.to_thread(store.insert, self.engine, job, keep_finished=self.keep_finished)
        task = asyncio.create_task(
            self._stop_all(who, job, targets, stop_reason), name=f"hubkeeper-job-{job.id}"
        )
        self._tasks[job.id] = task

        def forget(_task: asyncio.Task[None], job_id: str = job.id) -> None:
            self._tasks.pop(job_id, None)

        task.add_done_callback(forget)
        return job

    async def _save(self, job: Job) -> None:
        try:
            await asyncio.to_thread(store.save, self.engine, job)
        except Exception as exc:  # the next heartbeat tries again
            log.warning("could not save the progress of job %s: %s", job.id, exc)

    async def _beat(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            await self._save(job)

    async def _stop_all(
        self,
        who: Actor,
        job: Job,
        targets: list[tuple[str, str]],
        stop_reason: StopReason,
    ) -> None:
        limit = asyncio.Semaphore(self.stop_concurrency)

        async def one(index: int, user: str, server: str) -> None:
            try:
                async with limit:
                    if self._closing:
                        error = SHUT_DOWN
                    else:
                        error = await self._stop_one(who, user, server, stop_reason)
            finally:
                self.stopping.discard((user, server))
            if error:
                job.failed.append({"user": user, "server": server, "error": error})
                job.targets[index][2] = "failed"
            else:
                job.stopped += 1
                job.targets[index][2] = "stopped"
            job.done += 1

        beat = asyncio.create_task(self._beat(job))
        try:
            await asyncio.gather(*(one(i, u, s) for i, (u, s) in enumerate(targets)))
        except asyncio.CancelledError:
            # this replica is shutting down mid-job: nobody will finish the rest
            store.finish_lost(job, utcnow())
            raise
        finally:
            beat.cancel()
            job.state = "done"
            job.finished_at = job.finished_at or utcnow()
            await asyncio.shield(self._save(job))
            detail = (
                f"reason: {job.reason}; stopped {job.stopped} of {job.total}; "
                f"failed {len(job.failed)}"
            )
            errors = "; ".join(
                f"{target_of(f['user'], f['server'])}: {f['error']}" for f in job.failed
            )
            stopper, _directory = self._runner()
            await stopper.trail.write(
                who,
                "servers.stop_all",
                "*",
                outcome="failed" if job.failed or job.done < job.total else "ok",
                detail=detail,
                error=errors[:4000],
            )
            if self.outbox is not None:
                await asyncio.shield(self.outbox.emit(done_event(job)))

    async def _stop_one(self, who: Actor, user: str, server: str, reason: StopReason) -> str:
        """Stop one server and wait for a pending stop; returns an error text or ""."""
        stopper, directory = self._runner()
        try:
            await stopper.stop_and_wait(
                who,
                user,
                server,
                reason=reason,
                client=stopper.hub.bulk,
                wait_s=self.stop_wait,
                audit_detail="stop-all",
            )
        except HubkeeperError as exc:
            return exc.detail  # audited by stop_and_wait
        except Exception as exc:  # one server's surprise must not end the job
            target = target_of(user, server)
            log.exception("stop-all: stopping %s failed", target)
            await stopper.trail.write(
                who, "server.stop", target, outcome="failed", error=str(exc), detail="stop-all"
            )
            return f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(HubkeeperError):
                await directory.refresh_user(user, bulk=True)
        return ""

    async def shutdown(self, grace: float = 0.0) -> None:
        """At app shutdown: start no more stops (the rest of a job is counted failed, so the
        job ends and is audited), give the stops under way `grace` s to finish, then cancel;
        what a cancelled job had not handled is reported failed ("replica lost")."""
        self._closing = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
