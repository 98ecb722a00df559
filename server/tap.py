"""The live message tap, its pure part: limits, rate limiting, excerpts, records.

A tap shows an operator the data messages that selected connections receive
and send: time, connection, user, direction, opcode, size and the first bytes
of the payload. This module holds what does not move bytes or tasks:

- :class:`TapLimits`: direction, excerpt size, rates and duration, checked
  with the ranges both sides of the control plane agree on;
- :class:`FrameJoiner`: a message out of its frames (fragments joined), keeping
  only the bytes a tap can show;
- :func:`excerpt`: the first bytes of a payload as the wire carries them
  (text as text, binary as hex), cut at a character boundary;
- :class:`Tap`: one tap's state: its bounded queue of records, its rate
  buckets, what it showed and dropped, and why it ended.

The hub's edge (:mod:`wsconsole.server.tapping`) feeds taps from the
connections; the control plane (``server/control/tap_stream.py``) drains them
to the operator's control connection. Nothing here ever logs a payload.

In cluster mode a tap covers every node's connections (or one node's): each
node runs its own part (a :class:`Tap` of its hub, enforcing the limits on its
connections), and the requesting node's :class:`Tap` is fed by all the parts
through the broker, enforcing the limits overall. Records name their node.

Pure: must never import asyncio, websockets or textual.
"""

from __future__ import annotations

import codecs
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Mapping

from .patterns import parse_pattern
from .registry import Selector

__all__ = [
    "TapDirection",
    "TapEnd",
    "TapLimits",
    "TapMessage",
    "FrameJoiner",
    "Tap",
    "excerpt",
    "selector_matches",
    "limits_problem",
    "DEFAULT_MAX_BYTES",
    "MAX_MAX_BYTES",
    "DEFAULT_RATE",
    "MAX_RATE",
    "DEFAULT_BYTE_RATE",
    "MAX_BYTE_RATE",
    "DEFAULT_DURATION",
    "MAX_DURATION",
    "DEFAULT_MAX_TAPS",
    "FILTER_MESSAGE_LIMIT",
    "TEXT_OPCODE",
    "BINARY_OPCODE",
    "CONTINUATION_OPCODE",
]

DEFAULT_MAX_BYTES = 256
"""Bytes of a payload a tap shows unless asked for another figure."""
MAX_MAX_BYTES = 65_536
"""The most bytes of one payload a tap may show (0 shows none: sizes only)."""
DEFAULT_RATE = 50
"""Messages per second one tap shows, by default; past it they are dropped and counted."""
MAX_RATE = 1_000
"""The most messages per second one tap may ask for."""
DEFAULT_BYTE_RATE = 32_768
"""Payload bytes per second one tap shows, by default."""
MAX_BYTE_RATE = 1_048_576
"""The most payload bytes per second one tap may ask for."""
DEFAULT_DURATION = 300.0
"""Seconds after which a tap ends on its own, by default (five minutes)."""
MAX_DURATION = 3_600.0
"""The longest a tap may run (an hour)."""
DEFAULT_MAX_TAPS = 4
"""Taps running at once on one server, by default."""
FILTER_MESSAGE_LIMIT = 1_048_576
"""Bytes of one message kept for the application's ``tap_filter``; a larger
message is not given to the filter, and its payload is not shown (fail closed)."""

TEXT_OPCODE = 1
BINARY_OPCODE = 2
CONTINUATION_OPCODE = 0
"""RFC 6455 opcodes (websockets' ``Opcode`` is an IntEnum of the same values)."""


class TapDirection(StrEnum):
    """Which messages a tap shows: ``direction`` of ``tap_start``; each record's ``kind``."""

    IN = "in"
    """Received from the client."""
    OUT = "out"
    """Sent to the client (by its handler, a broadcast or an operator)."""


class TapEnd(StrEnum):
    """Why a tap ended: ``reason`` of ``tap_ended`` and of its audit line."""

    STOPPED = "stopped"
    """Its operator stopped it (``tap_stop``)."""
    DURATION = "duration"
    """It ran for its whole ``duration``."""
    NO_CONNECTIONS = "no_connections"
    """It tapped given connection ids, and every one of them has closed."""
    DISCONNECTED = "disconnected"
    """The control connection that started it went away."""
    SERVER_STOPPED = "server_stopped"
    """The server stopped."""


