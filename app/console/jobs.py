"""Moved to `hubkeeper.jobs.registry` (jobs live in the database now); kept so older imports
keep working."""

from hubkeeper.jobs.registry import Job, JobRegistry

__all__ = ["Job", "JobRegistry"]
