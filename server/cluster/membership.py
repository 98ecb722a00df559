"""The node table of a cluster: who is there, and how recently they were heard.

A node is *live* while its heartbeats arrive, *suspect* once it has missed
some (``suspect`` seconds of silence), *gone* after ``gone`` seconds of
silence or when it said goodbye, and drops out of the table ``forget``
seconds after it went. A node heard again rejoins. Times are this process's
monotonic clock (when a heartbeat *arrived*), never the sender's: clocks of
different hosts differ.

A node announces its heartbeat interval: one that beats less often than
this node expects is judged by its own pace (suspect after 2.5 of its
intervals, gone after 5), never flagged for beating as it said it would.

Names are unique among live nodes: a heartbeat under the name of a live or
suspect node from another process (another ``instance``) is a duplicate,
reported and ignored; once the first one is gone the name is free again.

Pure: must never import asyncio, websockets, redis or textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocol import NodeHealth

__all__ = ["NodeTable", "Member", "Change"]


@dataclass(slots=True)
class Member:
    """What the table knows of one node."""

    name: str
    instance: str
    """The process behind the name (random per start): tells a restart from a duplicate."""
    entry: dict[str, Any]
    """Its last ``nodes`` entry, as its heartbeat carried it."""
    heard: float
    """When its last heartbeat arrived (monotonic)."""
    last_seen: float
    """The same, as unix time on this host (``last_seen`` of the entry)."""
    health: NodeHealth = NodeHealth.LIVE
    gone_since: float | None = None
    stats: dict[str, Any] | None = field(default=None, repr=False)
    """Its sampled stats, as its last heartbeat carried them."""
    watching: bool = False
    """Someone subscribed to events on it: this node forwards its events."""
    interval: float | None = None
    """The heartbeat interval it announced."""

    def public(self) -> dict[str, Any]:
        """Its entry of the ``nodes`` result (and data of a ``node`` event)."""
        return {**self.entry, "node": self.name, "health": self.health,
                "last_seen": self.last_seen}


@dataclass(frozen=True, slots=True)
class Change:
    """Something the operators should hear about (a ``node`` event), or a duplicate."""

    member: Member
    what: str
    """``joined``, ``rejoined``, ``suspect``, ``gone``, ``state``, ``forgotten`` or ``duplicate``."""


class NodeTable:
    """Every node this one has heard of, by name (this node excluded)."""

    def __init__(self, *, suspect: float, gone: float, forget: float) -> None:
        self.suspect = suspect
        self.gone = gone
        self.forget = forget
        self._members: dict[str, Member] = {}

    def heard(self, name: str, instance: str, entry: dict[str, Any], *, now: float,
              wall: float, stats: dict[str, Any] | None = None,
              interval: float | None = None) -> list[Change]:
        """A heartbeat arrived; what changed."""
        member = self._members.get(name)
        if member is None:
            member = Member(name, instance, entry, now, wall, stats=stats, interval=interval)
            self._members[name] = member
            return [Change(member, "joined")]
        if member.instance != instance:
            if member.health != NodeHealth.GONE:
                intruder = Member(name, instance, entry, now, wall)
                return [Change(intruder, "duplicate")]
            member.instance = instance  # the name's previous process has gone: a restart
        before_health, before_state = member.health, member.entry.get("state")
        member.entry, member.heard, member.last_seen, member.stats = entry, now, wall, stats
        member.interval = interval
        member.health, member.gone_since = NodeHealth.LIVE, None
        if before_health == NodeHealth.GONE:
            return [Change(member, "rejoined")]
        if before_health == NodeHealth.SUSPECT:
            return [Change(member, "rejoined")]
        if entry.get("state") != before_state:
            return [Change(member, "state")]
        return []

    def left(self, name: str, instance: str, *, now: float) -> list[Change]:
        """A node said goodbye."""
        member = self._members.get(name)
        if member is None or member.instance != instance or member.health == NodeHealth.GONE:
            return []
        member.health, member.gone_since = NodeHealth.GONE, now
        member.entry = {**member.entry, "state": "stopped"}
        return [Change(member, "gone")]

    def tick(self, now: float) -> list[Change]:
        """Turn silent nodes suspect, then gone; forget the long gone."""
        changes: list[Change] = []
        for name, member in list(self._members.items()):
            silent = now - member.heard
            pace = member.interval or 0.0
            suspect, gone = max(self.suspect, 2.5 * pace), max(self.gone, 5 * pace)
            if member.health == NodeHealth.GONE:
                assert member.gone_since is not None
                if now - member.gone_since >= self.forget:
                    del self._members[name]
                    changes.append(Change(member, "forgotten"))
            elif silent >= gone:
                member.health, member.gone_since = NodeHealth.GONE, now
                changes.append(Change(member, "gone"))
            elif silent >= suspect and member.health == NodeHealth.LIVE:
                member.health = NodeHealth.SUSPECT
                changes.append(Change(member, "suspect"))
        return changes

    def expected(self) -> list[str]:
        """The nodes a request waits for: live and suspect ones, by name."""
        return sorted(name for name, member in self._members.items()
                      if member.health != NodeHealth.GONE)

    def get(self, name: str) -> Member | None:
        return self._members.get(name)

    def members(self) -> list[Member]:
        """Every node in the table, by name."""
        return [self._members[name] for name in sorted(self._members)]

    def __contains__(self, name: object) -> bool:
        return name in self._members
