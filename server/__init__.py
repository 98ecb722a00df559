"""wsconsole.server: a drop-in for websockets' ``serve`` that knows every connection.

    from wsconsole.server import serve

    async with serve(handler, "localhost", 8765) as server:
        server.hub.send(Selector(topic="lobby"), "hello")

Must never import textual or ``wsconsole.console``: the server runs without the TUI.
"""

from typing import TYPE_CHECKING, Any

# Lazy exports (PEP 562): `from wsconsole.server import wire` must not load the
# hub or websockets, so that the console imports only the wire format.
_EXPORTS = {
    "serve": "serving",
    "unix_serve": "serving",
    "route": "serving",
    "unix_route": "serving",
    "hub_of": "serving",
    "default_identify": "serving",
    "WsconsoleServer": "serving",
    "HEALTH_PATH": "serving",
    "Hub": "hub",
    "HubState": "hub",
    "SendResult": "hub",
    "DEFAULT_SLOW_CONSUMER_LIMIT": "hub",
    "SLOW_CONSUMER_CODE": "hub",
    "SLOW_CONSUMER_REASON": "hub",
    "Selector": "registry",
    "ConnectionRecord": "registry",
    "ConnectionRegistry": "registry",
    "ControlConfig": "config",
    "WsconsoleError": "errors",
    "SelectorError": "errors",
    "UnknownConnection": "errors",
    "IdentifyError": "errors",
    "ServerStateError": "errors",
    "ConfigError": "errors",
    "ControlError": "errors",
    "ControlUnavailable": "errors",
    "ProtocolViolation": "errors",
    "Unauthorized": "errors",
    "Forbidden": "errors",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from .config import ControlConfig
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
    from .serving import (
        HEALTH_PATH,
        WsconsoleServer,
        default_identify,
        hub_of,
        route,
        serve,
        unix_route,
        unix_serve,
    )

__all__ = list(_EXPORTS)
