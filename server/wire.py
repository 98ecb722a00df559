"""The control plane's wire format: requests, replies, events, and their validation.

Pure: no asyncio, no websockets, no textual. The server's control listener and
the console's client both import this module, and nothing else of each other.

Every frame is one JSON object in a text message.

Request (client -> server)::

    {"id": 7, "op": "send", "args": {"selector": {"user": "ann"}, "text": "hi"}}

Reply (server -> client), same ``id``, exactly one of ``result`` / ``error``::

    {"id": 7, "ok": true, "result": {"recipients": 2, "delivered": 2, "skipped": 0}}
    {"id": 7, "ok": false, "error": {"code": "bad_selector", "message": "..."}}

Event (server -> client, after ``subscribe``)::

    {"event": "connection_opened", "time": 1767225600.0, "data": {...}}

An event from the backlog a subscriber asked for (``subscribe``'s ``backlog``)
also carries ``"backlog": true``: it happened before the subscription.

The operations, their arguments and results are in :data:`OPERATIONS` and in
the README's "Control plane reference"; the error codes and what they mean in
:data:`wsconsole.server.errors.ERROR_CLASSES`; the values that travel (states,
roles, modes, event kinds) and the rules on them in :mod:`wsconsole.server.protocol`.

Pure: must never import asyncio, websockets or textual.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import (
    BadPattern,
    InternalError,
    MalformedFrame,
    ProtocolViolation,
    SelectorError,
    UnknownOperation,
    WsconsoleError,
)
from .protocol import (
    MAX_CLOSE_REASON_BYTES,
    SENDABLE_CLOSE_CODES_TEXT,
    EventKind,
    ShutdownMode,
    check_close_code,
    check_close_reason,
)
from .patterns import parse_pattern
from .registry import SORT_KEYS, Selector
from .tap import (
    DEFAULT_BYTE_RATE,
    DEFAULT_DURATION,
    DEFAULT_MAX_BYTES,
    DEFAULT_RATE,
    MAX_BYTE_RATE,
    MAX_DURATION,
    MAX_MAX_BYTES,
    MAX_RATE,
    limits_problem,
)

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_REQUEST_BYTES",
    "READ_TIMEOUT",
    "ACTION_TIMEOUT",
    "MAX_TIMEOUT",
    "UNTARGETED_OPERATIONS",
    "Arg",
    "Operation",
    "OPERATIONS",
    "MUTATING_OPERATIONS",
    "MAX_BACKLOG",
    "EventKind",
    "Request",
    "parse_request",
    "parse_request_object",
    "encode_request",
    "encode_reply",
    "EncodedList",
    "encode_error",
    "encode_event",
    "parse_message",
    "Reply",
    "Event",
    "decode_payload",
    "is_unicode_text",
]

PROTOCOL_VERSION = 1
"""Bumped on any incompatible change of this module."""

MAX_REQUEST_BYTES = 1 << 20
"""A control request larger than this closes the control connection with 1009."""

READ_TIMEOUT = 2.0
"""Default ``timeout`` of an operation that changes nothing: seconds a cluster
request waits for the other nodes' answers."""
ACTION_TIMEOUT = 5.0
"""Default ``timeout`` of a mutating operation (send, disconnect, shutdown)."""
MAX_TIMEOUT = 60.0
"""The longest ``timeout`` a request may ask for."""
MAX_BACKLOG = 1000
"""The most events of the past a ``subscribe`` may ask for (its ``backlog``)."""
UNTARGETED_OPERATIONS = frozenset({"hello", "subscribe", "tap_stop"})
"""Operations without the ``node`` and ``timeout`` arguments: they are about
this control connection, not about the nodes."""


def _either(values: Any) -> str:
    """``'a' or 'b'``: the values an argument may take, for docs and errors."""
    quoted = [f"'{value}'" for value in values]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]


@dataclass(frozen=True)
class Arg:
    """One argument of an operation."""

    type: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class Operation:
    """One operation of the control plane."""

    name: str
    mutating: bool
    args: Mapping[str, Arg]
    doc: str


_SELECTOR = Arg(dict, required=True, doc="which connections: everyone, user, path, topic "
                "(names or patterns: * any characters, ? one, \\ escapes), ids "
                "(or unique prefixes)")

