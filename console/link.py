"""The console's control link: the live client, and what it knows of the link.

``LinkState`` is a frozen value: connecting, connected (with the server's
``hello``), lost (with why, and when the next attempt comes), refused (the
token), not a control plane (the endpoint answered, but not as a wsconsole
control plane: the public port?) or ended (the demo's own server stopped). Each
change is a new value, so the app can hold it in a reactive and every screen
that shows the link follows it. ``ControlLink`` holds the client that workers
use while the link is up; the app's link worker connects, fills it in and
empties it when the link drops. A request made while the link is down fails
at once with ControlUnavailable, so an action is never queued and replayed
behind the operator's back.

Pure: no asyncio, no textual, no network (the client is only referred to).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Callable, Mapping

from wsconsole.server.errors import ControlUnavailable
from wsconsole.server.protocol import Role

if TYPE_CHECKING:  # pragma: no cover - the client module loads websockets
    from .client import ControlClient

__all__ = [
    "ControlLink",
    "ClientFactory",
    "LinkState",
    "LinkStatus",
    "RECONNECT_DELAYS",
    "STOPPED_STATUSES",
    "reconnect_delay",
    "stale_note",
    "with_escalation",
    "with_state_change",
]

ClientFactory = Callable[[], "ControlClient"]
"""Makes a fresh, unconnected client; called for every (re)connection."""

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds between attempts to reconnect; the last one repeats."""


