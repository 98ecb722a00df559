"""ClusterFleet: the Fleet of many nodes, by scatter-gather over Redis pub/sub.

Every operation asks the nodes it concerns and merges their answers; this
node's part is answered directly by its hub (:class:`LocalFleet`), never
through Redis. A request's expected answerers are the nodes that are live or
suspect when it starts; it ends as soon as all of them answered, or at its
deadline, measured on this process's monotonic clock, and returns what it
gathered plus the nodes that did not answer and why (``missing``). Never
all-or-nothing: a node that does not answer costs its own part, not the
answer (the Socket.IO Redis adapter's ``fetchSockets`` throws everything
away on one timeout; we must not).

Channels and keys, namespaced by the cluster's name (``wsconsole:NAME:``):

- ``all``: requests to every node;
- ``node:NODE``: requests to one node, and the replies to its requests;
- ``events``: heartbeats, goodbyes and the nodes' events (batched);
- key ``member:NODE``: the node's last heartbeat, expiring after ``gone``
  seconds, so that a node that starts late knows every node at once.

Every message is an :mod:`.envelope` (signed, timestamped, never pickle); the
operator's role travels with each request and every node checks it again.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import secrets
import time
from collections import Counter, OrderedDict
from itertools import chain, starmap
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .. import wire
from ..errors import (
    ConfigError,
    InternalError,
    ServerStateError,
    UnknownConnection,
    UnknownNode,
    WsconsoleError,
)
from ..fleet import Answer, Fleet, LocalFleet, ShutdownAnswer, node_page, per_node_send
from ..protocol import EventKind, HubState, NodeHealth, Role, ShutdownMode
from ..registry import (
    SUMMARY_FIELDS,
    TEXT_SORT_KEYS,
    Page,
    Selector,
    decode_cursor,
    encode_cursor,
    merge_groups,
    merge_pages,
    page_covers,
    page_up_to,
)
from .envelope import DropReason, Message, MessageKind, Refused, ReplayGuard, seal, unseal
from .membership import Change, NodeTable
from .settings import ClusterSettings, redacted_url
from .taps import ClusterTaps

try:
    import orjson
except ImportError:  # pragma: no cover - a platform without its wheel
    orjson = None  # type: ignore[assignment]

if TYPE_CHECKING:  # pragma: no cover
    from ..hub import Hub, Listener
    from .broker import Broker

__all__ = ["ClusterFleet", "owner_of", "NO_REPLY", "BROKER_UNAVAILABLE", "ID_SEPARATOR",
           "ROWS_COLUMNS", "GROUPS_KNOWN", "PAGES_KNOWN", "LIVE_FIELDS", "FLOAT_FIELDS"]

logger = logging.getLogger("wsconsole.cluster")

NO_REPLY = "no reply before the deadline"
"""``missing`` reason: the node was expected and did not answer in time."""
BROKER_UNAVAILABLE = "broker unavailable"
"""``missing`` reason: Redis could not be reached, so the node could not be asked."""
ID_SEPARATOR = "/"
"""Connection ids in a cluster are ``NODE/HEX``: they name the node that owns them."""

ROWS_COLUMNS = "columns"
"""A ``list`` request's ``rows`` (in its body, beside ``args``): answer with
``fields`` (the rows' field names, once), ``rows`` (each row the list of its
values in that order) and ``keys`` (each row's sort value; its id is the
row's), instead of ``connections`` as objects and ``keys`` as ``[value, id]``.
A node that does not know it answers in objects, which merge as well."""

GROUPS_KNOWN = "groups_known"
"""A ``list`` request's ``groups_known`` (in its body, beside ``args``): for
each node, the ``groups_version`` of its groups that the requester holds. A
node whose groups are still those answers ``groups_version`` alone, without
``groups``; a node that does not know it answers its groups as before."""

TAKES = "takes"
"""A ``list`` request's ``takes`` (in its body, beside ``args``): for each node,
how many rows of its page to send, fewer than the request's ``limit``: about
as many as it gave the last merged page of the same request, and a margin
(:func:`_next_take`). A node sends its first ``take`` rows (its ``total`` and
``next_cursor`` as ever); a node that does not know it sends ``limit``. The
requester asks a node again, for the rest of its page after its last row
sent, only when the merged page might miss some of them
(:meth:`ClusterFleet._complete_pages`)."""
_TAKE_MARGIN = 10
"""Rows a node is asked for beyond those it gave the last merged page (or half
as many again, if more)."""
_TAKES_KEPT = 32
"""``list`` requests whose takes a requester remembers."""

PAGES_KNOWN = "pages_known"
"""A ``list`` request's ``pages_known`` (in its body, beside ``args``): for each
node, the ``page_version`` of its page of this same request (filters, sort,
limit and cursor) that the requester holds. A node whose page is still that
one (the same records in the same order, each showing the same values)
answers ``page_version`` alone, without ``fields``, ``rows``, ``keys``,
``total`` and ``next_cursor``; a node that does not know it answers its page."""
LIVE_FIELDS = ("msgs_in", "bytes_in", "msgs_out", "bytes_out", "kernel_queued")
"""The fields of a row that change without the registry's ``version`` or
``samples_version`` changing (the counters as the hub's hot path moves them,
the send queue as a detail measures it): a page kept while the registry's
versions stay the same is still the page if these are. The sampler's own
values (``last_activity``, ``buffered``, ``latency``) move
``samples_version``."""
_LIVE_GETTERS = tuple(map(attrgetter, LIVE_FIELDS))
FLOAT_FIELDS = ("connected_at", "last_activity", "latency")
"""The fields of a row that may hold a float (the others hold text, integers,
None or a list of text): where a merged page's rows are checked for a NaN
or an infinity before their JSON is written by orjson."""
_SUMMARY_FLOATS = itemgetter(*map(SUMMARY_FIELDS.index, FLOAT_FIELDS))


def _summary_maker() -> Callable[..., dict[str, Any]]:
    """A function of a summary's values (:data:`SUMMARY_FIELDS` order) to the
    summary as an object: one dict display, in two thirds of the time of
    ``dict(zip(fields, row))`` (a merged page makes one for each of its rows).
    Generated from our own constant field names, never from a message's."""
    names = [f"v{index}" for index in range(len(SUMMARY_FIELDS))]
    pairs = ", ".join(f"{field!r}: {name}" for field, name in zip(SUMMARY_FIELDS, names))
    return eval(f"lambda {', '.join(names)}: {{{pairs}}}", {})  # noqa: S307


_summary_object = _summary_maker()


def _live_values(records: list[Any]) -> list[list[Any]]:
    """Each of :data:`LIVE_FIELDS` of ``records``, field by field (loops in C)."""
    return [list(map(getter, records)) for getter in _LIVE_GETTERS]


_ECHOES = 64
"""Payloads of this node's own awaited back (:meth:`ClusterFleet._echo`) at most."""
_KEPT_PAGES = 8
"""Requests (filters, sort, limit, cursor) whose page a node keeps, and whose
nodes' pages a requester holds: the console's page and poll, a few more."""
_KEPT_LIMIT = 200
"""The largest ``limit`` whose page is kept and held: the console's pages (100)
and a few more; a script's page of 1,000 is made anew each time, so that what
pages keep stays bounded at 8 requests x 200 rows a node (and x nodes on a
requester)."""
_START_WAIT = 1.0
"""Seconds ``start`` waits for Redis before it says it serves locally."""
_EVENT_FLUSH = 0.1
"""Seconds between two batches of a node's events to the cluster."""
_MAX_OUTBOX = 1000
"""Events one batch holds; past it, connection events are counted (a ``burst``)."""
_MAX_ACTING = 256
"""Requests of other nodes this node acts on at once; more are dropped (counted)."""
_DROP_LOG_INTERVAL = 10.0
"""Seconds between two log lines about dropped messages (per reason)."""


def owner_of(connection_id: str) -> str | None:
    """The node a cluster connection id names (``web-1/0a1b2c3d4e`` -> ``web-1``)."""
    node, separator, _ = connection_id.rpartition(ID_SEPARATOR)
    return node if separator and node else None


class _NodeGroups:
    """One node's groups of a ``list``, as it answered them."""

    __slots__ = ("version", "limit", "groups", "truncated")

    def __init__(self, version: str | None, limit: int, groups: dict[str, Any],
                 truncated: bool) -> None:
        self.version = version
        """The node's ``groups_version`` of them (its instance and its registry's
        version: a restarted node never repeats one); None: it sent none."""
        self.limit = limit
        self.groups = groups
        self.truncated = truncated


class _KeptPage:
    """This node's page of one ``list`` request (rows as columns, without groups),
    as it last answered it, and what it was made of."""

    __slots__ = ("version", "registry_version", "samples_version", "records", "live",
                 "result", "page")

    def __init__(self, version: str | None, registry_version: int, samples_version: int,
                 records: list[Any], result: dict[str, Any], keys: Any) -> None:
        self.version = version
        """Its ``page_version`` (this instance and a serial); None: not kept."""
        self.registry_version = registry_version
        self.samples_version = samples_version
        self.records = records
        self.live = _live_values(records)
        """Each record's :data:`LIVE_FIELDS` as its row shows them."""
        self.result = result
        """``fields``, ``rows``, ``keys``, ``total`` and ``next_cursor``: never changed."""
        self.page = Page(records=result["rows"], total=result["total"],
                         next_cursor=result["next_cursor"], keys=keys)
        """The same rows to merge, with their ``(value, id)`` keys."""

    def still(self, registry: Any) -> bool:
        """Whether the page is still this one: the same records in the same
        order (no register, unregister, subscribe, unsubscribe, nor a sample
        that moved a value), each showing the same values."""
        return (registry.version == self.registry_version
                and registry.samples_version == self.samples_version
                and _live_values(self.records) == self.live)


class _HeldPage:
    """A node's page of one ``list`` request, as the requester holds it."""

    __slots__ = ("version", "page", "fields")

    def __init__(self, version: str, page: Page, fields: Any) -> None:
        self.version = version
        self.page = page
        self.fields = fields


class _HeldQuery:
    """What a requester holds of one ``list`` request: each node's page, and the
    merged rows under the nodes' page versions."""

    __slots__ = ("nodes", "merged_key", "merged", "rows")

    def __init__(self) -> None:
        self.nodes: dict[str, _HeldPage] = {}
        self.merged_key: Any = None
        self.merged: Page | None = None
        self.rows: list[Any] = []
        """The merged page's rows as objects: never changed (a reply copies the list)."""


class _Gather:
    """The replies to one request, until every expected node answered."""

    __slots__ = ("expected", "replies", "done")

    def __init__(self, expected: Iterable[str]) -> None:
        self.expected = set(expected)
        self.replies: dict[str, dict[str, Any]] = {}
        self.done = asyncio.get_running_loop().create_future()
        if not self.expected:
            self.done.set_result(None)

    def add(self, node: str, body: dict[str, Any]) -> None:
        if node not in self.expected or node in self.replies:
            return  # not asked, or answered twice: ignored
        self.replies[node] = body
        if len(self.replies) == len(self.expected) and not self.done.done():
            self.done.set_result(None)


class _Gathered:
    """What a scatter-gather brought back."""

    __slots__ = ("results", "errors", "missing")

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        """Each answering node's result (this node's included)."""
        self.errors: dict[str, WsconsoleError] = {}
        """Nodes that answered with an error."""
        self.missing: dict[str, str] = {}
        """Nodes that did not answer, and why."""

    def raise_single_error(self) -> None:
        """Asked one node, which refused: its error is the answer."""
        if self.errors and not self.results:
            raise next(iter(self.errors.values()))

    def all_missing(self) -> dict[str, str]:
        """``missing``, with nodes that answered an error named too (their words)."""
        missing = dict(self.missing)
        for node, error in self.errors.items():
            missing[node] = f"{error.code}: {error.message}"
        return missing


class ClusterFleet(Fleet):
    """Every node of a cluster, from this one: ``ControlListener(hub, config, fleet=...)``."""

    def __init__(self, hub: Hub, settings: ClusterSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.cluster = settings.name
        self.secret = settings.load_secret()  # ConfigError: no secret, no cluster
        self.local = LocalFleet(hub)
        self.instance = secrets.token_hex(8)
        """This process, behind its node name (a restart is another instance)."""
        self.table = NodeTable(suspect=settings.suspect, gone=settings.gone,
                               forget=settings.forget_after)
        self.guard = ReplayGuard(settings.max_skew * 2)
        self.dropped: Counter[str] = Counter()
        """Messages refused, by :class:`DropReason`."""
        self.cross_node_sends = 0
        """Sends that reached other nodes (application and operators)."""
        self.list_rows: str | None = ROWS_COLUMNS
        """How this node asks the others for their ``list`` pages: :data:`ROWS_COLUMNS`,
        or None for rows as objects (what nodes before it asked; the benchmark
        measures one against the other in one run)."""
        self.groups_cache = True
        """Whether this node keeps each node's ``list`` groups (and their sum) until
        their version changes, and asks the others for their groups only then
        (:data:`GROUPS_KNOWN`). False: every page ships and sums every node's
        groups, as before (the benchmark measures one against the other)."""
        self._node_groups: dict[str, _NodeGroups] = {}
        """Each node's groups as last answered, by node (this one's included)."""
        self._summed_groups: tuple[Any, dict[str, dict[str, int]], bool] | None = None
        """(key, summed groups, truncated) of the last sum: reused while no node's
        groups changed."""
        self.page_cache = True
        """Whether this node keeps its page of each recent ``list`` request and
        answers its version alone to a requester that holds it
        (:data:`PAGES_KNOWN`), and holds the others' pages and their merge.
        False: every page is made, shipped and merged anew, as before (the
        benchmark measures one against the other)."""
        self._kept_pages: OrderedDict[tuple[Any, ...], _KeptPage] = OrderedDict()
        """This node's pages of recent requests, the most recent last."""
        self._held_pages: OrderedDict[tuple[Any, ...], _HeldQuery] = OrderedDict()
        """Every node's pages of recent requests of this node, the most recent last."""
        self._page_serial = 0
        self.learn_takes = True
        """Whether this node asks each node for about as many rows as it gave the
        last merged page of the same request (:data:`TAKES`), not ``limit``
        rows from every node. False: every node sends ``limit`` rows, as before
        (the benchmark measures one against the other)."""
        self._takes: OrderedDict[tuple[Any, ...], dict[str, int]] = OrderedDict()
        """By request (:func:`_page_key` and the node asked, if one): the rows
        to ask each node for."""
        self.second_rounds = 0
        """``list`` requests that asked a node again for the rest of its page."""
        self.pages_made = 0
        """This node's ``list`` pages made anew while pages are kept (its own
        requests' and the others')."""
        self.pages_still = 0
        """This node's ``list`` pages found still the page kept (its own
        requests' and the others')."""
        self.request_observers: list[Callable[[str, bool, float], None]] = []
        """Called with (operation, partial, seconds) when a request to other nodes
        ends (the metrics' cluster requests and their durations)."""
        prefix = f"wsconsole:{settings.name}:"
        self._prefix = prefix
        self._all_channel = prefix + "all"
        self._events_channel = prefix + "events"
        self.broker: Broker | None = None
        self._pending: dict[str, _Gather] = {}
        self._echoes: OrderedDict[bytes, None] = OrderedDict()
        """Payloads this node published to a channel it listens to (requests to
        every node, its events), until they come back: dropped then without
        being unsealed, ahead of the answers queued behind them."""
        self._listeners: list[Listener] = []
        self._hub_listening = False
        self._acting = 0
        self._forwarding = False
        """True while another node has a subscriber: this node forwards its events."""
        self._outbox: list[list[Any]] = []
        self._outbox_burst = Counter[str]()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._refused: str | None = None
        self._beat_now = asyncio.Event()
        self._control_url: str | None = None
        self._last_drop_log: dict[str, float] = {}
        self._stopped = False
        self.taps = ClusterTaps(self)
        """Taps over several nodes: those this node owns, and its parts of others'."""

    # Names

    def node_channel(self, node: str) -> str:
        return f"{self._prefix}node:{node}"

    def member_key(self, node: str) -> str:
        return f"{self._prefix}member:{node}"

    @property
    def control_url(self) -> str | None:  # type: ignore[override]
        return self._control_url

    @control_url.setter
    def control_url(self, url: str | None) -> None:
        # Set by the control listener once it listens: the others hear of it at once.
        self._control_url = url
        self._beat_now.set()

    @property
    def node(self) -> str:
        return self.hub.node

    @property
    def state(self) -> HubState:
        return self.hub.state

    @property
    def broker_up(self) -> bool:
        return self.broker is not None and self.broker.up

    # Lifecycle

    async def start(self) -> None:
        """Join the cluster; if Redis cannot be reached, serve locally and keep trying.

        Raises :class:`ConfigError` if a live node of the cluster has this name.
        """
        from .broker import Broker  # the one import of redis, in cluster mode only

        self.broker = Broker(self.settings.redis_url,
                             [self._all_channel, self.node_channel(self.node),
                              self._events_channel],
                             self._on_payload, on_up=self._joined, on_down=self._lost,
                             reconnect_max=self.settings.reconnect_max)
        up = await self.broker.start(_START_WAIT)
        if self._refused is not None:
            await self.broker.stop()
            raise ConfigError(self._refused)
        if not up:
            logger.warning("Redis at %s is unreachable; node %s serves locally and keeps "
                           "trying to join cluster %s", redacted_url(self.settings.redis_url),
                           self.node, self.cluster)
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._heartbeats()), loop.create_task(self._ticks()),
                       loop.create_task(self._flush_events())]

    def describe(self) -> list[str]:
        """Human lines for ``wsconsole serve``'s start banner."""
        where = redacted_url(self.settings.redis_url)
        if self.broker_up:
            return [f"node {self.node} joined cluster {self.cluster} on {where}"]
        return [f"node {self.node}: Redis at {where} unreachable; serving locally, "
                f"joining cluster {self.cluster} once it is back"]

    async def stop(self) -> None:
        """Say goodbye, and leave."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.broker is not None:
            if self.broker.up:
                await self._flush_once()
                await self.broker.publish(self._events_channel,
                                          self._seal(MessageKind.GOODBYE,
                                                     body={"instance": self.instance}))
                await self.broker.delete_key(self.member_key(self.node))
            await self.broker.stop()
        for task in list(self._tasks):
            task.cancel()

    async def _joined(self) -> None:
        """Redis is (back) up: claim the name, learn the members, announce ourselves."""
        assert self.broker is not None
        heartbeat = self._heartbeat()
        claimed = await self.broker.set_key(self.member_key(self.node), heartbeat,
                                            self.settings.gone, only_new=True)
        if claimed is False:
            holder = await self.broker.get_key(self.member_key(self.node))
            if holder is not None and self._held_by_another(*holder):
                self._refused = (f"a live node named {self.node!r} is already in cluster "
                                 f"{self.cluster!r}; give this one another name (--node)")
                logger.error("%s", self._refused)
                return
        now = time.monotonic()
        for member in self.table.members():
            # We heard nothing while Redis was down; not their fault.
            if member.health != NodeHealth.GONE:
                member.heard = now
        values = await self.broker.values(self._prefix + "member:*")
        for value in values or ():
            self._on_payload(self._events_channel, value, stored=True)
        await self.broker.publish(self._events_channel, heartbeat)
        await self.broker.set_key(self.member_key(self.node), heartbeat, self.settings.gone)

    def _held_by_another(self, value: bytes | None, left: float) -> bool:
        if value is None:
            return False
        try:
            message = self._unseal(value, guard=False)
        except Refused:
            return False
        if message.body.get("instance") == self.instance:
            return False
        # Its key is refreshed with every heartbeat, to live ``ttl`` seconds (the
        # holder's setting): one not refreshed for longer than 2.5 of the
        # holder's heartbeats (or our suspect interval) belongs to a node
        # that is not live any more.
        ttl, interval = message.body.get("ttl"), message.body.get("interval")
        if not isinstance(ttl, (int, float)) or not isinstance(interval, (int, float)):
            ttl, interval = self.settings.gone, self.settings.heartbeat_interval
        return ttl - left < max(self.settings.suspect, 2.5 * interval)

    def _lost(self, reason: str) -> None:
        for gather in self._pending.values():
            if not gather.done.done():
                gather.done.set_result(None)

    # Messages

    def _seal(self, kind: MessageKind, *, body: dict[str, Any], dst: str | None = None,
              id: str = "", op: str = "", role: str | None = None,
              timeout: float | None = None) -> bytes:
        return seal(Message(kind=kind, cluster=self.cluster, src=self.node, dst=dst, id=id,
                            op=op, role=role, timeout=timeout, body=body, ts=time.time()),
                    self.secret)

    def _unseal(self, payload: bytes, *, guard: bool = True) -> Message:
        settings = self.settings
        return unseal(payload, self.secret, cluster=self.cluster, now=time.time(),
                      max_skew=settings.max_skew, max_bytes=settings.max_message_bytes,
                      guard=self.guard if guard else None)

    def _on_payload(self, channel: str, payload: bytes, *, stored: bool = False) -> None:
        """One payload from Redis: acted on only if it is a valid message of ours."""
        if self._echoes and payload in self._echoes:  # (hashing a payload reads it all)
            # Ours, back from a channel we also listen to: the bytes we wrote
            # (a copy by anyone else would be a replay, dropped too).
            del self._echoes[payload]
            return
        try:
            # A stored heartbeat is read again at every join: not a replay.
            message = self._unseal(payload, guard=not stored)
        except Refused as refused:
            self._drop(refused.reason, refused.detail, channel)
            return
        if message.src == self.node:
            if message.kind == MessageKind.HEARTBEAT and message.body.get(
                    "instance") != self.instance:
                self._duplicate(message.src)
            return  # our own, back from a channel we also listen to
        kind = message.kind
        if kind == MessageKind.HEARTBEAT:
            self._heard(message, stale_ok=stored)
        elif kind == MessageKind.GOODBYE:
            self._apply(self._goodbye(message))
        elif kind == MessageKind.REQUEST:
            to = message.body.get("to")
            if message.dst not in (None, self.node) or (
                    isinstance(to, list) and self.node not in to):
                return
            if self._acting >= _MAX_ACTING:
                # The requester names this node missing; nothing piles up here.
                self._drop(DropReason.OVERLOADED, f"{self._acting} requests in progress",
                           channel)
                return
            self._acting += 1
            self._spawn(self._act(message))
        elif kind == MessageKind.REPLY:
            gather = self._pending.get(message.id)
            if message.dst == self.node and gather is not None:
                gather.add(message.src, message.body)
        elif kind == MessageKind.EVENTS:
            self._remote_events(message)
        elif kind == MessageKind.TAP:
            if message.dst == self.node:
                self.taps.records_arrived(message)

    def _drop(self, reason: str, detail: str, channel: str) -> None:
        self.dropped[reason] += 1
        now = time.monotonic()
        if now - self._last_drop_log.get(reason, -_DROP_LOG_INTERVAL) >= _DROP_LOG_INTERVAL:
            self._last_drop_log[reason] = now
            logger.warning("dropped a message on %s (%s: %s); %d dropped as %s so far",
                           channel, reason, detail, self.dropped[reason], reason)

    def _duplicate(self, name: str) -> None:
        now = time.monotonic()
        if now - self._last_drop_log.get("duplicate", -_DROP_LOG_INTERVAL) >= _DROP_LOG_INTERVAL:
            self._last_drop_log["duplicate"] = now
            logger.error("another live process calls itself node %r in cluster %r: one of "
                         "them must be renamed (--node); its messages are ignored", name,
                         self.cluster)

    # Membership

    def node_entry(self) -> dict[str, Any]:
        """This node's entry of ``nodes``."""
        return {**self.local.node_entry(), "control_url": self.control_url,
                "dropped": dict(self.dropped)}

    def _heartbeat(self) -> bytes:
        entry = self.node_entry()
        body = {"entry": entry, "instance": self.instance,
                "interval": self.settings.heartbeat_interval, "ttl": self.settings.gone,
                "stats": self.hub.stats(sampled=True), "watching": bool(self._listeners)}
        return self._seal(MessageKind.HEARTBEAT, body=body)

    def _heard(self, message: Message, *, stale_ok: bool = False) -> None:
        body = message.body
        entry, instance = body.get("entry"), body.get("instance")
        if not isinstance(entry, dict) or not isinstance(instance, str):
            self._drop(DropReason.MALFORMED, "a heartbeat without entry or instance",
                       self._events_channel)
            return
        stats = body.get("stats") if isinstance(body.get("stats"), dict) else None
        interval = body.get("interval")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
                0 < interval <= 3600):
            interval = None
        changes = self.table.heard(message.src, instance, entry, now=time.monotonic(),
                                   wall=time.time(), stats=stats, interval=interval)
        member = self.table.get(message.src)
        if member is not None and member.instance == instance:
            watching = bool(body.get("watching"))
            if member.watching != watching:
                member.watching = watching
                self._update_hub_listener()
        self._apply(changes)

    def _goodbye(self, message: Message) -> list[Change]:
        changes = self.table.left(message.src, str(message.body.get("instance", "")),
                                  now=time.monotonic())
        self._update_hub_listener()
        return changes

    def _apply(self, changes: list[Change]) -> None:
        if changes:
            self._update_hub_listener()  # a watching node may have gone, or come back
        for change in changes:
            if change.what == "duplicate":
                self._duplicate(change.member.name)
                continue
            if change.what == "gone":
                # Its taps are over (a restart is gone first): our parts of them end.
                self.taps.owner_gone(change.member.name)
            if change.what != "forgotten":
                logger.info("node %s of cluster %s: %s", change.member.name, self.cluster,
                            change.what)
            self._deliver(EventKind.NODE, change.member.public())
        for gather in self._pending.values():
            # A node that went is not waited for any longer.
            gone = {name for name in gather.expected
                    if (m := self.table.get(name)) is None or m.health == NodeHealth.GONE}
            if gone and gone.isdisjoint(gather.replies):
                gather.expected -= gone - set(gather.replies)
                if set(gather.replies) >= gather.expected and not gather.done.done():
                    gather.done.set_result(None)

    async def _heartbeats(self) -> None:
        interval = self.settings.heartbeat_interval
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self._beat_now.wait()
            except TimeoutError:
                pass
            self._beat_now.clear()
            if self.broker is not None and self.broker.up:
                heartbeat = self._heartbeat()
                await self.broker.publish(self._events_channel, heartbeat)
                await self.broker.set_key(self.member_key(self.node), heartbeat,
                                          self.settings.gone)

    async def _ticks(self) -> None:
        state = self.hub.state
        step = min(0.25, self.settings.heartbeat_interval / 4)
        while True:
            await asyncio.sleep(step)
            if self.hub.state != state:
                state = self.hub.state
                self._beat_now.set()  # the others hear of a drain at once
            if self.broker_up:
                self._apply(self.table.tick(time.monotonic()))

    # Events

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)
        self._update_hub_listener()
        self._beat_now.set()  # tell the others to forward their events

    def remove_listener(self, listener: Listener) -> None:
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass
        self._update_hub_listener()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        self._deliver(kind, data)
        if self._forwarding:
            self._queue_event(kind, data)

    def _others_watching(self) -> bool:
        return any(member.watching and member.health != NodeHealth.GONE
                   for member in self.table.members())

    def _update_hub_listener(self) -> None:
        # The hub builds an event per connect and close only while someone
        # listens: here or on another node.
        # Kept in a flag: the hub calls _on_hub_event on every connect and close.
        self._forwarding = self._others_watching()
        wanted = bool(self._listeners) or self._forwarding
        if wanted and not self._hub_listening:
            self.hub.add_listener(self._on_hub_event)
        elif not wanted and self._hub_listening:
            self.hub.remove_listener(self._on_hub_event)
        self._hub_listening = wanted

    def _on_hub_event(self, kind: str, data: dict[str, Any]) -> None:
        self._deliver(kind, data)
        if self._forwarding:
            self._queue_event(kind, data)

    def _deliver(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:
                logger.exception("event listener failed")

    def _queue_event(self, kind: str, data: dict[str, Any]) -> None:
        if len(self._outbox) >= _MAX_OUTBOX:
            if kind == EventKind.CONNECTION_OPENED:
                self._outbox_burst["opened"] += 1
            elif kind == EventKind.CONNECTION_CLOSED:
                self._outbox_burst["closed"] += 1
            else:
                self._outbox_burst["dropped"] += 1
            return
        self._outbox.append([kind, data, time.time()])

    async def _flush_events(self) -> None:
        while True:
            await asyncio.sleep(_EVENT_FLUSH)
            await self._flush_once()

    async def _flush_once(self) -> None:
        if not self._outbox and not self._outbox_burst:
            return
        events, self._outbox = self._outbox, []
        if self._outbox_burst:
            burst = {"node": self.node, "opened": self._outbox_burst["opened"],
                     "closed": self._outbox_burst["closed"],
                     "dropped": self._outbox_burst["dropped"]}
            self._outbox_burst.clear()
            events.append([EventKind.BURST, burst, time.time()])
        if self.broker is None:
            return
        try:
            payload = self._seal(MessageKind.EVENTS, body={"events": events})
        except (TypeError, ValueError):
            logger.error("a batch of %d events could not be encoded; not forwarded", len(events))
            return
        self._echo(payload)
        if not await self.broker.publish(self._events_channel, payload):
            self._echoes.pop(payload, None)  # it will not come back

    def _echo(self, payload: bytes) -> None:
        """``payload`` will come back to this node: it is to be dropped unread."""
        echoes = self._echoes
        echoes[payload] = None
        while len(echoes) > _ECHOES:  # those that never came back (Redis went away)
            echoes.popitem(last=False)

    def _remote_events(self, message: Message) -> None:
        if not self._listeners:
            return
        events = message.body.get("events")
        if not isinstance(events, list):
            self._drop(DropReason.MALFORMED, "an events batch that is not a list",
                       self._events_channel)
            return
        for item in events:
            if (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                    and isinstance(item[1], dict)):
                data = item[1]
                data.setdefault("node", message.src)
                self._deliver(item[0], data)

    # Scatter-gather

    def _targets(self, node: str | None) -> list[str]:
        """The nodes a request goes to: ``node`` alone, or this one and every expected one."""
        if node is None:
            return [self.node, *self.table.expected()]
        if node == self.node or node in self.table:
            return [node]
        names = sorted({self.node, *(m.name for m in self.table.members())})
        raise UnknownNode(f"no node named {node!r}; the nodes are: {', '.join(names)}")

    async def _scatter(self, op: str, args: dict[str, Any], *, targets: list[str],
                       timeout: float | None, role: Role,
                       local: Callable[[], Any] | None,
                       extra: dict[str, Any] | None = None) -> _Gathered:
        """Ask ``targets`` (this node answering through ``local``) and gather;
        ``extra`` travels in the request's body beside the arguments."""
        loop = asyncio.get_running_loop()
        if timeout is None:
            timeout = wire.ACTION_TIMEOUT if op in wire.MUTATING_OPERATIONS else wire.READ_TIMEOUT
        deadline = loop.time() + timeout
        gathered = _Gathered()
        remote = [name for name in targets if name != self.node]
        gather: _Gather | None = None
        request_id = ""
        if remote:
            for name in list(remote):
                member = self.table.get(name)
                if member is not None and member.health == NodeHealth.GONE:
                    gathered.missing[name] = "gone (no heartbeat)"
                    remote.remove(name)
        if remote:
            if not self.broker_up:
                for name in remote:
                    gathered.missing[name] = BROKER_UNAVAILABLE
                remote = []
            else:
                request_id = secrets.token_hex(8)
                gather = _Gather(remote)
                self._pending[request_id] = gather
                # Everyone on one channel; a few nodes each on its own.
                sends: list[tuple[str, str | None, list[str]]] = (
                    [(self._all_channel, None, remote)]
                    if set(remote) == set(self.table.expected())
                    else [(self.node_channel(name), name, [name]) for name in remote])
                for channel, dst, names in sends:
                    # "to": a node that joined since (not expected, so not
                    # counted) must not act on it either.
                    body = {**(extra or {}), "args": args, "to": names}
                    payload = self._seal(MessageKind.REQUEST, body=body, dst=dst,
                                         id=request_id, op=op, role=role, timeout=timeout)
                    if dst is None:
                        self._echo(payload)
                    if not await self.broker.publish(channel, payload,  # type: ignore[union-attr]
                                                     max(0.001, deadline - loop.time())):
                        self._echoes.pop(payload, None)  # it will not come back
                        for name in names:
                            gathered.missing[name] = BROKER_UNAVAILABLE
                            gather.expected.discard(name)
                if set(gather.replies) >= gather.expected and not gather.done.done():
                    gather.done.set_result(None)
        try:
            if local is not None and self.node in targets:
                # This node's part is answered while the others work on theirs
                # (once the request is out: computing it while the publish
                # waits for Redis's answer was measured not to pay, as the
                # others' answers come later anyway).
                try:
                    gathered.results[self.node] = await local()
                except WsconsoleError as exc:
                    gathered.errors[self.node] = exc
            if gather is not None:
                try:
                    async with asyncio.timeout_at(deadline):
                        await asyncio.shield(gather.done)
                except TimeoutError:
                    pass
                for name in sorted(gather.expected | set(remote)):
                    body = gather.replies.get(name)
                    if body is None:
                        if name not in gathered.missing:
                            gathered.missing[name] = (NO_REPLY if self.broker_up
                                                      else BROKER_UNAVAILABLE)
                    elif body.get("ok") is True:
                        gathered.results[name] = body.get("result")
                    else:
                        error = body.get("error") if isinstance(body.get("error"), dict) else {}
                        gathered.errors[name] = WsconsoleError.from_wire(
                            str(error.get("code", InternalError.code)),
                            str(error.get("message", "unknown error")), error)
        finally:
            if request_id:
                self._pending.pop(request_id, None)
        if remote or gathered.missing:
            # Only requests that left this node: a local-only answer is not one.
            seconds = loop.time() - (deadline - timeout)
            for observer in self.request_observers:
                observer(op, bool(gathered.missing), seconds)
        return gathered

    # Acting for another node

    async def _act(self, message: Message) -> None:
        try:
            await self._act_now(message)
        finally:
            self._acting -= 1

    async def _act_now(self, message: Message) -> None:
        then: Callable[[], None] | None = None
        try:
            try:
                role = Role(message.role)
            except ValueError:
                raise InternalError(f"unknown role {message.role!r}") from None
            from ..control.auth import authorize

            authorize(role, message.op)  # the role travelled; every node checks it
            args = message.body.get("args")
            # The requester validated these; they are validated again here,
            # by the same code, before anything acts on them.
            request = wire.parse_request_object({"id": 1, "op": message.op, "args": args})
            audit = self.audit_log
            if audit is not None and request.op in wire.MUTATING_OPERATIONS:
                # This node's audit log records what is done to its connections,
                # whoever asked; a line it cannot write refuses the request here.
                # Who: the operator, when the requester named one (a tap does).
                client = message.body.get("client")
                who = (f"{client} via node {message.src}" if isinstance(client, str) and client
                       else f"node {message.src}")
                entry = audit.entry(role, who, request.op, args)
                entry["requested_on"] = message.src
                audit.accept(entry)
            result, then = await self._local_op(request, role, message)
            body: dict[str, Any] = {"ok": True, "result": result}
        except WsconsoleError as exc:
            body = {"ok": False, "error": {**exc.details(), "code": exc.code,
                                           "message": exc.message}}
        except Exception:
            logger.exception("cluster request %s from %s failed", message.op, message.src)
            body = {"ok": False, "error": {"code": InternalError.code,
                                           "message": "internal error; the node logged it"}}
        assert self.broker is not None
        try:
            reply = self._seal(MessageKind.REPLY, body=body, dst=message.src, id=message.id,
                               op=message.op)
        except (TypeError, ValueError):
            reply = self._seal(MessageKind.REPLY, dst=message.src, id=message.id,
                               op=message.op, body={"ok": False, "error": {
                                   "code": InternalError.code,
                                   "message": "the reply could not be encoded"}})
        await self.broker.publish(self.node_channel(message.src), reply)
        if then is not None:
            then()  # an accepted shutdown starts once its reply is out

    async def _local_op(self, request: wire.Request, role: Role, message: Message
                        ) -> tuple[Any, Callable[[], None] | None]:
        """This node's part of a request, in the shape the requester merges."""
        args, op, hub = request.args, request.op, self.hub
        if op == "tap_start":
            return await self.taps.start_part(message, request, role), None
        if op == "tap_stop":
            return self.taps.stop_part(message.src, args["tap"]), None
        if op == "list":
            return self._list_part(args, message.body), None
        if op == "get":
            return (await self.local.get(args["id"])).result, None
        if op == "send":
            result = hub.send(request.selector, wire.decode_payload(args),
                              dry_run=args["dry_run"]).as_dict()
            return result, None
        if op == "disconnect":
            return {"count": hub.disconnect(request.selector, args["code"], args["reason"])}, None
        if op == "stats":
            return hub.stats(), None
        if op == "shutdown":
            answer = await self.local.shutdown(ShutdownMode(args["mode"]), code=args["code"],
                                               reason=args["reason"],
                                               deadline=args["deadline"], role=role)
            result = dict(answer.result)
            result.pop("per_node", None)
            return result, answer.start
        raise InternalError(f"{op} is not asked of other nodes")

    def _list_part(self, args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """This node's answer to a requester's ``list``: ``args`` (validated),
        and what the request's ``body`` says beside them (:data:`ROWS_COLUMNS`,
        :data:`GROUPS_KNOWN`, :data:`PAGES_KNOWN`, :data:`TAKES`)."""
        known = body.get(GROUPS_KNOWN)
        known = known.get(self.node) if isinstance(known, dict) else None
        page_known = body.get(PAGES_KNOWN)
        page_known = page_known.get(self.node) if isinstance(page_known, dict) else None
        take = body.get(TAKES)
        take = take.get(self.node) if isinstance(take, dict) else None
        if isinstance(take, int) and not isinstance(take, bool) and 0 < take < args["limit"]:
            args = {**args, "limit": take}  # this node's first rows only
        return self._local_page(
            args, columns=body.get("rows") == ROWS_COLUMNS,
            known=known if isinstance(known, str) else None,
            page_known=page_known if isinstance(page_known, str) else None)

    def groups_version(self) -> str:
        """This node's ``groups_version`` in a cluster's ``list``: its instance and
        its registry's version (every register, unregister, subscribe and
        unsubscribe changes it), so that a restarted node never repeats one."""
        return f"{self.instance}.{self.hub.registry.version}"

    def _local_page(self, args: dict[str, Any], *, columns: bool = False,
                    known: str | None = None, page_known: str | None = None
                    ) -> dict[str, Any]:
        """This node's part of a ``list``: its page, the rows' sort keys, its size,
        and with groups their ``groups_version``.

        ``columns`` (what a requester asks with ``"rows": "columns"`` in the
        request's body) answers in the compact shape (:data:`ROWS_COLUMNS`),
        with the page's ``page_version``. ``known``: the ``groups_version``
        the requester holds of this node's groups (:data:`GROUPS_KNOWN`);
        ``page_known``: the ``page_version`` it holds of this page
        (:data:`PAGES_KNOWN`); what is still that is not sent.
        """
        if columns:
            # The field names once, each row its values in that order, and
            # each key its value alone (its id is the row's): half the bytes
            # of rows as objects, and what costs a page its time between
            # nodes is encoding and decoding them.
            return self._own_page(args, known, page_known)[1]
        registry = self.hub.registry
        groups = args["groups"]
        version = self.groups_version() if groups else None
        page, result = node_page(
            registry, user=args["user"], path=args["path"], topic=args["topic"],
            id_prefix=args["id_prefix"], sort=args["sort"], limit=args["limit"],
            cursor=args["cursor"], groups=groups and known != version,
            group_limit=args["group_limit"])
        result["count"] = len(registry)
        if version is not None:
            result["groups_version"] = version
        # The requester merges the nodes' pages by these keys (merge_pages).
        result["keys"] = [list(key) for key in page.keys]
        return result

    def _page_part(self, args: dict[str, Any]) -> tuple[_KeptPage, Page]:
        """This node's page of a ``list`` request as columns, without groups: the
        one kept for the same request while it is still the page
        (:meth:`_KeptPage.still`), else made anew (and kept); and as a
        :class:`Page` to merge."""
        registry = self.hub.registry
        key = _page_key(args)
        keeping = self.page_cache and args["limit"] <= _KEPT_LIMIT
        kept = self._kept_pages.get(key) if keeping else None
        if kept is None or not kept.still(registry):
            page, result = node_page(
                registry, user=args["user"], path=args["path"], topic=args["topic"],
                id_prefix=args["id_prefix"], sort=args["sort"], limit=args["limit"],
                cursor=args["cursor"], groups=False, group_limit=0, columns=True)
            result["keys"] = [key[0] for key in page.keys]
            version = None
            if keeping:
                self._page_serial += 1
                version = f"{self.instance}.{self._page_serial}"
            kept = _KeptPage(version, registry.version, registry.samples_version,
                             list(page.records), result, page.keys)
            if version is not None:
                self.pages_made += 1
                self._kept_pages[key] = kept
                while len(self._kept_pages) > _KEPT_PAGES:
                    self._kept_pages.popitem(last=False)
        else:
            self.pages_still += 1
            self._kept_pages.move_to_end(key)
        return kept, kept.page

    def _own_page(self, args: dict[str, Any], known: str | None,
                  page_known: str | None = None) -> tuple[Page, dict[str, Any]]:
        """This node's page of a ``list`` as columns, and its answer: the page
        unless its version is ``page_known``, its size, its groups unless they
        are ``known``'s, and their versions."""
        registry = self.hub.registry
        kept, page = self._page_part(args)
        result: dict[str, Any]
        if kept.version is None:
            result = dict(kept.result)
        elif page_known == kept.version:
            result = {"page_version": kept.version}
        else:
            result = {**kept.result, "page_version": kept.version}
        groups = args["groups"]
        version = self.groups_version() if groups else None
        if groups and known != version:
            result["groups"], result["groups_truncated"] = registry.groups(args["group_limit"])
        result["count"] = len(registry)
        if version is not None:
            result["groups_version"] = version
        return page, result

    # The operations

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
        args = {"user": user, "path": path, "topic": topic, "id_prefix": id_prefix,
                "sort": sort, "limit": limit, "cursor": cursor, "groups": groups,
                "group_limit": group_limit}
        # A cursor that is not one is refused here, before anyone is asked.
        decode_cursor(cursor, sort)
        # The groups this node holds of each node, as this request starts: a node
        # whose groups are still those sends their version alone.
        known: dict[str, _NodeGroups] = {}
        if groups and self.groups_cache:
            known = {name: entry for name, entry in self._node_groups.items()
                     if entry.limit == group_limit}
        extra: dict[str, Any] = {"rows": self.list_rows} if self.list_rows else {}
        if remote_known := {name: entry.version for name, entry in known.items()
                            if name != self.node}:
            extra[GROUPS_KNOWN] = remote_known
        # The pages of this request this node holds of each node, as it starts:
        # a node whose page is still that one sends its version alone.
        query = _page_key(args)
        held = self._held_pages.get(query) if self.page_cache and self.list_rows else None
        if held is not None and (remote_pages := {name: page.version for name, page
                                                  in held.nodes.items() if name != self.node}):
            extra[PAGES_KNOWN] = remote_pages
        # How many rows to ask each node for: about what it gave the last page.
        takes: dict[str, int] = {}
        # By request and the nodes asked (a page of one node alone is another).
        takes_key = (*query, node)
        learned = (self._takes.get(takes_key) if self.learn_takes and self.list_rows
                   else None)
        if learned:
            takes = {name: take for name, take in learned.items() if take < limit}
            if remote_takes := {name: take for name, take in takes.items()
                                if name != self.node}:
                extra[TAKES] = remote_takes
        # This node's own first rows too (the rest, if needed, costs no round trip).
        own_args = ({**args, "limit": takes[self.node]} if self.node in takes else args)
        started = asyncio.get_running_loop().time()

        own: list[tuple[Page, dict[str, Any]]] = []

        async def local() -> dict[str, Any]:
            # This node's page merges as it is: nothing to check, nor to decode.
            # Its rows as columns too: only the winners become objects.
            entry = known.get(self.node)
            page, result = self._own_page(own_args,
                                          entry.version if entry is not None else None)
            own.append((page, result))
            return result

        gathered = await self._scatter("list", {k: v for k, v in args.items() if v is not None},
                                       targets=self._targets(node), timeout=timeout,
                                       role=Role.READ_ONLY, local=local, extra=extra or None)
        gathered.raise_single_error()
        pages: dict[str, dict[str, Any]] = {}
        node_groups: dict[str, _NodeGroups] = {}
        node_pages: dict[str, Page] = {}
        fields: list[str] | None = None
        answered = _HeldQuery()
        for name, answer in gathered.results.items():
            if name == self.node and own:
                page, answer = own[0]
                page_fields: Any = SUMMARY_FIELDS
            else:
                page, page_fields = _answered_page(
                    answer, held.nodes.get(name) if held is not None else None, sort)
            entry = (_groups_of(answer, known.get(name), group_limit)
                     if groups and page is not None else None)
            if page is None or (groups and entry is None):
                # An answer that is no page (a bug, or a node of another
                # version) is named, never merged nor silently left out.
                gathered.missing[name] = "malformed list answer"
                continue
            version = answer.get("page_version")
            if isinstance(version, str):
                answered.nodes[name] = _HeldPage(version, page, page_fields)
            if page.records and isinstance(page.records[0], (list, tuple)):
                # Rows of values: kept as they are through the merge (most
                # lose), under the field names of the first such page.
                if fields is None:
                    fields = list(page_fields)
                elif list(page_fields) != fields:
                    page = _with_dict_rows(page, page_fields)
            pages[name] = answer
            node_pages[name] = page
            if entry is not None:
                node_groups[name] = entry
        loop = asyncio.get_running_loop()
        premerged = None
        if takes:
            premerged = await self._complete_pages(
                node_pages, takes, fields, args, answered, gathered,
                (timeout or wire.READ_TIMEOUT) - (loop.time() - started))
        merged, rows = self._merged(query, held, answered, list(node_pages.values()), fields,
                                    sort, limit, premerged)
        if self.learn_takes and self.list_rows:
            # For the next request: once this one's reply is out.
            loop.call_soon(self._learn_takes, takes_key, merged, list(node_pages), limit)
        result: dict[str, Any] = {"connections": rows, "total": merged.total,
                                  "next_cursor": merged.next_cursor}
        if groups:
            summed, truncated, version = self._sum_groups(node_groups, group_limit)
            result["groups"] = {**summed, "nodes": {name: pages[name]["count"]
                                                    for name in sorted(pages)}}
            result["groups_truncated"] = truncated
            if version is not None:
                # The same while no node's groups changed (and the same nodes
                # answered): a console that holds them is sent the page alone.
                result["groups_version"] = version
        return Answer(result=result, missing=gathered.all_missing())

    async def _complete_pages(self, pages: dict[str, Page], takes: dict[str, int],
                              fields: list[str] | None, args: dict[str, Any],
                              answered: _HeldQuery, gathered: _Gathered, timeout: float
                              ) -> Page | None:
        """Complete, in ``pages``, the page of each node that sent its first
        ``takes`` rows only (:data:`TAKES`) where the merged page might miss
        rows of its past them: that node is asked for the rest of its page,
        after its last row sent (a page of the same request with that cursor);
        this node makes its own whole page. Then the merge is checked again: a
        page that may still hide rows of the merged page (its node did not
        answer, or its rows moved between the rounds) cuts every page at its
        last row known, the first of them if several: what is sure of the page
        (its cursor resumes there); the node it stops short for, if it did
        not answer, is named missing. Returns the pages merged if the last
        merge is the page, else None."""
        sort, limit = args["sort"], args["limit"]
        cut = {name: page for name, page in pages.items()
               if name in takes and page.next_cursor is not None and page.keys}
        if not cut:
            return None
        merged = merge_pages(pages.values(), sort=sort, limit=limit)
        short = {name: page for name, page in cut.items()
                 if not page_covers(merged, page.keys[-1], sort=sort, limit=limit)}
        if not short:
            return merged
        if short.pop(self.node, None) is not None:
            # This node's whole page, here and now.
            pages[self.node] = self._page_part(args)[1]
            answered.nodes.pop(self.node, None)
            # Its rows may have moved or gone meanwhile: the others' checked again.
            merged = merge_pages(pages.values(), sort=sort, limit=limit)
            short = {name: page for name, page in cut.items() if name != self.node
                     and not page_covers(merged, page.keys[-1], sort=sort, limit=limit)}
        if short:
            self.second_rounds += 1
        base = {key: value for key, value in args.items() if value is not None}
        base["groups"] = False

        async def rest(name: str, page: Page) -> tuple[str, Page | str]:
            more = {**base, "cursor": encode_cursor(sort, tuple(page.keys[-1])),
                    "limit": limit - len(page.records)}
            got = await self._scatter("list", more, targets=[name],
                                      timeout=max(0.001, timeout), role=Role.READ_ONLY,
                                      local=None, extra={"rows": self.list_rows})
            if name in got.errors:
                error = got.errors[name]
                return name, f"{error.code}: {error.message}"
            if name in got.missing:
                return name, got.missing[name]
            second, second_fields = _answered_page(got.results.get(name), None, sort)
            if second is None:
                return name, "malformed list answer"
            if isinstance(second_fields, list) and second_fields != fields and second.records:
                second = _with_dict_rows(second, second_fields)  # as its first rows were
            return name, second

        failed: dict[str, str] = {}
        for name, second in (await asyncio.gather(*(rest(name, page)
                                                    for name, page in short.items()))
                             if short else ()):
            first = short[name]  # as the first round brought it: no page is cut yet
            # Its rows are no page of one version any more: not held.
            answered.nodes.pop(name, None)
            if isinstance(second, str):
                failed[name] = second
                continue
            seen = {key[1] for key in first.keys}
            # A live order moves while the pages are read: no row twice.
            fresh = [(key, row) for key, row in zip(second.keys, second.records)
                     if key[1] not in seen]
            pages[name] = Page(records=[*first.records, *(row for _, row in fresh)],
                               total=first.total, next_cursor=second.next_cursor,
                               keys=[*first.keys, *(key for key, _ in fresh)])
        merged = merge_pages(pages.values(), sort=sort, limit=limit)
        # Still unsure: a page with rows behind it that it does not hold (a node
        # that did not answer, or one whose rows moved between the rounds), and
        # whose last row the merged page passes.
        unsure = {name: tuple(page.keys[-1]) for name, page in pages.items()
                  if page.next_cursor is not None and page.keys and len(page.records) < limit
                  and not page_covers(merged, page.keys[-1], sort=sort, limit=limit)}
        if not unsure:
            return merged
        # Every page up to the first of them: what is sure, its cursor resuming
        # there (the rows the others hide all sort after it).
        boundary = sorted(unsure.values(), reverse=sort.startswith("-"))[0]
        for name, page in list(pages.items()):
            pages[name] = page_up_to(page, boundary, sort=sort)
        for name, reason in failed.items():
            if unsure.get(name) == boundary:  # the node the page stops short for
                gathered.missing[name] = f"sent part of its page; no answer for the rest ({reason})"
        return None

    def _learn_takes(self, query: tuple[Any, ...], merged: Page, pages: list[str],
                     limit: int) -> None:
        """The rows to ask each node for next time, from what it gave ``merged``."""
        won = Counter(owner_of(key[1]) for key in merged.keys)
        last = self._takes.get(query, {})
        self._takes[query] = {name: _next_take(limit, won.get(name, 0), last.get(name))
                              for name in pages}
        self._takes.move_to_end(query)
        while len(self._takes) > _TAKES_KEPT:
            self._takes.popitem(last=False)

    def _merged(self, query: tuple[Any, ...], held: _HeldQuery | None, answered: _HeldQuery,
                node_pages: list[Page], fields: list[str] | None, sort: str, limit: int,
                premerged: Page | None = None) -> tuple[Page, list[Any]]:
        """The nodes' pages merged and the winning rows as objects: those held
        while the same nodes answered the same page versions, else merged anew
        (and held, with each node's page)."""
        merged_key = None
        if len(answered.nodes) == len(node_pages):
            merged_key = tuple(sorted((name, page.version)
                                      for name, page in answered.nodes.items()))
        if held is not None and merged_key is not None and held.merged_key == merged_key:
            assert held.merged is not None
            self._held_pages.move_to_end(query)
            return held.merged, _copy_rows(held.rows)
        merged = (premerged if premerged is not None
                  else merge_pages(node_pages, sort=sort, limit=limit))
        rows = _encoded_rows(merged.records, fields)
        if self.page_cache and answered.nodes and limit <= _KEPT_LIMIT:
            answered.merged_key, answered.merged, answered.rows = merged_key, merged, rows
            self._held_pages[query] = answered
            self._held_pages.move_to_end(query)
            while len(self._held_pages) > _KEPT_PAGES:
                self._held_pages.popitem(last=False)
            rows = _copy_rows(rows)
        return merged, rows

    def _sum_groups(self, node_groups: dict[str, _NodeGroups], limit: int
                    ) -> tuple[dict[str, dict[str, int]], bool, int | None]:
        """The nodes' groups summed, whether any was cut, and the sum's version
        (None unless every node gave its own); the last sum is reused while
        no node's groups changed."""
        if self.groups_cache:
            for name, entry in node_groups.items():
                if entry.version is not None:
                    self._node_groups[name] = entry
            for name in [name for name in self._node_groups
                         if name != self.node and name not in self.table]:
                del self._node_groups[name]  # forgotten nodes are not kept
        key: Any = None
        if all(entry.version is not None for entry in node_groups.values()):
            key = (limit, tuple(sorted((name, entry.version)
                                       for name, entry in node_groups.items())))
            last = self._summed_groups
            if self.groups_cache and last is not None and last[0] == key:
                return last[1], last[2], _version_of(key)
        summed, truncated = merge_groups(
            ((entry.groups, entry.truncated) for entry in node_groups.values()), limit)
        for kind in ("users", "paths", "topics"):
            summed.setdefault(kind, {})
        if key is None:
            return summed, truncated, None
        if self.groups_cache:
            self._summed_groups = (key, summed, truncated)
        return summed, truncated, _version_of(key)

    async def get(self, connection_id: str, *, node: str | None = None,
                  timeout: float | None = None) -> Answer:
        owner = owner_of(connection_id)
        if owner is None and node is not None:
            # A prefix of the hex part with --node: that node's NODE/PREFIX.
            connection_id, owner = f"{node}{ID_SEPARATOR}{connection_id}", node
        unknown = UnknownConnection(
            f"no open connection with id {connection_id}" if owner is not None else
            f"no open connection with id {connection_id}: in a cluster an id (or an id "
            f"prefix) starts with its node, NODE{ID_SEPARATOR}HEX (or give --node)")
        if owner is None or (node is not None and owner != node):
            if node is not None:
                self._targets(node)  # an unknown node is unknown_node, not unknown_connection
            raise unknown
        if owner == self.node:
            return await self.local.get(connection_id)
        if owner not in self.table:
            raise unknown
        gathered = await self._scatter("get", {"id": connection_id}, targets=[owner],
                                       timeout=timeout, role=Role.READ_ONLY, local=None)
        gathered.raise_single_error()
        if owner in gathered.results:
            return Answer(result=gathered.results[owner])
        return Answer(result={"id": connection_id, "node": owner},
                      missing=gathered.all_missing())

    def _selector_targets(self, selector: Selector, node: str | None) -> list[str]:
        """The nodes that own what a selector picks (ids name their node)."""
        targets = self._targets(node)
        if selector.ids is None:
            return targets
        owners = {owner_of(connection_id) for connection_id in selector.ids}
        return [name for name in targets if name in owners]

    async def send(self, selector: Selector, message: str | bytes, *,
                   dry_run: bool = False, role: Role, node: str | None = None,
                   timeout: float | None = None) -> Answer:
        args: dict[str, Any] = {"selector": selector.to_dict(), "dry_run": dry_run}
        if isinstance(message, str):
            args["text"] = message
        else:
            args["binary"] = base64.b64encode(bytes(message)).decode("ascii")

        async def local() -> dict[str, Any]:
            return self.hub.send(selector, message, dry_run=dry_run).as_dict()

        targets = self._selector_targets(selector, node)
        gathered = await self._scatter("send", args, targets=targets, timeout=timeout,
                                       role=role, local=local)
        if node is not None:
            gathered.raise_single_error()
        if not dry_run and any(name != self.node for name in gathered.results):
            self.cross_node_sends += 1
        results = {name: r for name, r in gathered.results.items() if isinstance(r, dict)}
        sample: list[str] = []
        for name in sorted(results, key=lambda n: n != self.node):
            sample.extend(results[name].get("sample", ()))
        result = {
            "recipients": sum(int(r.get("recipients", 0)) for r in results.values()),
            "delivered": sum(int(r.get("delivered", 0)) for r in results.values()),
            "skipped": sum(int(r.get("skipped", 0)) for r in results.values()),
            "sample": sample[:10],
            "dry_run": dry_run,
            "per_node": {name: per_node_send(results[name]) for name in sorted(results)},
        }
        return Answer(result=result, missing=gathered.all_missing())

    async def disconnect(self, selector: Selector, *, code: int, reason: str,
                         role: Role, node: str | None = None,
                         timeout: float | None = None) -> Answer:
        async def local() -> dict[str, Any]:
            return {"count": self.hub.disconnect(selector, code, reason)}

        gathered = await self._scatter(
            "disconnect", {"selector": selector.to_dict(), "code": code, "reason": reason},
            targets=self._selector_targets(selector, node), timeout=timeout, role=role,
            local=local)
        if node is not None:
            gathered.raise_single_error()
        per_node = {name: {"count": int(r.get("count", 0))}
                    for name, r in sorted(gathered.results.items()) if isinstance(r, dict)}
        return Answer(result={"count": sum(r["count"] for r in per_node.values()),
                              "per_node": per_node}, missing=gathered.all_missing())

    async def stats(self, *, sampled: bool = False, node: str | None = None,
                    timeout: float | None = None) -> Answer:
        if sampled:
            # Stats events, every interval for every subscriber: from the
            # heartbeats already here, never a round of requests.
            per_node = {self.node: self.hub.stats(sampled=True)}
            for member in self.table.members():
                if member.health != NodeHealth.GONE and member.stats is not None:
                    per_node[member.name] = member.stats
            if node is not None:
                self._targets(node)
                per_node = {name: s for name, s in per_node.items() if name == node}
            return Answer(result=_summed_stats(per_node, self.node))

        async def local() -> dict[str, Any]:
            return self.hub.stats()

        gathered = await self._scatter("stats", {}, targets=self._targets(node),
                                       timeout=timeout, role=Role.READ_ONLY, local=local)
        gathered.raise_single_error()
        per_node = {name: r for name, r in gathered.results.items() if isinstance(r, dict)}
        return Answer(result=_summed_stats(per_node, self.node), missing=gathered.all_missing())

    async def shutdown(self, mode: ShutdownMode, *, code: int, reason: str,
                       deadline: float | None, role: Role, node: str | None = None,
                       timeout: float | None = None) -> ShutdownAnswer:
        if node == self.node:
            return await self.local.shutdown(mode, code=code, reason=reason,
                                             deadline=deadline, role=role)
        targets = self._targets(node)
        local_answer: ShutdownAnswer | None = None
        if node is None:
            # Refused here first: nothing is asked of the others if this node refuses.
            local_answer = await self.local.shutdown(mode, code=code, reason=reason,
                                                     deadline=deadline, role=role)
        gathered = await self._scatter(
            "shutdown", {"mode": mode, "code": code, "reason": reason, "deadline": deadline},
            targets=[name for name in targets if name != self.node], timeout=timeout,
            role=role, local=None)
        if node is not None:
            gathered.raise_single_error()
        per_node: dict[str, Any] = {}
        if local_answer is not None:
            this = dict(local_answer.result)
            this.pop("per_node", None)
            per_node[self.node] = this
        per_node.update((name, r) for name, r in gathered.results.items() if isinstance(r, dict))
        result = {"mode": mode, "state": HubState.DRAINING,
                  "connections": sum(int(r.get("connections", 0)) for r in per_node.values()),
                  "deadline": deadline, "per_node": dict(sorted(per_node.items()))}
        # This node stops last: once its reply is out, after the others accepted.
        start = local_answer.start if local_answer is not None else _nothing
        return ShutdownAnswer(result=result, missing=gathered.all_missing(), start=start)

    async def nodes(self, *, node: str | None = None, timeout: float | None = None) -> Answer:
        entries = [self.node_entry(), *map(_fresh_entry, self.table.members())]
        entries.sort(key=lambda entry: entry["node"])
        if node is not None:
            self._targets(node)
            entries = [entry for entry in entries if entry["node"] == node]
        missing: dict[str, str] = {}
        if not self.broker_up:
            missing = {entry["node"]: BROKER_UNAVAILABLE for entry in entries
                       if entry["node"] != self.node and entry["health"] != NodeHealth.GONE}
        return Answer(result={"nodes": entries}, missing=missing)

    # Taps: one Tap on this node fed by every node's part (server/cluster/taps.py).

    async def start_tap(self, selector: Selector, limits: Any, *, owner: dict[str, Any],
                        node: str | None = None) -> Any:
        return await self.taps.start(selector, limits, owner=owner, node=node)

    def stop_tap(self, tap: Any, reason: Any) -> bool:
        return self.taps.stop(tap, reason)

    # For applications

    async def send_everywhere(self, selector: Selector, message: str | bytes, *,
                              timeout: float | None = None) -> Answer:
        """Send to the selected connections of every node (the hub's
        :meth:`~wsconsole.server.hub.Hub.send_everywhere`)."""
        return await self.send(selector, message, role=Role.OPERATOR, timeout=timeout)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _fresh_entry(member: Any) -> dict[str, Any]:
    """A member's entry with its uptime brought up to now, on this host's clock
    (the time since its heartbeat arrived: no clock of another host involved)."""
    entry = member.public()
    if isinstance(entry.get("uptime"), (int, float)) and member.health != NodeHealth.GONE:
        entry["uptime"] = entry["uptime"] + (time.monotonic() - member.heard)
    return entry


def _nothing() -> None:
    pass


def _page_of(result: Any, sort: str) -> Page | None:
    """A node's ``list`` answer as a :class:`Page` to merge, in either shape
    (rows as objects with ``[value, id]`` keys, or :data:`ROWS_COLUMNS`);
    None if it is neither, or if a key is not a value ``sort`` orders by
    (text for a text order, a number otherwise) with a text id: a key the
    merge could not compare with the others' would fail the whole page."""
    values = _KEY_TYPES[sort.lstrip("-") in TEXT_SORT_KEYS]
    if not isinstance(result, dict) or not isinstance(result.get("keys"), list) or not all(
            isinstance(result.get(name), int) and not isinstance(result[name], bool)
            for name in ("total", "count")):
        return None
    cursor, keys = result.get("next_cursor"), result["keys"]
    if cursor is not None and not isinstance(cursor, str):
        return None
    fields, rows = result.get("fields"), result.get("rows")
    if isinstance(fields, list) and isinstance(rows, list):
        if len(rows) != len(keys) or (rows and "id" not in fields) or not (
                set(map(type, fields)) <= {str}):
            return None
        if not rows:
            return Page(records=[], total=result["total"], next_cursor=cursor)
        at, width = fields.index("id"), len(fields)
        # Each row a list of the fields' width with a text id (loops in C:
        # this runs for every row of every node's page).
        if set(map(type, rows)) != {list} or set(map(len, rows)) != {width}:
            return None
        ids = [row[at] for row in rows]
        if set(map(type, ids)) != {str} or not set(map(type, keys)) <= values:
            return None
        return Page(records=rows, total=result["total"], next_cursor=cursor,
                    keys=list(zip(keys, ids)))
    connections = result.get("connections")
    if not isinstance(connections, list) or len(connections) != len(keys) or (
            keys and (set(map(type, keys)) != {list} or set(map(len, keys)) != {2}
                      or not set(map(type, map(itemgetter(0), keys))) <= values
                      or set(map(type, map(itemgetter(1), keys))) != {str}
                      or set(map(type, connections)) != {dict})):
        return None
    return Page(records=connections, total=result["total"], next_cursor=cursor, keys=keys)


_KEY_TYPES = {True: frozenset({str}), False: frozenset({int, float})}
"""The types of a page's key values, by whether its order is of text."""


def _next_take(limit: int, won: int, last: int | None) -> int:
    """The rows to ask a node for, that gave ``won`` rows to the last merged
    page and was asked for ``last``: those and a margin, kept while that is
    enough and not less than half of it (a take that moved with every page
    would change the request, and the page the node keeps for it)."""
    need = min(limit, won + max(_TAKE_MARGIN, won // 2))
    if last is not None and need <= last < 2 * need:
        return last
    return need


def _page_key(args: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a ``list`` request's page, groups aside."""
    return (args["user"], args["path"], args["topic"], args["id_prefix"], args["sort"],
            args["limit"], args["cursor"])


def _answered_page(answer: Any, held: _HeldPage | None, sort: str
                   ) -> tuple[Page | None, Any]:
    """A node's page in its ``list`` answer and its rows' field names: the page
    it sent, or the one held if it answered that one's ``page_version``
    alone; (None, None) if neither."""
    if isinstance(answer, dict) and "keys" not in answer:
        version = answer.get("page_version")
        if held is not None and isinstance(version, str) and version == held.version and (
                isinstance(answer.get("count"), int)):
            return held.page, held.fields
        return None, None
    page = _page_of(answer, sort)
    return page, (answer.get("fields") if page is not None else None)


def _groups_of(answer: dict[str, Any], known: _NodeGroups | None, limit: int
               ) -> _NodeGroups | None:
    """A node's groups in its ``list`` answer: those it sent, or those held
    (``known``) if it answered their version alone; None if neither."""
    version = answer.get("groups_version")
    if not isinstance(version, str):
        version = None
    groups = answer.get("groups")
    if groups is None:
        if known is not None and version is not None and version == known.version:
            return known
        return None
    if not isinstance(groups, dict) or not all(
            isinstance(counts, dict) and set(map(type, counts.values())) <= {int}
            for counts in groups.values()):
        return None
    return _NodeGroups(version, limit, groups, bool(answer.get("groups_truncated")))


def _version_of(key: Any) -> int:
    """A ``groups_version`` (an integer, as one node's is) for a sum of groups:
    53 bits of a digest of the nodes' versions, exact in every JSON reader."""
    digest = hashlib.blake2b(repr(key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 11


def _encoded_rows(records: list[Any], fields: list[str] | None) -> list[dict[str, Any]]:
    """A merged page's rows (``records``: objects, or values in ``fields``'
    order) as objects, with their JSON text (:class:`wire.EncodedList`), so
    that the reply does not encode them again; the plain list where the
    reply's own encoding must judge them: no orjson, a value orjson refuses
    (a lone surrogate, an integer past 64 bits, a type it does not know), or
    a NaN or an infinity in one of :data:`FLOAT_FIELDS` (in this node's
    rows: the others' were read from JSON), which orjson writes as null
    where the reply refuses them."""
    floats: Any
    if fields is not None and tuple(fields) == SUMMARY_FIELDS and (
            set(map(type, records)) <= {list, tuple}):
        # Every row a summary's values (a node's page as columns): made an
        # object by one dict display, and its floats read by index.
        rows = list(starmap(_summary_object, records))
        floats = chain.from_iterable(map(_SUMMARY_FLOATS, records))
    else:
        rows = [row if isinstance(row, dict) else dict(zip(fields or (), row))
                for row in records]
        floats = chain.from_iterable(map(itemgetter(*FLOAT_FIELDS), rows))
    if orjson is None or not rows:
        return rows
    try:
        text = orjson.dumps(rows)
    except TypeError:  # orjson.JSONEncodeError
        return rows
    # A NaN or an infinity makes the sum one (so does an overflow: a false
    # alarm, encoded the usual way); None (and zero) are left out.
    try:
        if not math.isfinite(sum(filter(None, floats))):
            return rows
    except (OverflowError, TypeError, ValueError, KeyError):
        return rows
    return wire.EncodedList(rows, text.decode("utf-8"))


def _copy_rows(rows: list[Any]) -> list[Any]:
    """A copy of held rows for one reply (the held list is never changed)."""
    if isinstance(rows, wire.EncodedList):
        return wire.EncodedList(rows, rows.json)
    return list(rows)


def _with_dict_rows(page: Page, fields: list[str]) -> Page:
    return Page(records=[dict(zip(fields, row)) for row in page.records], total=page.total,
                next_cursor=page.next_cursor, keys=page.keys)


def _summed_stats(per_node: dict[str, dict[str, Any]], this: str) -> dict[str, Any]:
    """Cluster stats: this node's identity and state, the sums of every node's counts."""
    if not per_node:
        return {"per_node": {}}
    base = dict(per_node.get(this) or per_node[min(per_node)])
    for key in ("connections", "opened_total", "closed_total"):
        base[key] = sum(int(s.get(key) or 0) for s in per_node.values())
    for key in ("totals", "rates"):
        sums: dict[str, float] = {}
        for stats in per_node.values():
            for name, value in (stats.get(key) or {}).items():
                if isinstance(value, (int, float)):
                    sums[name] = sums.get(name, 0) + value
        base[key] = sums
    # Every node's running taps (each names its node): every console says a tap
    # runs, whichever node it runs on.
    base["taps"] = [tap for _, stats in sorted(per_node.items())
                    for tap in stats.get("taps") or ()]
    base["per_node"] = dict(sorted(per_node.items()))
    return base
