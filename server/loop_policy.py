"""Which event loop ``wsconsole serve`` and ``demo`` run on, and how the
garbage collector is set once the server is up.

Event loop: ``auto`` (the default) runs on uvloop when it is installed
(``pip install wsconsole[fast]``) and on asyncio's own loop otherwise;
``asyncio`` and ``uvloop`` ask for one (``uvloop`` fails in one line when it
is not installed). The server's code uses only the public asyncio API, so it
behaves the same on both, with the differences docs/benchmarks.md lists
(uvloop accepts and drops connections itself when descriptors run out, so
the accept-failure count stays 0).

Garbage collector: at 10,000 connections the heap holds about 800,000 objects
the collector tracks (websockets' connection, its protocol, transport, tasks
and futures: about 78 per connection), and a full collection walks them all
on the event loop: 0.8-1.1 s of CPU on this machine (issue 10,
docs/benchmarks.md). :func:`apply_gc_policy` with ``freeze=True`` calls
:func:`gc.freeze` once the server is up, and again after each full
collection, so that the objects alive then (the imports, the listeners, the
connections open then) are not walked again: a full collection walks what was
made since, not the whole fleet.

The price: what is left in reference cycles is freed only by the cycle
collector, and the collector never looks at frozen objects. A closed
connection leaves nothing in cycles (the hub lets go of its record,
server/cycles.py breaks asyncio's and websockets' cycles when it ends, the
protocol's with its parser among them; tests/benchmarks/bench_gc_leftover.py,
tests/benchmarks/soak.py), so it is freed at once, frozen or not. Until
the parser's cycle was broken, every connection frozen while open left its
protocol (and its compression contexts) frozen when it closed: a soak's RSS
grew 7-9 MB a minute frozen against 2-5 unfrozen, and no count saw it,
because ``gc.collect()`` does not count a cycle that a generator's
finalizer breaks. What the application or the control plane leaves in
cycles is still frozen, so the freezer counts the connections closed since
its last thaw and, past ``thaw_after_closes``, thaws: unfreezes, collects
everything once (one pause as long as Python's own full collection, 0.5-1 s
at 10,000 connections) and freezes again. A thaw that gave back almost no
memory (under 0.1 memory block per close, ``sys.getallocatedblocks``,
counted once a collection while still frozen has emptied Python's free
lists, as every full collection does) doubles the closes to the next, up
to 64 times ``thaw_after_closes``: the long pause comes once an hour or
so under heavy churn rather than once a minute, while garbage that does
accumulate still brings the thaws back to every ``thaw_after_closes``.

``wsconsole serve`` and ``demo`` freeze by default (``--no-gc-freeze``
leaves Python's collector as it is); :func:`wsconsole.server.serve`, a
library call, leaves the collector of its process alone.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import gc
import platform
import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Coroutine, TypeVar

from .errors import ConfigError

__all__ = [
    "DEFAULT_THAW_AFTER_CLOSES",
    "GcFreezer",
    "LoopChoice",
    "EventLoopKind",
    "resolve_loop",
    "loop_name",
    "describe_loop",
    "run_on_loop",
    "GcPolicy",
    "apply_gc_policy",
    "restore_gc_defaults",
    "describe_gc",
]

T = TypeVar("T")

DEFAULT_THAW_AFTER_CLOSES = 10_000
"""Connections closed since the last thaw that make the freezer thaw and
collect everything once (about 20 MB of what dead connections left at most)."""

THAW_CHECK_INTERVAL = 1.0
"""Seconds between two looks at the count of closed connections."""

THAW_FOUND_NOTHING = 0.1
"""Memory blocks freed per closed connection under which a thaw found
nothing: a closed connection leaves none in cycles (server/cycles.py), so
what a thaw frees is what the application or the control plane left. Freed
means given back to Python's allocator (``sys.getallocatedblocks``), not
``gc.collect()``'s count, which leaves out the cycles freed by a
generator's finalizer."""

THAW_BACKOFF_LIMIT = 64
"""At most this many times ``thaw_after_closes`` between two thaws (640,000
closes by default: about an hour at 180 closes a second), so that garbage
of the application's own stays bounded (under 0.1 memory block a close:
64,000 blocks at most)."""


