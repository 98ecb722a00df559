"""What fits where on a narrow terminal, as plain values.

From 80 columns up the main screen must still show what an operator needs.
Three rules, each a function of widths:

* the groups panel starts hidden below :data:`GROUPS_MIN_WIDTH` columns
  (``G`` toggles it, ``g`` brings it back to focus it): :func:`groups_visible`;
* the connection table shows the columns that fit, by priority
  (:data:`COLUMN_PRIORITY`: id, user, path, age, messages and buffered bytes
  before the client address and byte counts), in their usual order:
  :func:`visible_columns`;
* the status bar drops its least important parts first (the listen address,
  then opened/closed, then the uptime), never cutting one mid-word:
  :func:`fit_parts`; the close summary beside the rates keeps its most
  frequent code and counts the rest (:func:`fit_closes`).

Pure: no textual, no asyncio, no network (rich's ``Text`` only).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from rich.text import Text

__all__ = [
    "GROUPS_MIN_WIDTH",
    "COLUMN_PRIORITY",
    "CELL_PADDING",
    "groups_visible",
    "visible_columns",
    "fit_closes",
    "fit_parts",
]

GROUPS_MIN_WIDTH = 130
"""Terminal columns from which the groups panel (24 columns) is shown unless
hidden with ``G``: below, the table would lose age, messages or buffered bytes
to it."""

COLUMN_PRIORITY: tuple[str, ...] = (
    "id", "user", "path", "connected_at", "msgs_in", "msgs_out", "buffered",
    "last_activity", "latency", "remote", "bytes_in", "bytes_out", "node",
)
"""The connection table's columns, the one kept longest first. The node column
comes last on one node (the same name on every row), right after the user in a
cluster (:func:`column_priority`)."""

CELL_PADDING = 2
"""Columns of padding a table column takes beside its widest cell (one each side)."""


def groups_visible(width: int, override: bool | None) -> bool:
    """Whether the groups panel is shown in a terminal ``width`` columns wide:
    the operator's last choice (``G``, or ``g`` to focus it), else whether the
    terminal is wide enough."""
    if override is not None:
        return override
    return width >= GROUPS_MIN_WIDTH


def column_priority(cluster: bool) -> tuple[str, ...]:
    """:data:`COLUMN_PRIORITY`, with the node column second to the user's in a
    cluster (one node's name on every row says nothing)."""
    if not cluster:
        return COLUMN_PRIORITY
    rest = tuple(key for key in COLUMN_PRIORITY if key != "node")
    at = rest.index("user") + 1
    return (*rest[:at], "node", *rest[at:])


def visible_columns(available: int, widths: Mapping[str, int], order: Iterable[str], *,
                    cluster: bool = False) -> tuple[str, ...]:
    """The columns to show in ``available`` terminal columns, in ``order`` (the
    table's own). ``widths``: each column's widest cell or header.

    Taken by priority until the next one does not fit: a lower column never
    takes the place of a higher one, and the first always shows.
    """
    chosen: set[str] = set()
    used = 0
    for key in column_priority(cluster):
        if key not in widths:
            continue
        needed = widths[key] + CELL_PADDING
        if chosen and used + needed > available:
            break
        chosen.add(key)
        used += needed
    return tuple(key for key in order if key in chosen)


def fit_parts(parts: Sequence[tuple[int, Text]], width: int | None) -> Text:
    """The parts of a line that fit in ``width`` cells, joined in their order.

    Each part is (rank, text), 0 the most important; the highest rank goes
    first, then the next, so a narrow terminal loses whole parts, never half a
    word. What is left is cut with an ellipsis only if the rank-0 parts alone
    do not fit. ``width`` None: everything.
    """
    kept = list(parts)
    if width is not None:
        for rank in sorted({rank for rank, _ in parts}, reverse=True):
            if sum(text.cell_len for _, text in kept) <= width or rank == 0:
                break
            kept = [(r, text) for r, text in kept if r != rank]
    line = Text(no_wrap=True, overflow="ellipsis")
    for _, text in kept:
        line.append_text(text)
    if width is not None and line.cell_len > width:
        line.truncate(width, overflow="ellipsis")
    return line


def fit_closes(summary: str, width: int | None) -> Text:
    """The status bar's close summary (``1006×12 1008×5 4001×1 in 5 min``) in
    ``width`` cells: the rarer codes go first, counted in ``+N more``, then the
    window, then the words "abnormal closes"; the most frequent code stays.
    Empty for an empty summary; ``width`` None: all of it."""
    if not summary:
        return Text()
    text, _, window = summary.rpartition(" in ")
    tokens = text.split()
    codes = [token for token in tokens if "×" in token]
    more = sum(int(token[1:]) for token in tokens if token.startswith("+") and token[1:].isdigit())
    counts = [int(code.partition("×")[2] or 0) for code in codes]

    def line(label: str, kept: int, span: bool) -> Text:
        rest = more + sum(counts[kept:])
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(label, style="dim")
        out.append(" ".join(codes[:kept]), style="bold red")
        if rest:
            out.append(f" +{rest} more", style="red")
        if span:
            out.append(f" in {window}", style="dim")
        return out

    candidates = [line("abnormal closes ", kept, True) for kept in range(len(codes), 0, -1)]
    candidates += [line("abnormal closes ", 1, False), line("closes ", 1, False),
                   line("", 1, False)]
    for candidate in candidates:
        if width is None or candidate.cell_len <= width:
            return candidate
    shortest = candidates[-1]
    shortest.truncate(max(width or 0, 0), overflow="ellipsis")
    return shortest
