"""The one exception tree of wsconsole, and the registry of its error codes.

Every error that wsconsole raises on purpose derives from :class:`WsconsoleError`
and carries a stable ``code`` and a human ``message``. Each code is defined
once, on its class, and its class docstring says what it means; the control
plane sends the code on the wire, and the console's client raises the class
registered for it (:meth:`WsconsoleError.from_wire`), so both sides of the
wire raise the same class::

    WsconsoleError
    ├── UnknownConnection        unknown_connection
    ├── AmbiguousId              ambiguous_id  (with candidates)
    ├── UnknownNode              unknown_node
    ├── IdentifyError            identify_failed
    ├── ServerStateError         bad_state
    ├── ConfigError              bad_config
    └── ControlError             control_error  (also: a code this version does not know)
        ├── ProtocolViolation    bad_request
        │   ├── MalformedFrame   bad_json
        │   ├── UnknownOperation unknown_op
        │   └── SelectorError    bad_selector
        │       └── BadPattern   bad_pattern  (with field, pattern, position)
        ├── Unauthorized         unauthorized
        ├── Forbidden            forbidden
        ├── RateLimited          rate_limited
        ├── AuditFailed          audit_failed
        ├── TapDisabled          tap_disabled
        ├── TooManyTaps          too_many_taps
        ├── InternalError        internal_error
        └── ControlUnavailable   unavailable
            └── NotAControlPlane not_a_control_plane

:data:`ERROR_CLASSES` maps every code to its class; it fills itself as the
classes are defined, and refuses a code defined twice.

Must never import asyncio, websockets or textual: it is part of the pure core.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar, Iterable, Mapping

__all__ = [
    "WsconsoleError",
    "SelectorError",
    "BadPattern",
    "UnknownConnection",
    "UnknownNode",
    "AmbiguousId",
    "IdentifyError",
    "ServerStateError",
    "ConfigError",
    "ControlError",
    "ProtocolViolation",
    "MalformedFrame",
    "UnknownOperation",
    "Unauthorized",
    "Forbidden",
    "RateLimited",
    "AuditFailed",
    "TapDisabled",
    "TooManyTaps",
    "InternalError",
    "ControlUnavailable",
    "NotAControlPlane",
    "ERROR_CLASSES",
    "error_class",
    "markdown_table",
]

_BY_CODE: dict[str, type[WsconsoleError]] = {}

ERROR_CLASSES: Mapping[str, type[WsconsoleError]] = MappingProxyType(_BY_CODE)
"""Every error code, mapped to the one class that defines it (read-only view)."""


class WsconsoleError(Exception):
    """Root of every error wsconsole raises on purpose; raise a subclass."""

    code: ClassVar[str]
    """Stable, machine-readable error code (the wire format's ``error.code``).

    Defined by each subclass in its own body, and by no other class.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if code is None:
            return
        if code in _BY_CODE:
            raise TypeError(f"error code {code!r} of {cls.__name__} is already "
                            f"defined by {_BY_CODE[code].__name__}")
        _BY_CODE[code] = cls

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        """Human-readable explanation, one line."""

    def __str__(self) -> str:
        return self.message

    def details(self) -> dict[str, Any]:
        """Structured fields the error reply carries beside code and message."""
        return {}

    @staticmethod
    def from_wire(code: str, message: str,
                  details: Mapping[str, Any] | None = None) -> WsconsoleError:
        """The error that an error reply ``{"code": ..., "message": ...}`` stands for.

        An instance of the class registered for ``code``; for a code this
        version does not know (a newer server), a :class:`ControlError` that
        keeps the server's code.
        """
        cls = _BY_CODE.get(code)
        if cls is AmbiguousId:
            candidates = (details or {}).get("candidates")
            return AmbiguousId(message, candidates if isinstance(candidates, list) else ())
        if cls is BadPattern:
            fields = details or {}
            position = fields.get("position")
            return BadPattern(message, field=str(fields.get("field") or ""),
                              pattern=str(fields.get("pattern") or ""),
                              position=position if isinstance(position, int) else None)
        if cls is not None:
            return cls(message)
        error = ControlError(message)
        error.code = code  # type: ignore[misc]  # the instance keeps the unknown code
        return error


def error_class(code: str) -> type[WsconsoleError]:
    """The class that defines ``code``; :class:`ControlError` for an unknown code."""
    return _BY_CODE.get(code, ControlError)


class UnknownConnection(WsconsoleError):
    """A connection id that is not open (never was, or has closed since), as in
    ``get``."""

    code = "unknown_connection"


class AmbiguousId(WsconsoleError):
    """An id prefix that more than one open connection's id starts with; the
    reply's ``candidates`` lists (some of) them, so the operator can pick one."""

    code = "ambiguous_id"

    def __init__(self, message: str, candidates: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.candidates = tuple(str(candidate) for candidate in candidates)
        """Ids that start with the prefix, sorted, at most a screenful."""

    def details(self) -> dict[str, Any]:
        return {"candidates": list(self.candidates)}


class UnknownNode(WsconsoleError):
    """The ``node`` argument names no node of the fleet (the message lists the
    names that ``nodes`` gives)."""

    code = "unknown_node"


class IdentifyError(WsconsoleError):
    """The application's ``identify`` raised or returned something other than a
    str; the handshake fails with HTTP 500 (never sent on the control plane)."""

    code = "identify_failed"


class ServerStateError(WsconsoleError):
    """A shutdown the server's state does not allow (e.g. a second one while the
    server is already stopping)."""

    code = "bad_state"


class ConfigError(WsconsoleError):
    """A configuration refused at start, failing closed: no token, an unreadable
    token file, a non-loopback control listener without TLS (never sent on the
    control plane)."""

    code = "bad_config"


class ControlError(WsconsoleError):
    """An error of the control plane; a client raises it, keeping the code, for
    an error code it does not know (a newer server)."""

    code = "control_error"


class ProtocolViolation(ControlError):
    """Missing or non-integer/string ``id``; missing ``op``; unknown top-level
    field; unknown or missing argument; wrong type (numbers must be finite); a
    string anywhere in the request that is not Unicode text (a lone UTF-16
    surrogate, such as the escape ``\\ud800``); value out of range (limit,
    close code, reason length, mode, deadline, stats_interval)."""

    code = "bad_request"

    request_id: int | str | None = None
    """The request's id, when the frame had a valid one (the error reply carries it)."""
    op: str | None = None
    """The operation, when the frame named a known one (unknown names are the
    sender's choice and stay out of metric labels and the audit log)."""
    raw_args: Any = None
    """The frame's ``args`` as sent, unvalidated (any JSON value), when it had some."""

    def __init__(self, message: str, *, request_id: int | str | None = None,
                 op: str | None = None, raw_args: Any = None) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.op = op
        self.raw_args = raw_args


class MalformedFrame(ProtocolViolation):
    """Not JSON (NaN and Infinity are not), not an object, or a binary frame."""

    code = "bad_json"


class UnknownOperation(ProtocolViolation):
    """``op`` names no operation."""

    code = "unknown_op"


class SelectorError(ProtocolViolation):
    """Empty selector, unknown selector field, wrong type; unknown sort key;
    bad cursor."""

    code = "bad_selector"


class BadPattern(SelectorError):
    """A user, path or topic filter that is no pattern: a backslash before
    anything but ``*``, ``?`` or ``\\``, or too long; the reply's ``field``,
    ``pattern`` and ``position`` say where."""

    code = "bad_pattern"

    def __init__(self, message: str, *, field: str = "", pattern: str = "",
                 position: int | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.field = field
        """The filter it was given for: user, path or topic."""
        self.pattern = pattern
        self.position = position
        """Index of the offending character, when one is."""

    def details(self) -> dict[str, Any]:
        return {"field": self.field, "pattern": self.pattern, "position": self.position}


class Unauthorized(ControlError):
    """The bearer token is missing or was refused (the server answers the
    handshake with HTTP 401; the client raises this)."""

    code = "unauthorized"


class Forbidden(ControlError):
    """The read-only role asked for ``send``, ``disconnect``, ``shutdown`` or
    ``tap_start`` (a tap shows the users' data)."""

    code = "forbidden"


class RateLimited(ControlError):
    """More requests than a budget allows (this connection's, this token's or
    the whole control plane's; the message says which); the request was not run."""

    code = "rate_limited"


class AuditFailed(ControlError):
    """The audit log could not record this mutating request (a full disk, an I/O
    error, a file that cannot be reopened), so it was not carried out: the audit
    log fails closed. `stats` and `/healthz` show the audit log's state and its
    last error; the next mutating request tries the file again."""

    code = "audit_failed"


class TapDisabled(ControlError):
    """A tap was asked of a server that does not allow tapping: it must be started
    with `wsconsole serve --allow-tap` (or `serve(..., allow_tap=True)`)."""

    code = "tap_disabled"


class TooManyTaps(ControlError):
    """As many taps as the server allows at once (`max_taps`, 4 by default) are
    running: stop one, or wait for one to end."""

    code = "too_many_taps"


class InternalError(ControlError):
    """A bug: the server logged it; the control connection stays usable."""

    code = "internal_error"


class ControlUnavailable(ControlError):
    """The control plane cannot be reached, or went away mid-request (raised by
    the client, never sent)."""

    code = "unavailable"


class NotAControlPlane(ControlUnavailable):
    """The endpoint accepted the WebSocket handshake but did not answer `hello`
    as a wsconsole control plane does (an echo of the request, another frame,
    a `hello` result without `"server": "wsconsole"`): most likely the public
    port. Raised by the client, never sent; the console does not retry it on
    its own."""

    code = "not_a_control_plane"


def markdown_table() -> str:
    """The README's table of error codes, from the classes: one row per code.

    Regenerate the README's with
    ``python -c 'from wsconsole.server.errors import markdown_table; print(markdown_table())'``.
    """
    rows = ["| code | class | meaning |", "|---|---|---|"]
    for code, cls in ERROR_CLASSES.items():
        meaning = " ".join((cls.__doc__ or "").split()).replace("``", "`")
        rows.append(f"| `{code}` | `{cls.__name__}` | {meaning} |")
    return "\n".join(rows)
