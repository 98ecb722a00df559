"""Running out of descriptors: the open-file limit checked at start, and accept
failures logged once per interval instead of once per attempt.

When ``accept()`` fails with EMFILE, ENFILE, ENOBUFS or ENOMEM, asyncio's
``BaseSelectorEventLoop._accept_connection`` passes the error to the loop's
exception handler (``'socket.accept() out of system resource'``, with the
exception and the listening socket), stops reading the socket for
``ACCEPT_RETRY_DELAY`` (1 s) and goes on with the rest of its ``backlog``
attempts. The default handler logs each one with a traceback: with the
backlog of 100, about a hundred tracebacks per second per listening socket
for as long as descriptors lack (6,206 in 20 s in issue 11).
:class:`AcceptFailureLog` takes those contexts for the sockets it watches:
it counts them (``hub.accept_errors``, the ``wsconsole_accept_errors_total``
metric) and logs one line at once, then one line per interval with the count,
without a traceback; every other context goes to the handler that was there
before (the user's, or asyncio's default).

On uvloop none of this happens: libuv, out of descriptors, accepts the
waiting connections with a descriptor it keeps in reserve and closes them at
once, and calls nothing in Python, so the clients are dropped before their
handshake, nothing is logged and ``accept_errors`` stays 0 (a test in
tests/server/test_loop_policy.py pins it). The check of the open-file limit
at start is the warning that still applies.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from typing import TYPE_CHECKING, Any, Iterable

from .limits import IntervalLog

if TYPE_CHECKING:  # pragma: no cover
    from .hub import Hub

__all__ = [
    "AcceptFailureLog",
    "ACCEPT_FAILURE_MESSAGE",
    "ACCEPT_FAILURE_LOG_INTERVAL",
    "open_file_limit",
]

logger = logging.getLogger("wsconsole.server")

ACCEPT_FAILURE_MESSAGE = "socket.accept() out of system resource"
"""The ``message`` of asyncio's exception-handler context for an accept that
failed for lack of resources (asyncio/selector_events.py; a test pins it)."""

ACCEPT_FAILURE_LOG_INTERVAL = 10.0
"""Seconds between two lines about accept failures."""


def open_file_limit() -> int:
    """The process's soft RLIMIT_NOFILE; -1 when unlimited or unknown."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return -1
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return -1 if soft == resource.RLIM_INFINITY else soft


class AcceptFailureLog:
    """The loop's exception handler for accept failures on some listening sockets."""

    def __init__(self, hub: Hub, interval: float = ACCEPT_FAILURE_LOG_INTERVAL) -> None:
        self.hub = hub
        self.interval = interval
        self._log = IntervalLog(interval)
        self._fds: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None
        self._installed = False

    def install(self, loop: asyncio.AbstractEventLoop, sockets: Iterable[Any]) -> None:
        """Watch these listening sockets (TCP or Unix) from now on."""
        self._fds = {sock.fileno() for sock in sockets}
        self._loop = loop
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self._handle)
        self._installed = True

    def uninstall(self) -> None:
        """Give the loop its previous handler back, if ours is still the one set;
        if another was set on top of ours, ours just passes everything on."""
        if not self._installed or self._loop is None:
            return
        self._installed = False
        if self._loop.get_exception_handler() == self._handle:
            self._loop.set_exception_handler(self._previous)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        sock = context.get("socket")
        if (self._installed and context.get("message") == ACCEPT_FAILURE_MESSAGE
                and isinstance(exc, OSError) and sock is not None
                and _fileno(sock) in self._fds):
            self._failed(loop, exc)
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def _failed(self, loop: asyncio.AbstractEventLoop, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno or 0, "other")
        self.hub.accept_errors[name] += 1
        if not self._log.occurred():
            return
        limit = open_file_limit()
        logger.warning(
            "cannot accept connections: %s (%s); open-file limit %s, %d handshakes in "
            "progress, %d connections open; asyncio retries every second; further "
            "failures are counted (wsconsole_accept_errors_total) and summed up every %g s",
            os.strerror(exc.errno) if exc.errno else exc, name,
            "unlimited" if limit < 0 else limit, self.hub.handshakes.in_progress,
            len(self.hub.registry), self.interval)
        loop.call_later(self.interval, self._window_ended, loop)

    def _window_ended(self, loop: asyncio.AbstractEventLoop) -> None:
        count = self._log.window_ended()
        if not count:
            return
        logger.warning("cannot accept connections: %d more failures in the last %g s "
                       "(%s in all); %d handshakes in progress, %d connections open",
                       count, self.interval, self._log.total,
                       self.hub.handshakes.in_progress, len(self.hub.registry))
        loop.call_later(self.interval, self._window_ended, loop)


def _fileno(sock: Any) -> int:
    try:
        return int(sock.fileno())
    except (OSError, ValueError, AttributeError):
        return -1