def _targeted(op: Operation) -> Operation:
    """``op`` with the ``node`` and ``timeout`` arguments every cluster request has."""
    if op.name in UNTARGETED_OPERATIONS:
        return op
    default = ACTION_TIMEOUT if op.mutating else READ_TIMEOUT
    args = {
        **op.args,
        "node": Arg(str, doc="only this node (a name from 'nodes'); default: every node"),
        "timeout": Arg((int, float), default=default,
                       doc=f"seconds to wait for the other nodes, 0 < t <= {MAX_TIMEOUT:g} "
                       f"(default {default:g})"),
    }
    return Operation(op.name, op.mutating, args, op.doc)


OPERATIONS: dict[str, Operation] = {
    op.name: _targeted(op)
    for op in [
        Operation(
            "hello",
            False,
            {},
            "Who am I talking to: node, role, protocol version, operations.",
        ),
        Operation(
            "list",
            False,
            {
                "user": Arg(str, doc="only this user's connections; a pattern "
                            "(guest*: * any characters, ? one, \\ escapes) for several users"),
                "path": Arg(str, doc="only connections on this request path, or paths "
                            "matching a pattern (/api/*)"),
                "topic": Arg(str, doc="only connections subscribed to this topic, or a "
                             "topic matching a pattern"),
                "id_prefix": Arg(str, doc="only ids starting with this"),
                "sort": Arg(str, default="connected_at",
                            doc="one of SORT_KEYS, '-' prefix for descending"),
                "limit": Arg(int, default=100, doc="page size, 1..1000"),
                "cursor": Arg(str, doc="next_cursor of the previous page"),
                "groups": Arg(bool, default=True, doc="include group counts"),
                "group_limit": Arg(int, default=200,
                                   doc="largest groups of each kind to include"),
                "groups_since": Arg(int, doc="groups_version of an earlier reply with the "
                                    "same group_limit: groups are left out while unchanged"),
            },
            "A page of connections with group counts by user, path and topic.",
        ),
        Operation(
            "get",
            False,
            {"id": Arg(str, required=True, doc="connection id")},
            "One connection in full, headers redacted.",
        ),
        Operation(
            "send",
            True,
            {
                "selector": _SELECTOR,
                "text": Arg(str, doc="a text message"),
                "binary": Arg(str, doc="a binary message, base64-encoded"),
                "dry_run": Arg(bool, default=False,
                               doc="count recipients and return a sample; send nothing"),
            },
            "Send one message to the selected connections.",
        ),
        Operation(
            "disconnect",
            True,
            {
                "selector": _SELECTOR,
                "code": Arg(int, default=1000, doc=f"close code: {SENDABLE_CLOSE_CODES_TEXT}"),
                "reason": Arg(str, default="",
                              doc=f"close reason, <= {MAX_CLOSE_REASON_BYTES} bytes UTF-8"),
            },
            "Close the selected connections.",
        ),
        Operation(
            "shutdown",
            True,
            {
                "mode": Arg(str, required=True, doc=_either(ShutdownMode)),
                "code": Arg(int, default=1001, doc="close code for graceful closes"),
                "reason": Arg(str, default="",
                              doc=f"close reason, <= {MAX_CLOSE_REASON_BYTES} bytes UTF-8"),
                "deadline": Arg((int, float), doc="keep_alive: seconds, then close the rest"),
            },
            "Stop the server: close everyone now, or stop accepting and drain.",
        ),
        Operation(
            "stats",
            False,
            {},
            "Node, state, uptime, connections, totals and rates.",
        ),
        Operation(
            "nodes",
            False,
            {},
            "The nodes of the fleet: name, state, connections, rates, version, control URL.",
        ),
        Operation(
            "subscribe",
            False,
            {"stats_interval": Arg((int, float), default=1.0,
                                   doc="seconds between 'stats' events, >= 0.1"),
             "backlog": Arg(int, default=0,
                            doc=f"recent events of the past to send first, each marked "
                                f"backlog, 0..{MAX_BACKLOG}")},
            "Start the live event stream on this control connection.",
        ),
        Operation("unsubscribe", False, {}, "Stop the live event stream."),
        # Mutating in the wire's sense: the read-only role may not run it, and
        # it is audited. A tap changes nothing, but shows the users' data.
        Operation(
            "tap_start",
            True,
            {
                "selector": _SELECTOR,
                "direction": Arg(str, doc="'in' or 'out'; both when left out"),
                "max_bytes": Arg(int, default=DEFAULT_MAX_BYTES,
                                 doc=f"payload bytes shown per message, 0..{MAX_MAX_BYTES}"),
                "rate": Arg(int, default=DEFAULT_RATE,
                            doc=f"messages shown per second, 1..{MAX_RATE}"),
                "byte_rate": Arg(int, default=DEFAULT_BYTE_RATE,
                                 doc=f"payload bytes shown per second, 1..{MAX_BYTE_RATE}"),
                "duration": Arg((int, float), default=DEFAULT_DURATION,
                                doc=f"seconds, then the tap ends, at most {MAX_DURATION:g}"),
            },
            "Watch the messages the selected connections receive and send, on this "
            "control connection ('tap' events).",
        ),
        Operation(
            "tap_stop",
            False,
            {"tap": Arg(str, required=True, doc="the id tap_start returned")},
            "Stop a tap this control connection started.",
        ),
    ]
}
"""Every operation, by name."""

