"""The event stream: subscriptions, their coalescing, and the pump that sends them.

Events come synchronously from the Fleet (from the hub, for a local one)
on the hot path where connections open and close, so a subscription only
appends to a bounded window; a pump per subscriber turns the window into
frames at most every ``flush_interval``, summarizing bursts and keeping only
the latest stats sample.

One subscriber never costs another its stream: an event is encoded once for
all of them (:class:`SharedEvent`), an event that cannot be encoded (a value
of the application's that JSON text cannot carry) is dropped for everyone and
logged, never sent half-way, and a subscriber whose sending fails loses only
its own pump.

The node's recent events are kept whether or not anyone is subscribed, in
bounded memory (:class:`EventBacklog`), so that a subscriber that asks
(``subscribe``'s ``backlog``) first receives what happened before it came.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from .. import wire
from ..protocol import EventKind, is_abnormal_close

if TYPE_CHECKING:  # pragma: no cover
    from ..fleet import Fleet
    from .listener import Session

__all__ = ["EventStream", "Subscription", "SharedEvent", "EventBacklog",
           "BACKLOG_NOTABLE", "BACKLOG_ROUTINE"]

logger = logging.getLogger("wsconsole.control")

_CONNECTION_EVENTS = frozenset({EventKind.CONNECTION_OPENED, EventKind.CONNECTION_CLOSED})

BACKLOG_NOTABLE = 500
"""Notable events the backlog keeps: abnormal closes (codes other than 1000 and
1001), slow consumers, operator actions, state changes."""
BACKLOG_ROUTINE = 500
"""Routine events the backlog keeps besides: connections opened and closed
normally. Kept apart, so that a storm of reconnects cannot push the notable
events out. Both together are ``wire.MAX_BACKLOG``; an event is a connection
summary or an audit entry, well under 2 KB: the backlog holds at most about
2 MB whatever the traffic."""


class SharedEvent:
    """One event as every subscriber sends it: encoded once, when first sent, or never."""

    __slots__ = ("kind", "data", "time", "_frame", "_encoded")

    def __init__(self, kind: str, data: Any, time: float) -> None:
        self.kind = kind
        self.data = data
        self.time = time
        self._frame: str | None = None
        self._encoded = False

    def frame(self) -> str | None:
        """The event's frame, or None if it cannot be encoded (then logged, once)."""
        if not self._encoded:
            self._encoded = True
            self._frame = _encode_or_drop(self.kind, self.data, self.time)
        return self._frame


def _encode_or_drop(kind: str, data: Any, when: float) -> str | None:
    try:
        return wire.encode_event(kind, data, when)
    except (TypeError, ValueError) as exc:
        logger.error("%s event not published: it cannot be encoded (%s)", kind, exc)
        return None


class EventBacklog:
    """The node's most recent events, in two bounded rings (notable, routine).

    :meth:`record` is called synchronously for every event of this node, on
    the hot path where connections open and close: O(1), no encoding (an
    event is encoded only if a subscriber asks for it).
    """

    __slots__ = ("notable", "routine")

    def __init__(self, notable: int = BACKLOG_NOTABLE, routine: int = BACKLOG_ROUTINE) -> None:
        self.notable: deque[SharedEvent] = deque(maxlen=notable)
        self.routine: deque[SharedEvent] = deque(maxlen=routine)

    def record(self, kind: str, data: Any, now: float | None = None) -> None:
        """Keep one event (``stats`` samples are not kept: a new one comes at once)."""
        if kind == EventKind.STATS:
            return
        event = SharedEvent(kind, data, time.time() if now is None else now)
        if kind == EventKind.CONNECTION_OPENED or (
                kind == EventKind.CONNECTION_CLOSED and isinstance(data, dict)
                and not is_abnormal_close(data.get("code"))):
            self.routine.append(event)
            return
        notable = self.notable
        if kind == EventKind.STATE_CHANGED and notable and isinstance(data, dict):
            # A drain repeats its state with each close: the latest count stands for them.
            last = notable[-1]
            if (last.kind == kind and isinstance(last.data, dict)
                    and all(last.data.get(k) == data.get(k) for k in ("node", "state", "mode"))):
                notable[-1] = event
                return
        notable.append(event)

    def recent(self, count: int) -> list[SharedEvent]:
        """At most ``count`` events, oldest first: the latest notable ones, then
        the latest routine ones to fill up to ``count``."""
        if count <= 0:
            return []
        notable = list(self.notable)[-count:]
        room = count - len(notable)
        routine = list(self.routine)[-room:] if room > 0 else []
        return list(heapq.merge(notable, routine, key=lambda event: event.time))

    def __len__(self) -> int:
        return len(self.notable) + len(self.routine)


