"""The hub's sampler: once per interval, one pass over the open connections,
spread over the interval one registry segment (512 connections) at a time.

Counting a message touches only its record (no clock, no sum); what needs a
clock or a sum happens here, once per ``sample_interval``: traffic totals
(what ``/metrics`` and stats events show, so that neither walks the
connections), per-second rates, each record's last activity, buffer and
latency (what the live listing orders sort by), closing the slow consumers
that ``Hub.send`` did not catch (a handler's own sends, a stall the kernel
absorbed), and the observers' ``on_sample`` (the metrics resample the
process collector there). The pass is cut in steps
(:meth:`ConnectionRegistry.sample_step`) with the loop free between them, so
that no step holds it for more than one segment's worth.

What the slow-consumer limit counts is :func:`pending_bytes`: the
connection's userspace write buffer plus its kernel send queue. The kernel
holds megabytes for a stalled loopback reader before asyncio buffers a byte,
so the userspace buffer alone is found late or never (a handler awaiting
``send`` keeps it under websockets' ``write_limit``).

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

try:  # absent on Windows
    import fcntl
    import termios
except ImportError:  # pragma: no cover - not Linux
    fcntl = termios = None  # type: ignore[assignment]

if TYPE_CHECKING:  # pragma: no cover
    from .hub import Hub
    from .registry import ConnectionRecord

__all__ = [
    "KERNEL_QUEUE_MEASURED",
    "Sampler",
    "Totals",
    "current_totals",
    "kernel_queued",
    "pending_bytes",
    "read_connection",
]

logger = logging.getLogger("wsconsole.server")

# SIOCOUTQ (== TIOCOUTQ on Linux) on a TCP socket: bytes in its send queue
# that the peer has not acknowledged, sent or not. macOS's TIOCOUTQ is for
# terminals only, so elsewhere the kernel's share is not measured.
_SIOCOUTQ: int | None = (
    termios.TIOCOUTQ if termios is not None and sys.platform.startswith("linux") else None
)
_INT_BUFFER = bytes(4)

KERNEL_QUEUE_MEASURED = _SIOCOUTQ is not None
"""True where :func:`kernel_queued` can measure (Linux); elsewhere the limit
counts the userspace buffer only and records show the kernel's share as None."""


def kernel_queued(transport: Any) -> int | None:
    """Bytes in the kernel send queue of a transport's socket not yet
    acknowledged by the peer (one ``ioctl``, a few microseconds); None where
    that cannot be measured or the socket is gone.

    Bytes the peer's kernel acknowledged but its application never read are
    in no figure the server can see: a stalled reader also holds its own
    receive buffer's worth (on Linux loopback, up to a few MB).
    """
    if _SIOCOUTQ is None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        answer = fcntl.ioctl(sock.fileno(), _SIOCOUTQ, _INT_BUFFER)
    except (OSError, ValueError):  # closed meanwhile (fileno -1), or not TCP
        return None
    return int.from_bytes(answer, sys.byteorder)


def pending_bytes(transport: Any) -> int:
    """What the slow-consumer limit counts: the userspace write buffer plus
    the kernel send queue (:func:`kernel_queued`, 0 where not measured)."""
    return transport.get_write_buffer_size() + (kernel_queued(transport) or 0)


class Totals:
    """Traffic counters: messages and bytes, in and out."""

    __slots__ = ("msgs_in", "bytes_in", "msgs_out", "bytes_out")

    def __init__(self) -> None:
        self.msgs_in = 0
        self.bytes_in = 0
        self.msgs_out = 0
        self.bytes_out = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "msgs_in": self.msgs_in,
            "bytes_in": self.bytes_in,
            "msgs_out": self.msgs_out,
            "bytes_out": self.bytes_out,
        }


def current_totals(closed: Totals, records: Iterable[ConnectionRecord]) -> Totals:
    """The closed connections' totals plus the open records' counters, now
    (a walk over the records: about 1 ms per 10,000)."""
    msgs_in, bytes_in = closed.msgs_in, closed.bytes_in
    msgs_out, bytes_out = closed.msgs_out, closed.bytes_out
    for record in records:
        msgs_in += record.msgs_in
        bytes_in += record.bytes_in
        msgs_out += record.msgs_out
        bytes_out += record.bytes_out
    totals = Totals()
    totals.msgs_in, totals.bytes_in = msgs_in, bytes_in
    totals.msgs_out, totals.bytes_out = msgs_out, bytes_out
    return totals


