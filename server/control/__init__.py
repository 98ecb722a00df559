"""The control plane: an authenticated JSON-over-WebSocket API beside the public server.

One module per job:

- :mod:`.listener`: the transport: start, stop, TLS, ``GET /metrics`` and
  ``GET /healthz``, the WebSocket handler, dispatch, rate limiting;
- :mod:`.auth`: tokens (loading, creating, comparing) and roles;
- :mod:`.operations`: what each wire operation does;
- :mod:`.events`: subscriptions, their coalescing, and their pumps;
- :mod:`.audit`: the audit log of mutating operations.

Must never import textual or ``wsconsole.console``.
"""

from .auth import MAX_TOKEN_BYTES, OPERATOR, READ_ONLY, load_token
from .listener import HEALTH_PATH, METRICS_PATH, ControlListener, is_loopback, websockets_logger

__all__ = [
    "ControlListener",
    "OPERATOR",
    "READ_ONLY",
    "METRICS_PATH",
    "HEALTH_PATH",
    "MAX_TOKEN_BYTES",
    "load_token",
    "is_loopback",
    "websockets_logger",
]