class LoopChoice(StrEnum):
    """What ``--loop`` accepts."""

    AUTO = "auto"
    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


@dataclass(frozen=True)
class EventLoopKind:
    """A resolved choice: the loop's name, its version, and how to make one."""

    name: str
    """``asyncio`` or ``uvloop``, as :func:`loop_name` says of a running loop."""
    version: str
    factory: Callable[[], asyncio.AbstractEventLoop]

    def describe(self) -> str:
        """One line for the operator: ``uvloop 0.21.0``, ``asyncio (Python 3.11.7)``."""
        return f"{self.name} {self.version}"


def _uvloop() -> Any | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def resolve_loop(choice: LoopChoice | str = LoopChoice.AUTO) -> EventLoopKind:
    """The event loop for ``choice``; ConfigError for ``uvloop`` without uvloop."""
    choice = LoopChoice(choice)
    if choice is not LoopChoice.ASYNCIO:
        uvloop = _uvloop()
        if uvloop is not None:
            return EventLoopKind("uvloop", uvloop.__version__, uvloop.new_event_loop)
        if choice is LoopChoice.UVLOOP:
            raise ConfigError(
                "--loop uvloop: uvloop is not installed (pip install 'wsconsole[fast]')")
    return EventLoopKind("asyncio", f"(Python {platform.python_version()})",
                         asyncio.new_event_loop)


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio`` (or the module of another loop) for a loop,
    the running one by default."""
    if loop is None:
        loop = asyncio.get_running_loop()
    module = type(loop).__module__.partition(".")[0]
    return "asyncio" if module == "asyncio" else module


def describe_loop(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop 0.23.0`` or ``asyncio (Python 3.11.7)`` for a loop, the running one
    by default: what ``wsconsole serve`` prints."""
    name = loop_name(loop)
    if name == "uvloop":
        uvloop = _uvloop()
        return f"uvloop {getattr(uvloop, '__version__', '')}".rstrip()
    if name == "asyncio":
        return f"asyncio (Python {platform.python_version()})"
    return name


def run_on_loop(main: Coroutine[Any, Any, T], kind: EventLoopKind) -> T:
    """``asyncio.run(main)`` on a loop of this kind (Python 3.11 has no
    ``asyncio.run(loop_factory=...)``; its ``Runner`` has)."""
    with asyncio.Runner(loop_factory=kind.factory) as runner:
        return runner.run(main)


@dataclass(frozen=True)
class GcPolicy:
    """How the collector runs once the server is up (defaults: as Python has it)."""

    freeze: bool = False
    """Freeze what is alive once the server is up and after each full
    collection (see the module's docstring)."""
    threshold0: int | None = None
    """Allocations minus deallocations that start a young collection (Python:
    700); None leaves it."""
    thaw_after_closes: int | None = DEFAULT_THAW_AFTER_CLOSES
    """With ``freeze``: closed connections that make the freezer thaw and
    collect everything once; None never thaws (dead connections then stay)."""

    @property
    def is_default(self) -> bool:
        return not self.freeze and self.threshold0 is None


class _FreezeAfterFullCollections:
    """A ``gc.callbacks`` entry: freeze what survived each full collection."""

    def __init__(self) -> None:
        self.freezes = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # Freezing inside the callback is safe: the collection has finished
        # ("stop"), and gc.freeze only moves the generations' lists.
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()
            self.freezes += 1


_installed: _FreezeAfterFullCollections | None = None


