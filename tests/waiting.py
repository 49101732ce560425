"""Waiting for a real hub (or Hubkeeper's copy of it) to catch up, without fixed sleeps.

The suite's one polling loop: `wait_for` for plain tests and threads, `wait_for_async` inside
an event loop (an `async def` test, or a coroutine a test runs). A condition that finds the
wait hopeless (a process that exited, say) raises its own AssertionError, which ends the wait
at once with that message.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "condition",
    interval: float = 0.1,
) -> Any:
    """Call `condition` every `interval` seconds until it returns something truthy, and return
    that; after `timeout` seconds fail with "timed out waiting for <what>"."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({timeout:g} s)")
        time.sleep(interval)


async def wait_for_async(
    condition: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float = 20.0,  # noqa: ASYNC109 - wait_for's signature; the message names `what`
    what: str = "condition",
    interval: float = 0.1,
) -> Any:
    """`wait_for` without blocking the event loop: `condition` may be a plain function or a
    coroutine function (awaited each time); between calls the loop runs other tasks."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({timeout:g} s)")
        await asyncio.sleep(interval)
