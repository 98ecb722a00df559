"""Control requests take turns with the public server.

websockets parses every frame of a read at once, and ``recv()`` returns a
queued message without yielding, so a control connection that pipelines a
thousand requests would run them all in one go and hold the event loop for
as long (0.9 s for 1,000 ``stats`` in issue 11; the public clients wait as
long). :class:`FairTurns` bounds the control plane's claim on the loop twice:

- each request (answered or refused) waits for its turn: at most one starts
  per loop iteration, in arrival order across every control connection, so
  a public client's message waits for about one control request at most,
  however many operators flood;
- the time spent running requests is a budget, ``share`` of the wall-clock
  time (with bursts of ``burst`` seconds): past it, the next turn waits.
  A waiting request is not read further, so a flood is held back by TCP
  itself rather than answered at the public clients' expense.

A turn covers a request's start, not its awaits: an operation that waits on
I/O lets the next one start meanwhile. The time charged is the loop time the
request's own steps took (:class:`TimedSteps`), not the time it spent
waiting: a cluster request that waits two seconds for other nodes' answers
costs the milliseconds it ran, not two seconds of the budget.

That time is the loop thread's CPU time (:func:`request_clock`), less the
garbage collections that ran meanwhile: a full collection at 10,000
connections walks the whole heap for 0.2-1 s, whichever step's allocation set
it off, and charged to a request it made the operator's next requests wait
five times as long (the share's inverse); the machine's other processes
taking the core are not the request's doing either. While a control listener
runs, a ``gc.callbacks`` entry (:func:`watch_collections`) adds up each
thread's time in the collector: two clock readings a collection.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections import deque
from typing import Any, Callable, Coroutine, Generator, Generic, TypeVar

from ..limits import DEFAULT_CONTROL_LOOP_BURST, DEFAULT_CONTROL_LOOP_SHARE

__all__ = ["FairTurns", "TimedSteps", "request_clock", "watch_collections",
           "unwatch_collections"]

T = TypeVar("T")


class _CollectorTime(threading.local):
    """This thread's CPU seconds in the garbage collector (while watched)."""

    seconds = 0.0
    started = 0.0


_collector_time = _CollectorTime()
_watchers = 0


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _collector_time.started = time.thread_time()
    else:
        _collector_time.seconds += time.thread_time() - _collector_time.started


def watch_collections() -> None:
    """Start adding up the collector's time for :func:`request_clock` (counted:
    each call wants one :func:`unwatch_collections`)."""
    global _watchers
    _watchers += 1
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)


def unwatch_collections() -> None:
    """Undo one :func:`watch_collections`; the last one removes the callback."""
    global _watchers
    _watchers = max(0, _watchers - 1)
    if not _watchers and _on_collection in gc.callbacks:
        gc.callbacks.remove(_on_collection)


def request_clock() -> float:
    """Seconds of this thread's CPU time outside the garbage collector (what
    :class:`TimedSteps` charges a request; collections count only while
    watched)."""
    return time.thread_time() - _collector_time.seconds


class TimedSteps(Generic[T]):
    """Await a coroutine and add up the time its steps run, not the time it waits.

    ``timed = TimedSteps(coro); result = await timed; timed.seconds``. It
    drives the coroutine the way ``yield from`` would, passing every future
    it waits on through to the task (and cancellation back in), and times
    each ``send``/``throw`` with :func:`request_clock`: that is when the
    request holds the loop.
    """

    __slots__ = ("_coroutine", "seconds")

    def __init__(self, coroutine: Coroutine[Any, Any, T]) -> None:
        self._coroutine = coroutine
        self.seconds = 0.0
        """Loop time spent in the coroutine's steps so far."""

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine = self._coroutine
        clock = request_clock
        value: Any = None
        error: BaseException | None = None
        while True:
            started = clock()
            try:
                if error is not None:
                    waiting = coroutine.throw(error)
                else:
                    waiting = coroutine.send(value)
            except StopIteration as stop:
                self.seconds += clock() - started
                return stop.value
            except BaseException:
                self.seconds += clock() - started
                raise
            self.seconds += clock() - started
            error = None
            value = None
            try:
                value = yield waiting
            except BaseException as exc:  # cancellation, or a future's error
                error = exc


class FairTurns:
    """``await turns.take()`` before running a control request, ``turns.spent(s)`` after."""

    def __init__(self, share: float | None = DEFAULT_CONTROL_LOOP_SHARE,
                 burst: float = DEFAULT_CONTROL_LOOP_BURST,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.share = share or None
        """Fraction of the loop's time for control requests; None: no budget."""
        self.burst = burst
        self._clock = clock
        self._budget = burst
        """Seconds of control work allowed now (negative: overspent)."""
        self._refilled = clock()
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._taken = False
        """True while a turn is out or its hand-off is scheduled."""

    async def take(self) -> None:
        """Return when it is this caller's turn."""
        loop = asyncio.get_running_loop()
        if not self._taken and not self._waiting and self._wait_needed() == 0:
            self._taken = True
            # The turn passes on at the next iteration, after the I/O that
            # arrived meanwhile (public clients' messages) has been handled.
            loop.call_soon(self._pass_turn, loop)
            # Yield once anyway: without it, a caller with queued frames would
            # start its next request in this very iteration.
            await asyncio.sleep(0)
            return
        turn = loop.create_future()
        self._waiting.append(turn)
        if not self._taken:  # nobody holds the turn, so nobody would pass it
            self._taken = True
            self._pass_turn(loop)
        await turn

    def spent(self, seconds: float) -> None:
        """Charge a request's time to the budget."""
        if self.share is not None:
            self._budget -= seconds

    def _wait_needed(self) -> float:
        """Seconds until the budget is back to zero (0 when it is not overspent)."""
        if self.share is None:
            return 0.0
        now = self._clock()
        self._budget = min(self.burst, self._budget + (now - self._refilled) * self.share)
        self._refilled = now
        return 0.0 if self._budget >= 0 else -self._budget / self.share

    def _pass_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._waiting and self._waiting[0].done():
            self._waiting.popleft()  # cancelled: its connection closed
        if not self._waiting:
            self._taken = False
            return
        wait = self._wait_needed()
        if wait > 0:
            loop.call_later(wait, self._pass_turn, loop)
            return
        self._waiting.popleft().set_result(None)
        loop.call_soon(self._pass_turn, loop)