class Subscription:
    """Events waiting for one subscriber, in bounded memory.

    The fleet calls :meth:`push` synchronously for every event, so it must
    stay O(1): it appends to a bounded buffer, and once a window holds
    ``threshold`` connection events it only counts the rest. :meth:`take`
    turns the window into frames: past the threshold, the first ``head``
    connection events and one ``burst`` event with the counts of the others.
    """

    __slots__ = ("stats_interval", "threshold", "head", "max_other", "pending",
                 "connection_events", "burst_opened", "burst_closed", "dropped",
                 "stats", "wakeup", "node", "backlog")

    def __init__(self, stats_interval: float, threshold: int, head: int, max_other: int,
                 node: str = "") -> None:
        self.stats_interval = stats_interval
        self.node = node
        """The node that summarizes (a ``burst``'s ``node``)."""
        self.threshold = threshold
        self.head = head
        self.max_other = max_other
        self.pending: deque[SharedEvent] = deque()
        self.connection_events = 0
        self.burst_opened = 0
        self.burst_closed = 0
        self.dropped = 0
        self.stats: tuple[dict[str, Any], float] | None = None
        self.wakeup = asyncio.Event()
        self.backlog: list[str] = []
        """Frames of the past, sent before any other (each marked ``backlog``)."""

    def queue_backlog(self, events: list[SharedEvent]) -> int:
        """Send these events of the past first; return how many will be sent."""
        for event in events:
            try:
                self.backlog.append(wire.encode_event(event.kind, event.data, event.time,
                                                      backlog=True))
            except (TypeError, ValueError):
                continue  # logged when it was first sent live, if it was
        if self.backlog:
            self.wakeup.set()
        return len(self.backlog)

    def push(self, kind: str, data: Any, now: float) -> None:
        """Queue one event of this subscriber alone."""
        self.push_shared(SharedEvent(kind, data, now))

    def push_shared(self, event: SharedEvent) -> None:
        """Queue one event that other subscriptions share (encoded once for all)."""
        kind = event.kind
        if kind in _CONNECTION_EVENTS:
            if self.connection_events >= self.threshold:
                if kind == EventKind.CONNECTION_OPENED:
                    self.burst_opened += 1
                else:
                    self.burst_closed += 1
                return
            self.connection_events += 1
        elif len(self.pending) - self.connection_events >= self.max_other:
            self.dropped += 1
            return
        self.pending.append(event)
        self.wakeup.set()

    def push_stats(self, data: dict[str, Any], now: float) -> None:
        # Only the latest sample matters: a newer one replaces an unsent one.
        self.stats = (data, now)
        self.wakeup.set()

    def take(self, now: float) -> list[str]:
        pending, self.pending = self.pending, deque()
        opened, closed, dropped = self.burst_opened, self.burst_closed, self.dropped
        overflow = bool(opened or closed)
        self.connection_events = self.burst_opened = self.burst_closed = self.dropped = 0
        frames, self.backlog = self.backlog, []
        kept = 0
        for event in pending:
            kind = event.kind
            if overflow and kind in _CONNECTION_EVENTS:
                if kept >= self.head:
                    if kind == EventKind.CONNECTION_OPENED:
                        opened += 1
                    else:
                        closed += 1
                    continue
                kept += 1
            frame = event.frame()
            if frame is not None:
                frames.append(frame)
        if opened or closed or dropped:
            frames.append(wire.encode_event(
                EventKind.BURST, {"node": self.node, "opened": opened, "closed": closed,
                                  "dropped": dropped}, now))
        if self.stats is not None:
            data, when = self.stats
            self.stats = None
            frame = _encode_or_drop(EventKind.STATS, data, when)
            if frame is not None:
                frames.append(frame)
        self.wakeup.clear()
        return frames


