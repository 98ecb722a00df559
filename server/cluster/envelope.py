"""The one message format between the nodes of a cluster: versioned JSON, signed.

On the wire (a Redis pub/sub payload, or a membership key's value)::

    wsc1.<64 hex digits: HMAC-SHA256 of the JSON>.<JSON>

and the JSON is one object::

    {"v": 1, "cluster": "prod", "kind": "request", "src": "web-1", "dst": null,
     "id": "9f2c...", "op": "list", "role": "read_only", "timeout": 2.0,
     "ts": 1767225600.25, "nonce": "5b1e...", "body": {...}}

The MAC covers every byte of the JSON, so nothing of a message can be changed
without the cluster secret. A message is refused, never acted on, if it is
oversized (checked before anything is parsed), not ours (no ``wsc1.`` prefix),
badly signed, not JSON or not of this shape, of another version or cluster,
stamped outside the replay window (``max_skew`` seconds either side of this
host's clock: clocks of different hosts differ), or already seen (its nonce,
kept for as long as the window). JSON only: nothing here can run code (no pickle).

The JSON is written and read with orjson when it is installed (a dependency of
the package; 10x faster to write and 3x faster to read a page of rows than the
standard library, and a page is most of what a cluster ``list`` costs),
otherwise with the standard library: the bytes are JSON either way, so nodes
with and without it understand each other. Where the two differ: orjson
writes NaN and infinities as ``null`` (the standard library refuses them) and
reads an integer past 64 bits as a float; an integer past 64 bits, or a type
orjson does not know, is written by the standard library instead.

Pure: must never import asyncio, websockets, redis or textual.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - a platform without its wheel
    orjson = None  # type: ignore[assignment]

__all__ = [
    "ENVELOPE_VERSION",
    "PREFIX",
    "MessageKind",
    "Message",
    "Refused",
    "DropReason",
    "seal",
    "unseal",
    "ReplayGuard",
    "use_codec",
    "codec",
]

ENVELOPE_VERSION = 1
"""Bumped on any incompatible change of the message format."""
PREFIX = b"wsc1."
"""Every message of ours starts with this; anything else on our channels is foreign."""
_MAC_HEX = 64

_orjson: Any = orjson
_ORJSON_OPTIONS = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
                   | orjson.OPT_PASSTHROUGH_DATETIME) if orjson is not None else 0
"""The module that writes and reads the JSON fast, or None: the standard library's."""


def use_codec(name: str) -> None:
    """Write and read messages with ``"orjson"`` or the standard library's
    ``"json"`` (for benchmarks and tests: the default is orjson when installed)."""
    global _orjson
    if name not in ("orjson", "json"):
        raise ValueError(f"unknown codec {name!r}")
    if name == "orjson" and orjson is None:
        raise ValueError("orjson is not installed")
    _orjson = orjson if name == "orjson" else None


def codec() -> str:
    """The codec in use: ``"orjson"`` or ``"json"``."""
    return "json" if _orjson is None else "orjson"


def _dumps(data: Any) -> bytes:
    fast = _orjson
    if fast is not None:
        try:
            # What the standard library refuses (dataclasses, datetimes) orjson
            # passes back, and the standard library refuses it below.
            return fast.dumps(data, option=_ORJSON_OPTIONS)
        except TypeError:
            pass  # an integer past 64 bits, or a type orjson does not know
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _loads(payload: bytes) -> Any:
    """JSON of ``payload``; ValueError (or RecursionError) if it is not JSON."""
    fast = _orjson
    if fast is not None:
        return fast.loads(payload)  # refuses NaN, Infinity and bad UTF-8 too
    return json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)


class MessageKind(StrEnum):
    """What a message between nodes is."""

    REQUEST = "request"
    """An operation for the destination node (or every node)."""
    REPLY = "reply"
    """A node's answer to a request: ``body`` is ``{"ok": true, "result": ...}``
    or ``{"ok": false, "error": {"code", "message"}}``."""
    EVENTS = "events"
    """A batch of a node's events: ``body`` is ``{"events": [[kind, data, time], ...]}``."""
    HEARTBEAT = "heartbeat"
    """A node is alive: ``body`` is its ``nodes`` entry (plus its sampled stats)."""
    GOODBYE = "goodbye"
    """A node is leaving the cluster."""
    TAP = "tap"
    """A node's part of a tap, to the tap's node: ``body`` is ``{"tap", "records",
    "shown", "dropped", "ended"}`` (``ended``: the part's end reason, or null)."""


class DropReason(StrEnum):
    """Why a message was dropped (a label of the count, bounded)."""

    OVERSIZED = "oversized"
    FOREIGN = "foreign"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"
    OTHER_CLUSTER = "other_cluster"
    STALE = "stale"
    REPLAYED = "replayed"
    OVERLOADED = "overloaded"
    """Valid, but this node was already acting on as many requests as it takes at once."""


