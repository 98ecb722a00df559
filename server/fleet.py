"""The Fleet: what the control plane asks of "the server", on one node or many.

The control operations (:mod:`wsconsole.server.control.operations`) run
against this one interface: list, get, send (and its dry run), disconnect,
stats, shutdown, nodes, and the event source. :class:`LocalFleet` answers for
the hub of this process, directly. A cluster implementation answers for many
nodes by scatter-gather, which is why every method is a coroutine and every
answer names the nodes that did not answer (:attr:`Answer.missing`): a
partial answer is an answer. Authentication, transport and the audit log sit
above the Fleet and do not change with it.

Answers carry their result in the shape the wire carries it (see the README's
"Control plane reference"), so that answers from other nodes, which arrive as
JSON, merge the same way as the local one.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Callable

from .errors import ServerStateError, TapDisabled, UnknownConnection, UnknownNode
from .protocol import HubState, NodeHealth, Role, ShutdownMode
from .registry import SUMMARY_FIELDS

if TYPE_CHECKING:  # pragma: no cover
    from .hub import Hub, Listener
    from .registry import ConnectionRegistry, Page, Selector
    from .tap import Tap, TapEnd, TapLimits

__all__ = ["Answer", "ShutdownAnswer", "Fleet", "LocalFleet", "node_page", "per_node_send"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """The answer of a fleet to one request."""

    result: dict[str, Any]
    """What the nodes that answered said, merged, in the wire's shape."""
    missing: dict[str, str] = field(default_factory=dict)
    """Nodes that did not answer, and why (e.g. "no reply before the deadline")."""

    def reply(self) -> dict[str, Any]:
        """The result of the wire reply: ``missing`` is added only when not empty,
        so that a full answer has the shape a single node always had."""
        if not self.missing:
            return self.result
        return {**self.result, "missing": dict(self.missing)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownAnswer(Answer):
    """An accepted shutdown: the answer to send, then the shutdown to start.

    The reply goes out before :attr:`start` runs: with no connection left, a
    stopping node closes its control listener, and with it the operator's
    connection. A cluster starts the node the operator is attached to last.
    """

    start: Callable[[], None]
    """Start what was accepted; called once the reply has been sent."""


class Fleet(ABC):
    """The servers one control plane drives: their connections, traffic and state.

    Every request method takes ``node`` (act on or read from that node only;
    :class:`UnknownNode` for a name the fleet does not know) and ``timeout``
    (seconds to wait for the other nodes; None: the wire's default for the
    operation). A fleet of one node has nothing to wait for.
    """

    control_url: str | None = None
    """Where operators reach this node's control plane (set by the control listener)."""
    cluster: str | None = None
    """The cluster's name (``hello``'s ``cluster``); None for a single process."""
    audit_log: Any = None
    """This node's audit log (set by the control listener): in a cluster, a node
    records there what it does for an operator attached to another node."""

    @property
    @abstractmethod
    def node(self) -> str:
        """The name of the node this control plane runs on."""

    @property
    @abstractmethod
    def state(self) -> HubState:
        """The state of that node."""

    @abstractmethod
    async def list(
        self,
        *,
        user: str | None,
        path: str | None,
        topic: str | None,
        id_prefix: str | None,
        sort: str,
        limit: int,
        cursor: str | None,
        groups: bool,
        group_limit: int,
        node: str | None,
        timeout: float | None,
    ) -> Answer:
        """A page of connections (``connections``, ``total``, ``next_cursor``) and,
        with ``groups``, the ``group_limit`` largest groups of each kind (``nodes``
        counts every node's connections).

        Every argument is required: the defaults are the wire's
        (``wire.OPERATIONS``), filled in when a request is parsed.

        Raises :class:`SelectorError` for a bad sort key, limit or cursor."""

    @abstractmethod
    async def get(self, connection_id: str, *, node: str | None = None,
                  timeout: float | None = None) -> Answer:
        """One connection in full; raises :class:`UnknownConnection` if it is not open."""

    @abstractmethod
    async def send(self, selector: Selector, message: str | bytes, *,
                   dry_run: bool = False, role: Role, node: str | None = None,
                   timeout: float | None = None) -> Answer:
        """Send one message to the selected connections (``recipients``,
        ``delivered``, ``skipped``, ``sample``, ``dry_run``, and the first
        three ``per_node``).

        ``role`` is the operator's, already authorized by the control
        listener; a cluster carries it to every node."""

    @abstractmethod
    async def disconnect(self, selector: Selector, *, code: int, reason: str,
                         role: Role, node: str | None = None,
                         timeout: float | None = None) -> Answer:
        """Start closing the selected connections (``count``, and ``per_node``)."""

    @abstractmethod
    async def stats(self, *, sampled: bool = False, node: str | None = None,
                    timeout: float | None = None) -> Answer:
        """State, uptime, connections, totals and rates (summed over the
        nodes), and each node's own stats in ``per_node``.

        ``sampled`` reads the totals of the last sample instead of walking
        every connection: for periodic readers such as stats events."""

    @abstractmethod
    async def shutdown(self, mode: ShutdownMode, *, code: int, reason: str,
                       deadline: float | None, role: Role, node: str | None = None,
                       timeout: float | None = None) -> ShutdownAnswer:
        """Accept a shutdown (``graceful`` or ``keep_alive``) of one node or of
        every node, and say how to start it (this node stops last).

        Raises :class:`ServerStateError` if it must be refused (e.g. already
        stopping), before anything changed."""

    @abstractmethod
    async def nodes(self, *, node: str | None = None, timeout: float | None = None) -> Answer:
        """The nodes of the fleet (``nodes``: a list, one entry each)."""

    @abstractmethod
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(kind, data)`` synchronously for every event of the fleet."""

    @abstractmethod
    def remove_listener(self, listener: Listener) -> None:
        """Stop calling a listener (no error if it was not added)."""

    @abstractmethod
    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Publish an event of this node (an operator's action) to every listener."""

    # Not abstract: a fleet that cannot tap refuses, and stays a Fleet.
    # A cluster's tap is one Tap fed by every node's own (each enforcing the
    # limits on its connections) through the broker; the records name their node.

    async def start_tap(self, selector: Selector, limits: TapLimits, *,
                        owner: dict[str, Any], node: str | None = None) -> Tap:
        """Start a live tap of the selected connections (of ``node`` alone, if
        given); its records queue in the returned :class:`~wsconsole.server.tap.Tap`.
        Raises :class:`TapDisabled` when tapping is off,
        :class:`~wsconsole.server.errors.TooManyTaps` at the cap."""
        raise TapDisabled("this control plane cannot tap connections")

    def stop_tap(self, tap: Tap, reason: TapEnd) -> bool:
        """End a tap (False if it had ended already)."""
        return tap.end(reason)


def node_page(registry: ConnectionRegistry, *, user: str | None, path: str | None,
              topic: str | None, id_prefix: str | None, sort: str, limit: int,
              cursor: str | None, groups: bool, group_limit: int, columns: bool = False,
              ) -> tuple[Page, dict[str, Any]]:
    """One node's answer to ``list``, in the wire's shape, and the page it came from.

    The one place a node turns its registry into a page: the local fleet
    answers with it, and each node of a cluster answers its part with it
    (adding the rows' sort keys for the merge). ``columns``: the rows as
    ``fields`` (once) and ``rows`` (each its values in that order) instead of
    ``connections`` (a cluster node's part; no dict is made per row).
    """
    # Live fields as of the last sample: nothing here walks the fleet.
    page = registry.query(user=user, path=path, topic=topic, id_prefix=id_prefix,
                          sort=sort, limit=limit, cursor=cursor)
    result: dict[str, Any]
    if columns:
        result = {"fields": list(SUMMARY_FIELDS),
                  "rows": [record.summary_row() for record in page.records]}
    else:
        result = {"connections": [record.summary() for record in page.records]}
    result["total"] = page.total
    result["next_cursor"] = page.next_cursor
    if groups:
        result["groups"], result["groups_truncated"] = registry.groups(group_limit)
    return page, result


class LocalFleet(Fleet):
    """The fleet of one process: its hub, answered directly (``missing`` is always empty)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        """The hub of this process."""

    @property
    def node(self) -> str:
        return self.hub.node

    @property
    def state(self) -> HubState:
        return self.hub.state

    def check_node(self, node: str | None) -> None:
        """UnknownNode unless ``node`` is None or this node's name."""
        if node is not None and node != self.hub.node:
            raise UnknownNode(f"no node named {node!r}; the nodes are: {self.hub.node}")

    async def list(
        self,
        *,
        user: str | None,
        path: str | None,
        topic: str | None,
        id_prefix: str | None,
        sort: str,
        limit: int,
        cursor: str | None,
        groups: bool,
        group_limit: int,
        node: str | None,
        timeout: float | None,
    ) -> Answer:
        self.check_node(node)
        registry = self.hub.registry
        _, result = node_page(registry, user=user, path=path, topic=topic,
                              id_prefix=id_prefix, sort=sort, limit=limit, cursor=cursor,
                              groups=groups, group_limit=group_limit)
        if groups:
            result["groups"]["nodes"] = {self.hub.node: len(registry)}
            # Changes with every register, unregister, subscribe and
            # unsubscribe: a client that saw this version may skip the groups.
            result["groups_version"] = registry.version
        return Answer(result=result)

    async def get(self, connection_id: str, *, node: str | None = None,
                  timeout: float | None = None) -> Answer:
        self.check_node(node)
        # A unique id prefix stands for its id (show fd2d); several raise AmbiguousId.
        record = self.hub.registry.resolve(connection_id)
        if record is None:
            raise UnknownConnection(f"no open connection with id {connection_id}")
        self.hub.refresh(record)
        return Answer(result=record.detail())

    async def send(self, selector: Selector, message: str | bytes, *,
                   dry_run: bool = False, role: Role, node: str | None = None,
                   timeout: float | None = None) -> Answer:
        self.check_node(node)
        result = self.hub.send(selector, message, dry_run=dry_run).as_dict()
        result["per_node"] = {self.hub.node: per_node_send(result)}
        return Answer(result=result)

    async def disconnect(self, selector: Selector, *, code: int, reason: str,
                         role: Role, node: str | None = None,
                         timeout: float | None = None) -> Answer:
        self.check_node(node)
        count = self.hub.disconnect(selector, code, reason)
        return Answer(result={"count": count, "per_node": {self.hub.node: {"count": count}}})

    async def stats(self, *, sampled: bool = False, node: str | None = None,
                    timeout: float | None = None) -> Answer:
        self.check_node(node)
        stats = self.hub.stats(sampled=sampled)
        return Answer(result={**stats, "per_node": {self.hub.node: stats}})

    async def shutdown(self, mode: ShutdownMode, *, code: int, reason: str,
                       deadline: float | None, role: Role, node: str | None = None,
                       timeout: float | None = None) -> ShutdownAnswer:
        self.check_node(node)
        hub = self.hub
        # Asked now, not when it starts, so that a refusal is the reply, and
        # the reply can go out before the shutdown starts.
        decision = hub.may_shutdown(mode)
        if not decision.allowed:
            raise ServerStateError(decision.reason)
        result: dict[str, Any] = {"mode": mode, "state": HubState.DRAINING,
                                  "connections": len(hub.registry), "deadline": deadline}
        if decision.escalation:
            # A graceful shutdown cutting a keep-alive drain short: said as such.
            result["escalation"] = True
        result["per_node"] = {hub.node: dict(result)}

        def start() -> None:
            hub.shutdown(mode, code=code, reason=reason, deadline=deadline)

        return ShutdownAnswer(result=result, start=start)

    async def nodes(self, *, node: str | None = None, timeout: float | None = None) -> Answer:
        self.check_node(node)
        return Answer(result={"nodes": [self.node_entry()]})

    def node_entry(self) -> dict[str, Any]:
        """This node's entry of ``nodes`` (what a cluster's heartbeat carries)."""
        hub = self.hub
        now = time.time()
        return {
            "node": hub.node,
            "state": hub.state,
            "connections": len(hub.registry),
            "rates": dict(hub.sampler.rates),
            "started_at": hub.started_at,
            "uptime": now - hub.started_at,
            "version": _wsconsole_version(),
            "listen": list(hub.listen),
            "control_url": self.control_url,
            "health": NodeHealth.LIVE,
            "last_seen": now,
        }

    async def start_tap(self, selector: Selector, limits: TapLimits, *,
                        owner: dict[str, Any], node: str | None = None) -> Tap:
        from .tapping import ensure_enabled  # the edge: only a process that taps loads it

        self.check_node(node)

        return ensure_enabled(self.hub.taps).start(selector, limits, owner=owner)

    def stop_tap(self, tap: Tap, reason: TapEnd) -> bool:
        taps = self.hub.taps
        return taps.stop(tap, reason) if taps is not None else tap.end(reason)

    def add_listener(self, listener: Listener) -> None:
        self.hub.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self.hub.remove_listener(listener)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        self.hub.emit(kind, data)


def per_node_send(result: dict[str, Any]) -> dict[str, int]:
    """A node's counts in a send's ``per_node``."""
    return {"recipients": result["recipients"], "delivered": result["delivered"],
            "skipped": result["skipped"]}


@cache
def _wsconsole_version() -> str:
    return version("wsconsole")
