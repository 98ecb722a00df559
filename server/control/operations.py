"""The control operations: one method per wire operation, ``(session, request) -> result``.

Requests arrive validated (:func:`wsconsole.server.wire.parse_request`) and
authorized; an operation reads or acts on the server and returns the result
of its reply, or raises a :class:`WsconsoleError` that becomes the error reply.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING, Any, Callable

from .. import wire
from ..config import ControlConfig
from ..errors import ServerStateError, UnknownConnection, WsconsoleError
from ..hub import HubState
from .events import EventStream

if TYPE_CHECKING:  # pragma: no cover
    from ..hub import Hub
    from .listener import Session

__all__ = ["Operations", "ReplyFirst"]

logger = logging.getLogger("wsconsole.control")


class ReplyFirst:
    """An operation's result, plus work to start only once the reply is sent."""

    __slots__ = ("result", "then")

    def __init__(self, result: Any, then: Callable[[], None]) -> None:
        self.result = result
        self.then = then


class Operations:
    """The operations of one control listener."""

    def __init__(self, hub: Hub, config: ControlConfig, events: EventStream) -> None:
        self.hub = hub
        self.config = config
        self.events = events
        # Built once, so that an operation of the wire without a method here
        # fails at start, not at its first request.
        self._methods: dict[str, Callable[[Session, wire.Request], Any]] = {
            name: getattr(self, name) for name in wire.OPERATIONS}

    def run(self, session: Session, request: wire.Request) -> Any:
        """The result of one request (a :class:`ReplyFirst` for a shutdown)."""
        return self._methods[request.op](session, request)

    def hello(self, session: Session, request: wire.Request) -> dict[str, Any]:
        return {
            "server": "wsconsole",
            "protocol": wire.PROTOCOL_VERSION,
            "node": self.hub.node,
            "role": session.role,
            "operations": list(wire.OPERATIONS),
            "mutating": sorted(wire.MUTATING_OPERATIONS),
            "state": self.hub.state,
            "max_request_bytes": self.config.max_request_bytes,
        }

    def list(self, session: Session, request: wire.Request) -> dict[str, Any]:
        args = request.args
        registry = self.hub.registry
        page = registry.query(
            user=args["user"], path=args["path"], topic=args["topic"],
            id_prefix=args["id_prefix"], sort=args["sort"], limit=args["limit"],
            cursor=args["cursor"], refresh=self.hub.refresh,
        )
        result: dict[str, Any] = {
            "connections": [record.summary() for record in page.records],
            "total": page.total,
            "next_cursor": page.next_cursor,
        }
        if args["groups"]:
            limit = args["group_limit"]
            truncated = False
            groups: dict[str, dict[str, int]] = {}
            for name, counts in (("users", registry.user_counts()),
                                 ("paths", registry.path_counts()),
                                 ("topics", registry.topic_counts())):
                if len(counts) > limit:
                    truncated = True
                    # O(n log limit): 10,000 distinct users, the 200 largest.
                    groups[name] = dict(heapq.nlargest(limit, counts.items(),
                                                       key=lambda kv: kv[1]))
                else:
                    groups[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            result["groups"] = groups
            result["groups_truncated"] = truncated
        return result

    def get(self, session: Session, request: wire.Request) -> dict[str, Any]:
        record = self.hub.registry.get(request.args["id"])
        if record is None:
            raise UnknownConnection(f"no open connection with id {request.args['id']}")
        self.hub.refresh(record)
        return record.detail()

    def send(self, session: Session, request: wire.Request) -> dict[str, Any]:
        result = self.hub.send(request.selector, wire.decode_payload(request.args),
                               dry_run=request.args["dry_run"])
        return result.as_dict()

    def disconnect(self, session: Session, request: wire.Request) -> dict[str, Any]:
        args = request.args
        return {"count": self.hub.disconnect(request.selector, args["code"], args["reason"])}

    def shutdown(self, session: Session, request: wire.Request) -> ReplyFirst:
        args = request.args
        hub = self.hub
        mode = args["mode"]
        # Check here what hub.shutdown would refuse, so that a refusal is the
        # reply, and the reply can go out before the shutdown starts.
        escalation = mode == "graceful" and hub.shutdown_mode == "keep_alive"
        if hub.state != HubState.SERVING and not (escalation and hub.state == HubState.DRAINING):
            raise ServerStateError(f"the server is already {hub.state}")
        result = {"mode": mode, "state": HubState.DRAINING,
                  "connections": len(hub.registry), "deadline": args["deadline"]}

        def start_shutdown() -> None:
            try:
                hub.shutdown(mode, code=args["code"], reason=args["reason"],
                             deadline=args["deadline"])
            except WsconsoleError as exc:  # pragma: no cover - raced another shutdown
                logger.warning("shutdown after reply failed: %s", exc)

        return ReplyFirst(result, start_shutdown)

    def stats(self, session: Session, request: wire.Request) -> dict[str, Any]:
        return self.hub.stats()

    def subscribe(self, session: Session, request: wire.Request) -> dict[str, Any]:
        interval = float(request.args["stats_interval"])
        self.events.subscribe(session, interval)
        return {"subscribed": True, "stats_interval": interval}

    def unsubscribe(self, session: Session, request: wire.Request) -> dict[str, Any]:
        return {"subscribed": False, "was_subscribed": self.events.unsubscribe(session)}
