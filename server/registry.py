"""The connection registry: one record per open connection, indexed by user, path
and topic, and the selectors that pick groups of connections out of it.

Pure: values in, values out. Must never import asyncio, websockets, sockets or
textual; the hub (``wsconsole.server.hub``) is the asyncio edge that feeds it.

Selecting a group costs time in proportion to the smallest index it touches,
not to the number of open connections, and group counts are the sizes of the
index buckets, so they never need a scan.
"""

from __future__ import annotations

import heapq
import secrets
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping

from .errors import SelectorError
from .redaction import DEFAULT_RULES, RedactionRules

__all__ = [
    "ConnectionRecord",
    "ConnectionRegistry",
    "Selector",
    "Page",
    "SORT_KEYS",
]


_NO_TOPICS: frozenset[str] = frozenset()


class ConnectionRecord:
    """What wsconsole knows about one open connection.

    Counters are plain attributes incremented by the hub's hot path; ``buffered``
    and ``latency`` are sampled from the transport when a record is read.
    """

    __slots__ = (
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
        "msgs_in",
        "bytes_in",
        "msgs_out",
        "bytes_out",
        "buffered",
        "latency",
        "topics",
        "handle",
        "redaction",
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
        """When a message last arrived, to within the hub's sample interval."""
        self.msgs_in_seen = 0
        """``msgs_in`` when ``last_activity`` was last updated (by the hub's sampler)."""
        self.msgs_in = 0
        self.bytes_in = 0
        self.msgs_out = 0
        self.bytes_out = 0
        self.buffered = 0
        self.latency = 0.0
        # Most connections join no topic: share one empty frozenset until they
        # do (an empty set costs 216 bytes per connection).
        self.topics: set[str] | frozenset[str] = _NO_TOPICS
        self.handle = handle
        """Opaque reference to the live connection; the registry never touches it."""
        self.redaction = redaction
        """What :meth:`detail` hides of the headers (the server's rules, with
        the names its operator added); the query is redacted before it is stored."""

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
            "latency": self.latency,
            "topics": sorted(self.topics),
        }

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
    """

    everyone: bool = False
    user: str | None = None
    path: str | None = None
    topic: str | None = None
    ids: tuple[str, ...] | None = None

    FIELDS = ("everyone", "user", "path", "topic", "ids")

    def __post_init__(self) -> None:
        if not isinstance(self.everyone, bool):
            raise SelectorError("selector field 'everyone' must be a boolean")
        for name in ("user", "path", "topic"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise SelectorError(f"selector field {name!r} must be a string")
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
        """Build a selector from its wire form, rejecting unknown fields."""
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
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire form: only the fields that are set."""
        data: dict[str, Any] = {}
        if self.everyone:
            data["everyone"] = True
        for name in ("user", "path", "topic"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
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

LIVE_SORT_KEYS = frozenset({"buffered", "latency"})


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing."""

    records: list[ConnectionRecord]
    total: int
    """How many records matched the filters, over all pages."""
    next_cursor: str | None
    """Pass back as ``cursor`` for the next page; None on the last page."""


class ConnectionRegistry:
    """Open connections by id, user, path and topic."""

    def __init__(self) -> None:
        self._by_id: dict[str, ConnectionRecord] = {}
        # Buckets are dicts (id -> record): insertion-ordered, O(1) removal.
        self._by_user: dict[str, dict[str, ConnectionRecord]] = {}
        self._by_path: dict[str, dict[str, ConnectionRecord]] = {}
        self._by_topic: dict[str, dict[str, ConnectionRecord]] = {}

    # Membership

    def new_id(self) -> str:
        """A fresh connection id: 10 hex digits, unique among open connections."""
        while True:
            candidate = secrets.token_hex(5)
            if candidate not in self._by_id:
                return candidate

    def add(self, record: ConnectionRecord) -> None:
        """Register an open connection."""
        if record.id in self._by_id:
            raise ValueError(f"duplicate connection id {record.id}")
        self._by_id[record.id] = record
        self._by_user.setdefault(record.user, {})[record.id] = record
        self._by_path.setdefault(record.path, {})[record.id] = record
        for topic in record.topics:
            self._by_topic.setdefault(topic, {})[record.id] = record

    def remove(self, id: str) -> ConnectionRecord | None:
        """Forget a connection and leave its topics; None if it was not here."""
        record = self._by_id.pop(id, None)
        if record is None:
            return None
        _discard(self._by_user, record.user, id)
        _discard(self._by_path, record.path, id)
        for topic in record.topics:
            _discard(self._by_topic, topic, id)
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
        self._by_topic.setdefault(topic, {})[id] = record
        return True

    def unsubscribe(self, id: str, topic: str) -> bool:
        """Remove a connection from a topic; False if it was not in it."""
        record = self._by_id.get(id)
        if record is None or topic not in record.topics:
            return False
        record.topics.discard(topic)  # type: ignore[union-attr]
        _discard(self._by_topic, topic, id)
        return True

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

    def user_counts(self) -> dict[str, int]:
        """Open connections per user."""
        return {key: len(bucket) for key, bucket in self._by_user.items()}

    def path_counts(self) -> dict[str, int]:
        """Open connections per request path."""
        return {key: len(bucket) for key, bucket in self._by_path.items()}

    def topic_counts(self) -> dict[str, int]:
        """Subscribed connections per topic."""
        return {key: len(bucket) for key, bucket in self._by_topic.items()}

    def count(self, *, user: str | None = None, path: str | None = None,
              topic: str | None = None) -> int:
        """Size of one group, without a scan."""
        if user is not None:
            return len(self._by_user.get(user, ()))
        if path is not None:
            return len(self._by_path.get(path, ()))
        if topic is not None:
            return len(self._by_topic.get(topic, ()))
        return len(self._by_id)

    def select(self, selector: Selector) -> list[ConnectionRecord]:
        """The open connections a selector matches (unknown ids match nothing)."""
        candidates: list[Mapping[str, ConnectionRecord]] = []
        if selector.ids is not None:
            candidates.append(
                {i: self._by_id[i] for i in selector.ids if i in self._by_id}
            )
        if selector.user is not None:
            candidates.append(self._by_user.get(selector.user, {}))
        if selector.path is not None:
            candidates.append(self._by_path.get(selector.path, {}))
        if selector.topic is not None:
            candidates.append(self._by_topic.get(selector.topic, {}))
        if not candidates:
            return list(self._by_id.values())
        # Walk the smallest bucket and probe the others: cost ~ smallest group.
        candidates.sort(key=len)
        smallest, others = candidates[0], candidates[1:]
        return [
            record
            for id, record in smallest.items()
            if all(id in other for other in others)
        ]

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
        refresh: Callable[[ConnectionRecord], None] | None = None,
    ) -> Page:
        """One page of connections, filtered and sorted.

        ``refresh`` samples live fields (buffer, latency) of a record; it runs
        on every match when sorting by a live field, else only on the page.
        """
        descending = sort.startswith("-")
        key_name = sort[1:] if descending else sort
        if key_name not in SORT_KEYS:
            raise SelectorError(
                f"unknown sort key {key_name!r}; expected one of {', '.join(SORT_KEYS)}"
            )
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise SelectorError("limit must be an integer from 1 to 1000")
        offset = _parse_cursor(cursor)

        if user is None and path is None and topic is None:
            pool: Iterable[ConnectionRecord] = self._by_id.values()
            total = len(self._by_id)
        else:
            pool = self.select(Selector(user=user, path=path, topic=topic))
            total = len(pool)  # type: ignore[arg-type]
        if id_prefix:
            pool = [r for r in pool if r.id.startswith(id_prefix)]
            total = len(pool)

        if key_name in LIVE_SORT_KEYS and refresh is not None:
            pool = list(pool)
            for record in pool:
                refresh(record)

        want = offset + limit
        if key_name == "connected_at" and not descending:
            # Insertion order is connection order: no sort needed.
            page = list(islice(pool, offset, want))
        else:
            def key(record: ConnectionRecord) -> tuple[Any, str]:
                return (getattr(record, key_name), record.id)

            if descending:
                page = heapq.nlargest(want, pool, key=key)[offset:]
            else:
                page = heapq.nsmallest(want, pool, key=key)[offset:]
        if refresh is not None and key_name not in LIVE_SORT_KEYS:
            for record in page:
                refresh(record)
        next_cursor = str(want) if want < total else None
        return Page(records=page, total=total, next_cursor=next_cursor)


def _discard(index: dict[str, dict[str, ConnectionRecord]], key: str, id: str) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.pop(id, None)
        if not bucket:
            del index[key]


def _parse_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    # ASCII and short: str.isdigit() also accepts "²", which int() refuses.
    if (not isinstance(cursor, str) or not cursor.isascii() or not cursor.isdigit()
            or len(cursor) > 18):
        raise SelectorError("cursor must be a value returned as next_cursor")
    return int(cursor)
