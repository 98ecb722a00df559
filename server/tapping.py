"""The hub's taps: which connections each tap covers, and the hooks that feed it.

No tap, no cost: a connection is hooked only while a tap covers it. The
connection and its protocol are then switched to subclasses of their own
classes (``__class__``, back when the last tap leaves) that override the
connection's ``process_event`` (every frame received, already decompressed)
and the protocol's ``send_frame`` (every frame sent: by its handler, by
websockets' ``broadcast``, by :meth:`Hub.send`; before compression). Nothing
is added to the objects and the classes are never changed: an instance
attribute that shadows a method would sit in the class's shared table of
attribute names for good, and CPython's fast path for that method call (on
every message of every connection) with it. With no tap, the hot path runs
exactly the code it runs without this module.

Membership follows the connections: a connection that opens, or joins or
leaves a topic, while a tap runs is checked against its selector (the hub
tells :class:`Taps`, one check per open, close or topic change, never per
message); a connection that closes leaves a ``closed`` note in its taps, and
a tap of given ids ends once none of them is left.

An application may redact payloads before they leave the process:
``serve(tap_filter=f)`` calls ``f(connection, message)`` for each message a
tap is about to show (str for text, bytes for binary, the whole message) and
shows what it returns (str or bytes), or no payload for None. Payloads never
reach a log: a failing filter is logged by its exception's type alone.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import TapDisabled, TooManyTaps
from .registry import Selector
from .tap import (
    DEFAULT_MAX_TAPS,
    FILTER_MESSAGE_LIMIT,
    TEXT_OPCODE,
    FrameJoiner,
    Tap,
    TapEnd,
    TapLimits,
    TapMessage,
    excerpt,
    selector_matches,
)

if TYPE_CHECKING:  # pragma: no cover
    from websockets.asyncio.server import ServerConnection

    from .hub import Hub
    from .registry import ConnectionRecord

__all__ = ["Taps", "TapFilter", "ConnectionTap", "ensure_enabled"]

logger = logging.getLogger("wsconsole.server")

TapFilter = Callable[["ServerConnection", "str | bytes"], "str | bytes | None"]
"""``serve(tap_filter=...)``: what of a message a tap may show (None: no payload)."""


_HOOKED: dict[int, ConnectionTap] = {}
"""The tapped connections and their protocols, by ``id()``: how the hooks of a
tapped class find their tap without adding anything to the objects."""

_TAPPED_CLASSES: dict[type, type] = {}
"""The tapped subclass of each connection and protocol class, made once."""


def _tapped_class(base: type, hook: str) -> type:
    """A subclass of ``base`` whose frame hooks feed the connection's tap.

    Same layout (no slots, no fields of its own), so ``__class__`` can be
    switched to it and back. It overrides ``process_event`` (connections: every
    frame received, decompressed) and ``send_frame`` (protocols: every frame
    sent, before compression), then calls ``base``'s.
    """
    tapped = _TAPPED_CLASSES.get(base)
    if tapped is not None:
        return tapped
    namespace: dict[str, Any] = {"__slots__": (), "__module__": __name__}
    if hook == "process_event":
        base_process_event = base.process_event

        def process_event(self: Any, event: Any) -> None:
            connection_tap = _HOOKED.get(id(self))
            if connection_tap is not None:
                connection_tap.frame(event, incoming=True)
            base_process_event(self, event)

        namespace["process_event"] = process_event
    else:
        base_send_frame = base.send_frame

        def send_frame(self: Any, frame: Any) -> None:
            connection_tap = _HOOKED.get(id(self))
            if connection_tap is not None:
                connection_tap.frame(frame, incoming=False)
            base_send_frame(self, frame)

        namespace["send_frame"] = send_frame
    tapped = type(f"Tapped{base.__name__}", (base,), namespace)
    _TAPPED_CLASSES[base] = tapped
    return tapped


class ConnectionTap:
    """The hooks of one tapped connection, and the taps it feeds."""

    __slots__ = ("record", "connection", "protocol", "taps", "received", "sent", "owner",
                 "_classes")

    def __init__(self, owner: Taps, record: ConnectionRecord) -> None:
        self.owner = owner
        self.record = record
        self.connection: ServerConnection = record.handle
        self.protocol: Any = self.connection.protocol
        self.taps: list[Tap] = []
        self.received = FrameJoiner(0)
        self.sent = FrameJoiner(0)
        self._classes: tuple[type, type] | None = None

    def install(self) -> bool:
        """Hook the connection; False if its classes cannot be switched."""
        connection, protocol = self.connection, self.protocol
        classes = (type(connection), type(protocol))
        # Switched to a subclass while tapped, and back after: no attribute is
        # added to the objects, so their classes' shared attribute tables (and
        # CPython's fast paths for every other connection) stay as they were.
        try:
            connection.__class__ = _tapped_class(classes[0], "process_event")
            try:
                protocol.__class__ = _tapped_class(classes[1], "send_frame")
            except TypeError:
                connection.__class__ = classes[0]
                raise
        except TypeError as exc:
            logger.warning("cannot tap connection %s: %s", self.record.id, exc)
            return False
        self._classes = classes
        _HOOKED[id(connection)] = _HOOKED[id(protocol)] = self
        return True

    def uninstall(self) -> None:
        if self._classes is None:
            return
        _HOOKED.pop(id(self.connection), None)
        _HOOKED.pop(id(self.protocol), None)
        self.connection.__class__, self.protocol.__class__ = self._classes
        self._classes = None

    def resize(self, keep_for_filter: bool) -> None:
        keep = max((tap.limits.max_bytes for tap in self.taps), default=0)
        if keep_for_filter:
            keep = FILTER_MESSAGE_LIMIT + 1
        self.received.keep = self.sent.keep = keep

    def frame(self, frame: Any, *, incoming: bool) -> None:
        """One frame of this connection (on its path: tapped connections only)."""
        try:
            joiner = self.received if incoming else self.sent
            message = joiner.feed(frame.opcode, frame.data, frame.fin)
            if message is not None:
                self.owner.offer(self, message, incoming=incoming)
        except Exception as exc:  # never the connection's problem; never the payload
            logger.error("tap failed on a %s frame of %s: %s",
                         "received" if incoming else "sent", self.record.id,
                         type(exc).__name__)


class Taps:
    """Every tap of one hub (``hub.taps``, present when the server allows tapping)."""

    def __init__(self, hub: Hub, *, max_taps: int = DEFAULT_MAX_TAPS,
                 tap_filter: TapFilter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.max_taps = max_taps
        """Taps running at once, at most."""
        self.tap_filter = tap_filter
        """The application's redaction of payloads, or None."""
        self.clock = clock
        self.taps: dict[str, Tap] = {}
        """The running taps, by id."""
        self.tapped: dict[str, ConnectionTap] = {}
        """The hooked connections, by connection id."""
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._filter_failures = 0

    @property
    def active(self) -> bool:
        """True while a tap runs (the hub asks before telling of opens and closes)."""
        return bool(self.taps)

    # Starting and stopping

    def start(self, selector: Selector, limits: TapLimits, *,
              owner: Mapping[str, Any]) -> Tap:
        """Start a tap; raises TooManyTaps past ``max_taps``. It ends by itself
        after its duration (and :meth:`stop` ends it sooner)."""
        if len(self.taps) >= self.max_taps:
            raise TooManyTaps(f"{len(self.taps)} taps are running, the most this server "
                              f"allows (max_taps {self.max_taps}); stop one or wait for it "
                              "to end")
        # A unique id prefix stands for its id, now and while the tap runs
        # (AmbiguousId before anything starts).
        selector = self.hub.registry.resolved(selector)
        tap_id = secrets.token_hex(4)
        while tap_id in self.taps:  # pragma: no cover - 32 random bits
            tap_id = secrets.token_hex(4)
        tap = Tap(tap_id, selector, limits, node=self.hub.node, owner=owner,
                  now=self.clock(), started_at=time.time())
        self.taps[tap_id] = tap
        for record in self.hub.registry.select(selector):
            self._attach(tap, record)
        self._timers[tap_id] = asyncio.get_running_loop().call_later(
            limits.duration, self.stop, tap, TapEnd.DURATION)
        if selector.ids is not None and not any(
                tap in ct.taps for ct in self.tapped.values()):
            # Given ids, none of them open: nothing will ever be tapped.
            self.stop(tap, TapEnd.NO_CONNECTIONS)
        return tap

    def stop(self, tap: Tap, reason: TapEnd) -> bool:
        """End a tap and unhook the connections it alone covered; False if it had ended."""
        if not tap.end(reason):
            return False
        self.taps.pop(tap.id, None)
        timer = self._timers.pop(tap.id, None)
        if timer is not None:
            timer.cancel()
        for connection_tap in list(self.tapped.values()):
            if tap in connection_tap.taps:
                self._detach(tap, connection_tap)
        return True

    def stop_all(self, reason: TapEnd) -> None:
        """End every tap (the server is stopping)."""
        for tap in list(self.taps.values()):
            self.stop(tap, reason)

    def summaries(self) -> list[dict[str, Any]]:
        """Every running tap, as ``stats`` shows it to every operator."""
        return [tap.summary() for tap in self.taps.values()]

    # Membership, told by the hub

    def connection_opened(self, record: ConnectionRecord) -> None:
        self.membership_changed(record)

    def membership_changed(self, record: ConnectionRecord) -> None:
        """A connection opened, or joined or left a topic: tap it, or stop, as selectors say."""
        connection_tap = self.tapped.get(record.id)
        for tap in list(self.taps.values()):
            covered = connection_tap is not None and tap in connection_tap.taps
            if selector_matches(tap.selector, record):
                if not covered:
                    connection_tap = self._attach(tap, record)
            elif covered and connection_tap is not None:
                self._detach(tap, connection_tap)
                connection_tap = self.tapped.get(record.id)

    def connection_closed(self, record: ConnectionRecord, code: int, reason: str) -> None:
        connection_tap = self.tapped.pop(record.id, None)
        if connection_tap is None:
            return
        connection_tap.uninstall()
        note = {"time": time.time(), "id": record.id, "node": record.node, "user": record.user,
                "kind": "closed", "code": code, "reason": reason}
        for tap in connection_tap.taps:
            tap.push(dict(note))
            if tap.selector.ids is not None and not any(
                    tap in other.taps for other in self.tapped.values()):
                self.stop(tap, TapEnd.NO_CONNECTIONS)

    def _attach(self, tap: Tap, record: ConnectionRecord) -> ConnectionTap | None:
        connection_tap = self.tapped.get(record.id)
        if connection_tap is None:
            connection_tap = ConnectionTap(self, record)
            if not connection_tap.install():
                return None
            self.tapped[record.id] = connection_tap
        connection_tap.taps.append(tap)
        connection_tap.resize(self.tap_filter is not None)
        return connection_tap

    def _detach(self, tap: Tap, connection_tap: ConnectionTap) -> None:
        connection_tap.taps.remove(tap)
        if connection_tap.taps:
            connection_tap.resize(self.tap_filter is not None)
        else:
            connection_tap.uninstall()
            self.tapped.pop(connection_tap.record.id, None)

    # A message of a tapped connection

    def offer(self, connection_tap: ConnectionTap, message: TapMessage, *,
              incoming: bool) -> None:
        now: float | None = None
        shown: Any = _NOT_FILTERED
        record = connection_tap.record
        for tap in connection_tap.taps:
            if not (tap.want_in if incoming else tap.want_out):
                continue
            if now is None:
                now = self.clock()
            if not tap.admit(message.size, now):
                continue
            if shown is _NOT_FILTERED:
                # Once per message, whatever the number of taps, and only for
                # a message that some tap is about to show.
                shown = self._filtered(connection_tap, message)
            entry = {"time": time.time(), "id": record.id, "node": record.node,
                     "user": record.user, "kind": "in" if incoming else "out",
                     "opcode": "text" if message.opcode == TEXT_OPCODE else "binary",
                     "size": message.size}
            if shown is None:
                entry["data"], entry["truncated"], entry["filtered"] = None, False, True
            else:
                entry["data"], entry["truncated"] = excerpt(message.opcode, shown,
                                                            tap.limits.max_bytes)
            tap.push(entry)

    def _filtered(self, connection_tap: ConnectionTap, message: TapMessage) -> bytes | None:
        """The payload a tap may show: the message's, or what the filter made of it."""
        tap_filter = self.tap_filter
        if tap_filter is None:
            return message.head
        if not message.complete:
            return None  # too large to give the filter whole: shown without payload
        value: str | bytes = (message.head.decode("utf-8", "replace")
                              if message.opcode == TEXT_OPCODE else bytes(message.head))
        try:
            result = tap_filter(connection_tap.connection, value)
        except Exception as exc:
            self._filter_failures += 1
            # The type only: an exception's message may quote the payload.
            if self._filter_failures == 1 or self._filter_failures % 1000 == 0:
                logger.error("tap_filter raised %s (%d times); payloads it fails on are "
                             "not shown", type(exc).__name__, self._filter_failures)
            return None
        if result is None:
            return None
        if isinstance(result, str):
            return result.encode("utf-8", "replace")
        if isinstance(result, (bytes, bytearray, memoryview)):
            return bytes(result)
        self._filter_failures += 1
        if self._filter_failures == 1 or self._filter_failures % 1000 == 0:
            logger.error("tap_filter returned %s, not str, bytes or None; payload not shown",
                         type(result).__name__)
        return None


_NOT_FILTERED = object()


def ensure_enabled(taps: Taps | None) -> Taps:
    """The hub's taps, or TapDisabled saying how to turn them on."""
    if taps is None:
        raise TapDisabled("the tap is off on this server: start it with `wsconsole serve "
                          "--allow-tap`, or serve(..., allow_tap=True)")
    return taps
