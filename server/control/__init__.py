"""The control plane: an authenticated JSON-over-WebSocket API beside the public server.

One module per job:

- :mod:`.listener`: the transport: start, stop, TLS, ``GET /metrics`` and
  ``GET /healthz``, the WebSocket handler, dispatch, rate limiting;
- :mod:`.auth`: tokens (loading, creating, comparing) and roles (``protocol.Role``);
- :mod:`.operations`: what each wire operation does;
- :mod:`.events`: subscriptions, their coalescing, and their pumps;
- :mod:`.audit`: the audit log of mutating operations.

Must never import textual or ``wsconsole.console``.
"""

from .listener import HEALTH_PATH, METRICS_PATH, ControlListener, is_loopback

__all__ = [
    "ControlListener",
    "METRICS_PATH",
    "HEALTH_PATH",
    "is_loopback",
]
