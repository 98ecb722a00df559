"""The hub's sampler: once per interval, one pass over the open connections.

Counting a message touches only its record (no clock, no sum); what needs a
clock or a sum happens here, once per ``sample_interval``: traffic totals
(what ``/metrics`` and stats events show, so that neither walks the
connections), per-second rates, each record's last activity, closing the slow
consumers that ``Hub.send`` did not catch (a handler's own sends), and the
observers' ``on_sample`` (the metrics resample the process collector there).

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .hub import Hub
    from .registry import ConnectionRecord

__all__ = ["Sampler", "Totals", "current_totals"]

logger = logging.getLogger("wsconsole.server")


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
        """One pass over the open records: totals, last activity (a record whose
        received count moved since the last pass was active now), and slow
        consumers, closed. Returns how many were closed."""
        hub = self.hub
        now = time.time()
        limit = hub.slow_consumer_limit
        slow = []
        closed = hub.closed_totals
        msgs_in, bytes_in = closed.msgs_in, closed.bytes_in
        msgs_out, bytes_out = closed.msgs_out, closed.bytes_out
        # One loop for all of it (not current_totals plus another): with
        # 10,000 connections this runs every second.
        for record in hub.registry.records():
            if record.msgs_in != record.msgs_in_seen:
                record.msgs_in_seen = record.msgs_in
                record.last_activity = now
            msgs_in += record.msgs_in
            bytes_in += record.bytes_in
            msgs_out += record.msgs_out
            bytes_out += record.bytes_out
            if limit is not None and record.handle.transport.get_write_buffer_size() > limit:
                slow.append(record)
        sampled = Totals()
        sampled.msgs_in, sampled.bytes_in = msgs_in, bytes_in
        sampled.msgs_out, sampled.bytes_out = msgs_out, bytes_out
        self.totals = sampled
        for record in slow:
            hub.close_slow_consumer(record)
        hub.observe("on_sample")
        return len(slow)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self.sample()
        last = self.totals.as_dict()
        last_time = loop.time()
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.sample()
            except Exception:  # pragma: no cover - never let sampling die
                logger.exception("sampling the connections failed")
            now = loop.time()
            current = self.totals.as_dict()
            elapsed = max(now - last_time, 1e-9)
            self.rates = {k: (current[k] - last[k]) / elapsed for k in current}
            last, last_time = current, now
