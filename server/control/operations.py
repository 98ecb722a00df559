"""The control operations: one coroutine per wire operation, ``(session, request) -> result``.

Requests arrive validated (:func:`wsconsole.server.wire.parse_request`) and
authorized; an operation asks the :class:`~wsconsole.server.fleet.Fleet` and
returns the result of its reply, or raises a :class:`WsconsoleError` that
becomes the error reply. Nothing here depends on which Fleet it is.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .. import wire
from ..config import ControlConfig
from ..errors import WsconsoleError
from ..protocol import ShutdownMode
from ..tap import TapLimits
from .audit import AuditLog
from .events import EventStream
from .tap_stream import TapStreams

if TYPE_CHECKING:  # pragma: no cover
    from ..fleet import Fleet
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
    """The operations of one control listener, against one fleet."""

    def __init__(self, fleet: Fleet, config: ControlConfig, events: EventStream,
                 audit: AuditLog, taps: TapStreams | None = None) -> None:
        self.fleet = fleet
        self.config = config
        self.events = events
        self.audit = audit
        self.taps = taps if taps is not None else TapStreams(fleet, audit)
        # Built once, so that an operation of the wire without a method here
        # fails at start, not at its first request.
        self._methods: dict[str, Callable[[Session, wire.Request], Awaitable[Any]]] = {
            name: getattr(self, name) for name in wire.OPERATIONS}

    async def run(self, session: Session, request: wire.Request) -> Any:
        """The result of one request (a :class:`ReplyFirst` for a shutdown)."""
        return await self._methods[request.op](session, request)

    async def hello(self, session: Session, request: wire.Request) -> dict[str, Any]:
        return {
            "server": "wsconsole",
            "protocol": wire.PROTOCOL_VERSION,
            "node": self.fleet.node,
            "cluster": self.fleet.cluster,
            "role": session.role,
            "operations": list(wire.OPERATIONS),
            "mutating": sorted(wire.MUTATING_OPERATIONS),
            "state": self.fleet.state,
            "max_request_bytes": self.config.max_request_bytes,
        }

    async def list(self, session: Session, request: wire.Request) -> dict[str, Any]:
        args = request.args
        answer = await self.fleet.list(
            user=args["user"], path=args["path"], topic=args["topic"],
            id_prefix=args["id_prefix"], sort=args["sort"], limit=args["limit"],
            cursor=args["cursor"], groups=args["groups"], group_limit=args["group_limit"],
            node=args["node"], timeout=args["timeout"],
        )
        reply = answer.reply()
        since = args["groups_since"]
        if since is not None and isinstance(reply, dict) and reply.get("groups_version") == since:
            # The client holds these groups already: the page alone, with the version.
            reply.pop("groups", None)
            reply.pop("groups_truncated", None)
        return reply

    async def get(self, session: Session, request: wire.Request) -> dict[str, Any]:
        args = request.args
        return (await self.fleet.get(args["id"], node=args["node"],
                                     timeout=args["timeout"])).reply()

    async def send(self, session: Session, request: wire.Request) -> dict[str, Any]:
        answer = await self.fleet.send(request.selector, wire.decode_payload(request.args),
                                       dry_run=request.args["dry_run"], role=session.role,
                                       node=request.args["node"],
                                       timeout=request.args["timeout"])
        return answer.reply()

    async def disconnect(self, session: Session, request: wire.Request) -> dict[str, Any]:
        args = request.args
        answer = await self.fleet.disconnect(request.selector, code=args["code"],
                                             reason=args["reason"], role=session.role,
                                             node=args["node"], timeout=args["timeout"])
        return answer.reply()

    async def shutdown(self, session: Session, request: wire.Request) -> ReplyFirst:
        args = request.args
        answer = await self.fleet.shutdown(ShutdownMode(args["mode"]), code=args["code"],
                                           reason=args["reason"], deadline=args["deadline"],
                                           role=session.role, node=args["node"],
                                           timeout=args["timeout"])

        def start() -> None:
            try:
                answer.start()
            except WsconsoleError as exc:  # pragma: no cover - raced another shutdown
                logger.warning("shutdown after reply failed: %s", exc)

        return ReplyFirst(answer.reply(), start)

    async def stats(self, session: Session, request: wire.Request) -> dict[str, Any]:
        # The audit log of this control listener: the one that records what
        # its operators do, whichever nodes the fleet spans.
        args = request.args
        answer = await self.fleet.stats(node=args["node"], timeout=args["timeout"])
        return {**answer.reply(), "audit": self.audit.status().as_dict()}

    async def nodes(self, session: Session, request: wire.Request) -> dict[str, Any]:
        args = request.args
        return (await self.fleet.nodes(node=args["node"], timeout=args["timeout"])).reply()

    async def subscribe(self, session: Session, request: wire.Request) -> dict[str, Any]:
        interval = float(request.args["stats_interval"])
        sent = self.events.subscribe(session, interval, request.args["backlog"])
        result: dict[str, Any] = {"subscribed": True, "stats_interval": interval}
        if request.args["backlog"]:
            result["backlog"] = sent  # only when asked: the reply an old client knows
        return result

    async def unsubscribe(self, session: Session, request: wire.Request) -> dict[str, Any]:
        return {"subscribed": False, "was_subscribed": self.events.unsubscribe(session)}

    async def tap_start(self, session: Session, request: wire.Request) -> dict[str, Any]:
        # The limits were checked when the request was parsed.
        return await self.taps.start(session, request.selector, TapLimits.from_args(request.args),
                               node=request.args.get("node"))

    async def tap_stop(self, session: Session, request: wire.Request) -> dict[str, Any]:
        return self.taps.stop(session, request.args["tap"])
