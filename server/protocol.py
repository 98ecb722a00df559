"""What both sides of the control plane agree on besides the frames: the values
that travel (states, roles, shutdown modes, event kinds) and the rules on them
(which close codes an operator may send, how long a reason may be, what a
token may contain).

The server checks every rule when a request arrives; the console checks the
same rule, with the same function, before it sends (so the operator hears
about a bad close code in the dialog or on the command line, not from a
refusal). Each enum is a ``StrEnum``: a member equals its string, so
``hub.state == "serving"`` and JSON encoding keep working.

Pure: must never import asyncio, websockets or textual.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "HubState",
    "AuditState",
    "Role",
    "ShutdownMode",
    "EventKind",
    "NodeHealth",
    "SENDABLE_CLOSE_CODES",
    "NORMAL_CLOSE_CODES",
    "is_abnormal_close",
    "APPLICATION_CLOSE_CODES",
    "SENDABLE_CLOSE_CODES_TEXT",
    "MAX_CLOSE_REASON_BYTES",
    "check_close_code",
    "check_close_reason",
    "parse_close_code",
    "MAX_TOKEN_LENGTH",
    "token_problem",
]


class HubState(StrEnum):
    """The server's state: ``state`` in ``stats``, ``hello`` and ``state_changed``."""

    SERVING = "serving"
    """Accepting new connections."""
    DRAINING = "draining"
    """Not accepting; open connections are closing or being kept until they do."""
    STOPPED = "stopped"
    """Every connection is gone and every handler has returned."""


class AuditState(StrEnum):
    """The audit log's state: ``audit.state`` in ``stats`` and ``/healthz``."""

    OK = "ok"
    """Its last line was written (or none was due yet)."""
    FAILING = "failing"
    """Its last line could not be written: mutating requests are refused with
    ``audit_failed`` until a line is written again."""
    DISABLED = "disabled"
    """No audit file: entries are only published as ``operator_action`` events."""


class Role(StrEnum):
    """What a control token may do: ``role`` in ``hello`` and in audit entries."""

    OPERATOR = "operator"
    """Every operation."""
    READ_ONLY = "read_only"
    """Every operation that changes nothing (none of ``wire.MUTATING_OPERATIONS``)."""


class ShutdownMode(StrEnum):
    """``mode`` of ``shutdown``, and ``shutdown_mode`` in ``stats``."""

    GRACEFUL = "graceful"
    """Stop accepting and close every connection now."""
    KEEP_ALIVE = "keep_alive"
    """Stop accepting; open connections keep working until they close, or
    until the deadline closes the rest."""


class EventKind(StrEnum):
    """``event`` of event frames."""

    CONNECTION_OPENED = "connection_opened"
    """data: a connection summary (as in ``list``)."""
    CONNECTION_CLOSED = "connection_closed"
    """data: id, user, path, code, reason, msgs_in, msgs_out, duration."""
    BURST = "burst"
    """data: {opened, closed}: counts that replaced individual events in a burst."""
    OPERATOR_ACTION = "operator_action"
    """data: the audit entry of a mutating operation."""
    STATE_CHANGED = "state_changed"
    """data: state, connections."""
    SLOW_CONSUMER = "slow_consumer"
    """data: id, user, path, buffered, kernel_queued: a connection closed for not reading."""
    STATS = "stats"
    """data: as the ``stats`` result, sent every ``stats_interval``."""
    NODE = "node"
    """data: an entry of the ``nodes`` result: a node joined, turned suspect,
    went, came back, or changed state (cluster mode)."""
    TAP = "tap"
    """data: tap, records, shown, dropped: a tap's records, sent only on the
    control connection that started it (no ``subscribe`` needed)."""
    TAP_ENDED = "tap_ended"
    """data: tap, reason, shown, dropped: that tap's last event."""
    DRAIN_ESCALATED = "drain_escalated"
    """data: node, cause (``deadline``: the keep-alive deadline fired;
    ``shutdown``: a graceful shutdown cut the drain short, from an operator or
    a signal), started_with, served (closed by their clients during the drain),
    closing (still open, closed by the server now), code, reason, deadline."""


class NodeHealth(StrEnum):
    """``health`` of an entry of ``nodes``: what its heartbeats say."""

    LIVE = "live"
    """Its last heartbeat is recent."""
    SUSPECT = "suspect"
    """It missed heartbeats; requests still wait for it until their deadline."""
    GONE = "gone"
    """It said goodbye or stopped heartbeating; requests no longer wait for it.
    It stays listed for a while, then drops out."""


# Close codes. RFC 6455 reserves 1002, 1003, 1007, 1009 and 1010 for failures
# that the endpoint itself detected (a protocol error, data it cannot accept):
# an operator closing a connection detected none of these, and a client might
# log them as bugs. 1004-1006 and 1015 must never be sent at all.

NORMAL_CLOSE_CODES = frozenset({1000, 1001})
"""Close codes of a connection that ended as it should (normal closure, going
away); every other code is an abnormal close (the event log's filter, the
status bar's summary, the backlog's notable events)."""


def is_abnormal_close(code: object) -> bool:
    """True for a close code other than 1000 and 1001 (1006: the TCP connection was lost)."""
    return code not in NORMAL_CLOSE_CODES


SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1008, 1011, 1012, 1013})
"""The RFC 6455 close codes an operator may send."""
APPLICATION_CLOSE_CODES = range(3000, 5000)
"""3000-3999 registered with IANA, 4000-4999 private: all sendable."""
SENDABLE_CLOSE_CODES_TEXT = (
    f"{', '.join(map(str, sorted(SENDABLE_CLOSE_CODES)))} or "
    f"{APPLICATION_CLOSE_CODES.start}-{APPLICATION_CLOSE_CODES.stop - 1}"
)
"""The sendable codes in words, for help texts and error messages."""

MAX_CLOSE_REASON_BYTES = 123
"""A close frame's payload is at most 125 bytes, two of which are the code."""


def check_close_code(code: int) -> int:
    """``code`` if an operator may send it; ValueError saying which may be sent."""
    if code in SENDABLE_CLOSE_CODES or code in APPLICATION_CLOSE_CODES:
        return code
    raise ValueError(f"close code {code} cannot be sent; use {SENDABLE_CLOSE_CODES_TEXT}")


def check_close_reason(reason: str) -> str:
    """``reason`` if it fits in a close frame; ValueError otherwise."""
    if len(reason.encode()) > MAX_CLOSE_REASON_BYTES:
        raise ValueError(f"close reason must be at most {MAX_CLOSE_REASON_BYTES} bytes of UTF-8")
    return reason


def parse_close_code(text: str) -> int:
    """A close code typed by an operator (``4000``), checked; ValueError otherwise."""
    try:
        code = int(text.strip())
    except ValueError:
        raise ValueError(f"close code must be a number, not {text!r}") from None
    return check_close_code(code)


MAX_TOKEN_LENGTH = 1024
"""Characters of a control token; the server refuses a longer ``Authorization``
value before comparing anything."""


def token_problem(token: str) -> str | None:
    """What is wrong with a control token, as a phrase (``"is empty"``), or None.

    A token travels in an HTTP header: it must be printable ASCII without
    spaces, or it would corrupt the request (or inject a header). The phrase
    never contains the token; the caller names where the token came from.
    """
    if not token:
        return "is empty"
    if len(token) > MAX_TOKEN_LENGTH:
        return f"is longer than {MAX_TOKEN_LENGTH} characters"
    if not all("!" <= ch <= "~" for ch in token):
        return "must be printable ASCII without spaces"
    return None
