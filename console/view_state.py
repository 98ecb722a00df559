"""What the console's views show and what their keys can do, as plain values.

The main screen's view (filter, sort, the pages walked, the last page) is a
frozen ``ViewState``: each operator action returns a new one. Its titles, the
empty table's line, the targets of an action, the banner, the link's health,
whether a key works now and the shutdown dialog's progress are functions of
that view and of the link's state. The screens apply what these say to their
widgets and do nothing else with it.

Pure: no textual, no asyncio, no network; tested with plain values
(tests/console/test_view_state.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, NamedTuple

from wsconsole.server.patterns import parse_pattern
from wsconsole.server.protocol import EventKind, HubState, ShutdownMode

from .formatting import ViewFilter, describe_connection, human_count
from .link import LinkState, LinkStatus
from .output import counted, no_match

__all__ = [
    "COLUMNS",
    "PAGE_SIZE",
    "MUTATING_ACTIONS",
    "GroupKey",
    "Target",
    "ViewState",
    "PageRequest",
    "SORT_LETTERS",
    "sort_letters_help",
    "sort_by_letter",
    "table_titles",
    "sort_label",
    "next_sort",
    "reversed_sort",
    "sort_for_header",
    "header_arrow",
    "key_state",
    "refusal",
    "link_banner",
    "link_health",
    "link_note",
    "missing_banner",
    "main_banner",
    "nodes_summary",
    "node_marker",
    "cluster_mode",
    "KnownNodes",
    "NODE_EVENT",
    "shutdown_targets",
    "node_stats",
    "server_summary",
    "Drain",
    "drain",
    "deadline_text",
    "drain_escalation_text",
]

COLUMNS: tuple[tuple[str, str, bool], ...] = (
    # (sort key on the server, header, right-aligned)
    ("id", "id", False),
    ("node", "node", False),
    ("user", "user", False),
    ("path", "path", False),
    ("remote", "client", False),
    ("connected_at", "age", True),
    ("last_activity", "idle", True),
    ("msgs_in", "msgs in", True),
    ("bytes_in", "bytes in", True),
    ("msgs_out", "msgs out", True),
    ("bytes_out", "bytes out", True),
    ("buffered", "buffered", True),
    ("latency", "latency", True),
)
"""The connection table's columns; each key but ``node`` is also a sort key of the
control plane (:data:`UNSORTABLE`)."""

UNSORTABLE = frozenset({"node"})
"""Columns the control plane cannot sort by: a click on their header does nothing."""

PAGE_SIZE = 100
"""Connections fetched per page: the table never holds more than this."""

MUTATING_ACTIONS = frozenset({"broadcast", "send", "disconnect", "disconnect_group", "shutdown",
                              "tap"})
"""Actions a read-only token may not run: disabled in the footer and palette (a
tap changes nothing, but shows the users' data)."""

_NEEDS_ROW = frozenset({"send", "disconnect", "detail"})
_HEADERS = {key: header for key, header, _ in COLUMNS}
_SORT_CYCLE = [key for key, _, _ in COLUMNS if key not in UNSORTABLE]
# Age and idle come from timestamps, so they read the other way round: the
# smallest connected_at is the oldest connection, the smallest last_activity
# the one idle longest.
_FROM_TIMESTAMPS = frozenset({"connected_at", "last_activity"})
_TEXT_COLUMNS = frozenset({"id", "user", "path", "remote"})
# How each column's order reads, (ascending, descending) on the server's key.
_SORT_DIRECTIONS: dict[str, tuple[str, str]] = {
    "connected_at": ("oldest first", "newest first"),
    "last_activity": ("longest first", "shortest first"),
    "msgs_in": ("fewest first", "most first"),
    "msgs_out": ("fewest first", "most first"),
    "bytes_in": ("least first", "most first"),
    "bytes_out": ("least first", "most first"),
    "buffered": ("least first", "most first"),
    "latency": ("lowest first", "highest first"),
}

SORT_LETTERS: dict[str, str] = {
    "I": "id", "U": "user", "P": "path", "C": "remote", "A": "connected_at",
    "Z": "last_activity", "M": "msgs_in", "O": "msgs_out", "B": "bytes_in",
    "W": "bytes_out", "F": "buffered", "L": "latency",
}
"""The main screen's direct sort keys (shift and a letter, as k9s has them):
letter -> column. Z is idle (asleep), W bytes out (written), F buffered
(buFfered); the other letters start their column's name."""


GroupKey = tuple[str, "str | None"]
"""(kind, value): ("everyone", None), ("user", "ann"), ("path", "/chat"), ("topic", "lobby");
("filter", None) for a filter that is no single group."""

Target = tuple[str, "dict[str, Any] | None"]
"""(label, selector) of a compose dialog's recipient choice; None: cannot be chosen."""


# Sorting


def sort_label(sort: str) -> str:
    """How the table's title names a sort: ``age (oldest first)``."""
    bare = sort.lstrip("-")
    ascending, descending = _SORT_DIRECTIONS.get(bare, ("A-Z", "Z-A"))
    return f"{_HEADERS[bare]} ({descending if sort.startswith('-') else ascending})"


def next_sort(sort: str) -> str:
    """The sort by the next column (``s``), the way it reads best, as a header
    click or its letter starts it: numbers largest first."""
    index = _SORT_CYCLE.index(sort.lstrip("-"))
    return _first_sort(_SORT_CYCLE[(index + 1) % len(_SORT_CYCLE)])


def _first_sort(key: str) -> str:
    """How a column is first sorted: names A-Z, age and idle longest first (the
    smallest timestamps), counters largest first."""
    return key if key in _FROM_TIMESTAMPS or key in _TEXT_COLUMNS else f"-{key}"


def sort_by_letter(sort: str, letter: str) -> str:
    """The sort a direct sort key asks for, from the sort now: its column the
    way it reads best (numbers largest first, age and idle longest first,
    names A-Z), or reversed when that column is the sort already."""
    result = sort_for_header(sort, SORT_LETTERS[letter])
    assert result is not None  # every letter names a sortable column
    return result


def sort_letters_help() -> str:
    """``I id, U user, ..., L latency``: the direct sort keys in words."""
    return ", ".join(f"{letter} {_HEADERS[key]}" for letter, key in SORT_LETTERS.items())


def reversed_sort(sort: str) -> str:
    """The same column the other way round (``r``)."""
    return sort[1:] if sort.startswith("-") else f"-{sort}"


def sort_for_header(sort: str, key: str) -> str | None:
    """The sort a click on column ``key``'s header asks for; None for a column
    the server cannot sort by.

    The sorted column flips; another column starts the way it reads best:
    names A-Z, age and idle oldest first, counters largest first.
    """
    if key in UNSORTABLE:
        return None
    if key == sort.lstrip("-"):
        return reversed_sort(sort)
    return _first_sort(key)


def header_arrow(sort: str, key: str) -> str:
    """``▲`` or ``▼`` beside the sorted column's header (what the operator sees
    grow downwards), or nothing for the other columns."""
    if key != sort.lstrip("-"):
        return ""
    descending = sort.startswith("-")
    up = descending if key in _FROM_TIMESTAMPS else not descending
    return "▲" if up else "▼"


# The main screen's view


class PageRequest(NamedTuple):
    """Which page of which view a ``list`` request asked for."""

    filter: ViewFilter
    sort: str
    cursor: str | None


@dataclass(frozen=True)
class ViewState:
    """The main screen's view: what the table shows, in which order, which page."""

    filter: ViewFilter = field(default_factory=ViewFilter)
    """What the table shows (the server filters)."""
    sort: str = "connected_at"
    """The server's sort key, ``-`` prefix for descending."""
    cursors: tuple[str | None, ...] = (None,)
    """Cursors of the pages walked so far; the last is the current page's."""
    page: Mapping[str, Any] | None = None
    """The ``list`` result for exactly this request; None until it arrives."""
    page_size: int = PAGE_SIZE

    # Where the view goes

    def filtered(self, view_filter: ViewFilter) -> ViewState:
        """Show ``view_filter`` instead, from its first page."""
        return replace(self, filter=view_filter, cursors=(None,), page=None)

    def sorted_by(self, sort: str) -> ViewState:
        """Sort by ``sort`` instead, from the first page."""
        return replace(self, sort=sort, cursors=(None,), page=None)

    def next_page(self) -> ViewState | None:
        """The next page; None on the last page."""
        cursor = (self.page or {}).get("next_cursor")
        if not cursor:
            return None
        return replace(self, cursors=(*self.cursors, cursor), page=None)

    def previous_page(self) -> ViewState | None:
        """The page before; None on the first page."""
        if len(self.cursors) == 1:
            return None
        return replace(self, cursors=self.cursors[:-1], page=None)

    def restarted(self) -> ViewState:
        """The first page again (after a reconnection a cursor may mean nothing)."""
        return replace(self, cursors=(None,), page=None)

    def with_page(self, page: Mapping[str, Any]) -> ViewState:
        """The page that answered this view's request."""
        return replace(self, page=page)

    # What to ask for

    @property
    def request(self) -> PageRequest:
        """The request for the page shown; a page answering another one is stale."""
        return PageRequest(self.filter, self.sort, self.cursors[-1])

    def list_args(self) -> dict[str, Any]:
        """Keyword arguments of ``ControlClient.list_connections`` for this page."""
        return {**self.filter.list_args(), "sort": self.sort, "limit": self.page_size,
                "cursor": self.cursors[-1], "groups": True}

    # What it shows

    @property
    def page_number(self) -> int:
        """1 for the first page."""
        return len(self.cursors)

    @property
    def has_pages(self) -> bool:
        """True when there is a page before or after this one."""
        return self.page_number > 1 or bool((self.page or {}).get("next_cursor"))

    @property
    def total(self) -> int | None:
        """Connections matching the filter, once a page said so."""
        return None if self.page is None else self.page.get("total")

    def title(self) -> str:
        """The table's title: ``Connections · sorted by age (oldest first)``."""
        return f"Connections · sorted by {sort_label(self.sort)}"

    def subtitle(self, shown: int) -> str:
        """The table's subtitle: the filter, rows shown of how many, the page."""
        text = self.filter.describe()
        total = self.total
        if total is not None:
            before = (self.page_number - 1) * self.page_size
            if not total and self.page_number == 1:
                text += " · 0 connections"
            else:
                text += (f" · {before + (1 if shown else 0)}-{before + shown} of "
                         f"{counted(human_count(total), 'connection')}")
            if self.has_pages:
                text += f" · page {self.page_number} ([ ])"
        return text

    def empty_text(self) -> str:
        """What the table says while a page has no rows."""
        if self.filter.empty:
            return "no connections yet"
        return no_match(self.filter.describe())

    def active_group(self) -> GroupKey:
        """The group of the groups panel the view is, or ``("filter", None)``."""
        view_filter = self.filter
        if view_filter.empty:
            return ("everyone", None)
        named = [(kind, getattr(view_filter, kind)) for kind in ("node", "user", "path", "topic")
                 if getattr(view_filter, kind)]
        if len(named) == 1 and not view_filter.id_prefix:
            kind, value = named[0]
            if kind == "node":
                return kind, value
            # One group by its exact name; a pattern is no one group.
            name = parse_pattern(value, kind).literal
            return (kind, name) if name is not None else ("filter", None)
        return ("filter", None)

    def everyone(self, stats: Mapping[str, Any]) -> int | None:
        """The count beside Everyone: the page's total, unless the view is filtered."""
        return self.total if self.filter.empty else stats.get("connections")

    # Whom an action reaches

    def targets(self, selected: Mapping[str, Any] | None) -> list[Target]:
        """The compose dialog's recipients: the selected row, the view, everyone."""
        targets: list[Target] = []
        if selected is not None:
            targets.append((f"the selected {describe_connection(dict(selected))}",
                            {"ids": [selected["id"]]}))
        if not self.filter.empty:
            selector = self.filter.selector()
            label = f"the current view: {self.filter.describe()}"
            if selector is None:
                label += " (an id filter cannot be a target)"
            targets.append((label, selector))
        targets.append(("everyone", {"everyone": True}))
        return targets

    def broadcast_target(self, selected: Mapping[str, Any] | None) -> int:
        """Which of :meth:`targets` a broadcast (``b``) starts on: the view, not the row."""
        return 1 if selected is not None and len(self.targets(selected)) > 1 else 0

    def group_disconnect(self, rows: int) -> tuple[str, dict[str, Any], int]:
        """What ``D`` closes: (description, selector, count); ValueError if it cannot."""
        selector = self.filter.selector()
        if selector is None:
            raise ValueError("An id filter cannot be disconnected as a group; "
                             "select rows one by one.")
        total = self.total
        what = ("EVERY connection" if self.filter.empty
                else f"every connection of {self.filter.describe()}")
        return what, selector, rows if total is None else total


def table_titles(shown: ViewState | None, wanted: ViewState, rows: int) -> tuple[str, str]:
    """The table's (title, subtitle) while it shows ``shown``'s page (None: no
    page yet) and ``wanted`` is the view asked for.

    The titles describe the rows on the screen, never a view whose rows have
    not arrived: until they do, the old titles stay, and the subtitle ends
    with ``…`` to say that another view is on its way.
    """
    view = shown if shown is not None else wanted
    title, subtitle = view.title(), view.subtitle(rows)
    if shown is None or shown.request != wanted.request:
        subtitle += " · …"
    return title, subtitle


def key_state(action: str, *, view: ViewState, link: LinkState, selected: bool, rows: int,
              filter_open: bool) -> bool | None:
    """Whether the main screen's key for ``action`` works now.

    True: it works. None: shown dimmed, it does nothing now (no row, a
    read-only token, the link down). False: hidden, it would never do
    anything here (Textual's ``check_action`` convention).
    """
    if action == "clear_filter":
        return filter_open or not view.filter.empty
    if action in ("next_page", "previous_page"):
        return view.has_pages
    if action == "reconnect":
        return not link.up
    if action in MUTATING_ACTIONS and (link.read_only or not link.up):
        return None
    if action in _NEEDS_ROW and not selected:
        return None
    if action == "disconnect_group" and not rows:
        return None
    return True


_REFUSED_VERBS = {"broadcast": "sending", "send": "sending", "disconnect": "disconnecting",
                  "disconnect_group": "disconnecting", "shutdown": "shutting down",
                  "tap": "tapping"}


def refusal(action: str, link: LinkState) -> str | None:
    """What a key for ``action`` says when it cannot run because of the link (a
    read-only token, the link down); None when the link is no reason."""
    if action not in MUTATING_ACTIONS:
        return None
    verb = _REFUSED_VERBS.get(action, action)
    if link.up and link.read_only:
        return f"read-only token: {verb} needs the operator role"
    if not link.up:
        return f"not connected to the control plane: nothing was sent ({verb} waits " \
               "for the link; ctrl+r reconnects)"
    return None


# The link, as the screens say it


def link_banner(link: LinkState) -> tuple[str, str]:
    """The main screen's banner: (text, kind), kind ``error``, ``warning`` or empty."""
    if link.status == LinkStatus.REFUSED:
        return (f"Not connected, the token was refused: {link.reason}. Fix --token, "
                "--token-file or $WSCONSOLE_TOKEN, then press ctrl+r (the token file "
                "is read again).", "error")
    if link.status == LinkStatus.NOT_CONTROL_PLANE:
        return (f"Not connected: {link.reason}. Not retried on its own (each attempt "
                "would send the token to it): fix --url, then press ctrl+r.", "error")
    if link.status == LinkStatus.ENDED:
        return ("The server has stopped: nothing to reconnect to. The table shows the "
                "last data received; ctrl+r tries to connect again.", "error")
    if link.status == LinkStatus.LOST and link.hello:
        return (f"Control link lost ({link.reason}); reconnecting. The table shows the "
                "last data received; no action is sent meanwhile.", "error")
    if link.status == LinkStatus.LOST:
        return f"Cannot reach the control plane: {link.reason}. Retrying.", "error"
    if link.up and link.read_only:
        return ("Read-only token: broadcast, message, disconnect, shutdown and tap are "
                "disabled.", "warning")
    return "", ""


def link_health(link: LinkState, retry_left: float | None = None) -> str:
    """The status bar's link health: ``connected as operator``, ``lost, retrying in 3s``.

    ``retry_left``: seconds until the next attempt, while one is due. A
    read-only token is said apart by the status bar, in its own style.
    """
    if link.status == LinkStatus.CONNECTED:
        return "connected" if link.read_only else f"connected as {link.role}"
    if link.status == LinkStatus.REFUSED:
        return "token refused (ctrl+r retries)"
    if link.status == LinkStatus.NOT_CONTROL_PLANE:
        return "not a control plane (ctrl+r retries)"
    if link.status == LinkStatus.ENDED:
        return "server stopped (ctrl+r retries)"
    if link.status == LinkStatus.LOST:
        if retry_left is None:
            return "lost"
        left = math.ceil(retry_left)
        return f"lost, retrying in {left}s" if left > 0 else "lost, retrying now"
    return "connecting..."


def link_note(before: LinkState, after: LinkState, url: str) -> str | None:
    """The event log's line for a change of the link, or None for none.

    A failed attempt is said once, not again for each retry that fails the
    same way.
    """
    if after.up and not before.up:
        verb = "connected to" if after.connections == 1 else "reconnected to"
        return f"{verb} {url or 'the control plane'} as {after.role}"
    if after.status == LinkStatus.ENDED and before.status != LinkStatus.ENDED:
        return after.reason
    if after.status in (LinkStatus.LOST, LinkStatus.REFUSED, LinkStatus.NOT_CONTROL_PLANE):
        repeated = (before.status == after.status and before.reason == after.reason)
        if not repeated:
            return f"control link lost: {after.reason}"
    return None


# A cluster


NODE_EVENT = EventKind.NODE
"""The kind of the event a node of the cluster sends when it joins, turns
suspect, goes, comes back or changes state."""


class KnownNodes(NamedTuple):
    """The last answer of ``nodes``: what each node said of itself, and who did not answer."""

    nodes: tuple[Mapping[str, Any], ...] = ()
    """The ``nodes`` entries (node, state, health, connections, rates, ...), by name."""
    missing: Mapping[str, str] = {}
    """Nodes that did not answer, and why."""


def cluster_mode(hello: Mapping[str, Any], nodes: Any) -> bool:
    """True when the server is a node of a cluster, or says it knows several nodes:
    the console then says which nodes answer."""
    return bool(hello.get("cluster")) or (isinstance(nodes, (list, tuple)) and len(nodes) > 1)


def node_marker(entry: Mapping[str, Any] | None, missing: Mapping[str, str]) -> tuple[str, str]:
    """How the groups panel marks one node: (text, style).

    A node named missing in the last answer is ``✗ missing`` whatever its
    heartbeat says; then the heartbeat's health (suspect, gone), then a state
    other than serving (draining, stopped); a live serving node: nothing.
    """
    name = (entry or {}).get("node")
    if entry is None or name in missing:
        return "✗ missing", "bold red"
    health = entry.get("health")
    if health == "gone":
        return "✗ gone", "bold red"
    if health == "suspect":
        return "? suspect", "yellow"
    state = entry.get("state")
    if state and state != HubState.SERVING:
        return str(state), "yellow" if state == HubState.DRAINING else "red"
    return "", ""


def nodes_summary(nodes: Any, missing: Mapping[str, str]) -> list[tuple[int, str]]:
    """The status bar's nodes: ``[(3, "live"), (1, "suspect"), (1, "missing")]``,
    kinds with none left out. Missing: named in the last answer, or gone."""
    entries = [n for n in nodes if isinstance(n, Mapping)] if isinstance(nodes, (list, tuple)) else []
    names = {n.get("node") for n in entries}
    counts = {"live": 0, "suspect": 0, "missing": 0}
    for entry in entries:
        if entry.get("node") in missing or entry.get("health") == "gone":
            counts["missing"] += 1
        elif entry.get("health") == "suspect":
            counts["suspect"] += 1
        else:
            counts["live"] += 1
    counts["missing"] += sum(1 for name in missing if name not in names)
    return [(count, kind) for kind, count in counts.items() if count or kind == "live"]


def missing_banner(missing: Mapping[str, str]) -> str:
    """The banner naming the nodes that did not answer the last request, or ""."""
    if not missing:
        return ""
    named = ", ".join(f"{name} ({reason})" for name, reason in sorted(missing.items()))
    return (f"No answer from {named}: the table and counts show the other nodes only "
            "(asked again with the next page).")


def main_banner(link: LinkState, missing: Mapping[str, str]) -> tuple[str, str]:
    """The main screen's banner: the link's trouble first, then the nodes that
    did not answer, then a read-only token. (text, kind) as :func:`link_banner`."""
    text, kind = link_banner(link)
    if kind == "error" or not link.up or not missing:
        return text, kind
    return missing_banner(missing), "warning"


def shutdown_targets(hello: Mapping[str, Any], nodes: Any) -> list[tuple[str, str | None]]:
    """The shutdown dialog's choices: (label, node), node None for every node.

    One node: only "this server". A cluster: every node (the one attached to
    last), then each node alone, this one named as such.
    """
    this = hello.get("node")
    names = sorted({n.get("node") for n in nodes if isinstance(n, Mapping) and n.get("node")}
                   if isinstance(nodes, (list, tuple)) else set())
    if not cluster_mode(hello, nodes):
        return [(f"this server ({this})" if this else "this server", None)]
    targets: list[tuple[str, str | None]] = [
        (f"every node of the cluster ({this} last)" if this else "every node", None)]
    for name in names:
        targets.append((f"{name} only{' (this node)' if name == this else ''}", name))
    return targets


def node_stats(stats: Mapping[str, Any], node: str | None) -> Mapping[str, Any]:
    """What a stats sample says of ``node`` alone (its entry of ``per_node``),
    or of the whole server for None. A node the sample no longer lists has
    stopped: its drain is over. A sample without ``per_node`` (a state change,
    an older server) is taken as it is."""
    per_node = stats.get("per_node")
    if node is None or not isinstance(per_node, Mapping):
        return stats
    return per_node.get(node) or {"state": HubState.STOPPED, "connections": 0}


# The shutdown dialog


def server_summary(stats: Mapping[str, Any]) -> str:
    """What the shutdown dialog says before the operator chooses."""
    open_now = counted(int(stats.get("connections", 0) or 0), "open connection")
    per_node = stats.get("per_node")
    if isinstance(per_node, Mapping) and len(per_node) > 1:
        # A cluster's stats: its totals.
        return (f"The cluster has {open_now} on {len(per_node)} "
                f"nodes; this node ({stats.get('node', '?')}) is {stats.get('state', '?')}.")
    return f"The server is {stats.get('state', '?')} with {open_now}."


class Drain(NamedTuple):
    """What the shutdown dialog shows while the server stops."""

    stopped: bool
    """True once every connection is closed and the server has stopped."""
    text: str
    total: int
    """The progress bar's total: connections open when the shutdown started, or more."""
    closed: int
    """The progress bar's progress."""
    can_escalate: bool
    """True while "close the rest now" would do something: a keep-alive drain with
    connections still open."""


def drain(stats: Mapping[str, Any], *, started_with: int | None, mode: str,
          stopped: bool, now: float | None = None) -> Drain:
    """The drain as ``stats`` says it, for a shutdown that started with
    ``started_with`` connections open in ``mode``; ``stopped`` once it was seen stopped.

    A keep-alive drain with a deadline says when it falls and counts down to
    it (``now``: the wall clock); one cut short (``shutdown_escalation``: the
    deadline fired, or a graceful shutdown from anywhere) says so, with how
    many closed on their own and how many the server closed.
    """
    state = stats.get("state")
    open_now = int(stats.get("connections", 0) or 0)
    stopped = stopped or state == HubState.STOPPED or state not in (
        HubState.DRAINING, HubState.SERVING)
    total = max(started_with or 0, open_now)
    shown_mode = str(stats.get("shutdown_mode") or mode)
    escalation = stats.get("shutdown_escalation")
    done = stopped or (open_now == 0 and state != HubState.SERVING)
    if isinstance(escalation, Mapping):
        text = drain_escalation_text(escalation, done=done)
        if not done:
            text += f"; {open_now} left."
        # Cut short: nothing is left to escalate, whatever the mode says.
        shown_mode = ShutdownMode.GRACEFUL
    elif done and shown_mode == ShutdownMode.KEEP_ALIVE:
        text = ("Keep-alive drain: every connection closed by its client; the server "
                "has stopped.")
    elif done:
        text = (f"{shown_mode.replace('_', '-').capitalize()} shutdown: every connection "
                "closed; the server has stopped.")
    elif shown_mode == ShutdownMode.KEEP_ALIVE:
        text = (f"Keep-alive drain: not accepting new connections; {open_now} of {total} "
                "still open and served until they close.")
        deadline = stats.get("shutdown_deadline")
        if isinstance(deadline, (int, float)) and now is not None:
            text += f" {deadline_text(deadline, now)}"
    else:
        text = f"Graceful shutdown: closing; {open_now} of {counted(total, 'connection')} left."
    if done:
        text = text if text.endswith("has stopped.") else text.rstrip(".") + \
            "; the server has stopped."
    return Drain(
        stopped=stopped,
        text=text,
        total=max(total, 1),
        closed=(total - open_now) if total else 1,
        can_escalate=shown_mode == ShutdownMode.KEEP_ALIVE and open_now > 0 and not stopped,
    )


def deadline_text(deadline: float, now: float) -> str:
    """``Deadline 12:05:00, in 4m 30s: the rest are closed then.`` (local time)."""
    at = time.strftime("%H:%M:%S", time.localtime(deadline))
    left = math.ceil(deadline - now)
    if left <= 0:
        return f"Deadline {at}: reached, closing the rest."
    minutes, seconds = divmod(left, 60)
    when = f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"
    return f"Deadline {at}, in {when}: the rest are closed then."


def drain_escalation_text(data: Mapping[str, Any], *, done: bool = False) -> str:
    """What a ``drain_escalated`` event says: why the keep-alive drain was cut
    short, how many connections closed on their own, how many the server closes."""
    cause = data.get("cause")
    why = ("keep-alive deadline reached" if cause == "deadline"
           else "keep-alive drain cut short by a graceful shutdown")
    started = int(data.get("started_with") or 0)
    served = int(data.get("served") or 0)
    closing = int(data.get("closing") or 0)
    code = data.get("code")
    verb = "the server closed" if done else "closing"
    return (f"{why[0].upper()}{why[1:]}: {served} of {counted(started, 'connection')} "
            f"closed on their own, {verb} the other {closing}"
            + (f" (code {code})" if code is not None else ""))
