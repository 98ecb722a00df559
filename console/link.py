"""The console's view of its control link: the live client and who we are.

Holds no I/O of its own: the main screen's link worker connects, fills this
in and empties it when the link drops; other workers ask it for the client.
A request made while the link is down fails at once with ControlUnavailable,
so an action is never queued and replayed behind the operator's back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from wsconsole.server.errors import ControlUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from .client import ControlClient

__all__ = ["ControlLink", "ClientFactory", "RECONNECT_DELAYS"]

ClientFactory = Callable[[], "ControlClient"]
"""Makes a fresh, unconnected client; called for every (re)connection."""

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds between attempts to reconnect; the last one repeats."""


class ControlLink:
    """The current control connection, if any, and what the server told us."""

    def __init__(self, factory: ClientFactory, url: str = "") -> None:
        self.factory = factory
        """Makes a new client for each attempt."""
        self.url = url
        """Where the control plane is, for display."""
        self.client: ControlClient | None = None
        """The connected client, or None while the link is down."""
        self.hello: dict[str, Any] = {}
        """The last ``hello`` result."""
        self.status = "connecting"
        """connecting, connected, lost, refused: what the status bar shows."""
        self.reason = ""
        """Why the link is down, when it is."""

    @property
    def role(self) -> str | None:
        """``operator`` or ``read_only``; None before the first hello."""
        return self.hello.get("role")

    @property
    def read_only(self) -> bool:
        """True when the token may not run mutating operations."""
        return self.role == "read_only"

    def require(self) -> ControlClient:
        """The connected client; raises ControlUnavailable while the link is down."""
        if self.client is None:
            raise ControlUnavailable(
                "not connected to the control plane"
                + (f" ({self.reason})" if self.reason else "")
                + "; nothing was sent"
            )
        return self.client