class GcFreezer:
    """Thaws the frozen heap once enough connections have closed (see the module).

    A thaw that finds (almost) nothing to free (fewer than
    :data:`THAW_FOUND_NOTHING` memory blocks per connection closed since the last)
    doubles the closes until the next, up to :data:`THAW_BACKOFF_LIMIT` times
    ``thaw_after_closes``; one that finds more comes back to ``thaw_after_closes``.
    """

    def __init__(self, hub: Any, thaw_after_closes: int,
                 check_interval: float = THAW_CHECK_INTERVAL) -> None:
        self.hub = hub
        self.thaw_after_closes = thaw_after_closes
        self.next_thaw_after = thaw_after_closes
        """Closes from the last thaw to the next (grows while thaws find nothing)."""
        self.check_interval = check_interval
        self.thaws = 0
        self.last_thaw_seconds = 0.0
        """CPU seconds of the last thaw's full collection (a pause of the loop)."""
        self.last_thaw_freed = 0
        """Memory blocks the last thaw's collection gave back (an object is one
        or more: its own, its dict's values, a list's items, ...)."""
        self._closed_at_thaw = self._closed()
        self._task: asyncio.Task[None] | None = None

    def _closed(self) -> int:
        return int(self.hub.opened_total - len(self.hub.registry))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            if self._closed() - self._closed_at_thaw >= self.next_thaw_after:
                self.thaw()

    def thaw(self) -> None:
        """Unfreeze, collect everything once (the callback freezes again)."""
        import time

        closed = self._closed()
        closes = max(1, closed - self._closed_at_thaw)
        self._closed_at_thaw = closed
        started = time.process_time()
        # Every full collection empties Python's free lists (up to 2,000
        # tuples of each small size, floats, lists, dicts: tens of thousands
        # of blocks after a busy while), which is no garbage of anyone's: a
        # first one, while frozen (it walks only what is not frozen), empties
        # them, so that the count below is what the frozen heap held.
        gc.collect()
        before = sys.getallocatedblocks()
        gc.unfreeze()
        gc.collect()
        if _installed is None:  # pragma: no cover - the policy was undone meanwhile
            return
        # What the collection freed is the memory it gave back, not
        # gc.collect()'s count: that leaves out a cycle freed by a generator's
        # finalizer (a suspended generator whose frame holds its owner, as
        # websockets' protocol and its parser did), so a thaw that freed every
        # closed connection's protocol counted 0 and backed off. (Nor a count
        # of tracked objects: a full collection untracks dicts and tuples
        # that hold only atoms, which frees nothing.)
        freed = max(0, before - sys.getallocatedblocks())
        self.last_thaw_seconds = time.process_time() - started
        self.last_thaw_freed = freed
        self.thaws += 1
        if freed < closes * THAW_FOUND_NOTHING:
            self.next_thaw_after = min(2 * self.next_thaw_after,
                                       THAW_BACKOFF_LIMIT * self.thaw_after_closes)
        else:
            self.next_thaw_after = self.thaw_after_closes


def apply_gc_policy(policy: GcPolicy, hub: Any = None) -> GcFreezer | None:
    """Set the collector for a server that has just started (process-wide);
    with ``freeze`` and a hub, return the started :class:`GcFreezer` (stop it
    when the server stops)."""
    global _installed
    if policy.threshold0 is not None:
        _, threshold1, threshold2 = gc.get_threshold()
        gc.set_threshold(policy.threshold0, threshold1, threshold2)
    if not policy.freeze:
        return None
    # What the imports and the start made is never garbage: collect once
    # so that no garbage of the start is frozen with it, then freeze.
    gc.collect()
    gc.freeze()
    if _installed is None:
        _installed = _FreezeAfterFullCollections()
        gc.callbacks.append(_installed)
    if hub is None or not policy.thaw_after_closes:
        return None
    freezer = GcFreezer(hub, policy.thaw_after_closes)
    freezer.start()
    return freezer


def restore_gc_defaults(threshold: tuple[int, int, int] = (700, 10, 10)) -> None:
    """Undo :func:`apply_gc_policy`: unfreeze, stop freezing after full
    collections, set these thresholds (Python's by default)."""
    global _installed
    if _installed is not None:
        gc.callbacks.remove(_installed)
        _installed = None
    gc.unfreeze()
    gc.set_threshold(*threshold)


def describe_gc(policy: GcPolicy) -> str:
    """One line for the operator."""
    if policy.is_default:
        return "garbage collector: Python's defaults"
    parts = []
    if policy.freeze:
        thaw = (f"thawed after {policy.thaw_after_closes:,} closed connections, then "
                f"up to {THAW_BACKOFF_LIMIT}x as many while thaws find nothing"
                if policy.thaw_after_closes else "never thawed")
        parts.append("frozen after start and after each full collection "
                     f"({gc.get_freeze_count():,} objects frozen), {thaw}")
    if policy.threshold0 is not None:
        parts.append(f"young collections every {policy.threshold0:,} allocations")
    return "garbage collector: " + "; ".join(parts)