MUTATING_OPERATIONS = frozenset(name for name, op in OPERATIONS.items() if op.mutating)
"""Operations the read-only role may not run; each is written to the audit log."""


@dataclass(frozen=True)
class Request:
    """A validated control request; ``args`` has defaults filled in."""

    id: int | str
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def selector(self) -> Selector:
        """The request's selector, validated."""
        return Selector.from_dict(self.args["selector"])


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "object"}
    if isinstance(t, tuple):
        return "number" if set(t) == {int, float} else " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def _check_type(value: Any, t: type | tuple[type, ...]) -> bool:
    # bool is an int in Python, never on the wire.
    if isinstance(value, bool):
        return t is bool or (isinstance(t, tuple) and bool in t)
    # 1e999 is JSON that Python reads as inf: no argument means "forever".
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, t)


def _type_phrase(t: type | tuple[type, ...]) -> str:
    name = _type_name(t)
    return f"a finite {name}" if name == "number" else f"a {name}"


_SHOWN_LIMIT = 60
"""Characters of a client's value (an unknown name) quoted in an error message."""


def _shown(value: Any) -> str:
    """A client's value quoted in an error message: repr, clipped."""
    text = repr(value)
    return text if len(text) <= _SHOWN_LIMIT else text[:_SHOWN_LIMIT] + "…"


def is_unicode_text(value: str) -> bool:
    """True if ``value`` can be encoded as UTF-8: it holds no lone UTF-16 surrogate.

    JSON can spell one (``"\\ud800"``) and Python's json reads it into a str,
    which no reply, log line or close frame can then carry.
    """
    if value.isascii():  # O(1) in CPython: the common case costs nothing
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_KEY = object()
"""In a place: the string is a key of the object before it, not a value."""


def _lone_surrogate_at(data: Any) -> tuple[Any, ...] | None:
    """The place of the first string (or key) in ``data`` that is not Unicode text.

    Iterative, so that a deeply nested frame costs no recursion; the path is
    built only for the string found, never for every value walked.
    """
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, place = stack.pop()
        if isinstance(value, str):
            if not is_unicode_text(value):
                return place
        elif isinstance(value, dict):
            for key, child in value.items():
                if not is_unicode_text(key):
                    return (*place, _KEY)
                if isinstance(child, (str, dict, list)):
                    stack.append((child, (*place, key)))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                if isinstance(child, (str, dict, list)):
                    stack.append((child, (*place, index)))
    return None


def _describe_place(place: tuple[Any, ...]) -> str:
    """``'args.selector.ids[2]'``: where in a request a string is, for a message."""
    if place and place[-1] is _KEY:
        return "a key of " + (_describe_place(place[:-1]) if len(place) > 1 else "the request")
    text = ""
    for part in place:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + (part if part.isidentifier() and len(part) <= 40
                                             else _shown(part))
    return f"'{text}'"


def _may_hold_lone_surrogate(frame: str) -> bool:
    # A frame from websockets is valid UTF-8, so a surrogate can only come from
    # a \uD800-\uDFFF escape; an ASCII frame without "\ud" has none.
    return not frame.isascii() or "\\ud" in frame or "\\uD" in frame