class Refused(Exception):
    """A message that must be dropped, and why."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Message:
    """One message between nodes."""

    kind: MessageKind
    cluster: str
    src: str
    """The node that sent it."""
    dst: str | None = None
    """The node it is for; None: every node."""
    id: str = ""
    """The request id (a reply carries its request's)."""
    op: str = ""
    """The control operation of a request."""
    role: str | None = None
    """The operator's role: it travels with the request, every node enforces it."""
    timeout: float | None = None
    """Seconds the requester waits (on its own clock): a late reply is ignored."""
    body: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0
    """When it was sent, on the sender's wall clock (the replay window's reference)."""
    nonce: str = ""
    """Unique per message: what the replay guard remembers."""


_FIELDS = ("kind", "cluster", "src", "dst", "id", "op", "role", "timeout", "body", "ts",
           "nonce")


def seal(message: Message, secret: bytes) -> bytes:
    """The message as signed bytes (a fresh nonce if it has none)."""
    data = {"v": ENVELOPE_VERSION, "kind": message.kind, "cluster": message.cluster,
            "src": message.src, "dst": message.dst, "id": message.id, "op": message.op,
            "role": message.role, "timeout": message.timeout, "body": message.body,
            "ts": message.ts, "nonce": message.nonce or secrets.token_hex(12)}
    payload = _dumps(data)
    mac = hmac.new(secret, payload, hashlib.sha256).hexdigest().encode("ascii")
    return PREFIX + mac + b"." + payload


def unseal(data: bytes, secret: bytes, *, cluster: str, now: float, max_skew: float,
           max_bytes: int, guard: ReplayGuard | None = None) -> Message:
    """The message in ``data`` if it may be acted on; :class:`Refused` otherwise.

    Checks cost what the sender paid for: size first, the MAC before any
    parsing, the replay guard last (only signed messages reach it).
    """
    if len(data) > max_bytes:
        raise Refused(DropReason.OVERSIZED, f"{len(data)} bytes (at most {max_bytes})")
    if not data.startswith(PREFIX) or len(data) < len(PREFIX) + _MAC_HEX + 2:
        raise Refused(DropReason.FOREIGN, "not a wsconsole message")
    start = len(PREFIX)
    mac = data[start:start + _MAC_HEX]
    if data[start + _MAC_HEX:start + _MAC_HEX + 1] != b".":
        raise Refused(DropReason.FOREIGN, "not a wsconsole message")
    payload = data[start + _MAC_HEX + 1:]
    expected = hmac.new(secret, payload, hashlib.sha256).hexdigest().encode("ascii")
    if not hmac.compare_digest(mac, expected):
        raise Refused(DropReason.BAD_SIGNATURE, "the signature does not match the cluster secret")
    try:
        obj = _loads(payload)
    except (ValueError, RecursionError) as exc:
        raise Refused(DropReason.MALFORMED, f"not JSON: {exc}") from None
    message = _message_of(obj)
    if message.cluster != cluster:
        raise Refused(DropReason.OTHER_CLUSTER, f"of cluster {message.cluster!r}")
    if abs(now - message.ts) > max_skew:
        raise Refused(DropReason.STALE, f"stamped {now - message.ts:+.1f} s from now "
                      f"(the window is {max_skew:g} s)")
    if guard is not None and not guard.first_time(message.nonce, message.ts, now):
        raise Refused(DropReason.REPLAYED, "seen before")
    return message


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _message_of(obj: Any) -> Message:
    """Check the shape of a signed object: a bug (or a newer node) is not trusted either."""
    if not isinstance(obj, dict):
        raise Refused(DropReason.MALFORMED, "not an object")
    if obj.get("v") != ENVELOPE_VERSION:
        raise Refused(DropReason.MALFORMED, f"version {obj.get('v')!r}, not {ENVELOPE_VERSION}")
    try:
        kind = MessageKind(obj.get("kind"))
    except ValueError:
        raise Refused(DropReason.MALFORMED, "unknown kind") from None
    values = {name: obj.get(name) for name in _FIELDS}
    for name in ("cluster", "src", "id", "op", "nonce"):
        if not isinstance(values[name], str):
            raise Refused(DropReason.MALFORMED, f"{name!r} must be a string")
    for name in ("dst", "role"):
        if values[name] is not None and not isinstance(values[name], str):
            raise Refused(DropReason.MALFORMED, f"{name!r} must be a string or null")
    for name in ("ts", "timeout"):
        value = values[name]
        if name == "timeout" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused(DropReason.MALFORMED, f"{name!r} must be a number")
    if not isinstance(values["body"], dict):
        raise Refused(DropReason.MALFORMED, "'body' must be an object")
    if not values["nonce"] or not values["src"]:
        raise Refused(DropReason.MALFORMED, "no nonce or no source")
    values["kind"] = kind
    return Message(**values)


class ReplayGuard:
    """The nonces of the messages seen within the replay window, in bounded memory.

    A message older than the window is refused as stale before it gets here,
    so a nonce need only be remembered for ``window`` seconds after its
    timestamp. Past ``capacity`` nonces, the oldest are forgotten (a flood of
    valid messages would otherwise grow it without bound): a replay of one of
    those is then possible within the window, a documented limit.
    """

    def __init__(self, window: float, capacity: int = 200_000) -> None:
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, nonce: str, stamped: float, now: float) -> bool:
        """True (and remember it) if ``nonce`` was not seen within the window."""
        seen = self._seen
        # Forget in arrival order: close enough to timestamp order for a
        # window of seconds, and O(1) per message.
        while seen:
            oldest, when = next(iter(seen.items()))
            if when + self.window >= now and len(seen) < self.capacity:
                break
            seen.popitem(last=False)
        if nonce in seen:
            return False
        seen[nonce] = max(stamped, now)
        return True

    def __len__(self) -> int:
        return len(self._seen)