def read_connection(record: ConnectionRecord) -> tuple[int, float]:
    """``(buffered, latency)`` of a record's connection: the registry's probe."""
    connection = record.handle
    if connection is None:  # a record built without a connection (tests, simulations)
        return record.buffered, record.latency
    return connection.transport.get_write_buffer_size(), connection.latency


class Sampler:
    """Samples one hub every ``interval`` seconds while its server runs."""

    def __init__(self, hub: Hub, interval: float) -> None:
        self.hub = hub
        self.interval = interval
        """Seconds between two samples; 0 or less: no periodic sample."""
        self.totals = Totals()
        """The hub's traffic totals as of the last sample (at most one interval old)."""
        self.rates: dict[str, float] = {"msgs_in": 0.0, "bytes_in": 0.0,
                                        "msgs_out": 0.0, "bytes_out": 0.0}
        """Per-second rates over the last interval."""
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True while periodic samples are taken (then :attr:`totals` is fresh)."""
        return self._task is not None

    def start(self) -> None:
        """Sample every interval from now on (if the interval is positive)."""
        if self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        """Stop sampling, after a last sample, so that :attr:`totals` is final."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.sample()

    def sample(self) -> int:
        """One pass over every open record at once: totals, last activity (a
        record whose received count moved since the last pass was active now),
        buffer and latency, and slow consumers, closed. Returns how many were
        closed."""
        slow: list[ConnectionRecord] = []
        self.hub.registry.sample_all(time.time(), self._probe(slow))
        closed = self._finish_step(slow)
        self.hub.observe("on_sample")
        return closed

    def step(self) -> int:
        """The same for the next segment of the registry only (a part of a pass)."""
        slow: list[ConnectionRecord] = []
        self.hub.registry.sample_step(time.time(), self._probe(slow))
        return self._finish_step(slow)

    def _probe(self, slow: list[ConnectionRecord]) -> Callable[[ConnectionRecord], tuple[int, float]]:
        limit = self.hub.slow_consumer_limit
        if limit is None:
            return read_connection

        def probe(record: ConnectionRecord) -> tuple[int, float]:
            # read_connection, inlined: this runs for every record every interval.
            connection = record.handle
            if connection is None:
                return record.buffered, record.latency
            transport = connection.transport
            buffered = transport.get_write_buffer_size()
            if buffered > limit:
                slow.append(record)
            # The kernel's queue (a system call) only for a record that has
            # sent more than the limit in all and sent since it was last
            # measured: its pending bytes cannot pass the limit otherwise.
            elif record.bytes_out > limit and record.bytes_out != record.bytes_out_measured:
                record.bytes_out_measured = record.bytes_out
                record.kernel_queued = queued = kernel_queued(transport)
                if buffered + (queued or 0) > limit:
                    slow.append(record)
            return buffered, connection.latency

        return probe

    def _finish_step(self, slow: list[ConnectionRecord]) -> int:
        hub = self.hub
        closed = hub.closed_totals
        msgs_in, bytes_in, msgs_out, bytes_out = hub.registry.sampled_totals()
        totals = Totals()
        totals.msgs_in, totals.bytes_in = closed.msgs_in + msgs_in, closed.bytes_in + bytes_in
        totals.msgs_out = closed.msgs_out + msgs_out
        totals.bytes_out = closed.bytes_out + bytes_out
        self.totals = totals
        for record in slow:
            hub.close_slow_consumer(record)
        return len(slow)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        registry = self.hub.registry
        self.sample()
        last = self.totals.as_dict()
        last_time = loop.time()
        while True:
            # One pass per interval, one segment per step, the steps evenly
            # spread: with 10,000 connections, 20 steps of about half a
            # millisecond each instead of one pass of 10 ms.
            steps = max(1, registry.segment_count)
            for _ in range(steps):
                await asyncio.sleep(self.interval / steps)
                try:
                    self.step()
                except Exception:  # pragma: no cover - never let sampling die
                    logger.exception("sampling the connections failed")
            now = loop.time()
            current = self.totals.as_dict()
            elapsed = max(now - last_time, 1e-9)
            self.rates = {k: (current[k] - last[k]) / elapsed for k in current}
            last, last_time = current, now
            self.hub.observe("on_sample")
