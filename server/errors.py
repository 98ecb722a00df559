"""The one exception tree of wsconsole.

Every error that wsconsole raises on purpose derives from :class:`WsconsoleError`,
and carries a stable ``code`` (the control plane sends it on the wire) and a
human ``message``::

    WsconsoleError
    ├── SelectorError          a selector is malformed or names an unknown field
    ├── UnknownConnection      a connection id that is not (or no longer) open
    ├── IdentifyError          ``identify`` raised or returned a non-string
    ├── ServerStateError       an operation that the server's state forbids
    ├── ConfigError            a configuration refused at start (fail closed)
    └── ControlError           anything the control plane answers with an error
        ├── ProtocolViolation  malformed request: bad JSON, wrong types, ...
        ├── Unauthorized       token missing or refused
        └── Forbidden          the role may not run this operation

The console re-uses this tree: its client raises :class:`ControlError` (with the
server's code) or :class:`ControlUnavailable` when the control plane cannot be
reached.

Must never import asyncio, websockets or textual: it is part of the pure core.
"""

from __future__ import annotations

__all__ = [
    "WsconsoleError",
    "SelectorError",
    "UnknownConnection",
    "IdentifyError",
    "ServerStateError",
    "ConfigError",
    "ControlError",
    "ProtocolViolation",
    "Unauthorized",
    "Forbidden",
    "ControlUnavailable",
]


class WsconsoleError(Exception):
    """Root of every error wsconsole raises on purpose."""

    code: str = "internal_error"
    """Stable, machine-readable error code (also the wire format's error code)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        """Human-readable explanation, one line."""
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class SelectorError(WsconsoleError):
    """A selector is empty, malformed, or names an unknown field."""

    code = "bad_selector"


class UnknownConnection(WsconsoleError):
    """A connection id that is not open (never was, or has closed since)."""

    code = "unknown_connection"


class IdentifyError(WsconsoleError):
    """The ``identify`` callable raised or returned something other than a str."""

    code = "identify_failed"


class ServerStateError(WsconsoleError):
    """The operation is not possible in the server's current state."""

    code = "bad_state"


class ConfigError(WsconsoleError):
    """A configuration that wsconsole refuses to start with (e.g. no token, or a
    non-loopback control listener without TLS)."""

    code = "bad_config"


class ControlError(WsconsoleError):
    """An error answered by the control plane."""

    code = "control_error"


class ProtocolViolation(ControlError):
    """A control request that is not valid JSON, or has wrong or missing fields."""

    code = "bad_request"


class Unauthorized(ControlError):
    """The bearer token is missing or was refused."""

    code = "unauthorized"


class Forbidden(ControlError):
    """The caller's role may not run this operation (e.g. read-only sends)."""

    code = "forbidden"


class ControlUnavailable(ControlError):
    """The control plane cannot be reached, or went away mid-request."""

    code = "unavailable"
