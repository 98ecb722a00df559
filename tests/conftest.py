"""Shared test helpers: one timeout constant and condition waiting.

Timeouts scale from ``TIMEOUT`` (set WSCONSOLE_TEST_TIMEOUT on a slow machine).
"""

from __future__ import annotations

import asyncio
import os
from typing import Callable

__all__ = ["TIMEOUT", "wait_for"]

TIMEOUT = float(os.environ.get("WSCONSOLE_TEST_TIMEOUT", "5"))
"""Seconds a test waits for something that should happen at once."""


async def wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait until ``condition()`` is true, yielding to the loop between checks.

    For state that changes in callbacks we cannot await (e.g. a registry
    entry removed in ``connection_lost``); fails the test on timeout.
    """
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)
