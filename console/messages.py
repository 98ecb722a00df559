"""Messages the console's workers post: past-tense facts about the control link.

Workers do the network I/O and post one of these; ``@on`` handlers on the
screens update widgets. Messages owned by one widget are nested in that widget.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from wsconsole.server.wire import Event

__all__ = [
    "ControlLinked",
    "ControlLinkLost",
    "ConnectionsListed",
    "StatsSampled",
    "EventReceived",
    "ConnectionFetched",
    "ActionCompleted",
    "CommandFailed",
]


class ControlLinked(Message):
    """The console connected (or reconnected) and the server said hello."""

    def __init__(self, hello: dict[str, Any]) -> None:
        super().__init__()
        self.hello = hello
        """The ``hello`` result: node, role, protocol, operations, state."""


class ControlLinkLost(Message):
    """The control link is down; a new attempt follows in ``retry_in`` seconds."""

    def __init__(self, reason: str, retry_in: float | None, *, refused: bool = False) -> None:
        super().__init__()
        self.reason = reason
        """Why, for the operator: one line."""
        self.retry_in = retry_in
        """Seconds until the next attempt; None when the console stopped trying."""
        self.refused = refused
        """True when the token was refused (retrying would not help)."""


class ConnectionsListed(Message):
    """A page of connections arrived for the view that asked for it."""

    def __init__(self, page: dict[str, Any], view_key: tuple[Any, ...]) -> None:
        super().__init__()
        self.page = page
        """The ``list`` result: connections, total, next_cursor, groups."""
        self.view_key = view_key
        """(filter, sort, cursor) the page was asked for; stale pages are dropped."""


class StatsSampled(Message):
    """A ``stats`` sample arrived (from the event stream or a request)."""

    def __init__(self, stats: dict[str, Any]) -> None:
        super().__init__()
        self.stats = stats


class EventReceived(Message):
    """One event of the server's event stream (other than ``stats``)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class ConnectionFetched(Message):
    """The full record of one connection arrived (``get``)."""

    def __init__(self, connection: dict[str, Any]) -> None:
        super().__init__()
        self.connection = connection


class ActionCompleted(Message):
    """An operator action succeeded; ``summary`` says what it did."""

    def __init__(self, title: str, summary: str) -> None:
        super().__init__()
        self.title = title
        self.summary = summary


class CommandFailed(Message):
    """A request failed; shown as one notification and one log line."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title = title
        """What the console was doing, e.g. ``Broadcast``."""
        self.message = message
        """Why it failed, one line, for the operator."""
