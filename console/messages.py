"""Messages the console's workers post: past-tense facts about the control link
and the operator's actions.

Workers do the network I/O and post one of these; ``@on`` handlers update
state and widgets. The link's messages go to the app, which owns the link;
the action messages are shared by the dialogs. A message that only one screen
or widget posts and handles is nested in it (``MainScreen.ConnectionsListed``,
``GroupsPanel.GroupChosen``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from wsconsole.server.wire import Event

__all__ = [
    "ControlLinked",
    "ControlLinkLost",
    "StatsSampled",
    "EventsReceived",
    "NodesListed",
    "ActionCompleted",
    "CommandFailed",
]


@dataclass
class ControlLinked(Message):
    """The console connected (or reconnected) and the server said hello."""

    hello: dict[str, Any]
    """The ``hello`` result: node, role, protocol, operations, state."""


@dataclass
class ControlLinkLost(Message):
    """The control link is down; a new attempt follows in ``retry_in`` seconds."""

    reason: str
    """Why, for the operator: one line."""
    retry_in: float | None
    """Seconds until the next attempt; None when the console stopped trying."""
    stopped: str = ""
    """Why the console stopped trying, as a ``LinkStatus``: ``refused`` (the
    token), ``not_control_plane`` (the public port?), ``ended`` (the demo's
    server stopped); empty while attempts go on."""

    @property
    def refused(self) -> bool:
        """True when the token was refused (retrying would not help)."""
        return self.stopped == "refused"


@dataclass
class StatsSampled(Message):
    """A ``stats`` sample arrived on the event stream."""

    stats: dict[str, Any]


@dataclass
class EventsReceived(Message):
    """Events of the server's event stream (other than ``stats``), in the
    order they came: every one that arrived since the last message."""

    events: tuple[Event, ...]


@dataclass
class NodesListed(Message):
    """The nodes answered: what each said of itself, and which did not answer."""

    nodes: list[dict[str, Any]]
    """The ``nodes`` entries (node, state, health, connections, rates, ...), by name."""
    missing: dict[str, str]
    """Nodes that did not answer, and why."""


@dataclass
class ActionCompleted(Message):
    """An operator action succeeded; ``summary`` says what it did."""

    title: str
    summary: str


@dataclass
class CommandFailed(Message):
    """A request failed; shown as one notification and one log line."""

    title: str
    """What the console was doing, e.g. ``Broadcast``."""
    message: str
    """Why it failed, one line, for the operator."""
