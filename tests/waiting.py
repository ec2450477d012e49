"""Waiting for something to happen: a condition polled until a deadline, never a bare sleep.

A test that sleeps "long enough" is slow when the machine is quiet and flaky when it is
busy; these return as soon as the condition holds and fail with a message at the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_SECONDS = 0.02  # short: the wait ends within this of the condition becoming true


def until(condition: Callable[[], object], seconds: float, what: str = "the condition") -> None:
    """Return once `condition()` is true; fail the test if it is still false after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {seconds} s"
        time.sleep(POLL_SECONDS)


async def until_async(
    condition: Callable[[], Awaitable[object]], seconds: float, what: str = "the condition"
) -> None:
    """`until` for async tests: `condition` is a coroutine function, awaited each round."""
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {seconds} s"
        await asyncio.sleep(POLL_SECONDS)