def reconnect_delay(delays: tuple[float, ...], failures: int) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row (1 or more)."""
    return delays[min(max(failures, 1), len(delays)) - 1]


class LinkStatus(StrEnum):
    """Where the control link is."""

    CONNECTING = "connecting"
    """An attempt is under way (the first, or one the operator asked for)."""
    CONNECTED = "connected"
    """The server said hello; requests go through."""
    LOST = "lost"
    """Down, or never reached; another attempt follows on its own."""
    REFUSED = "refused"
    """The token was refused or missing: no attempt until the operator asks."""
    NOT_CONTROL_PLANE = "not_control_plane"
    """The endpoint is not a wsconsole control plane (the public port?): no
    attempt until the operator asks, so that the operator's token is not sent
    to an application again and again."""
    ENDED = "ended"
    """The server is known to have stopped for good (the demo's own server):
    no attempt until the operator asks."""


STOPPED_STATUSES = frozenset({LinkStatus.REFUSED, LinkStatus.NOT_CONTROL_PLANE,
                              LinkStatus.ENDED})
"""Down, with no attempt until the operator asks (ctrl+r)."""


@dataclass(frozen=True)
class LinkState:
    """What the console knows about its control link, as one comparable value."""

    status: LinkStatus = LinkStatus.CONNECTING
    reason: str = ""
    """Why the link is down, in the server's or the network's words."""
    hello: Mapping[str, Any] = field(default_factory=dict)
    """The last ``hello`` result (kept while the link is down)."""
    retry_in: float | None = None
    """Seconds from the loss to the next attempt; None when none will come."""
    down_since: float | None = None
    """When (wall clock) the link went down after a hello: what is shown since
    is stale. None while up, and before the first hello."""
    failures: int = 0
    """Attempts failed in a row: each loss is a new value, even with the same reason."""
    connections: int = 0
    """How many times the link came up: 1 is the first connection, more a reconnection."""

    @property
    def up(self) -> bool:
        """True while requests can be sent."""
        return self.status == LinkStatus.CONNECTED

    @property
    def stale(self) -> bool:
        """True when what the server said last is shown but is no longer current:
        the link is down after a hello."""
        return not self.up and bool(self.hello)

    @property
    def role(self) -> str | None:
        """``operator`` or ``read_only``; None before the first hello."""
        return self.hello.get("role")

    @property
    def read_only(self) -> bool:
        """True when the token may not run mutating operations."""
        return self.role == Role.READ_ONLY

    def connecting(self) -> LinkState:
        """An attempt starts now (the operator pressed ctrl+r)."""
        return replace(self, status=LinkStatus.CONNECTING, reason="", retry_in=None)

    def connected(self, hello: Mapping[str, Any]) -> LinkState:
        """The server said hello."""
        return replace(self, status=LinkStatus.CONNECTED, reason="", retry_in=None,
                       hello=dict(hello), failures=0, connections=self.connections + 1,
                       down_since=None)

    def lost(self, reason: str, retry_in: float | None, at: float | None = None) -> LinkState:
        """The link went down, or an attempt failed; the next in ``retry_in`` seconds.
        ``at``: when (wall clock), kept from the first loss while it stays down."""
        return self._down(LinkStatus.LOST, reason, retry_in, at)

    def refused(self, reason: str, at: float | None = None) -> LinkState:
        """The token was refused: retrying would not help."""
        return self._down(LinkStatus.REFUSED, reason, None, at)

    def not_control_plane(self, reason: str, at: float | None = None) -> LinkState:
        """The endpoint is not a wsconsole control plane: retrying would only send
        the token to it again."""
        return self._down(LinkStatus.NOT_CONTROL_PLANE, reason, None, at)

    def ended(self, reason: str, at: float | None = None) -> LinkState:
        """The server has stopped for good: nothing to reconnect to."""
        return self._down(LinkStatus.ENDED, reason, None, at)

    def _down(self, status: LinkStatus, reason: str, retry_in: float | None,
              at: float | None) -> LinkState:
        since = self.down_since
        if since is None and self.up:
            since = at
        return replace(self, status=status, reason=reason, retry_in=retry_in,
                       failures=self.failures + 1, down_since=since)


def stale_note(since: float | None) -> str:
    """``stale since 12:00:03`` (local time), or ``stale`` when it is not known when."""
    if since is None:
        return "stale"
    return f"stale since {time.strftime('%H:%M:%S', time.localtime(since))}"


def with_state_change(stats: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """The latest stats once a ``state_changed`` event's data is applied.

    The event says the new state, the connections still open and, for a
    shutdown, its mode; the rest of the sample stays as it was.
    """
    updated = dict(stats)
    updated.update({key: change[key] for key in ("state", "connections") if key in change})
    if change.get("mode"):
        updated["shutdown_mode"] = change["mode"]
    if change.get("deadline"):
        updated["shutdown_deadline"] = change["deadline"]
    return updated


def with_escalation(stats: Mapping[str, Any], escalation: Mapping[str, Any],
                    local_node: str | None) -> dict[str, Any]:
    """The latest stats once a ``drain_escalated`` event is applied: kept as
    ``shutdown_escalation`` of its node (the whole sample for the local node,
    its entry of ``per_node`` in a cluster's)."""
    updated = dict(stats)
    node = escalation.get("node")
    if node in (None, local_node):
        updated["shutdown_escalation"] = dict(escalation)
    per_node = updated.get("per_node")
    if isinstance(per_node, Mapping) and node in per_node:
        updated["per_node"] = {**per_node, node: {**per_node[node],
                                                  "shutdown_escalation": dict(escalation)}}
    return updated


class ControlLink:
    """The control client while the link is up, and the link's state."""

    def __init__(self, factory: ClientFactory, url: str = "") -> None:
        self.factory = factory
        """Makes a new client for each attempt."""
        self.url = url
        """Where the control plane is, for display."""
        self.client: ControlClient | None = None
        """The connected client, or None while the link is down."""
        self.state = LinkState()
        """The link's state; the app keeps it equal to its ``link_state`` reactive."""

    @property
    def read_only(self) -> bool:
        """True when the token may not run mutating operations."""
        return self.state.read_only

    def require(self) -> ControlClient:
        """The connected client; raises ControlUnavailable while the link is down."""
        if self.client is None:
            reason = self.state.reason
            raise ControlUnavailable(
                "not connected to the control plane"
                + (f" ({reason})" if reason else "")
                + "; nothing was sent"
            )
        return self.client