def parse_request(frame: str | bytes) -> Request:
    """Parse and validate one request frame.

    Raises a :class:`ProtocolViolation` (:class:`MalformedFrame`,
    :class:`UnknownOperation`, :class:`SelectorError` or ProtocolViolation
    itself) that carries what the frame did hold: its ``request_id``, ``op``
    and ``raw_args``, so that the caller can answer, count and audit the
    refusal without reading the frame again.
    """
    if isinstance(frame, (bytes, bytearray, memoryview)):
        # Refused, but read for what it names: a binary "send" is still a
        # refused mutating request, which the audit log records.
        raise _Found(_binary_context(frame)).error(
            MalformedFrame, "requests are JSON text frames, not binary")
    try:
        data = json.loads(frame, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedFrame(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedFrame("a request must be a JSON object")
    return _request_of(data, _may_hold_lone_surrogate(frame))


def parse_request_object(data: dict[str, Any]) -> Request:
    """:func:`parse_request` of a request already read from JSON (``{"id",
    "op", "args"}``): the same checks, every string walked for a lone
    surrogate (there is no frame to tell that none can be there)."""
    if not isinstance(data, dict):
        raise MalformedFrame("a request must be a JSON object")
    return _request_of(data, True)


def _request_of(data: dict[str, Any], may_hold_lone_surrogate: bool) -> Request:
    found = _Found(data)
    # Every string of the request is checked here, once: past this point no
    # reply, audit line, event or close frame meets a string it cannot encode.
    if may_hold_lone_surrogate:
        place = _lone_surrogate_at(data)
        if place is not None:
            raise found.error(
                ProtocolViolation,
                f"{_describe_place(place)} is not Unicode text: it holds a lone UTF-16 "
                "surrogate (an unpaired \\ud800-\\udfff escape)")
    if found.request_id is None:
        raise found.error(ProtocolViolation, "'id' must be an integer or a string")
    unknown_top = sorted(set(data) - {"id", "op", "args"})
    if unknown_top:
        raise found.error(ProtocolViolation, f"unknown field {_shown(unknown_top[0])}")
    op_name = data.get("op")
    if not isinstance(op_name, str):
        raise found.error(ProtocolViolation, "'op' must be a string")
    op = OPERATIONS.get(op_name)
    if op is None:
        raise found.error(
            UnknownOperation,
            f"unknown operation {_shown(op_name)}; expected one of {', '.join(OPERATIONS)}",
        )
    raw_args = data.get("args", {})
    if not isinstance(raw_args, dict):
        raise found.error(ProtocolViolation, "'args' must be an object")
    unknown = sorted(set(raw_args) - set(op.args))
    if unknown:
        raise found.error(ProtocolViolation,
                          f"unknown argument {_shown(unknown[0])} for {op_name}")
    args: dict[str, Any] = {}
    for name, spec in op.args.items():
        if name not in raw_args or raw_args[name] is None:
            if spec.required:
                raise found.error(ProtocolViolation, f"{op_name} needs argument {name!r}")
            args[name] = spec.default
            continue
        value = raw_args[name]
        if not _check_type(value, spec.type):
            raise found.error(
                ProtocolViolation,
                f"argument {name!r} of {op_name} must be {_type_phrase(spec.type)}",
            )
        args[name] = value
    _check_op_args(op_name, args, found)
    return Request(id=found.request_id, op=op_name, args=args)


class _Found:
    """What a request frame holds before validation: the context of its errors."""

    __slots__ = ("request_id", "op", "raw_args")

    def __init__(self, data: Any) -> None:
        if not isinstance(data, dict):
            data = {}
        request_id = data.get("id")
        # bool is an int in Python, never an id on the wire; an id that is not
        # Unicode text could not be echoed in the reply.
        valid_id = (isinstance(request_id, int) and not isinstance(request_id, bool)) or (
            isinstance(request_id, str) and is_unicode_text(request_id))
        self.request_id: int | str | None = request_id if valid_id else None
        op = data.get("op")
        self.op = op if isinstance(op, str) and op in OPERATIONS else None
        self.raw_args = data.get("args")

    def error(self, cls: type[ProtocolViolation], message: str) -> ProtocolViolation:
        return cls(message, request_id=self.request_id, op=self.op, raw_args=self.raw_args)

    def pattern_error(self, exc: BadPattern) -> BadPattern:
        """``exc`` with this request's context (its fields kept)."""
        return BadPattern(exc.message, field=exc.field, pattern=exc.pattern,
                          position=exc.position, request_id=self.request_id, op=self.op,
                          raw_args=self.raw_args)


def _binary_context(frame: bytes | bytearray | memoryview) -> Any:
    """What a binary frame would hold as a request, or None if it is not one."""
    try:
        return json.loads(bytes(frame).decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity; JSON has no such values, and
    # echoed into a reply or the audit log they would make invalid JSON.
    raise ValueError(f"{name} is not a JSON value")


def _check_op_args(op: str, args: dict[str, Any], found: _Found) -> None:
    """Checks that span several arguments, or values beyond their type."""
    timeout = args.get("timeout")
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        raise found.error(ProtocolViolation,
                          f"timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    if "selector" in args:
        try:
            Selector.from_dict(args["selector"])
        except BadPattern as exc:
            raise found.pattern_error(exc) from None
        except SelectorError as exc:
            raise found.error(SelectorError, exc.message) from None
    if op == "list":
        for name in ("user", "path", "topic"):
            if args.get(name) is not None:
                try:
                    parse_pattern(args[name], name)
                except BadPattern as exc:
                    raise found.pattern_error(exc) from None
    if op == "list":
        sort = args["sort"]
        if sort.lstrip("-") not in SORT_KEYS:
            raise found.error(
                SelectorError,
                f"unknown sort key {sort!r}; expected one of {', '.join(SORT_KEYS)}",
            )
        if not 1 <= args["limit"] <= 1000:
            raise found.error(ProtocolViolation, "limit must be from 1 to 1000")
        if not 0 <= args["group_limit"] <= 10_000:
            raise found.error(ProtocolViolation, "group_limit must be from 0 to 10000")
    elif op == "send":
        if (args["text"] is None) == (args["binary"] is None):
            raise found.error(ProtocolViolation, "send needs exactly one of 'text' or 'binary'")
        if args["binary"] is not None:
            try:
                base64.b64decode(args["binary"], validate=True)
            except (binascii.Error, ValueError):
                raise found.error(ProtocolViolation, "'binary' must be valid base64") from None
    elif op == "disconnect" or op == "shutdown":
        try:
            check_close_code(args["code"])
            check_close_reason(args["reason"])
        except ValueError as exc:
            raise found.error(ProtocolViolation, str(exc)) from None
        if op == "shutdown":
            if args["mode"] not in tuple(ShutdownMode):
                raise found.error(ProtocolViolation, f"mode must be {_either(ShutdownMode)}")
            deadline = args["deadline"]
            if deadline is not None and not 0 <= deadline <= 86_400:
                raise found.error(ProtocolViolation, "deadline must be 0..86400 seconds")
    elif op == "tap_start":
        problem = limits_problem(args["direction"], args["max_bytes"], args["rate"],
                                 args["byte_rate"], args["duration"])
        if problem is not None:
            raise found.error(ProtocolViolation, problem)
    elif op == "subscribe":
        if args["stats_interval"] < 0.1:
            raise found.error(ProtocolViolation, "stats_interval must be >= 0.1")
        if not 0 <= args["backlog"] <= MAX_BACKLOG:
            raise found.error(ProtocolViolation, f"backlog must be 0..{MAX_BACKLOG}")


def decode_payload(args: Mapping[str, Any]) -> str | bytes:
    """The message of a validated ``send`` request: str for text, bytes for binary."""
    if args.get("text") is not None:
        return args["text"]
    return base64.b64decode(args["binary"], validate=True)


def _dumps(obj: Any) -> str:
    """One frame's JSON text; ValueError if it could not travel as a text frame.

    No NaN or Infinity (not JSON), and no lone surrogate (not UTF-8): a frame
    that cannot be encoded is refused here, by its sender, never half-sent.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not is_unicode_text(text):
        raise ValueError("the frame holds a string that is not Unicode text "
                         "(a lone UTF-16 surrogate) and cannot be sent")
    return text


def encode_request(request_id: int | str, op: str, args: Mapping[str, Any] | None = None) -> str:
    """Client side: one request frame (ValueError for a value JSON text cannot carry)."""
    frame: dict[str, Any] = {"id": request_id, "op": op}
    if args:
        frame["args"] = {k: v for k, v in args.items() if v is not None}
    return _dumps(frame)


class EncodedList(list):  # type: ignore[type-arg]
    """A list that carries its own JSON text, which :func:`encode_reply` writes
    as it is instead of encoding the list again (a cluster page's rows, already
    JSON when they arrived from the other nodes: the standard library took
    0.3 ms to write a page of 100 rows again, orjson 0.03 ms).

    Whoever makes one vouches that ``json`` is the JSON text of the list's
    items as they are, with no NaN, Infinity or lone surrogate in it; the list
    is never changed afterwards. Anywhere else it is the plain list.
    """

    __slots__ = ("json",)

    def __init__(self, items: Any, json: str) -> None:
        super().__init__(items)
        self.json = json


def encode_reply(request_id: int | str | None, result: Any) -> str:
    """Server side: a successful reply (ValueError if the result cannot be encoded).

    A value of ``result`` (an object) that is an :class:`EncodedList` is written
    as its JSON text, not encoded again.
    """
    if type(result) is dict and any(type(value) is EncodedList for value in result.values()):
        rest = {key: value for key, value in result.items() if type(value) is not EncodedList}
        head = _dumps({"id": request_id, "ok": True, "result": rest})
        # "result" is the frame's last member: its object's closing brace,
        # then the frame's, end the text.
        spliced = ",".join(f"{_dumps(key)}:{value.json}" for key, value in result.items()
                           if type(value) is EncodedList)
        return head[:-2] + ("," if rest else "") + spliced + "}}"
    return _dumps({"id": request_id, "ok": True, "result": result})


def encode_error(request_id: int | str | None, code: str, message: str,
                 details: Mapping[str, Any] | None = None) -> str:
    """Server side: an error reply (``id`` is null when the request had none);
    ``details`` are the error's structured fields (``candidates``)."""
    return _dumps({"id": request_id, "ok": False,
                   "error": {**(details or {}), "code": code, "message": message}})


def encode_event(kind: str, data: Any, time: float, *, backlog: bool = False) -> str:
    """Server side: one event frame (ValueError if its data cannot be encoded);
    ``backlog`` marks an event of the past sent on subscribing."""
    if backlog:
        return _dumps({"event": kind, "time": time, "data": data, "backlog": True})
    return _dumps({"event": kind, "time": time, "data": data})


@dataclass(frozen=True)
class Reply:
    """A reply as the client reads it."""

    id: int | str | None
    ok: bool
    result: Any = None
    error_code: str | None = None
    error_message: str | None = None
    error_details: Mapping[str, Any] | None = None

    def exception(self) -> WsconsoleError:
        """The error an error reply stands for: the class the server raised,
        found by its code (:meth:`WsconsoleError.from_wire`)."""
        return WsconsoleError.from_wire(self.error_code or InternalError.code,
                                        self.error_message or "unknown error",
                                        self.error_details)


@dataclass(frozen=True)
class Event:
    """An event as the client reads it."""

    kind: str
    time: float
    data: Any
    backlog: bool = False
    """True for an event of the past, sent because the subscriber asked for a backlog."""


def parse_message(frame: str | bytes) -> Reply | Event:
    """Client side: parse one frame from the server."""
    try:
        data = json.loads(frame)
    except ValueError as exc:
        raise MalformedFrame(f"server sent malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedFrame("server sent a frame that is not an object")
    if "event" in data:
        return Event(kind=str(data["event"]), time=float(data.get("time", 0.0)),
                     data=data.get("data"), backlog=data.get("backlog") is True)
    if data.get("ok") is True:
        return Reply(id=data.get("id"), ok=True, result=data.get("result"))
    error = data.get("error") or {}
    return Reply(
        id=data.get("id"),
        ok=False,
        error_code=str(error.get("code", InternalError.code)),
        error_message=str(error.get("message", "unknown error")),
        error_details=error if isinstance(error, dict) else None,
    )
