"""The hub: the asyncio edge around the registry.

It registers connections as their handshakes complete and forgets them when
their TCP connections are lost, sends to and disconnects selected connections,
closes slow consumers, and runs the one shutdown state machine (both modes,
and the escalation of a drain). Its :class:`~wsconsole.server.sampler.Sampler`
keeps the traffic totals, rates and last activity.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from itertools import islice
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import BINARY, TEXT, CloseCode, Frame
from websockets.protocol import OPEN

from .errors import ServerStateError
from .limits import HandshakeLimiter
from .protocol import EventKind, HubState, ShutdownMode
from .redaction import DEFAULT_RULES, RedactionRules
from .patterns import parse_pattern
from .registry import ConnectionRecord, ConnectionRegistry, Selector
from .tap import TapEnd
from .sampler import Sampler, Totals, current_totals, kernel_queued, pending_bytes, read_connection

if TYPE_CHECKING:  # pragma: no cover
    from websockets.asyncio.server import Server, ServerConnection

    from .tapping import Taps

__all__ = [
    "Hub",
    "SendResult",
    "FleetSendResult",
    "ShutdownDecision",
    "SLOW_CONSUMER_CODE",
    "SLOW_CONSUMER_REASON",
    "DEFAULT_SLOW_CONSUMER_LIMIT",
]

logger = logging.getLogger("wsconsole.server")

SLOW_CONSUMER_CODE = CloseCode.POLICY_VIOLATION  # 1008
"""Close code sent to a client whose pending bytes passed the limit."""
SLOW_CONSUMER_REASON = "slow consumer: write buffer over limit"
"""Close reason sent with :data:`SLOW_CONSUMER_CODE`."""
DEFAULT_SLOW_CONSUMER_LIMIT = 2 * 1024 * 1024
"""Bytes pending for one client (userspace write buffer plus kernel send
queue, :func:`~wsconsole.server.sampler.pending_bytes`) before it is closed
as a slow consumer."""
SLOW_CONSUMER_CLOSE_TIMEOUT = 2.0
"""Seconds a slow consumer gets to read up to the close frame before it is
aborted. A client that stopped reading never reaches the frame behind its
backlog, so it sees 1006; the server's record, event and counts say 1008."""


@dataclass(slots=True)
class SendResult:
    """What :meth:`Hub.send` did."""

    recipients: int
    """Open connections the selector matched."""
    delivered: int
    """Messages written to a connection's buffer."""
    skipped: int
    """Matched connections that were closing or closed, or could not be written."""
    sample: list[str] = field(default_factory=list)
    """Up to ten recipient ids (all runs; handy for a dry run)."""
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients,
            "delivered": self.delivered,
            "skipped": self.skipped,
            "sample": self.sample,
            "dry_run": self.dry_run,
        }


@dataclass(slots=True)
class FleetSendResult:
    """What :meth:`Hub.send_everywhere` did, summed over the nodes."""

    recipients: int
    delivered: int
    skipped: int
    per_node: dict[str, dict[str, int]] = field(default_factory=dict)
    """Each node's ``recipients``, ``delivered`` and ``skipped``."""
    missing: dict[str, str] = field(default_factory=dict)
    """Nodes that did not answer in time, and why."""


@dataclass(frozen=True, slots=True)
class ShutdownDecision:
    """Whether a shutdown may start now (:meth:`Hub.may_shutdown`)."""

    allowed: bool
    reason: str = ""
    """Why it is refused, as one sentence for an operator."""
    escalation: bool = False
    """A graceful close that cuts a keep-alive drain short."""


Listener = Callable[[str, dict[str, Any]], None]