class EventStream:
    """Every subscriber of one control listener, and the pump of each.

    The stream listens to the fleet only while someone is subscribed: with
    a listener, the hub builds an event dict on every connect and close.
    """

    flush_interval = 0.1
    """Seconds between two event flushes to one subscriber (at most)."""
    burst_threshold = 100
    """Connection events in one flush window past which a burst is summarized."""
    burst_head = 10
    """Connection events sent individually before the ``burst`` summary."""
    max_pending_events = 1000
    """Other events buffered per subscriber; past this they are counted as dropped."""
    final_flush_timeout = 1.0
    """Seconds :meth:`stop` gives subscribers to receive their last events."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.backlog = EventBacklog()
        """This node's recent events (the control listener feeds it from the hub
        and the audit log, whether or not anyone is subscribed)."""
        self._subscriptions: dict[Session, Subscription] = {}
        self._pumps: dict[Session, asyncio.Task[None]] = {}
        self._listening = False
        self._stopped = False

    def subscribe(self, session: Session, stats_interval: float, backlog: int = 0) -> int:
        """Start streaming to a session, or change its stats interval if it already is.

        A new subscription first receives up to ``backlog`` events of the past;
        returns how many (0 for a subscription that was already streaming)."""
        subscription = self._subscriptions.get(session)
        if subscription is not None:
            subscription.stats_interval = stats_interval
            return 0
        subscription = Subscription(stats_interval, self.burst_threshold, self.burst_head,
                                    self.max_pending_events, node=self.fleet.node)
        # Taken in the same step as the subscription starts: no event is
        # missed between the two, and none arrives twice.
        sent = subscription.queue_backlog(self.backlog.recent(backlog))
        self._subscriptions[session] = subscription
        if not self._listening and not self._stopped:
            self.fleet.add_listener(self._on_event)
            self._listening = True
        self._pumps[session] = asyncio.get_running_loop().create_task(
            self._pump(session, subscription))
        return sent

    def unsubscribe(self, session: Session) -> bool:
        """Stop streaming to a session; True if it was subscribed."""
        was = self._subscriptions.pop(session, None) is not None
        if not self._subscriptions and self._listening:
            self.fleet.remove_listener(self._on_event)
            self._listening = False
        pump = self._pumps.pop(session, None)
        if pump is not None:
            pump.cancel()
        return was

    async def stop(self) -> None:
        """Stop listening, and give every subscriber its last events (the final state)."""
        self._stopped = True
        self.fleet.remove_listener(self._on_event)
        self._listening = False
        try:
            async with asyncio.timeout(self.final_flush_timeout):
                await asyncio.gather(
                    *(self._flush(session, sub) for session, sub in self._subscriptions.items()),
                    return_exceptions=True,
                )
        except TimeoutError:
            pass

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        # Called synchronously by the fleet, on its hot path when connections
        # open and close: O(1) per subscriber, no awaiting, no encoding.
        if not self._subscriptions:
            return
        event = SharedEvent(kind, data, time.time())
        for subscription in self._subscriptions.values():
            subscription.push_shared(event)

    async def _pump(self, session: Session, subscription: Subscription) -> None:
        """Flush a subscriber's events at most every ``flush_interval``, and sample stats.

        Stats events use the sampled totals: with many subscribers and
        10,000 connections, each event would otherwise walk every connection."""
        loop = asyncio.get_running_loop()
        try:
            await self._push_stats(subscription)
            next_stats = loop.time() + subscription.stats_interval
            while True:
                timeout = next_stats - loop.time()
                if timeout > 0 and not subscription.wakeup.is_set():
                    try:
                        async with asyncio.timeout(timeout):
                            await subscription.wakeup.wait()
                    except TimeoutError:
                        pass
                if loop.time() >= next_stats:
                    await self._push_stats(subscription)
                    next_stats = loop.time() + subscription.stats_interval
                # While these sends wait for a slow subscriber, new events
                # pile up in the bounded window, not in the socket buffer.
                await self._flush(session, subscription)
                await asyncio.sleep(self.flush_interval)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("event stream to %s failed", session.client)
            await session.connection.close(1011, "event stream failed")

    async def _push_stats(self, subscription: Subscription) -> None:
        answer = await self.fleet.stats(sampled=True)
        subscription.push_stats(answer.reply(), time.time())

    @staticmethod
    async def _flush(session: Session, subscription: Subscription) -> None:
        for frame in subscription.take(time.time()):
            await session.connection.send(frame)
