"""Taps across a cluster: one tap on the requesting node, one part on each node.

A tap started on any node's control plane covers the selected connections of
every node (or of ``node`` alone). The requesting node owns it: one
:class:`~wsconsole.server.tap.Tap`, the one its control connection drains,
which enforces the tap's rates overall and counts every drop. Each node
(the requesting one included) runs its own part: a tap of its hub, which
enforces the same limits on its own connections, so that a busy node never
floods Redis, and sends its records to the owner at most every
``flush_interval``, signed like every other message (``MessageKind.TAP``).

A part never outlives its owner's tap: it ends when the tap ends (the owner
asks every node it asked to start one), when the owner's heartbeat goes or
it comes back as another process, when records reach an owner that no longer
knows the tap (it asks the part to stop), and at the tap's duration in any
case, counted on the part's own node.

Each node checks the operator's role again (the request's ``authorize``),
and audits its part: the ``tap_start`` line names the operator, the selector,
the limits and the node that asked (``requested_on``); the part's end is a
``tap_end`` line with what it showed and dropped.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from .. import wire
from ..errors import WsconsoleError
from ..protocol import Role
from ..registry import Selector
from ..tap import Tap, TapEnd, TapLimits
from .envelope import DropReason, Message, MessageKind

if TYPE_CHECKING:  # pragma: no cover
    from .fleet import ClusterFleet

__all__ = ["ClusterTaps"]

logger = logging.getLogger("wsconsole.cluster")

_BATCH_BYTES = 512 * 1024
"""Payload characters of one message of records, about (far below the envelope's cap)."""
_TOLD_TO_STOP_LIMIT = 1024
"""Parts of unknown taps remembered as told to stop (so each is told once)."""


class _OwnedTap:
    """A tap of this node's control plane over several nodes."""

    __slots__ = ("tap", "nodes", "running", "ended", "last_end", "starting", "local",
                 "dropped_seen", "timer")

    def __init__(self, tap: Tap, nodes: list[str]) -> None:
        self.tap = tap
        self.nodes = set(nodes)
        """Every node asked to run a part (told to stop when the tap ends)."""
        self.running: set[str] = set()
        """The nodes whose part started and has not said it ended."""
        self.ended: set[str] = set()
        """The nodes whose part said it ended (maybe before its reply was read)."""
        self.last_end: TapEnd | None = None
        self.starting = True
        """Until every node asked has answered: a part that ends meanwhile
        does not end the tap (another may still be starting)."""
        self.local: Tap | None = None
        """This node's part, fed by its hub."""
        self.dropped_seen: dict[str, int] = {}
        """Each part's own drop count, as last heard (added to the tap's)."""
        self.timer: asyncio.TimerHandle | None = None


class _Part:
    """This node's part of another node's tap."""

    __slots__ = ("owner_node", "owner_tap", "tap", "wakeup", "requested_by")

    def __init__(self, owner_node: str, owner_tap: str, tap: Tap, requested_by: str) -> None:
        self.owner_node = owner_node
        self.owner_tap = owner_tap
        self.tap = tap
        self.wakeup = asyncio.Event()
        self.requested_by = requested_by


class ClusterTaps:
    """The taps this node owns, and its parts of other nodes' taps."""

    flush_interval = 0.1
    """Seconds between two messages of records of one part (at most)."""

    def __init__(self, fleet: ClusterFleet) -> None:
        self.fleet = fleet
        self.owned: dict[str, _OwnedTap] = {}
        self.parts: dict[tuple[str, str], _Part] = {}
        self._told_to_stop: set[tuple[str, str]] = set()

    # The owner's side

    async def start(self, selector: Selector, limits: TapLimits, *, owner: dict[str, Any],
                    node: str | None) -> Tap:
        fleet = self.fleet
        targets = fleet._selector_targets(selector, node)
        if set(targets) <= {fleet.node}:
            # This node alone: its hub's tap is the tap, as without a cluster.
            return await fleet.local.start_tap(selector, limits, owner=owner)
        tap = Tap(secrets.token_hex(4), selector, limits, node=fleet.node, owner=owner,
                  now=time.monotonic(), started_at=time.time())
        owned = _OwnedTap(tap, targets)
        # Registered first: records of a quick part may arrive before its reply.
        self.owned[tap.id] = owned
        errors: dict[str, WsconsoleError] = {}
        if fleet.node in targets:
            try:
                part = await fleet.local.start_tap(selector, limits, owner=owner)
            except WsconsoleError as exc:
                errors[fleet.node] = exc
            else:
                owned.local = part
                owned.running.add(fleet.node)
                part.notify = lambda: self._local_records(owned)
        remote = [name for name in targets if name != fleet.node]
        role = Role(owner.get("role") or Role.OPERATOR)
        gathered = await fleet._scatter(
            "tap_start", {"selector": selector.to_dict(), **limits.as_dict()}, targets=remote,
            timeout=None, role=role, local=None,
            extra={"tap": tap.id, "client": str(owner.get("client") or "")})
        errors.update(gathered.errors)
        for name in gathered.results:
            if name in owned.nodes and name not in owned.ended and tap.ended is None:
                owned.running.add(name)
        for name, error in sorted(errors.items()):
            tap.missing[name] = f"{error.code}: {error.message}"
        tap.missing.update(gathered.missing)
        if (not owned.running and not owned.ended and not gathered.missing and errors
                and tap.ended is None):
            # No node taps: the refusal is the answer (tap_disabled, too_many_taps...).
            self.stop(tap, TapEnd.STOPPED)
            raise errors.get(node or "", next(iter(errors.values())))
        owned.starting = False
        if owned.local is not None:
            self._local_records(owned)  # it may have ended already (ids all closed)
        if not owned.running and owned.last_end is not None and tap.ended is None:
            self.stop(tap, owned.last_end)  # every part that started has ended
        if tap.ended is None:
            owned.timer = asyncio.get_running_loop().call_later(
                limits.duration, self.stop, tap, TapEnd.DURATION)
        return tap

    def stop(self, tap: Tap, reason: TapEnd) -> bool:
        fleet = self.fleet
        owned = self.owned.pop(tap.id, None)
        if owned is None or owned.tap is not tap:
            return fleet.local.stop_tap(tap, reason)
        ended = tap.end(reason)
        if owned.timer is not None:
            owned.timer.cancel()
        if owned.local is not None:
            fleet.local.stop_tap(owned.local, reason)
        remote = sorted(name for name in owned.nodes if name != fleet.node)
        if remote:
            self._tell_to_stop(remote, tap.id)
        return ended

    def _tell_to_stop(self, nodes: list[str], tap_id: str) -> None:
        fleet = self.fleet
        if not fleet.broker_up:
            return  # each part ends at its duration, or when our heartbeat goes
        fleet._spawn(fleet._scatter("tap_stop", {"tap": tap_id}, targets=nodes,
                                    timeout=wire.READ_TIMEOUT, role=Role.OPERATOR, local=None))

    def _local_records(self, owned: _OwnedTap) -> None:
        part = owned.local
        if part is None:
            return
        for record in part.take():
            self._feed(owned, record)
        self._count_drops(owned, self.fleet.node, part.dropped)
        if part.ended is not None:
            self._part_ended(owned, self.fleet.node, part.ended)

    def _feed(self, owned: _OwnedTap, record: dict[str, Any]) -> None:
        tap = owned.tap
        if record.get("kind") in ("in", "out"):
            size = record.get("size")
            if not tap.admit(size if isinstance(size, int) and size >= 0 else 0,
                             time.monotonic()):
                return  # over the tap's overall rate: counted in tap.dropped
        tap.push(record)

    def _count_drops(self, owned: _OwnedTap, node: str, dropped: Any) -> None:
        if isinstance(dropped, bool) or not isinstance(dropped, int):
            return
        delta = dropped - owned.dropped_seen.get(node, 0)
        if delta > 0:
            owned.dropped_seen[node] = dropped
            owned.tap.dropped += delta
            if owned.tap.notify is not None:
                owned.tap.notify()  # the operator hears of drops even with no record

    def _part_ended(self, owned: _OwnedTap, node: str, reason: TapEnd) -> None:
        owned.running.discard(node)
        owned.ended.add(node)
        owned.last_end = reason
        if not owned.starting and not owned.running and owned.tap.ended is None:
            # Every part is over (its connections closed, its node stopped...).
            self.stop(owned.tap, reason)

    def records_arrived(self, message: Message) -> None:
        """A part's records (``MessageKind.TAP``), for a tap of this node."""
        body = message.body
        tap_id, records = body.get("tap"), body.get("records")
        if not isinstance(tap_id, str) or not isinstance(records, list):
            self.fleet._drop(DropReason.MALFORMED, "tap records without tap or records",
                             self.fleet.node_channel(self.fleet.node))
            return
        owned = self.owned.get(tap_id)
        if owned is None or message.src not in owned.nodes:
            key = (message.src, tap_id)
            if body.get("ended") is None and key not in self._told_to_stop:
                # A part of a tap this process does not run (ended, or started by
                # a process of ours that is gone): it must not go on.
                if len(self._told_to_stop) >= _TOLD_TO_STOP_LIMIT:
                    self._told_to_stop.clear()
                self._told_to_stop.add(key)
                self._tell_to_stop([message.src], tap_id)
            return
        for record in records:
            if isinstance(record, dict):
                record["node"] = message.src  # a node speaks for its own connections only
                self._feed(owned, record)
        self._count_drops(owned, message.src, body.get("dropped"))
        ended = body.get("ended")
        if ended in tuple(TapEnd):
            self._part_ended(owned, message.src, TapEnd(ended))

    # A part, for another node

    async def start_part(self, message: Message, request: wire.Request,
                         role: Role) -> dict[str, Any]:
        """``tap_start`` from another node: this node's part of its tap."""
        owner_tap, client = message.body.get("tap"), message.body.get("client")
        if not isinstance(owner_tap, str) or not owner_tap:
            from ..errors import ProtocolViolation

            raise ProtocolViolation("a cluster tap_start names its tap")
        key = (message.src, owner_tap)
        existing = self.parts.get(key)
        if existing is not None:
            return {"tap": existing.tap.id, "node": self.fleet.node}
        requested_by = client if isinstance(client, str) and client else "an operator"
        tap = await self.fleet.local.start_tap(
            request.selector, TapLimits.from_args(request.args),
            owner={"role": role, "client": requested_by, "requested_on": message.src})
        part = _Part(message.src, owner_tap, tap, requested_by)
        self.parts[key] = part
        tap.notify = part.wakeup.set
        self.fleet._spawn(self._forward(part))
        return {"tap": tap.id, "node": self.fleet.node}

    def stop_part(self, owner_node: str, owner_tap: str,
                  reason: TapEnd = TapEnd.STOPPED) -> dict[str, Any]:
        """``tap_stop`` from the owner (or its heartbeat went): this node's part ends."""
        part = self.parts.get((owner_node, owner_tap))
        if part is None:
            return {"tap": owner_tap, "stopped": False}
        return {"tap": owner_tap, "stopped": self.fleet.local.stop_tap(part.tap, reason)}

    def owner_gone(self, owner_node: str) -> None:
        """``owner_node``'s heartbeat went, or it came back as another process."""
        for part in list(self.parts.values()):
            if part.owner_node == owner_node:
                self.fleet.local.stop_tap(part.tap, TapEnd.DISCONNECTED)

    async def _forward(self, part: _Part) -> None:
        fleet, tap = self.fleet, part.tap
        sent_dropped = 0
        try:
            while True:
                if tap.ended is None and not part.wakeup.is_set():
                    await part.wakeup.wait()
                part.wakeup.clear()
                records = tap.take()
                if records or tap.dropped != sent_dropped or tap.ended is not None:
                    sent_dropped = tap.dropped
                    batches = _batches(records)
                    for index, batch in enumerate(batches):
                        last = index == len(batches) - 1
                        await self._send(part, batch, ended=tap.ended if last else None)
                if tap.ended is not None:
                    break
                # Records that arrive meanwhile wait in the part's bounded queue.
                await asyncio.sleep(self.flush_interval)
        finally:
            self.parts.pop((part.owner_node, part.owner_tap), None)
            self._audit_end(part)
            if tap.ended is None:  # cancelled: the node is leaving
                fleet.local.stop_tap(tap, TapEnd.SERVER_STOPPED)

    async def _send(self, part: _Part, records: list[dict[str, Any]], *,
                    ended: TapEnd | None) -> None:
        fleet, tap = self.fleet, part.tap
        body = {"tap": part.owner_tap, "records": records, "shown": tap.shown,
                "dropped": tap.dropped, "ended": ended}
        try:
            payload = fleet._seal(MessageKind.TAP, body=body, dst=part.owner_node)
        except (TypeError, ValueError):
            # A value JSON cannot carry (the application's user name...): the
            # records are dropped and counted, the end still travels.
            tap.dropped += len(records)
            body["records"], body["dropped"] = [], tap.dropped
            payload = fleet._seal(MessageKind.TAP, body=body, dst=part.owner_node)
        if fleet.broker is None or not await fleet.broker.publish(
                fleet.node_channel(part.owner_node), payload):
            tap.dropped += len(records)  # Redis away: lost, and counted here

    def _audit_end(self, part: _Part) -> None:
        audit = self.fleet.audit_log
        if audit is None:
            return
        tap = part.tap
        summary = tap.summary()
        args = {key: summary[key] for key in ("selector", "direction", "max_bytes", "rate",
                                               "byte_rate", "duration")}
        args["tap"] = part.owner_tap
        role = tap.owner.get("role") or Role.OPERATOR
        entry = audit.entry(role, f"{part.requested_by} via node {part.owner_node}",
                            "tap_end", args)
        entry["decision"] = "ended"
        entry["requested_on"] = part.owner_node
        entry["result"] = {"tap": part.owner_tap, "reason": tap.ended, "shown": tap.shown,
                           "dropped": tap.dropped,
                           "seconds": round(time.time() - tap.started_at, 3)}
        try:
            audit.record(entry)
        except Exception:
            logger.exception("the audit line of a tap's end could not be written")


def _batches(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Records in messages of about :data:`_BATCH_BYTES` each (at least one message)."""
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for record in records:
        data = record.get("data")
        cost = 200 + (len(data) if isinstance(data, str) else 0)
        if batches[-1] and size + cost > _BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(record)
        size += cost
    return batches