@dataclass(frozen=True, slots=True)
class TapLimits:
    """What one tap shows, and how much of it: the arguments of ``tap_start``."""

    direction: TapDirection | None = None
    """Only messages in this direction; None for both."""
    max_bytes: int = DEFAULT_MAX_BYTES
    """Payload bytes shown per message (0 to :data:`MAX_MAX_BYTES`)."""
    rate: int = DEFAULT_RATE
    """Messages shown per second at most (bursts of one second's worth)."""
    byte_rate: int = DEFAULT_BYTE_RATE
    """Payload bytes shown per second at most."""
    duration: float = DEFAULT_DURATION
    """Seconds after which the tap ends on its own."""

    def __post_init__(self) -> None:
        problem = limits_problem(self.direction, self.max_bytes, self.rate, self.byte_rate,
                                 self.duration)
        if problem is not None:
            raise ValueError(problem)

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> TapLimits:
        """From ``tap_start``'s arguments (None takes the default); ValueError if out of range."""
        direction = args.get("direction")
        kwargs: dict[str, Any] = {
            "direction": TapDirection(direction) if direction in tuple(TapDirection) else direction,
        }
        for name in ("max_bytes", "rate", "byte_rate", "duration"):
            if args.get(name) is not None:
                kwargs[name] = args[name]
        return cls(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        """The wire form (``direction`` null for both)."""
        return {"direction": self.direction, "max_bytes": self.max_bytes, "rate": self.rate,
                "byte_rate": self.byte_rate, "duration": self.duration}


def limits_problem(direction: Any, max_bytes: Any, rate: Any, byte_rate: Any,
                   duration: Any) -> str | None:
    """What is wrong with a tap's limits, as one sentence, or None.

    The one rule: the server checks it when ``tap_start`` arrives, and
    ``wsconsole tap`` before it connects.
    """
    if direction is not None and direction not in tuple(TapDirection):
        return "direction must be 'in' or 'out' (or null for both)"
    for name, value, low, high in (("max_bytes", max_bytes, 0, MAX_MAX_BYTES),
                                   ("rate", rate, 1, MAX_RATE),
                                   ("byte_rate", byte_rate, 1, MAX_BYTE_RATE)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"{name} must be a whole number from {low} to {high}"
    if (isinstance(duration, bool) or not isinstance(duration, (int, float))
            or not 0 < duration <= MAX_DURATION):
        return f"duration must be more than 0 and at most {MAX_DURATION:g} seconds"
    return None


def selector_matches(selector: Selector, record: Any) -> bool:
    """Does ``selector`` match this connection record (its kinds ANDed, its
    user, path and topic as patterns if it has them)? Ids are whole ids here: a tap resolves
    its prefixes when it starts (``ConnectionRegistry.resolved``)."""
    if selector.ids is not None and record.id not in selector.ids:
        return False
    if not selector.patterns:
        return ((selector.user is None or record.user == selector.user)
                and (selector.path is None or record.path == selector.path)
                and (selector.topic is None or selector.topic in record.topics))
    if selector.user is not None and not parse_pattern(selector.user, "user").matches(
            record.user):
        return False
    if selector.path is not None and not parse_pattern(selector.path, "path").matches(
            record.path):
        return False
    if selector.topic is not None:
        topic = parse_pattern(selector.topic, "topic")
        if not (topic.literal in record.topics if topic.exact
                else any(map(topic.matches, record.topics))):
            return False
    return True


def excerpt(opcode: int, data: bytes, max_bytes: int) -> tuple[str | None, bool]:
    """The first ``max_bytes`` of a payload as a tap shows it, and whether it was cut.

    Text as text (cut before a character that would not fit whole; bytes
    that are not UTF-8 become U+FFFD), binary as lowercase hex. The console
    escapes control characters when it shows either, as it does every string
    a client chose. ``max_bytes`` 0 shows nothing (None).
    """
    truncated = len(data) > max_bytes
    if max_bytes == 0:
        return None, truncated
    head = data[:max_bytes]
    if opcode == TEXT_OPCODE:
        # final=False: a character cut in two by the limit is left out, not
        # turned into a replacement character.
        text, _ = codecs.utf_8_decode(bytes(head), "replace", not truncated)
        return text, truncated
    return bytes(head).hex(), truncated


@dataclass(frozen=True, slots=True)
class TapMessage:
    """One data message, joined from its frames."""

    opcode: int
    """:data:`TEXT_OPCODE` or :data:`BINARY_OPCODE`."""
    size: int
    """Payload bytes of the whole message (after decompression)."""
    head: bytes
    """Its first bytes: at least what the joiner was asked to keep, or all of it."""

    @property
    def complete(self) -> bool:
        """True if :attr:`head` is the whole payload."""
        return len(self.head) == self.size


class FrameJoiner:
    """Data messages out of one direction's frames, keeping at most ``keep`` bytes of each.

    A message in one frame (the usual case) is passed on without a copy; a
    fragmented one is joined up to ``keep`` bytes while its size is counted.
    Control frames are not messages and are ignored.
    """

    __slots__ = ("keep", "_opcode", "_size", "_parts", "_kept")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        """Bytes of each message to keep (the most any tap or the filter needs)."""
        self._opcode: int | None = None
        self._size = 0
        self._parts: list[bytes] = []
        self._kept = 0

    def feed(self, opcode: int, data: bytes, fin: bool) -> TapMessage | None:
        """One frame; the message it completes, or None."""
        if opcode == TEXT_OPCODE or opcode == BINARY_OPCODE:
            if fin:
                self._opcode = None
                return TapMessage(opcode, len(data), data)
            self._opcode, self._size, self._parts, self._kept = opcode, 0, [], 0
        elif opcode != CONTINUATION_OPCODE or self._opcode is None:
            return None
        self._size += len(data)
        if self._kept < self.keep:
            part = bytes(data[: self.keep - self._kept])
            self._parts.append(part)
            self._kept += len(part)
        if not fin:
            return None
        message = TapMessage(self._opcode, self._size, b"".join(self._parts))
        self._opcode, self._parts = None, []
        return message


class _Bucket:
    """``rate`` units per second, bursts of ``burst``; ``now`` from a monotonic clock."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now

    def has(self, amount: float, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        return self.tokens >= amount


Notify = Callable[[], None]


class Tap:
    """One running tap: whom it taps, its limits, its bounded queue, its counts.

    Fed synchronously from the connections' frames (:meth:`admit`, then
    :meth:`push`), drained by its consumer (:meth:`take`). The queue holds
    at most two seconds' worth of messages at the tap's rate: a consumer that
    falls behind loses records, counted in :attr:`dropped`, never memory.
    """

    def __init__(self, tap_id: str, selector: Selector, limits: TapLimits, *, node: str,
                 owner: Mapping[str, Any], now: float, started_at: float) -> None:
        self.id = tap_id
        self.selector = selector
        self.limits = limits
        self.node = node
        """The node this tap runs on (every record names it too)."""
        self.owner = dict(owner)
        """Who started it (``role``, ``client``), for stats and the audit log."""
        self.started_at = started_at
        """Wall-clock start (seconds since the epoch)."""
        self.ends_at = started_at + limits.duration
        """Wall-clock time at which it ends on its own."""
        self.shown = 0
        """Records queued for the operator (messages and notes)."""
        self.dropped = 0
        """Messages not shown: over a rate limit, or the queue was full."""
        self.ended: TapEnd | None = None
        """Why it ended, once it has."""
        self.missing: dict[str, str] = {}
        """Cluster mode: the nodes whose part of the tap did not start, and why."""
        self.notify: Notify | None = None
        """Called when there is something to take (set by the consumer)."""
        self.want_in = limits.direction in (None, TapDirection.IN)
        self.want_out = limits.direction in (None, TapDirection.OUT)
        self.max_pending = max(10, 2 * limits.rate)
        self._pending: deque[dict[str, Any]] = deque()
        self._messages = _Bucket(limits.rate, limits.rate, now)
        self._bytes = _Bucket(limits.byte_rate, max(limits.byte_rate, limits.max_bytes), now)

    def admit(self, size: int, now: float) -> bool:
        """May a message of ``size`` payload bytes be shown now? Takes its share of
        both rates if so; counts it dropped if not."""
        if self.ended is not None:
            return False
        cost = min(size, self.limits.max_bytes)
        messages, payload = self._messages, self._bytes
        if (len(self._pending) >= self.max_pending or not messages.has(1.0, now)
                or not payload.has(cost, now)):
            self.dropped += 1
            return False
        messages.tokens -= 1.0
        payload.tokens -= cost
        return True

    def push(self, record: dict[str, Any]) -> None:
        """Queue one record (an admitted message, or a note such as a close)."""
        if self.ended is not None:
            return
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self._pending.append(record)
        self.shown += 1
        if self.notify is not None:
            self.notify()

    def take(self) -> list[dict[str, Any]]:
        """Every queued record, oldest first; the queue is empty afterwards."""
        pending, self._pending = self._pending, deque()
        return list(pending)

    def end(self, reason: TapEnd) -> bool:
        """End the tap (the first reason wins); False if it had ended already."""
        if self.ended is not None:
            return False
        self.ended = reason
        if self.notify is not None:
            self.notify()
        return True

    def summary(self) -> dict[str, Any]:
        """What ``stats`` (every console) and the audit log say of a tap: never a payload."""
        summary = {"tap": self.id, "node": self.node, "selector": self.selector.to_dict(),
                   **self.limits.as_dict(), "role": self.owner.get("role"),
                   "client": self.owner.get("client"), "started_at": self.started_at,
                   "ends_at": self.ends_at, "shown": self.shown, "dropped": self.dropped}
        if self.owner.get("requested_on") is not None:
            summary["requested_on"] = self.owner["requested_on"]
        if self.missing:
            summary["missing"] = dict(self.missing)
        return summary