class Hub:
    """Every open connection of one server, and what an operator can do to them."""

    def __init__(
        self,
        node: str,
        *,
        slow_consumer_limit: int | None = DEFAULT_SLOW_CONSUMER_LIMIT,
        sample_interval: float = 1.0,
        redaction: RedactionRules = DEFAULT_RULES,
    ) -> None:
        self.node = node
        """This process's name; every record carries it."""
        self.redaction = redaction
        """What records and log lines hide: the built-in rule plus the header
        and query names the operator added."""
        self.registry = ConnectionRegistry()
        """The open connections."""
        self.closed_totals = Totals()
        """Traffic of the connections that have closed (the open ones' is on their records)."""
        self.sampler = Sampler(self, sample_interval)
        """Totals, rates and last activity, once per ``sample_interval``: what the
        metrics and stats events read, so that neither walks the connections."""
        self.slow_consumer_limit = slow_consumer_limit
        """Bytes pending for one client (userspace buffer plus kernel send
        queue) before it is closed; None disables."""
        self.state = HubState.SERVING
        self.started_at = time.time()
        """Wall-clock start time (seconds since the epoch)."""
        self.listen: list[str] = []
        """Addresses the public server listens on, ``host:port``."""
        self.opened_total = 0
        """Connections registered since start."""
        self.closed_by_code: Counter[int] = Counter()
        """Closed connections by close code."""
        self.rejected_by_status: Counter[int] = Counter()
        """Refused handshakes by HTTP status."""
        self.handshakes = HandshakeLimiter()
        """Opening handshakes in progress and those shed past the caps (no caps
        until :func:`~wsconsole.server.serve` sets them)."""
        self.accept_errors: Counter[str] = Counter()
        """Failures to accept a TCP connection for lack of resources, by errno
        name (EMFILE, ENFILE, ENOBUFS, ENOMEM)."""
        self.slow_consumer_disconnects = 0
        """Connections closed for not reading."""
        self.operator_sends = 0
        """Calls of :meth:`send` that sent (dry runs excluded)."""
        self.control_requests: Counter[tuple[str, str]] = Counter()
        """Control-plane requests by (operation, outcome); outcome is "ok" or an
        error code. Incremented by the control listener."""
        self.control_connections_refused = 0
        """Control handshakes refused because ``max_connections`` were open."""
        self.shutdown_mode: ShutdownMode | None = None
        """How the server is stopping, once a shutdown started."""
        self.shutdown_deadline: float | None = None
        """Wall-clock time at which a keep-alive drain closes the rest."""
        self.drain_started_with: int | None = None
        """Connections open when a keep-alive drain started."""
        self.shutdown_escalation: dict[str, Any] | None = None
        """How a keep-alive drain was cut short, once it was: the data of its
        ``drain_escalated`` event (cause, served, closing, code, ...)."""
        self.taps: Taps | None = None
        """The live message taps, when the server allows them (``serve(allow_tap=True)``)."""

        self.id_prefix = ""
        """Put before every connection id: ``NODE/`` in a cluster, where ids
        are unique across the nodes and name the node that owns them."""
        self.cluster: Any = None
        """The :class:`~wsconsole.server.cluster.fleet.ClusterFleet` of this
        node in cluster mode; None for a process on its own."""

        self._listeners: list[Listener] = []
        self._observers: list[Any] = []
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._plans: dict[tuple[str, ...] | Selector, _SendPlan] = {}
        self._plans_version = -1
        # Connections that wrote the first frames of a fragmented message, by
        # id (Hub.fragment_sent), until a send sees them done.
        self._fragmenting: dict[str, ConnectionRecord] = {}

    # Lifecycle, driven by WsconsoleServer

    def attach(self, server: Server, listen: Iterable[str]) -> None:
        """Bind the hub to the running websockets server."""
        self._server = server
        self.listen = list(listen)
        self.sampler.start()

    def mark_stopped(self) -> None:
        """Called once the websockets server has closed and handlers returned."""
        self.sampler.stop()
        if self.taps is not None:
            self.taps.stop_all(TapEnd.SERVER_STOPPED)
        if self.state != HubState.STOPPED:
            self.state = HubState.STOPPED
            self.emit(EventKind.STATE_CHANGED, {"node": self.node, "state": self.state,
                                                "connections": 0})

    # Events

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(kind, data)`` for each event (see ``wire.EventKind``)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling a listener."""
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    def add_observer(self, observer: Any) -> None:
        """Register an object with optional ``on_opened(record)``, ``on_send(result)``,
        ``on_latency(s)``, ``on_closed(record, code)`` and ``on_sample()`` (once
        per sample interval) methods (the metrics use this)."""
        self._observers.append(observer)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Publish an event to every listener (used by the control plane too)."""
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:
                logger.exception("event listener failed")

    def observe(self, method: str, *args: Any) -> None:
        """Call ``method(*args)`` of every observer that has it."""
        for observer in self._observers:
            callback = getattr(observer, method, None)
            if callback is not None:
                try:
                    callback(*args)
                except Exception:
                    logger.exception("observer %s failed", method)

    # Registration, driven by the tracked connection

    def register(self, connection: ServerConnection, user: str, remote: str) -> ConnectionRecord:
        """Create and index the record of a connection whose handshake succeeded."""
        request = connection.request
        response = connection.response
        assert request is not None and response is not None
        path, _, query = request.path.partition("?")
        now = time.time()
        record = ConnectionRecord(
            self._new_id(),
            node=self.node,
            user=user,
            path=path,
            # Secrets in the query (?access_token=...) never leave the server.
            query=self.redaction.redact_query(query),
            remote=remote,
            # Keep websockets' Headers objects: no copy per connection.
            request_headers=request.headers,
            response_headers=response.headers,
            subprotocol=connection.subprotocol,
            extensions=tuple(ext.name for ext in connection.protocol.extensions),
            connected_at=now,
            handle=connection,
            redaction=self.redaction,
        )
        before = self.registry.version
        self.registry.add(record)
        if self._plans:
            def joined(key: tuple[str, ...], plan: _SendPlan) -> None:
                kind = key[0]
                if kind == "everyone" or (kind == "user" and key[1] == record.user) or (
                        kind == "path" and key[1] == record.path) or (
                        kind == "topic" and key[1] in record.topics):
                    plan.add(record)

            self._plans_follow(before, joined)
        self.opened_total += 1
        connection.wsc_record = record  # type: ignore[attr-defined]
        taps = self.taps
        if taps is not None and taps.active:
            taps.connection_opened(record)
        if self._observers:
            self.observe("on_opened", record)
        if self._listeners:
            self.emit(EventKind.CONNECTION_OPENED, record.summary())
        return record

    def _new_id(self) -> str:
        prefix = self.id_prefix
        if not prefix:
            return self.registry.new_id()
        while True:
            candidate = prefix + self.registry.new_id()
            if candidate not in self.registry:
                return candidate

    def unregister(self, connection: ServerConnection) -> None:
        """Forget a connection; called from ``connection_lost``, so on every exit."""
        record: ConnectionRecord | None = getattr(connection, "wsc_record", None)
        if record is None:
            return
        before = self.registry.version
        if self.registry.remove(record.id) is None:
            return
        # The record and the connection refer to each other: left so, every
        # closed connection would wait for the cycle collector (a full
        # collection, once it has lived a second or two), and with
        # --gc-freeze stay in memory until the next thaw. Without the cycle,
        # a connection closed cleanly is freed at once by its reference count.
        record.handle = None
        self._fragmenting.pop(record.id, None)
        if self._plans:
            self._plans_follow(before, lambda key, plan: plan.remove(record))
        closed = self.closed_totals
        closed.msgs_in += record.msgs_in
        closed.bytes_in += record.bytes_in
        closed.msgs_out += record.msgs_out
        closed.bytes_out += record.bytes_out
        code, reason = _close_code(connection)
        self.closed_by_code[code] += 1
        taps = self.taps
        if taps is not None and taps.active:
            taps.connection_closed(record, code, reason)
        self.observe("on_closed", record, code)
        if self._listeners:
            self.emit(
                EventKind.CONNECTION_CLOSED,
                {
                    "id": record.id,
                    "node": record.node,
                    "user": record.user,
                    "path": record.path,
                    "code": code,
                    "reason": reason,
                    "msgs_in": record.msgs_in,
                    "msgs_out": record.msgs_out,
                    "duration": time.time() - record.connected_at,
                },
            )
        if self.state == HubState.DRAINING and self._listeners:
            self.emit(EventKind.STATE_CHANGED, {"node": self.node, "state": self.state,
                                                "connections": len(self.registry)})

    def handshake_rejected(self, status: int) -> None:
        """Count a handshake refused with an HTTP error status (3xx-5xx)."""
        self.rejected_by_status[status] += 1

    def latency_measured(self, seconds: float) -> None:
        """Called by the tracked connection when a keepalive pong arrives."""
        self.observe("on_latency", seconds)

    # Reading

    @property
    def totals(self) -> Totals:
        """Traffic since start: closed connections' counts plus the open ones'.

        Summed when read (a walk over open records, about 1 ms per 10,000),
        so that counting a message touches only its record.
        """
        return current_totals(self.closed_totals, self.registry.records())

    def record_of(self, connection: ServerConnection) -> ConnectionRecord | None:
        """The record of a connection, or None if it is not (or no longer) open."""
        return getattr(connection, "wsc_record", None)

    def refresh(self, record: ConnectionRecord) -> None:
        """Sample one record's live fields from its connection now (a detail
        view); a listing shows them as of the last sample instead."""
        self.registry.sample_record(record, time.time(), read_connection)
        if record.handle is not None:
            record.kernel_queued = kernel_queued(record.handle.transport)

    def stats(self, *, sampled: bool = False) -> dict[str, Any]:
        """Node, state, uptime, connections, totals and rates.

        ``sampled`` takes the totals of the last sample (at most one sample
        interval old) instead of walking every connection: for periodic
        readers, such as each subscriber's stats events.
        """
        now = time.time()
        totals = self.sampler.totals if sampled and self.sampler.running else self.totals
        return {
            "node": self.node,
            "state": self.state,
            "listen": self.listen,
            "started_at": self.started_at,
            "uptime": now - self.started_at,
            "connections": len(self.registry),
            "opened_total": self.opened_total,
            "closed_total": sum(self.closed_by_code.values()),
            "totals": totals.as_dict(),
            "rates": dict(self.sampler.rates),
            "shutdown_mode": self.shutdown_mode,
            "shutdown_deadline": self.shutdown_deadline,
            "shutdown_escalation": self.shutdown_escalation,
            # Every console shows that a tap is running, and whose.
            "taps": self.taps.summaries() if self.taps is not None else [],
        }

    # Topics

    def subscribe(self, connection: ServerConnection, topic: str) -> bool:
        """Put a connection in a topic; False if it already was, or is gone."""
        record = self.record_of(connection)
        if record is None or record.id not in self.registry:
            return False
        before = self.registry.version
        changed = self.registry.subscribe(record.id, topic)
        if changed and self._plans:
            self._plans_follow(before, lambda key, plan: plan.add(record)
                               if key == ("topic", topic) else None)
        if changed and self.taps is not None and self.taps.active:
            self.taps.membership_changed(record)
        return changed

    def unsubscribe(self, connection: ServerConnection, topic: str) -> bool:
        """Take a connection out of a topic; False if it was not in it."""
        record = self.record_of(connection)
        if record is None:
            return False
        before = self.registry.version
        changed = self.registry.unsubscribe(record.id, topic)
        if changed and self._plans:
            self._plans_follow(before, lambda key, plan: plan.remove(record)
                               if key == ("topic", topic) else None)
        if changed and self.taps is not None and self.taps.active:
            self.taps.membership_changed(record)
        return changed

    # Operations

    def select(self, selector: Selector) -> list[ConnectionRecord]:
        """The open connections a selector matches."""
        return self.registry.select(selector)

    def send(
        self, selector: Selector, message: str | bytes, *, dry_run: bool = False
    ) -> SendResult:
        """Send one message to every selected connection without awaiting any.

        Like websockets' ``broadcast``: the message is written to each buffer
        at once, a slow client never delays the others, closing connections
        are skipped, and a client whose pending bytes then pass the
        slow-consumer limit is closed.

        The frame is serialized once per message (by websockets' ``Frame``)
        and the same bytes are written to every connection that negotiated
        no extension: a broadcast then costs about what ``transport.write``
        costs (tests/benchmarks/bench_broadcast.py). A connection with an
        extension (permessage-deflate keeps its own compressor) goes through
        its own protocol, as websockets' ``broadcast`` does.

        Who shares the frame is worked out once per selector and registry
        version (a :class:`_SendPlan`), not per message: a send then reads,
        per recipient, its transport (the write) and its record (the
        counts), nothing else. A connection that starts closing leaves the
        plans as it writes its close frame (:meth:`closing_started`).

        What a client holds (write buffer plus the kernel's queue, a system
        call) is measured only once a connection has been sent an eighth of
        the limit since it was last measured, so a broadcast costs no call
        per recipient and the limit is overshot by at most an eighth plus one
        message.
        """
        if isinstance(message, str):
            payload = message.encode()
            opcode, method = TEXT, "send_text"
        elif isinstance(message, (bytes, bytearray, memoryview)):
            payload = bytes(message)
            opcode, method = BINARY, "send_binary"
        else:
            raise TypeError("message must be str or bytes")
        if dry_run:
            records = self.registry.select(selector)
            return SendResult(len(records), 0, 0, [record.id for record in records[:10]],
                              dry_run=True)
        plan = self._plan(selector)
        frame = Frame(opcode, payload).serialize(mask=False, extensions=[])
        # Three passes. First, who gets what. The plan's plain connections
        # (no extension, no debug logger) get the shared frame: websockets
        # would have written exactly these bytes, as long as the connection
        # is open, is not halfway through a fragmented message and is not
        # tapped. All three are known without reading each connection: one
        # that starts closing writes its close frame or its end of stream in
        # the same step, and our send_data hook moves it to the plans'
        # closing ones then (Hub.closing_started); the fragmenting and the
        # tapped (self._fragmenting, taps.tapped) take the long way below.
        # Nor is protocol.writes read: websockets drains it (send_data) in
        # the same step as it fills it. Both pinned by tests/server/test_dropin.py.
        skipped = len(plan.closing)
        plain = _SharedFrame(frame, plan.plain, plan.transports)
        shared = [plain]
        checked = plan.others
        fragmenting = self._fragmenting
        if fragmenting:
            _settle(fragmenting)
        tapped = self.taps.tapped if self.taps is not None else None
        if fragmenting or tapped:
            plain.records, plain.transports, held = _without(
                plan.plain, plan.transports, fragmenting, tapped)
            if held:
                checked = checked + held
        # The long way, per recipient: what websockets' broadcast reads, and
        # what makes a connection's bytes its own.
        compressed: dict[tuple[int, int], _SharedFrame | None] = {}
        own: list[ConnectionRecord] = []
        if checked:
            settled = _SharedFrame(frame)
            shared.append(settled)
            for record in checked:
                connection = record.handle
                protocol = connection.protocol
                if protocol._state is not OPEN or connection.send_in_progress is not None:
                    skipped += 1
                    continue
                if not (protocol.writes or protocol.expect_continuation_frame
                        or protocol.debug or (tapped and record.id in tapped)):
                    extensions = protocol.extensions
                    if not extensions:
                        settled.records.append(record)
                        settled.transports.append(connection.transport)
                        continue
                    if len(extensions) == 1:
                        group = _compressed_once(extensions[0], opcode, payload,
                                                 compressed, shared)
                        if group is not None:
                            group.records.append(record)
                            group.transports.append(connection.transport)
                            continue
                try:
                    getattr(protocol, method)(payload)
                    connection.send_data()  # counts, as for any frame
                except Exception:
                    skipped += 1
                else:
                    own.append(record)
        # Then the writes, in a loop as tight as the floor's: Python work
        # between two writes makes the kernel's loopback path dearer too (the
        # reader's wake-ups), beyond its own cost (bench_broadcast.py).
        for group in shared:
            frame, failed = group.frame, group.failed
            for transport in group.transports:
                try:
                    transport.write(frame)
                except Exception:
                    failed.append(transport)
        # Last, the counts and the slow-consumer rule.
        limit = self.slow_consumer_limit
        measure_every = (limit or 0) >> 3
        slow: list[ConnectionRecord] = []
        delivered = len(own)
        for group in shared:
            sharing = group.records
            if group.failed:
                skipped += len(group.failed)
                failed_set = set(map(id, group.failed))
                sharing = [r for r, t in zip(sharing, group.transports)
                           if id(t) not in failed_set]
            delivered += len(sharing)
            frame_size = len(group.frame)
            if limit is None:
                for record in sharing:
                    record.bytes_out += frame_size
                    record.msgs_out += 1
                continue
            for record in sharing:
                bytes_out = record.bytes_out = record.bytes_out + frame_size
                record.msgs_out += 1
                if bytes_out - record.bytes_out_measured > measure_every:
                    record.bytes_out_measured = bytes_out
                    if pending_bytes(record.handle.transport) > limit:
                        slow.append(record)
        for record in own:
            if limit is not None and record.bytes_out - record.bytes_out_measured > measure_every:
                record.bytes_out_measured = record.bytes_out
                if pending_bytes(record.handle.transport) > limit:
                    slow.append(record)
        for record in slow:
            self.close_slow_consumer(record)
        result = SendResult(len(plan), delivered, skipped, plan.sample())
        self.operator_sends += 1
        self.observe("on_send", result)
        return result

    def _plan(self, selector: Selector) -> _SendPlan:
        """The send plan of a selector as of the registry's current version."""
        plans = self._plans
        version = self.registry.version
        if self._plans_version != version:
            plans.clear()
            self._plans_version = version
        key = _plan_key(selector)
        plan = plans.get(key)
        if plan is None:
            if len(plans) >= _PLANS_KEPT:
                del plans[next(iter(plans))]
            plan = plans[key] = _SendPlan(self.registry.select(selector))
        return plan

    def _plans_follow(self, before: int, change: Callable[[tuple[str, ...], _SendPlan], None],
                      ) -> None:
        """The groups changed (the registry was at version ``before``): apply
        ``change`` to the plans of everyone and of one group (a connection
        opened or closed, joined or left a topic: no plan is made again
        under churn); drop the others (ids, several fields, wildcards)."""
        plans = self._plans
        if self._plans_version != before:  # the registry changed behind our back
            plans.clear()
            return
        for key in list(plans):
            if type(key) is tuple:
                change(key, plans[key])
            else:
                del plans[key]
        self._plans_version = self.registry.version

    def closing_started(self, record: ConnectionRecord) -> None:
        """A connection wrote its close frame or its end of stream (the
        tracked connection's ``send_data`` saw it): its protocol left OPEN in
        the same step (websockets queues the one as it changes the other,
        and drains the queue right after), so :meth:`send` skips it from now
        on without reading its state."""
        for plan in self._plans.values():
            plan.set_closing(record)

    def fragment_sent(self, record: ConnectionRecord) -> None:
        """A connection wrote a frame that does not end its message (the
        tracked connection's ``send_data`` saw it): until it is seen done,
        :meth:`send` checks it the long way (websockets sets
        ``send_in_progress`` in the same step, before the first fragment)."""
        self._fragmenting[record.id] = record

    async def send_everywhere(
        self, selector: Selector, message: str | bytes, *, timeout: float | None = None
    ) -> FleetSendResult:
        """Send one message to the selected connections of every node of the
        cluster, this one included, and return the summed counts.

        The websockets FAQ's "call ``message_user`` in each process", done:
        ``await hub.send_everywhere(Selector(user="ann"), "hi")`` reaches ann
        on whichever node she is connected to. Waits at most ``timeout``
        seconds (default 5) for the other nodes' counts; the nodes that did
        not answer in time are named in ``missing`` (what was sent, was sent).
        Without cluster mode, this node's :meth:`send`.
        """
        if self.cluster is None:
            result = self.send(selector, message)
            return FleetSendResult(result.recipients, result.delivered, result.skipped,
                                   {self.node: {"recipients": result.recipients,
                                                "delivered": result.delivered,
                                                "skipped": result.skipped}})
        answer = await self.cluster.send_everywhere(selector, message, timeout=timeout)
        result = answer.result
        return FleetSendResult(result["recipients"], result["delivered"], result["skipped"],
                               result["per_node"], dict(answer.missing))

    def disconnect(
        self, selector: Selector, code: int = CloseCode.NORMAL_CLOSURE, reason: str = ""
    ) -> int:
        """Start closing every selected connection; return how many."""
        count = 0
        for record in self.registry.select(selector):
            connection = record.handle
            if connection.protocol.state is not OPEN:
                continue
            self._spawn(connection.close(code, reason))
            count += 1
        return count

    def close_slow_consumer(self, record: ConnectionRecord) -> None:
        """Close a client whose pending bytes passed the limit: send 1008, and
        abort the TCP connection if it has not read up to the close frame
        within :data:`SLOW_CONSUMER_CLOSE_TIMEOUT`."""
        connection = record.handle
        if connection.protocol.state is not OPEN:
            return
        transport = connection.transport
        buffered = transport.get_write_buffer_size()
        record.kernel_queued = queued = kernel_queued(transport)
        self.slow_consumer_disconnects += 1
        logger.warning(
            "closing slow consumer %s (user %s): %d bytes buffered, %s in the kernel's send queue",
            record.id, record.user, buffered, "unknown" if queued is None else queued,
        )
        self.emit(EventKind.SLOW_CONSUMER, {"id": record.id, "node": self.node,
                                            "user": record.user,
                                            "path": record.path, "buffered": buffered,
                                            "kernel_queued": queued})
        self._spawn(self._close_or_abort(connection, SLOW_CONSUMER_CODE,
                                         SLOW_CONSUMER_REASON, SLOW_CONSUMER_CLOSE_TIMEOUT))

    @staticmethod
    async def _close_or_abort(
        connection: ServerConnection, code: int, reason: str, timeout: float
    ) -> None:
        # A client that does not read never reaches the close frame behind its
        # buffered data, so give it a short while, then drop the TCP connection.
        try:
            async with asyncio.timeout(timeout):
                await connection.close(code, reason)
        except TimeoutError:
            connection.transport.abort()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Shutdown: one state machine. SERVING -> DRAINING (graceful or
    # keep_alive) -> STOPPED (mark_stopped, once the server has closed); a
    # keep-alive drain may be escalated to graceful, once.

    def may_shutdown(self, mode: str) -> ShutdownDecision:
        """May a shutdown in ``mode`` start now? The one answer to this question:
        the control plane, ``server.close()`` and the signal handlers ask here."""
        if self._server is None:
            return ShutdownDecision(False, "the server is not running")
        if self.state == HubState.SERVING:
            return ShutdownDecision(True)
        if (mode == ShutdownMode.GRACEFUL and self.state == HubState.DRAINING
                and self.shutdown_mode == ShutdownMode.KEEP_ALIVE):
            return ShutdownDecision(True, escalation=True)
        return ShutdownDecision(False, f"the server is already {self.state}")

    def shutdown(
        self,
        mode: str = ShutdownMode.GRACEFUL,
        *,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "",
        deadline: float | None = None,
    ) -> None:
        """Start stopping the server; returns at once (``server.wait_closed()`` waits).

        ``graceful``: stop accepting and close every connection with ``code``.
        ``keep_alive``: stop accepting; open connections keep working until they
        close, or until ``deadline`` seconds pass, when the rest are closed
        gracefully with ``code``. A graceful shutdown during a keep-alive drain
        closes the rest at once. Raises :class:`ServerStateError` when
        :meth:`may_shutdown` refuses.
        """
        try:
            mode = ShutdownMode(mode)
        except ValueError:
            raise ValueError("mode must be 'graceful' or 'keep_alive'") from None
        decision = self.may_shutdown(mode)
        if not decision.allowed:
            raise ServerStateError(decision.reason)
        assert self._server is not None
        self.shutdown_mode = mode
        if decision.escalation:
            self._escalate("shutdown", code, reason)
            return
        self.state = HubState.DRAINING
        if mode == ShutdownMode.KEEP_ALIVE:
            self.drain_started_with = len(self.registry)
            if deadline is not None:
                self.shutdown_deadline = time.time() + deadline
        self.emit(EventKind.STATE_CHANGED, {"node": self.node, "state": self.state,
                                            "mode": mode,
                                            "connections": len(self.registry),
                                            **({"deadline": self.shutdown_deadline}
                                               if self.shutdown_deadline else {})})
        if mode == ShutdownMode.GRACEFUL:
            self._server.close(close_connections=True, code=code, reason=reason)
        else:
            self._server.close(close_connections=False)
            if deadline is not None:
                self._spawn(self._deadline(deadline, code, reason))

    async def _deadline(self, seconds: float, code: int, reason: str) -> None:
        await asyncio.sleep(seconds)
        if self.state == HubState.DRAINING and self.shutdown_escalation is None:
            logger.info("keep-alive deadline reached; closing %d connections",
                        len(self.registry))
            self.shutdown_mode = ShutdownMode.GRACEFUL
            self._escalate("deadline", code, reason)

    def _escalate(self, cause: str, code: int, reason: str) -> None:
        """Cut a keep-alive drain short: close the rest, and say so (once) with
        how many closed on their own and how many the server closes now."""
        closing = len(self.registry)
        started_with = max(self.drain_started_with or 0, closing)
        self.shutdown_escalation = {
            "node": self.node, "cause": cause, "started_with": started_with,
            "served": started_with - closing, "closing": closing, "code": code,
            "reason": reason, "deadline": self.shutdown_deadline, "at": time.time(),
        }
        self.emit(EventKind.DRAIN_ESCALATED, dict(self.shutdown_escalation))
        self._close_all(code, reason)

    def _close_all(self, code: int, reason: str) -> None:
        for record in self.registry:
            if record.handle.protocol.state is OPEN:
                self._spawn(record.handle.close(code, reason))


class _SharedFrame:
    """One serialized frame of a :meth:`Hub.send`, and who gets these very bytes."""

    __slots__ = ("frame", "records", "transports", "failed")

    def __init__(self, frame: bytes, records: list[ConnectionRecord] | None = None,
                 transports: list[Any] | None = None) -> None:
        self.frame = frame
        self.records: list[ConnectionRecord] = [] if records is None else records
        self.transports: list[Any] = [] if transports is None else transports
        self.failed: list[Any] = []


_PLANS_KEPT = 8
"""Send plans kept (the selectors sent to lately)."""


def _plan_key(selector: Selector) -> tuple[str, ...] | Selector:
    """What a plan is kept under: ``("everyone",)`` or ``(field, name)`` for
    one group by its exact name, plans that follow the groups' changes; else
    the selector itself, a plan made again after any change."""
    if selector.ids is not None:
        return selector
    key: tuple[str, ...] = ("everyone",)
    for field_name in ("user", "path", "topic"):
        value = getattr(selector, field_name)
        if value is not None:
            if len(key) > 1:
                return selector
            if selector.patterns:
                value = parse_pattern(value, field_name).literal
                if value is None:
                    return selector
            key = (field_name, value)
    return key


class _SendPlan:
    """Who a selector's sends go to.

    Made from what does not change while a connection is open: its
    protocol's extensions and debug flag, its transport. ``plain`` are the
    records of open connections without either, with their ``transports``
    side by side (a send writes to the transports and counts on the
    records, each list in turn, and touches nothing else of a connection);
    ``others`` go through their own protocols (or a frame compressed once).

    A connection that opens, closes, joins or leaves a group, or starts
    closing, is added, taken out or set aside in O(1) (positions by id; a
    removal moves the last entry into the gap): under churn a plan is not
    made again. About 70 bytes per connection: two list slots and one dict
    entry.
    """

    __slots__ = ("plain", "transports", "others", "at", "closing")

    def __init__(self, records: list[ConnectionRecord]) -> None:
        self.plain: list[ConnectionRecord] = []
        self.transports: list[Any] = []
        self.others: list[ConnectionRecord] = []
        self.at: dict[str, int] = {}
        """Each record's place by id: i in ``plain``, ~i in ``others``, or
        :data:`_CLOSING`."""
        self.closing: dict[str, ConnectionRecord] = {}
        """Plain connections that started closing, by id: skipped (closing
        is for good; a dict, so that each one's leaving costs O(1) when all
        of them close at once)."""
        for record in records:
            self._place(record)

    def __len__(self) -> int:
        """Recipients: every record the selector matches, closing ones included."""
        return len(self.at)

    def sample(self) -> list[str]:
        """Up to ten recipients' ids."""
        return [record.id for records in (self.plain, self.others,
                                          list(islice(self.closing.values(), 10)))
                for record in records[:10]][:10]

    def _place(self, record: ConnectionRecord) -> None:
        connection = record.handle
        protocol = connection.protocol
        if protocol.extensions or protocol.debug:
            # The long way reads their state at each send.
            self.at[record.id] = ~len(self.others)
            self.others.append(record)
        elif protocol._state is not OPEN:
            # Closed before this plan was made (closing_started came first).
            self.at[record.id] = _CLOSING
            self.closing[record.id] = record
        else:
            self.at[record.id] = len(self.plain)
            self.plain.append(record)
            self.transports.append(connection.transport)

    def add(self, record: ConnectionRecord) -> None:
        """A connection that joined since the plan was made."""
        if record.id not in self.at:
            self._place(record)

    def remove(self, record: ConnectionRecord) -> None:
        """A connection that left since the plan was made."""
        index = self.at.pop(record.id, None)
        if index is None:
            return
        if index == _CLOSING:
            del self.closing[record.id]
        elif index >= 0:
            self._swap_out_plain(index)
        else:
            others = self.others
            last = others.pop()
            if ~index < len(others):
                others[~index] = last
                self.at[last.id] = index

    def _swap_out_plain(self, index: int) -> None:
        plain, transports = self.plain, self.transports
        last, last_transport = plain.pop(), transports.pop()
        if index < len(plain):
            plain[index], transports[index] = last, last_transport
            self.at[last.id] = index

    def set_closing(self, record: ConnectionRecord) -> None:
        """A plain connection that started closing: skipped from now on."""
        index = self.at.get(record.id)
        if index is None or index < 0:  # not here, closing already, or the long way's
            return
        self._swap_out_plain(index)
        self.at[record.id] = _CLOSING
        self.closing[record.id] = record


_CLOSING = -(1 << 62)
"""``_SendPlan.at`` of a closing connection (no index of ``others`` comes near)."""


def _settle(fragmenting: dict[str, ConnectionRecord]) -> None:
    """Forget the connections whose fragmented message is over."""
    for key, record in list(fragmenting.items()):
        connection = record.handle
        protocol = connection.protocol
        if connection.send_in_progress is None and not (
                protocol.expect_continuation_frame or protocol.writes):
            del fragmenting[key]


def _without(
    records: list[ConnectionRecord], transports: list[Any],
    fragmenting: dict[str, ConnectionRecord], tapped: dict[str, Any] | None,
) -> tuple[list[ConnectionRecord], list[Any], list[ConnectionRecord]]:
    """``records`` and their ``transports`` less the fragmenting or tapped
    ones, and those apart (they take the long way)."""
    kept: list[ConnectionRecord] = []
    kept_transports: list[Any] = []
    held: list[ConnectionRecord] = []
    for record, transport in zip(records, transports):
        key = record.id
        if key in fragmenting or (tapped and key in tapped):
            held.append(record)
        else:
            kept.append(record)
            kept_transports.append(transport)
    return kept, kept_transports, held


def _compressed_once(
    extension: Any, opcode: Any, payload: bytes,
    compressed: dict[tuple[int, int], _SharedFrame | None], shared: list[_SharedFrame],
) -> _SharedFrame | None:
    """The shared frame of a connection whose one extension is permessage-deflate
    without context takeover on our side, compressed once per settings; None
    for any other extension (its own protocol then encodes).

    Without context takeover websockets compresses each message with a fresh
    compressor and keeps none (``PerMessageDeflate.encode``): the bytes depend
    on the window size and the compression settings only, and sending them
    leaves the extension as it was (pinned by tests/server/test_dropin.py).
    """
    if type(extension) is not PerMessageDeflate or not extension.local_no_context_takeover:
        return None
    # The settings dict comes from the server's extension factory: one object
    # for every connection it negotiated.
    key = (extension.local_max_window_bits, id(extension.compress_settings))
    try:
        return compressed[key]
    except KeyError:
        pass
    # A compressor of its own, not the connection's: nothing of it is touched.
    encoder = PerMessageDeflate(True, True, extension.remote_max_window_bits,
                                extension.local_max_window_bits,
                                extension.compress_settings)
    group = _SharedFrame(Frame(opcode, payload).serialize(mask=False, extensions=[encoder]))
    compressed[key] = group
    shared.append(group)
    return group


def _close_code(connection: ServerConnection) -> tuple[int, str]:
    """The close code that ended a connection, as the server saw it.

    The code received from the client if any; else the code the server sent
    (a slow consumer that never answered still shows 1008); else 1006.
    """
    protocol = connection.protocol
    if protocol.close_rcvd is not None:
        return protocol.close_rcvd.code, protocol.close_rcvd.reason
    if protocol.close_sent is not None:
        return protocol.close_sent.code, protocol.close_sent.reason
    return CloseCode.ABNORMAL_CLOSURE, ""
