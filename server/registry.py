"""The connection registry: one record per open connection, indexed by user, path
and topic, in every listing order, and the selectors that pick groups out of it.

Pure: values in, values out. Must never import asyncio, websockets, sockets or
textual; the hub (``wsconsole.server.hub``) is the asyncio edge that feeds it.

What things cost, for ``n`` open connections (the structures are in
``wsconsole.server.indexes``; figures in docs/benchmarks.md):

- register, unregister: a few bisections (the connection-time index, the
  segment's id order, each order someone asked for within the last minute)
  and group counts moved by one; subscribe: a group count.
- group counts: maintained on every change; the largest k of each kind cost
  O(k + distinct counts), never a walk over groups or records.
- a page of ``limit`` rows at any cursor depth (keyset: the cursor is the
  ``(sort value, id)`` of the last row), no filter: by connection time, a
  bisection plus the page; in any other order, a bisection in each segment
  of 512 records plus a merge of the page. Live values (counters, last
  activity, buffer, latency) order by their last sample, never by a walk
  over the records. The first page in an order nobody asked for within
  :data:`WANTED_SECONDS` sorts each segment once (about 0.25 ms per 512
  records), after which the order is kept up to date.
- one filter: a small group is sorted, O(m log limit); a larger one is
  found by walking the order, about ``limit * n / m`` steps, when that is
  expected to cost less (:func:`_walk_budget`, from measured step costs);
  a walk that has cost as much as the sort without filling the page (the
  group sits far down the order: a filter that follows the sort) gives up
  and the group is sorted: about two sorts of the group, the worst case.
  The first page by connection time of a group whose members joined in
  connection order is the head of its bucket. Several filters: the
  smallest group's ids intersected with the others' (the total needs it).
- a pattern (``user=guest*``, ``path=/api/*``): matched against the
  index's names, not the records (a bisection of its literal prefix, then
  a regular expression over the names in that range, if it needs one);
  several matching groups are joined by id, O(their members), and then
  filtered as one group.
- sampling: one segment per :meth:`ConnectionRegistry.sample_step`, so that
  the edge spreads a pass over every record across its interval.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
import secrets
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from itertools import chain, islice
from operator import attrgetter, itemgetter
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .errors import AmbiguousId, SelectorError
from .patterns import escape, parse_pattern
from .indexes import SEGMENT_SIZE, GroupIndex, Segment, SortedRecords, order_key, successor
from .redaction import DEFAULT_RULES, RedactionRules

__all__ = [
    "ConnectionRecord",
    "ConnectionRegistry",
    "SUMMARY_FIELDS",
    "Selector",
    "Page",
    "SORT_KEYS",
    "MAX_CANDIDATES",
    "FIXED_SORT_KEYS",
    "LIVE_SORT_KEYS",
    "SORTED_BY",
    "Probe",
    "encode_cursor",
    "decode_cursor",
    "merge_pages",
    "TEXT_SORT_KEYS",
    "page_covers",
    "page_up_to",
    "merge_groups",
    "WANTED_SECONDS",
    "WALK_STEP_COST",
    "MAX_CURSOR_LENGTH",
]


_NO_TOPICS: frozenset[str] = frozenset()

SUMMARY_FIELDS = ("id", "node", "user", "path", "query", "remote", "connected_at",
                  "last_activity", "msgs_in", "bytes_in", "msgs_out", "bytes_out",
                  "buffered", "kernel_queued", "latency", "topics")
"""The fields of :meth:`ConnectionRecord.summary`, in its order."""


class ConnectionRecord:
    """What wsconsole knows about one open connection.

    Counters are plain attributes incremented by the hub's hot path. The
    registry's sampler copies them (``*_seen``), notes ``last_activity`` and
    reads ``buffered`` and ``latency`` through the edge: those sampled values
    are what live orders sort by, and only the registry writes them.
    ``kernel_queued`` and ``bytes_out_measured`` are the edge's (the slow-consumer
    check): no order sorts by them.
    """

    # The counters first: a slot's place is its offset in the object, and
    # these five then share the object's first cache line with its type,
    # which every attribute access reads. A broadcast counts on thousands
    # of records that are out of the CPU's caches: one miss per record,
    # not two (tests/benchmarks/bench_broadcast.py).
    __slots__ = (
        "msgs_in",
        "bytes_in",
        "msgs_out",
        "bytes_out",
        "bytes_out_measured",
        "id",
        "node",
        "user",
        "path",
        "query",
        "remote",
        "request_headers",
        "response_headers",
        "subprotocol",
        "extensions",
        "connected_at",
        "last_activity",
        "msgs_in_seen",
        "bytes_in_seen",
        "msgs_out_seen",
        "bytes_out_seen",
        "buffered",
        "kernel_queued",
        "latency",
        "topics",
        "handle",
        "redaction",
        "segment",
    )

    def __init__(
        self,
        id: str,
        *,
        node: str,
        user: str,
        path: str,
        query: str = "",
        remote: str = "",
        request_headers: Any = (),
        response_headers: Any = (),
        subprotocol: str | None = None,
        extensions: tuple[str, ...] = (),
        connected_at: float = 0.0,
        handle: Any = None,
        redaction: RedactionRules = DEFAULT_RULES,
    ) -> None:
        self.id = id
        self.node = node
        self.user = user
        self.path = path
        self.query = query
        self.remote = remote
        self.request_headers = request_headers
        """Pairs, or an object with ``raw_items()``; read with :func:`redact_headers`."""
        self.response_headers = response_headers
        self.subprotocol = subprotocol
        self.extensions = tuple(extensions)
        self.connected_at = connected_at
        self.last_activity = connected_at
        """When a message last arrived, to within the sample interval."""
        self.msgs_in_seen = 0
        """``msgs_in`` at the last sample: what ``sort=msgs_in`` orders by."""
        self.bytes_in_seen = 0
        self.msgs_out_seen = 0
        self.bytes_out_seen = 0
        self.msgs_in = 0
        self.bytes_in = 0
        self.msgs_out = 0
        self.bytes_out = 0
        self.bytes_out_measured = 0
        """``bytes_out`` when the sampler last measured the pending bytes."""
        self.buffered = 0
        """Bytes in the userspace write buffer (asyncio's, not yet given to the
        kernel) at the last sample."""
        self.kernel_queued: int | None = 0
        """Bytes in the kernel send queue not yet acknowledged by the client,
        None where the platform cannot tell (only Linux can): measured now by
        a detail (``show``), else as the sampler last measured it (only for a
        connection that has sent more than the slow-consumer limit in all)."""
        self.latency = 0.0
        """Keepalive round trip at the last sample."""
        # Most connections join no topic: share one empty frozenset until they
        # do (an empty set costs 216 bytes per connection).
        self.topics: set[str] | frozenset[str] = _NO_TOPICS
        self.handle = handle
        """Opaque reference to the live connection; the registry never touches it.
        None once the connection is gone (the hub lets go of it then)."""
        self.redaction = redaction
        """What :meth:`detail` hides of the headers (the server's rules, with
        the names its operator added); the query is redacted before it is stored."""
        self.segment: Any = None
        """The registry's segment holding this record (the registry's own business)."""

    def summary(self) -> dict[str, Any]:
        """The record as a JSON-ready dict, without headers."""
        return {
            "id": self.id,
            "node": self.node,
            "user": self.user,
            "path": self.path,
            "query": self.query,
            "remote": self.remote,
            "connected_at": self.connected_at,
            "last_activity": self.last_activity,
            "msgs_in": self.msgs_in,
            "bytes_in": self.bytes_in,
            "msgs_out": self.msgs_out,
            "bytes_out": self.bytes_out,
            "buffered": self.buffered,
            "kernel_queued": self.kernel_queued,
            "latency": self.latency,
            "topics": sorted(self.topics),
        }

    def summary_row(self) -> list[Any]:
        """:meth:`summary`'s values in :data:`SUMMARY_FIELDS` order, without the
        dict (a cluster node's page as columns)."""
        return [self.id, self.node, self.user, self.path, self.query, self.remote,
                self.connected_at, self.last_activity, self.msgs_in, self.bytes_in,
                self.msgs_out, self.bytes_out, self.buffered, self.kernel_queued,
                self.latency, sorted(self.topics)]

    def detail(self) -> dict[str, Any]:
        """The record in full, headers included, with secrets redacted."""
        data = self.summary()
        data["request_headers"] = self.redaction.redact_headers(self.request_headers)
        data["response_headers"] = self.redaction.redact_headers(self.response_headers)
        data["subprotocol"] = self.subprotocol
        data["extensions"] = list(self.extensions)
        return data

    def __repr__(self) -> str:
        return f"<ConnectionRecord {self.id} user={self.user!r} path={self.path!r}>"


@dataclass(frozen=True, slots=True)
class Selector:
    """Which connections an operation applies to.

    Kinds combine with AND: ``Selector(user="ann", topic="lobby")`` is ann's
    connections in the lobby. ``everyone=True`` must be said explicitly; an
    empty selector is an error, so that a typo never broadcasts to everyone.

    Made in code, a selector names exact users, paths and topics: an
    application that selects by a name a client chose (``to:*:hi``) never
    reads it as a wildcard. The control plane's selectors (:meth:`from_dict`)
    are patterns (``user="guest*"``; :mod:`wsconsole.server.patterns`), and
    ``patterns=True`` makes one in code.
    """

    everyone: bool = False
    user: str | None = None
    path: str | None = None
    topic: str | None = None
    ids: tuple[str, ...] | None = None
    patterns: bool = False
    """True: user, path and topic are patterns; False: exact names."""

    FIELDS = ("everyone", "user", "path", "topic", "ids")

    def __post_init__(self) -> None:
        if not isinstance(self.everyone, bool):
            raise SelectorError("selector field 'everyone' must be a boolean")
        for name in ("user", "path", "topic"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str):
                    raise SelectorError(f"selector field {name!r} must be a string")
                if self.patterns:
                    parse_pattern(value, name)  # BadPattern if it is none
        if self.ids is not None:
            if isinstance(self.ids, (str, bytes)) or not all(
                isinstance(i, str) for i in self.ids
            ):
                raise SelectorError("selector field 'ids' must be a list of strings")
            if not isinstance(self.ids, tuple):
                object.__setattr__(self, "ids", tuple(self.ids))
        if not self.everyone and self.user is None and self.path is None and (
            self.topic is None and self.ids is None
        ):
            raise SelectorError(
                "empty selector: give everyone=true, or a user, path, topic or ids"
            )

    @classmethod
    def from_dict(cls, data: Any) -> Selector:
        """Build a selector from its wire form, rejecting unknown fields; its
        user, path and topic are patterns."""
        if not isinstance(data, Mapping):
            raise SelectorError("selector must be an object")
        unknown = sorted(set(data) - set(cls.FIELDS))
        if unknown:
            raise SelectorError(
                f"unknown selector field {unknown[0]!r}; "
                f"expected any of {', '.join(cls.FIELDS)}"
            )
        ids = data.get("ids")
        if ids is not None and not isinstance(ids, (list, tuple)):
            raise SelectorError("selector field 'ids' must be a list of strings")
        return cls(
            everyone=data.get("everyone", False),
            user=data.get("user"),
            path=data.get("path"),
            topic=data.get("topic"),
            ids=tuple(ids) if ids is not None else None,
            patterns=True,
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire form: only the fields that are set, exact names escaped
        (the wire's names are patterns), so that another node selects the same."""
        data: dict[str, Any] = {}
        if self.everyone:
            data["everyone"] = True
        for name in ("user", "path", "topic"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value if self.patterns else escape(value)
        if self.ids is not None:
            data["ids"] = list(self.ids)
        return data

    def describe(self) -> str:
        """A short human description, e.g. ``user=ann topic=lobby``."""
        if self.everyone and len(self.to_dict()) == 1:
            return "everyone"
        parts = [f"{k}={v}" for k, v in self.to_dict().items() if k != "everyone"]
        if self.ids is not None:
            parts = [p for p in parts if not p.startswith("ids=")]
            parts.append("ids=" + ",".join(self.ids))
        return " ".join(parts)


SORT_KEYS = (
    "id",
    "user",
    "path",
    "remote",
    "connected_at",
    "last_activity",
    "msgs_in",
    "bytes_in",
    "msgs_out",
    "bytes_out",
    "buffered",
    "latency",
)
"""Fields a listing can be sorted by; prefix with ``-`` for descending."""

MAX_CANDIDATES = 10
"""How many ids an ambiguous id prefix's error lists."""

FIXED_SORT_KEYS = ("id", "user", "path", "remote", "connected_at")
"""Sort keys whose value is fixed at the handshake: a cursor in their order
never skips or repeats a record that stays open."""

LIVE_SORT_KEYS = frozenset(SORT_KEYS) - frozenset(FIXED_SORT_KEYS)
"""Sort keys whose value moves: ordered by the value of the last sample."""

SORTED_BY: dict[str, str] = {
    **{key: key for key in SORT_KEYS},
    "msgs_in": "msgs_in_seen",
    "bytes_in": "bytes_in_seen",
    "msgs_out": "msgs_out_seen",
    "bytes_out": "bytes_out_seen",
}
"""The record attribute each sort key orders by: counters by their sampled copy."""

_TEXT_SORT_KEYS = frozenset({"id", "user", "path", "remote"})
TEXT_SORT_KEYS = _TEXT_SORT_KEYS
"""The sort keys whose values are text (the others' are numbers)."""
# Orders kept per segment; "connected_at" has an index of its own (records
# arrive in that order: adding one is an append), "id" is each segment's
# by_id list.
_SEGMENT_ORDERS = tuple(SORTED_BY[key] for key in SORT_KEYS
                        if key not in ("id", "connected_at"))

Probe = Callable[[ConnectionRecord], "tuple[int, float]"]
"""Reads ``(buffered, latency)`` of a record from its live connection (the edge's part)."""

WANTED_SECONDS = 60.0
"""An order asked for within this many seconds (of sample time) is kept up to
date as records come, go and move; any other is sorted again when it is next
asked for."""

MAX_CURSOR_LENGTH = 100_000
"""Longer cursors are refused unread (a cursor holds one user, path or address)."""


# Cursors: the (sort key, id) of the last row, so that a page resumes after
# it whatever was added or removed meanwhile, on one node or merged from many.


def encode_cursor(sort: str, key: tuple[Any, str]) -> str:
    """The opaque cursor that resumes a listing sorted by ``sort`` after ``key``.

    ``key`` is ``(value, id)`` of the last row shown. URL-safe base64 of a
    small JSON array, so that clients pass it back without parsing it.
    """
    data = json.dumps([sort, key[0], key[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str | None, sort: str) -> tuple[Any, str] | None:
    """The ``(value, id)`` a cursor resumes after; None for the first page.

    Raises :class:`SelectorError` for anything :func:`encode_cursor` did not
    make for this ``sort`` (an offset from an older server included).
    """
    if cursor is None or cursor == "":
        return None
    bad = SelectorError("cursor must be a value returned as next_cursor")
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise bad
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                               validate=True)
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # binascii, Unicode and JSON errors
        raise bad from exc
    if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], str)
            and isinstance(data[2], str)):
        raise bad
    cursor_sort, value, id = data
    if cursor_sort != sort:
        raise SelectorError(
            "cursor belongs to a listing in another order; start again without a cursor")
    if sort.lstrip("-") in _TEXT_SORT_KEYS:
        valid = isinstance(value, str)
    else:
        valid = (isinstance(value, (int, float)) and not isinstance(value, bool)
                 and math.isfinite(value))
    if not valid:
        raise bad
    return value, id


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a sort value")


def _parse_sort(sort: Any) -> tuple[str, bool]:
    """``(key, descending)`` of a sort argument such as ``-msgs_in``."""
    if not isinstance(sort, str):
        raise SelectorError("sort must be a string")
    descending = sort.startswith("-")
    key = sort[1:] if descending else sort
    if key not in SORT_KEYS:
        raise SelectorError(
            f"unknown sort key {key!r}; expected one of {', '.join(SORT_KEYS)}")
    return key, descending


def _check_limit(limit: Any) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise SelectorError("limit must be an integer from 1 to 1000")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing."""

    records: Sequence[Any]
    """The rows: records from a registry, or any row type once merged (summaries)."""
    total: int
    """How many records matched the filters, over all pages."""
    next_cursor: str | None
    """Pass back as ``cursor`` for the next page; None on the last page."""
    keys: Sequence[Sequence[Any]] = ()
    """The ``(value, id)`` each row is ordered by, row for row: what
    :func:`merge_pages` merges by (live counters are ordered by their sample,
    which may be behind the value a row shows)."""


class ConnectionRegistry:
    """Open connections by id, user, path and topic, in every listing order.

    The values a live order uses (``last_activity``, ``buffered``,
    ``latency`` and the ``*_seen`` copies of the counters) are written only
    here, by :meth:`sample_step`, :meth:`sample_all` and :meth:`sample_record`:
    that is what keeps the segments' runs sorted.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, ConnectionRecord] = {}
        # Each bucket knows whether it is in connection-time order (members
        # joining in the order they connected, as a hub's do): then its first
        # page by connection time needs no walk and no sort.
        self._users = GroupIndex("connected_at")
        self._paths = GroupIndex("connected_at")
        self._topics = GroupIndex("connected_at")
        self._by_time = SortedRecords("connected_at")
        self._segments: list[Segment] = []
        # Segments with room for a record, the one to fill next last.
        self._roomy: list[Segment] = []
        self._next_segment = 0
        # Segment orders asked for lately (attribute -> sample time of the
        # last request) are kept up to date; others are sorted when asked for.
        self._wanted: dict[str, float] = {}
        self._kept: set[str] = set()
        self._clock = 0.0
        # Sums of the sampled counters of the open records.
        self._seen_msgs_in = self._seen_bytes_in = 0
        self._seen_msgs_out = self._seen_bytes_out = 0
        self.version = 0
        """Counts every register, unregister, subscribe and unsubscribe: the same
        value means the same groups."""
        self.samples_version = 0
        """Counts the samples that changed a sampled value (what live orders sort
        by, ``last_activity``, ``buffered``, ``latency``): with :attr:`version`
        the same, every :meth:`query` returns the same records in the same
        order (their live counters may have moved since)."""

    # Membership

    def new_id(self) -> str:
        """A fresh connection id: 10 hex digits, unique among open connections."""
        while True:
            candidate = secrets.token_hex(5)
            if candidate not in self._by_id:
                return candidate

    def add(self, record: ConnectionRecord) -> None:
        """Register an open connection.

        Its counters as they are now are its first sample (zero for a
        connection that just opened).
        """
        if record.id in self._by_id:
            raise ValueError(f"duplicate connection id {record.id}")
        self._by_id[record.id] = record
        self._users.add(record.user, record)
        self._paths.add(record.path, record)
        for topic in record.topics:
            self._topics.add(topic, record)
        self._by_time.add(record)
        record.msgs_in_seen = record.msgs_in
        record.bytes_in_seen = record.bytes_in
        record.msgs_out_seen = record.msgs_out
        record.bytes_out_seen = record.bytes_out
        self._seen_msgs_in += record.msgs_in
        self._seen_bytes_in += record.bytes_in
        self._seen_msgs_out += record.msgs_out
        self._seen_bytes_out += record.bytes_out
        self._place(record)
        self.version += 1

    def remove(self, id: str) -> ConnectionRecord | None:
        """Forget a connection and leave its topics; None if it was not here."""
        record = self._by_id.pop(id, None)
        if record is None:
            return None
        self._users.discard(record.user, id)
        self._paths.discard(record.path, id)
        for topic in record.topics:
            self._topics.discard(topic, id)
        self._by_time.remove(record)
        self._seen_msgs_in -= record.msgs_in_seen
        self._seen_bytes_in -= record.bytes_in_seen
        self._seen_msgs_out -= record.msgs_out_seen
        self._seen_bytes_out -= record.bytes_out_seen
        self._displace(record)
        self.version += 1
        return record

    def subscribe(self, id: str, topic: str) -> bool:
        """Add a connection to a topic; False if it already was in it."""
        if not isinstance(topic, str) or not topic:
            raise SelectorError("a topic must be a non-empty string")
        record = self._by_id.get(id)
        if record is None:
            from .errors import UnknownConnection

            raise UnknownConnection(f"no open connection with id {id}")
        if topic in record.topics:
            return False
        if record.topics:
            record.topics.add(topic)  # type: ignore[union-attr]
        else:
            record.topics = {topic}
        self._topics.add(topic, record)
        self.version += 1
        return True

    def unsubscribe(self, id: str, topic: str) -> bool:
        """Remove a connection from a topic; False if it was not in it."""
        record = self._by_id.get(id)
        if record is None or topic not in record.topics:
            return False
        record.topics.discard(topic)  # type: ignore[union-attr]
        self._topics.discard(topic, id)
        self.version += 1
        return True

    def _place(self, record: ConnectionRecord) -> None:
        roomy = self._roomy
        if roomy:
            segment = roomy[-1]
        else:
            segment = Segment(_SEGMENT_ORDERS)
            self._segments.append(segment)
            roomy.append(segment)
        segment.add(record, self._kept)
        record.segment = segment
        if len(segment) >= SEGMENT_SIZE:
            roomy.pop()

    def _displace(self, record: ConnectionRecord) -> None:
        segment: Segment = record.segment
        record.segment = None
        was_full = len(segment) >= SEGMENT_SIZE
        segment.remove(record, self._kept)
        if was_full:
            self._roomy.append(segment)
        if len(segment) <= SEGMENT_SIZE // 8 and len(self._segments) > 1 and sum(
                SEGMENT_SIZE - len(other) for other in self._roomy
                if other is not segment) >= len(segment):
            # A nearly empty segment after churn, and room elsewhere: spread
            # its few records over the others, so that a live order merges
            # about n / SEGMENT_SIZE segments, not as many as the fleet once
            # needed.
            self._segments.remove(segment)
            self._roomy.remove(segment)
            for member in segment.members.values():
                self._place(member)

    # Reading

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[ConnectionRecord]:
        return iter(list(self._by_id.values()))

    def records(self) -> Any:
        """A live view of the records (do not add or remove while iterating)."""
        return self._by_id.values()

    def __contains__(self, id: object) -> bool:
        return id in self._by_id

    def get(self, id: str) -> ConnectionRecord | None:
        """The record with this id, or None."""
        return self._by_id.get(id)

    def resolve(self, id_or_prefix: str) -> ConnectionRecord | None:
        """The record with this id, or the one record whose id starts with it.

        None when no open id starts with it; :class:`AmbiguousId`, listing up
        to :data:`MAX_CANDIDATES` of them, when several do. Costs a bisection
        per segment (the ids' sorted runs), not a walk.
        """
        record = self._by_id.get(id_or_prefix)
        if record is not None or not id_or_prefix:
            return record
        source = self._prefix_source(id_or_prefix)
        if source.count == 0:
            return None
        matches = list(islice(source.records, MAX_CANDIDATES + 1)) if source.count > 1 \
            else list(source.records)
        if source.count == 1:
            return matches[0]
        candidates = sorted(record.id for record in matches)[:MAX_CANDIDATES]
        more = source.count - len(candidates)
        raise AmbiguousId(
            f"{source.count} open connections have an id starting with {id_or_prefix}: "
            + ", ".join(candidates) + (f" and {more} more" if more else ""),
            candidates)

    def user_counts(self) -> dict[str, int]:
        """Open connections per user (a copy: O(users); see :meth:`groups`)."""
        return self._users.counts()

    def path_counts(self) -> dict[str, int]:
        """Open connections per request path."""
        return self._paths.counts()

    def topic_counts(self) -> dict[str, int]:
        """Subscribed connections per topic."""
        return self._topics.counts()

    def groups(self, limit: int) -> tuple[dict[str, dict[str, int]], bool]:
        """The ``limit`` largest groups of each kind, and whether any was cut.

        ``({"users": {...}, "paths": {...}, "topics": {...}}, truncated)``,
        each by count then name. O(limit + distinct counts): never a walk
        over the groups or the records.
        """
        groups: dict[str, dict[str, int]] = {}
        truncated = False
        for name, index in (("users", self._users), ("paths", self._paths),
                            ("topics", self._topics)):
            groups[name] = dict(index.largest(limit))
            truncated = truncated or len(index) > limit
        return groups, truncated

    def count(self, *, user: str | None = None, path: str | None = None,
              topic: str | None = None) -> int:
        """Size of one group (or of the groups a pattern matches), without a scan."""
        for index, value, name in ((self._users, user, "user"), (self._paths, path, "path"),
                                   (self._topics, topic, "topic")):
            if value is not None:
                return self._group(index, value, name).count
        return len(self._by_id)

    def _group(self, index: GroupIndex, value: str, field: str) -> _Source:
        """The records of the groups ``value`` names: one group by its exact
        name (its bucket, as it is), or the groups a pattern matches.

        A pattern is matched against the index's names, never against the
        records: a bisection of its literal prefix, then a test of each name
        in that range (none for ``guest*``). Several groups are joined into
        one mapping by id, O(their members), so that a record in two matching
        topics counts once.
        """
        pattern = parse_pattern(value, field)
        if pattern.literal is not None:
            return self._bucket_source(index, pattern.literal)
        names = index.names(pattern.prefix)
        if pattern.regex is not None:
            names = [name for name in names if pattern.regex.match(name)]
        if len(names) == 1:
            return self._bucket_source(index, names[0])
        joined: dict[str, ConnectionRecord] = {}
        for name in names:
            joined.update(index.bucket(name))
        return _Source(len(joined), joined.values(), joined)

    @staticmethod
    def _bucket_source(index: GroupIndex, name: str) -> _Source:
        bucket = index.bucket(name)
        return _Source(len(bucket), bucket.values(), bucket, time_ordered=index.in_order(name))

    def resolved(self, selector: Selector) -> Selector:
        """``selector`` with each id prefix replaced by the id it stands for
        (:class:`AmbiguousId` for several; an unknown one is kept, matching
        nothing): what a tap keeps testing connections against."""
        if not selector.ids:
            return selector
        ids = []
        for given in selector.ids:
            record = self.resolve(given)
            ids.append(record.id if record is not None else given)
        return replace(selector, ids=tuple(dict.fromkeys(ids)))

    def select(self, selector: Selector) -> list[ConnectionRecord]:
        """The open connections a selector matches (unknown ids match nothing)."""
        candidates: list[Mapping[str, ConnectionRecord]] = []
        if selector.ids is not None:
            # A unique prefix stands for its id (AmbiguousId for several).
            resolved = (self.resolve(i) for i in selector.ids)
            candidates.append({r.id: r for r in resolved if r is not None})
        for index, value, name in ((self._users, selector.user, "user"),
                                   (self._paths, selector.path, "path"),
                                   (self._topics, selector.topic, "topic")):
            if value is not None:
                candidates.append(self._group(index, value, name).bucket  # type: ignore[arg-type]
                                  if selector.patterns else index.bucket(value))
        if not candidates:
            return list(self._by_id.values())
        if len(candidates) == 1:  # one group (a send to a topic): copied as a whole
            return list(candidates[0].values())
        # Walk the smallest bucket and probe the others: cost ~ smallest group.
        candidates.sort(key=len)
        smallest, others = candidates[0], candidates[1:]
        return [
            record
            for id, record in smallest.items()
            if all(id in other for other in others)
        ]

    # Sampling: the only writer of the values live orders use

    @property
    def segment_count(self) -> int:
        """How many :meth:`sample_step` calls visit every record once."""
        return len(self._segments)

    def sampled_totals(self) -> tuple[int, int, int, int]:
        """``(msgs_in, bytes_in, msgs_out, bytes_out)`` summed over the open
        records as last sampled (the records that closed are the caller's)."""
        return (self._seen_msgs_in, self._seen_bytes_in,
                self._seen_msgs_out, self._seen_bytes_out)

    def sample_step(self, now: float, probe: Probe | None = None) -> int:
        """Sample the next segment (at most :data:`SEGMENT_SIZE` records).

        Copies each record's counters, sets ``last_activity`` to ``now`` where
        a message arrived since the last sample, reads ``(buffered, latency)``
        through ``probe`` if given, and re-sorts the segment's orders whose
        values changed. Segments are visited in turn: :attr:`segment_count`
        steps visit everyone. Returns how many records were visited.
        """
        segments = self._segments
        if not segments:
            return 0
        i = self._next_segment % len(segments)
        self._next_segment = i + 1
        return self._sample_segment(segments[i], now, probe)

    def sample_all(self, now: float, probe: Probe | None = None) -> int:
        """Sample every record at once (:meth:`sample_step` over every segment)."""
        return sum(self._sample_segment(segment, now, probe)
                   for segment in list(self._segments))

    def sample_record(self, record: ConnectionRecord, now: float,
                      probe: Probe | None = None) -> None:
        """Sample one record now (for a detail view), keeping it in order."""
        segment: Segment | None = record.segment
        if segment is None or self._by_id.get(record.id) is not record:
            return
        segment.detach(record, self._kept)
        try:
            self._take_samples((record,), now, probe)
        finally:
            segment.attach(record, self._kept)

    def _sample_segment(self, segment: Segment, now: float, probe: Probe | None) -> int:
        if now != self._clock:
            self._clock = now
            self._kept = {attribute for attribute, asked in self._wanted.items()
                          if now - asked <= WANTED_SECONDS}
        for attribute in self._take_samples(segment.members.values(), now, probe):
            segment.moved(attribute, self._kept)
        return len(segment)

    def _take_samples(self, records: Iterable[ConnectionRecord], now: float,
                      probe: Probe | None) -> list[str]:
        """Copy the live values of ``records``; the attributes that changed."""
        # One pass with local flags and sums: about 1 µs per record.
        msgs_in = bytes_in = msgs_out = bytes_out = 0
        arrived = read = wrote_msgs = wrote_bytes = buffer_moved = latency_moved = False
        for record in records:
            value = record.msgs_in
            if value != record.msgs_in_seen:
                msgs_in += value - record.msgs_in_seen
                record.msgs_in_seen = value
                record.last_activity = now
                arrived = True
            value = record.bytes_in
            if value != record.bytes_in_seen:
                bytes_in += value - record.bytes_in_seen
                record.bytes_in_seen = value
                read = True
            value = record.msgs_out
            if value != record.msgs_out_seen:
                msgs_out += value - record.msgs_out_seen
                record.msgs_out_seen = value
                wrote_msgs = True
            value = record.bytes_out
            if value != record.bytes_out_seen:
                bytes_out += value - record.bytes_out_seen
                record.bytes_out_seen = value
                wrote_bytes = True
            if probe is not None:
                buffered, latency = probe(record)
                if buffered != record.buffered:
                    record.buffered = buffered
                    buffer_moved = True
                if latency != record.latency:
                    record.latency = latency
                    latency_moved = True
        self._seen_msgs_in += msgs_in
        self._seen_bytes_in += bytes_in
        self._seen_msgs_out += msgs_out
        self._seen_bytes_out += bytes_out
        changed = []
        if arrived:
            changed += ("msgs_in_seen", "last_activity")
        if read:
            changed.append("bytes_in_seen")
        if wrote_msgs:
            changed.append("msgs_out_seen")
        if wrote_bytes:
            changed.append("bytes_out_seen")
        if buffer_moved:
            changed.append("buffered")
        if latency_moved:
            changed.append("latency")
        if changed:
            self.samples_version += 1
        return changed

    # Listing

    def query(
        self,
        *,
        user: str | None = None,
        path: str | None = None,
        topic: str | None = None,
        id_prefix: str | None = None,
        sort: str = "connected_at",
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """One page of connections, filtered, in ``(sort value, id)`` order.

        ``cursor`` is the ``next_cursor`` of the previous page: the page
        starts after the row that one ended with, so a record that stays
        open is never skipped or repeated while others come and go (in a
        live order, a record whose sampled value moves past the cursor
        between two pages can be). Costs about the page, plus a bisection
        per segment for live orders; filters are in the module docstring.
        """
        key_name, descending = _parse_sort(sort)
        _check_limit(limit)
        after = decode_cursor(cursor, sort)
        attribute = SORTED_BY[key_name]
        want = limit + 1  # one more than the page tells whether another follows

        sources = [self._group(index, value, name)
                   for index, value, name in ((self._users, user, "user"),
                                              (self._paths, path, "path"),
                                              (self._topics, topic, "topic"))
                   if value is not None]
        if id_prefix:
            sources.append(self._prefix_source(id_prefix))

        if not sources:
            total = len(self._by_id)
            rows = list(islice(self._ordered(attribute, descending, after), want))
        elif len(sources) > 1:
            # Several filters: the matches are the smallest group probed in
            # the others (counting them needs that walk anyway), by id.
            sources.sort(key=_Source.size)
            first = sources[0]
            ids: Any = (first.bucket.keys() if first.bucket is not None
                        else set(map(_ID, first.records)))
            for other in sources[1:]:
                # dict views intersect in C, walking the smaller side.
                ids = (ids & other.bucket.keys() if other.bucket is not None
                       else set(filter(other.has_id, ids)))
            lookup = first.bucket if first.bucket is not None else self._by_id
            matches = list(map(lookup.__getitem__, ids))
            total = len(matches)
            rows = _best(matches, attribute, descending, after, want)
        else:
            (source,) = sources
            total = source.count
            rows = None
            merged = attribute != "connected_at"
            if after is None and not merged and source.time_ordered:
                # The first page of a group whose members joined in the order
                # they connected.
                values = source.records
                rows = list(islice(reversed(values) if descending else values,  # type: ignore[call-overload]
                                   want))
            elif (budget := _walk_budget(len(self._by_id), want, total, merged)) is not None:
                # A large group: walk the order and keep the group's records,
                # about want * n / total of them, unless the group sits far
                # down the order; past the budget, sort the group instead.
                rows = _walk(self._ordered(attribute, descending, after), source, want, budget)
            if rows is None:
                rows = _best(source.records, attribute, descending, after, want)

        key = order_key(attribute)
        keys = [key(record) for record in rows[:limit]]
        next_cursor = encode_cursor(sort, keys[-1]) if len(rows) > limit else None
        return Page(records=rows[:limit], total=total, next_cursor=next_cursor, keys=keys)

    def _ordered(self, attribute: str, descending: bool,
                 after: tuple[Any, str] | None) -> Iterator[ConnectionRecord]:
        """Every record in order, from the first one past ``after``."""
        if attribute == "connected_at":
            index = self._by_time
            return index.descending(after) if descending else index.ascending(after)
        # Merge the segments' runs, each from its own bisection.
        key = order_key(attribute)
        runs = self._runs(attribute)
        if descending:
            streams = [
                map(run.__getitem__, range(
                    (len(run) if after is None else bisect_left(run, after, key=key)) - 1,
                    -1, -1))
                for run in runs]
        else:
            streams = [
                map(run.__getitem__, range(
                    0 if after is None else bisect_right(run, after, key=key), len(run)))
                for run in runs]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=key, reverse=descending)

    def _runs(self, attribute: str) -> list[list[ConnectionRecord]]:
        """Every segment's run of one order, which is kept from now on."""
        if attribute == "id":
            return [segment.by_id for segment in self._segments]
        self._wanted[attribute] = self._clock
        self._kept.add(attribute)
        return [segment.run(attribute) for segment in self._segments]

    def _prefix_source(self, prefix: str) -> _Source:
        end = successor(prefix)
        count = 0
        ranges = []
        for members in self._runs("id"):
            lo = bisect_left(members, prefix, key=_ID)
            hi = len(members) if end is None else bisect_left(members, end, lo, key=_ID)
            if lo < hi:
                count += hi - lo
                ranges.append(islice(members, lo, hi))
        return _Source(count, chain.from_iterable(ranges), None, prefix)


class _Source:
    """The records one filter lets through: how many, all of them, and a test.

    A group tests ids with its bucket's own ``__contains__`` (C, no Python
    call per record); an id prefix with ``str.startswith``.
    """

    __slots__ = ("count", "records", "bucket", "prefix", "time_ordered", "has_id")

    def __init__(self, count: int, records: Iterable[ConnectionRecord],
                 bucket: Mapping[str, ConnectionRecord] | None,
                 prefix: str | None = None, *, time_ordered: bool = False) -> None:
        self.count = count
        self.records = records
        self.bucket = bucket
        self.prefix = prefix
        self.time_ordered = time_ordered
        """True if ``records`` come in ``(connected_at, id)`` order."""
        self.has_id: Callable[[str], bool] = (
            bucket.__contains__ if bucket is not None
            else lambda id: id.startswith(prefix))  # type: ignore[arg-type]

    def size(self) -> int:
        return self.count


_ID = attrgetter("id")


WALK_STEP_COST = {True: 6.0, False: 0.5}
"""What a step of a walk costs, in steps of sorting a group: a merge of the
segments' runs (True) is a heap operation over every segment, the
connection-time index (False) a chain of lists. Measured at 10,000 and
100,000 records with tests/benchmarks/bench_registry.py."""


def _walk_budget(population: int, want: int, matches: int, merged: bool) -> int | None:
    """How many records a walk may look at for ``want`` of ``matches``; None
    if sorting the matches is expected to be cheaper than walking at all.

    Walking finds ``want`` of them in about ``want * population / matches``
    steps; sorting them costs ``matches``: the walk is chosen when it is
    expected to cost no more than the sort (from ``matches`` of about
    ``sqrt(cost * want * population)``), and given up once it has cost as
    much (the matches sit far down the order: a filter that follows the
    sort), so that the worst case costs about two sorts of the group.
    """
    cost = WALK_STEP_COST[merged]
    if matches < want or want * population * cost > matches * matches:
        return None
    return int(matches / cost)


def _walk(ordered: Iterator[ConnectionRecord], source: _Source,
          want: int, budget: int) -> list[ConnectionRecord] | None:
    """The first ``want`` records of ``ordered`` that ``source`` lets through;
    None once ``budget`` records were looked at without filling the page."""
    rows: list[ConnectionRecord] = []
    bucket, prefix = source.bucket, source.prefix
    looked = 0
    # The test inlined, not a call per record: this loop is the walk's cost.
    for record in ordered:
        looked += 1
        if (record.id in bucket) if bucket is not None else record.id.startswith(prefix):
            rows.append(record)
            if len(rows) == want:
                break
        elif looked > budget:
            return None
    return rows


def _best(records: Iterable[ConnectionRecord], attribute: str, descending: bool,
          after: tuple[Any, str] | None, want: int) -> list[ConnectionRecord]:
    """The first ``want`` of ``records`` past ``after`` in order: O(m log want)."""
    key = order_key(attribute)
    if descending:
        if after is not None:
            records = [record for record in records if key(record) < after]
        return heapq.nlargest(want, records, key=key)
    if after is not None:
        records = [record for record in records if key(record) > after]
    return heapq.nsmallest(want, records, key=key)


# Cluster mode: each node answers one page of its own candidates, the node the
# operator asked merges them. Pure, so that the merge is tested with values.


def merge_pages(pages: Iterable[Page], *, sort: str, limit: int) -> Page:
    """One page out of several nodes' pages of the same request.

    Each node answered the same filters, ``sort``, ``limit`` and ``cursor``
    with at most ``limit`` rows and their ``keys`` (rows may be summaries).
    The first ``limit`` rows of the union in ``(value, id)`` order are the
    page: every row that belongs on it is among its own node's first
    ``limit``. ``next_cursor`` resumes after the last row on every node;
    ``total`` is the sum.
    """
    _, descending = _parse_sort(sort)
    _check_limit(limit)
    pages = list(pages)
    pairs: list[tuple[tuple[Any, str], Any]] = []
    for page in pages:
        if len(page.keys) != len(page.records):
            raise ValueError("every row of a page to merge needs its key")
        pairs.extend(zip(map(tuple, page.keys), page.records))
    # One sort of the sorted runs, in C (timsort merges runs; the keys hold the
    # ids, unique across nodes): cheaper than heapq.merge's generator per row.
    pairs.sort(key=_FIRST, reverse=descending)
    merged = pairs[:limit + 1]
    more = len(merged) > limit or any(page.next_cursor is not None for page in pages)
    merged = merged[:limit]
    keys = [key for key, _ in merged]
    return Page(
        records=[row for _, row in merged],
        total=sum(page.total for page in pages),
        next_cursor=encode_cursor(sort, keys[-1]) if more and merged else None,
        keys=keys,
    )


def page_covers(merged: Page, boundary: tuple[Any, str], *, sort: str, limit: int) -> bool:
    """Whether ``merged`` (:func:`merge_pages`) is the page it would be had a
    node that sent its rows up to ``boundary`` only (and has more) sent them
    all: it is full, and its last row sorts no later than ``boundary``, so that
    none of that node's rows past it belongs on the page."""
    _, descending = _parse_sort(sort)
    if len(merged.keys) < limit:
        return False
    last, boundary = tuple(merged.keys[-1]), tuple(boundary)
    return last >= boundary if descending else last <= boundary


def page_up_to(merged: Page, boundary: tuple[Any, str], *, sort: str) -> Page:
    """The rows of ``merged`` that sort no later than ``boundary``, resuming
    after the last of them: what is sure of a page when a node's rows past
    ``boundary`` are not known."""
    _, descending = _parse_sort(sort)
    boundary = tuple(boundary)
    keys = [tuple(key) for key in merged.keys]
    kept = sum(1 for key in keys if (key >= boundary if descending else key <= boundary))
    if kept == len(keys):
        return merged
    return Page(records=merged.records[:kept], total=merged.total,
                next_cursor=encode_cursor(sort, keys[kept - 1]) if kept else None,
                keys=keys[:kept])


def merge_groups(answers: Iterable[tuple[Mapping[str, Mapping[str, int]], bool]],
                 limit: int) -> tuple[dict[str, dict[str, int]], bool]:
    """Several nodes' :meth:`ConnectionRegistry.groups` answers, summed.

    Each node sent its ``limit`` largest groups of each kind, so a group
    that is large only in sum may be missing: ``truncated`` then says so
    whenever any node cut its list.
    """
    sums: dict[str, dict[str, int]] = {}
    truncated = False
    for groups, cut in answers:
        truncated = truncated or cut
        for kind, counts in groups.items():
            kind_sums = sums.get(kind)
            if kind_sums is None:
                sums[kind] = dict(counts)
                continue
            get = kind_sums.get
            for name, count in counts.items():
                kind_sums[name] = get(name, 0) + count
    merged: dict[str, dict[str, int]] = {}
    for kind, counts in sums.items():
        if len(counts) > limit:
            truncated = True
        # By count, then name: tuples sorted in C (a cluster's list merges
        # hundreds of groups per page; a key function per item cost half of it).
        largest = sorted([(-count, name) for name, count in counts.items()])[:limit]
        merged[kind] = {name: -count for count, name in largest}
    return merged, truncated


_FIRST = itemgetter(0)
