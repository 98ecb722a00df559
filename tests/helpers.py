"""Shared test helpers: one timeout constant and condition waiting.

Imported by tests as ``from tests.helpers import ...``; conftest.py is for
pytest's fixtures and hooks, not for helpers. Timeouts scale from
``TIMEOUT`` (set WSCONSOLE_TEST_TIMEOUT on a slow machine).
"""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import Awaitable, Callable

__all__ = ["TIMEOUT", "wait_for"]

TIMEOUT = float(os.environ.get("WSCONSOLE_TEST_TIMEOUT", "10"))
"""Seconds a test waits for something that should happen at once: the bound
of a wait, never its length (``wait_for`` returns as soon as it holds). Ten,
not five: the two test workers share two cores with other engineers' runs,
and a console test waited more than five seconds for a page at a load of 11."""


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = TIMEOUT,
    *,
    interval: float = 0.005,
) -> None:
    """Wait until ``condition()`` is true, yielding to the loop between checks.

    ``condition`` may be a plain function or a coroutine function (a scrape,
    a request): for state that changes where we cannot await it, e.g. a
    registry entry removed in ``connection_lost`` or a table filled by a
    Textual worker. Raises TimeoutError, failing the test, after ``timeout``.
    """
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(interval)
