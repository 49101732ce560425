"""Kernel activity the kernel pass sees, handed to the activity store (db/activity.py) for the
backtest's `idle_source=kernels`: a kernel's `last_activity` (Jupyter Server moves it on every
message a kernel sends, executions included) and, for a kernel busy now, the time of the look."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hubkeeper.culler.decide import _parse_time
from hubkeeper.db.activity import KERNELS, ActivityRecorder


def note_kernels(
    activity: ActivityRecorder,
    user: str,
    server: str,
    kernels: Iterable[dict[str, Any]],
    now: datetime,
) -> None:
    """Mark the buckets of each kernel's last activity (and of `now`, UTC, for a busy kernel).
    A `last_activity` that did not move marks a bucket already marked: nothing is written."""
    for kernel in kernels:
        activity.note(user, server, _parse_time(kernel.get("last_activity")), KERNELS)
        if kernel.get("execution_state") == "busy":
            activity.note(user, server, now, KERNELS)
