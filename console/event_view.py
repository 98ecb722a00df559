"""What the event log shows and the status bar sums up, as plain values.

Which events are problems (abnormal closes, slow consumers, operator actions,
errors), the log's filter over them, which operator actions are the same
action repeated, and the close codes of the last minutes. The event log and
the status bar apply these; the rules are tested here with plain values.

Pure: no asyncio, no textual, no network.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Iterable

from wsconsole.server.protocol import EventKind, is_abnormal_close
from wsconsole.server.wire import Event

__all__ = [
    "EventCategory",
    "CATEGORY_KEYS",
    "categorize",
    "EventFilter",
    "connection_ids",
    "is_about",
    "CloseCodeWindow",
    "CLOSE_SUMMARY_WINDOW",
    "CLOSE_SUMMARY_BUCKET",
]


class EventCategory(StrEnum):
    """The kinds of trouble the event log filters on."""

    ABNORMAL = "abnormal closes"
    """A connection closed with a code other than 1000 and 1001 (1006: lost)."""
    SLOW = "slow consumers"
    """A client closed by the server for not reading."""
    ACTIONS = "operator actions"
    """What an operator did, from this console or any other, or the CLI."""
    ERRORS = "errors"
    """A request of the console's that failed, the link lost, an action refused."""


CATEGORY_KEYS: tuple[tuple[str, EventCategory], ...] = (
    ("1", EventCategory.ABNORMAL),
    ("2", EventCategory.SLOW),
    ("3", EventCategory.ACTIONS),
    ("4", EventCategory.ERRORS),
)
"""The event log's filter keys (``0`` shows everything again)."""


def categorize(event: Event) -> frozenset[EventCategory]:
    """The categories of one event of the server's stream (none: routine)."""
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    if event.kind == EventKind.CONNECTION_CLOSED:
        return frozenset({EventCategory.ABNORMAL}) if is_abnormal_close(data.get("code")) \
            else frozenset()
    if event.kind == EventKind.SLOW_CONSUMER:
        return frozenset({EventCategory.SLOW})
    if event.kind == EventKind.OPERATOR_ACTION:
        if data.get("error"):
            return frozenset({EventCategory.ACTIONS, EventCategory.ERRORS})
        return frozenset({EventCategory.ACTIONS})
    return frozenset()


@dataclass(frozen=True)
class EventFilter:
    """The categories the event log shows; none chosen: every line."""

    only: frozenset[EventCategory] = frozenset()

    @property
    def everything(self) -> bool:
        return not self.only

    def toggled(self, category: EventCategory) -> EventFilter:
        """This filter with ``category`` added, or removed if it was there."""
        return EventFilter(self.only ^ {category})

    def matches(self, categories: Iterable[EventCategory]) -> bool:
        """True if a line of these categories is shown."""
        return self.everything or not self.only.isdisjoint(categories)

    def describe(self) -> str:
        """``abnormal closes, errors``: the categories shown, in the keys' order."""
        return ", ".join(str(c) for _, c in CATEGORY_KEYS if c in self.only)


def connection_ids(event: Event) -> frozenset[str]:
    """The connections an event is about: its ``id``, or an action's selected ids."""
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    ids: set[str] = set()
    if isinstance(data.get("id"), str) and event.kind != EventKind.OPERATOR_ACTION:
        ids.add(data["id"])
    args = data.get("args")
    selector = args.get("selector") if isinstance(args, dict) else None
    if isinstance(selector, dict) and isinstance(selector.get("ids"), list):
        ids.update(str(i) for i in selector["ids"][:100])
    return frozenset(ids)


def is_about(event: Event, connection_id: str) -> bool:
    """Whether ``event`` is about the connection ``connection_id``: its own
    event, or an action whose selector names it, in full or by the unique
    prefix the operator typed (``kick --id 79c1``)."""
    ids = connection_ids(event)
    if connection_id in ids:
        return True
    return event.kind == EventKind.OPERATOR_ACTION and any(
        i and connection_id.startswith(i) for i in ids)


CLOSE_SUMMARY_WINDOW = 300.0
"""Seconds of abnormal closes the status bar sums up (the last five minutes)."""
CLOSE_SUMMARY_BUCKET = 10.0
"""Seconds per bucket: the window holds at most 31 buckets whatever the rate."""


class CloseCodeWindow:
    """Abnormal close codes of the last ``window`` seconds, counted in buckets.

    Memory is bounded by the number of buckets (``window / bucket`` + 1) and of
    distinct codes in each, not by the rate of closes: a storm of a million
    1006 closes is one count.
    """

    def __init__(self, window: float = CLOSE_SUMMARY_WINDOW,
                 bucket: float = CLOSE_SUMMARY_BUCKET) -> None:
        self.window = window
        self.bucket = bucket
        self._buckets: dict[int, Counter[int]] = {}
        self._newest = -math.inf

    def add(self, code: Any, at: float, count: int = 1) -> None:
        """Count a close with ``code`` at wall-clock time ``at`` (normal codes are not counted)."""
        if not isinstance(code, int) or isinstance(code, bool) or not is_abnormal_close(code):
            return
        if at < self._newest - self.window:
            return  # older than the window (a backlog from long ago)
        index = math.floor(at / self.bucket)
        self._buckets.setdefault(index, Counter())[code] += count
        if at > self._newest:
            self._newest = at
            self._trim(at)

    def _trim(self, now: float) -> None:
        oldest = math.floor((now - self.window) / self.bucket)
        for index in [i for i in self._buckets if i < oldest]:
            del self._buckets[index]

    def counts(self, now: float) -> Counter[int]:
        """Abnormal closes by code over the window ending at ``now``."""
        self._trim(max(now, self._newest))
        total: Counter[int] = Counter()
        for counter in self._buckets.values():
            total.update(counter)
        return total

    def summary(self, now: float, limit: int = 4) -> str:
        """``1006×3 1008×1 in 5 min``, most frequent first; empty when there were none."""
        counts = self.counts(now)
        if not counts:
            return ""
        items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        text = " ".join(f"{code}×{count}" for code, count in items[:limit])
        if len(items) > limit:
            text += f" +{sum(count for _, count in items[limit:])} more"
        minutes = self.window / 60
        span = f"{minutes:g} min" if minutes >= 1 else f"{self.window:g} s"
        return f"{text} in {span}"
