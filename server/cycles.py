"""Break the reference cycles a closed connection would leave for the collector.

With ``gc.freeze`` (``wsconsole serve`` freezes by default, see
:mod:`wsconsole.server.loop_policy`) an object in a reference cycle is freed
only by a thaw's full collection, which walks every connection: the longest
pause of the server at 10,000 connections. A connection that ends leaves
nothing in a cycle once :func:`release_closed_connection` has run, so it is
freed by its reference count at once, frozen or not (issue 10;
tests/benchmarks/bench_gc_leftover.py finds and counts what is left).

The cycles found (``gc.DEBUG_SAVEALL`` after closing connections, every way
a connection ends), and how each is broken here:

- asyncio's ``_SelectorSocketTransport`` keeps its read callback, a bound
  method of itself, in ``_read_ready_cb`` (every connection, on asyncio's
  loop; uvloop's transports have none). asyncio has removed the reader
  before it calls ``connection_lost``, so nothing calls it again: set to
  None. A private name of CPython's, pinned by a test.
- websockets' protocol (``ServerProtocol``, ``ClientProtocol``) keeps its
  parser, a generator, in ``protocol.parser``; once the connection has
  ended it is ``discard()`` (or ``parse()``) suspended at its last
  ``yield``, for good, and its frame holds ``self``, the protocol: a cycle
  that holds the protocol's reader, its permessage-deflate contexts (zlib's
  memory, tens of KB a connection), its logger and its id, on every
  connection, every way of ending, both sides. The connection is freed by
  its reference count and the protocol was not: frozen, it waited for a
  thaw. The collector frees such a cycle by closing the generator (its
  finalizer), which ``gc.collect()`` does not count among what it found, so
  a count of what a collection found saw nothing there (issue 10, goal 4).
  Closed here: the generator ends, its frame lets go of the protocol.
  Nothing steps the parser once the stream has ended (websockets' reader
  raises ``EOFError`` on more data, ``receive_eof`` returns early).
- websockets keeps the exceptions that ended a connection: the parser's
  (``protocol.parser_exc``: a connection dropped without a close frame, a
  protocol error), the handshake's (``protocol.handshake_exc``, and
  ``request._exception``: a bad request, a timeout, a refused upgrade) and
  the transport's (``connection.connection_exc``). Each exception's
  traceback holds the frames it went through (the parser's generator, the
  handshake), whose locals hold the protocol or the connection that holds
  the exception. The tracebacks are dropped (the exceptions, their types
  and messages, stay: ``ConnectionClosed.__cause__`` still says why); the
  frames were websockets' internals, and a log line with ``exc_info`` is
  written before the connection ends, when it is written at all.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

from typing import Any

from websockets.asyncio.server import ServerConnection

__all__ = ["release_closed_connection", "release_protocol", "release_transport",
           "drop_tracebacks", "ReleasingServerConnection"]


def drop_tracebacks(exc: BaseException | None) -> None:
    """Drop the traceback of ``exc`` and of every exception it chains to
    (``__cause__``, ``__context__``)."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending.append(current.__cause__)
        pending.append(current.__context__)


def release_transport(transport: Any) -> None:
    """Break asyncio's transport's cycle with itself, once it was closed
    (asyncio removes its reader when it closes, so it reads no more)."""
    if getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None


def release_protocol(protocol: Any) -> None:
    """Close the parser of a websockets protocol whose stream has ended, so that
    its frame lets go of the protocol (see the module)."""
    parser = getattr(protocol, "parser", None)
    # A parser still waiting for data (the stream has not ended) or running
    # (called from inside it) is left alone: it may still be stepped.
    if (parser is not None and protocol.reader.eof and parser.gi_frame is not None
            and not parser.gi_running):
        parser.close()


def release_closed_connection(connection: Any) -> None:
    """Break what would keep ``connection`` (a websockets ``ServerConnection``
    whose ``connection_lost`` has run) and its transport in reference cycles."""
    release_transport(getattr(connection, "transport", None))
    protocol = connection.protocol
    release_protocol(protocol)
    drop_tracebacks(protocol.parser_exc)
    drop_tracebacks(protocol.handshake_exc)
    drop_tracebacks(getattr(connection, "connection_exc", None))
    request = getattr(connection, "request", None)
    if request is not None:
        drop_tracebacks(getattr(request, "_exception", None))


class ReleasingServerConnection(ServerConnection):
    """websockets' connection, its cycles broken when it ends: the control
    listener's (operators' connections, ``/metrics`` and ``/healthz``), which
    the hub does not track. The public server's connections break theirs in
    :mod:`wsconsole.server.serving`."""

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().handshake(*args, **kwargs)
        finally:
            if self.connection_lost_waiter.done():
                # Lost during the handshake: what it stored since connection_lost.
                release_closed_connection(self)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            release_closed_connection(self)
