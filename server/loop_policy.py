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
on the event loop, a stall of several hundred milliseconds (issue 10).
:func:`apply_gc_policy` with ``freeze=True`` calls :func:`gc.freeze` once the
server is up, and again after each full collection, so that objects alive at
those moments (the imports, the listeners, the connections open then) are not
walked again; what a full collection walks is what was made since, not the
whole fleet. docs/benchmarks.md has the measurements and the cost: cyclic
garbage among frozen objects is never freed (the frozen objects of a closed
connection are freed by reference counting, but its cycles stay).

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import gc
import platform
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Coroutine, TypeVar

from .errors import ConfigError

__all__ = [
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


def apply_gc_policy(policy: GcPolicy) -> None:
    """Set the collector for a server that has just started (process-wide)."""
    global _installed
    if policy.threshold0 is not None:
        _, threshold1, threshold2 = gc.get_threshold()
        gc.set_threshold(policy.threshold0, threshold1, threshold2)
    if policy.freeze:
        # What the imports and the start made is never garbage: collect once
        # so that no garbage of the start is frozen with it, then freeze.
        gc.collect()
        gc.freeze()
        if _installed is None:
            _installed = _FreezeAfterFullCollections()
            gc.callbacks.append(_installed)


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
        parts.append("frozen after start and after each full collection "
                     f"({gc.get_freeze_count():,} objects frozen)")
    if policy.threshold0 is not None:
        parts.append(f"young collections every {policy.threshold0:,} allocations")
    return "garbage collector: " + "; ".join(parts)
