"""Configuration of the control listener (pure values, no I/O).

Must never import asyncio, websockets or textual.
"""

from __future__ import annotations

from dataclasses import dataclass

from .limits import (
    DEFAULT_CONTROL_CONNECTION_RATE,
    DEFAULT_CONTROL_LOOP_SHARE,
    DEFAULT_CONTROL_MAX_CONNECTIONS,
    DEFAULT_CONTROL_TOKEN_RATE,
    DEFAULT_CONTROL_TOTAL_RATE,
)
from .wire import MAX_REQUEST_BYTES

__all__ = ["ControlConfig", "DEFAULT_CONTROL_HOST", "DEFAULT_CONTROL_PORT"]

DEFAULT_CONTROL_HOST = "127.0.0.1"
"""The control listener binds to loopback unless told otherwise."""
DEFAULT_CONTROL_PORT = 8766
"""Default TCP port of the control listener."""


@dataclass
class ControlConfig:
    """Where the control listener listens and whom it lets in."""

    host: str = DEFAULT_CONTROL_HOST
    """Bind address; non-loopback needs TLS (cert/key) or ``allow_insecure``."""
    port: int = DEFAULT_CONTROL_PORT
    """TCP port; 0 picks a free one."""
    unix_path: str | None = None
    """Listen on this Unix socket instead of TCP."""
    token: str | None = None
    """Operator token given directly (``--token`` / ``WSCONSOLE_TOKEN``)."""
    token_file: str | None = None
    """Operator token file; created (mode 0600) with a random token if missing."""
    read_only_token: str | None = None
    """Read-only token given directly."""
    read_only_token_file: str | None = None
    """Read-only token file; created like ``token_file`` if missing."""
    cert: str | None = None
    """TLS certificate (PEM) for the control listener."""
    key: str | None = None
    """TLS private key (PEM) for the control listener."""
    allow_insecure: bool = False
    """Allow a non-loopback bind without TLS (the operator said so explicitly)."""
    audit_log: str | None = None
    """Append one JSON line per mutating operation to this file."""
    max_request_bytes: int = MAX_REQUEST_BYTES
    """Larger control requests close the control connection with 1009."""
    metrics_route_templates: tuple[str, ...] = ()
    """Route templates such as ``/rooms/{name}`` that give metrics their path label."""
    metrics_max_paths: int = 50
    """Without templates, the first N distinct paths get a label; the rest are 'other'."""
    max_connections: int | None = DEFAULT_CONTROL_MAX_CONNECTIONS
    """Open control connections at once; a handshake past it is refused with
    HTTP 503. None (or 0): no cap."""
    connection_rate: float | None = DEFAULT_CONTROL_CONNECTION_RATE
    """Requests per second on one control connection; past it, ``rate_limited``.
    None (or 0): no limit."""
    connection_burst: float | None = None
    """Requests one connection may send at once (None: twice ``connection_rate``)."""
    token_rate: float | None = DEFAULT_CONTROL_TOKEN_RATE
    """Requests per second with one token (one role), over all its connections."""
    token_burst: float | None = None
    """Requests at once with one token (None: twice ``token_rate``)."""
    total_rate: float | None = DEFAULT_CONTROL_TOTAL_RATE
    """Requests per second on the whole control plane, every token together."""
    total_burst: float | None = None
    """Requests at once on the whole control plane (None: twice ``total_rate``)."""
    loop_share: float | None = DEFAULT_CONTROL_LOOP_SHARE
    """Fraction of the event loop's time that control requests may take
    together (bursts of 50 ms); past it, the next request waits. None (or 0):
    no budget. Keeps an operators' flood from slowing the public server."""
