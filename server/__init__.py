"""wsconsole.server: a drop-in for websockets' ``serve`` that knows every connection.

    from wsconsole.server import serve

    async with serve(handler, "localhost", 8765) as server:
        server.hub.send(Selector(topic="lobby"), "hello")

Must never import textual or ``wsconsole.console``: the server runs without the TUI.
"""

from .errors import (
    ConfigError,
    ControlError,
    ControlUnavailable,
    Forbidden,
    IdentifyError,
    ProtocolViolation,
    SelectorError,
    ServerStateError,
    Unauthorized,
    UnknownConnection,
    WsconsoleError,
)
from .hub import (
    DEFAULT_SLOW_CONSUMER_LIMIT,
    SLOW_CONSUMER_CODE,
    SLOW_CONSUMER_REASON,
    Hub,
    HubState,
    SendResult,
)
from .registry import ConnectionRecord, ConnectionRegistry, Selector
from .serving import HEALTH_PATH, WsconsoleServer, default_identify, hub_of, serve

__all__ = [
    "serve",
    "hub_of",
    "default_identify",
    "WsconsoleServer",
    "Hub",
    "HubState",
    "SendResult",
    "Selector",
    "ConnectionRecord",
    "ConnectionRegistry",
    "HEALTH_PATH",
    "DEFAULT_SLOW_CONSUMER_LIMIT",
    "SLOW_CONSUMER_CODE",
    "SLOW_CONSUMER_REASON",
    "WsconsoleError",
    "SelectorError",
    "UnknownConnection",
    "IdentifyError",
    "ServerStateError",
    "ConfigError",
    "ControlError",
    "ControlUnavailable",
    "ProtocolViolation",
    "Unauthorized",
    "Forbidden",
]
