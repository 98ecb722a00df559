"""The problems view (``p``): the connections sorted by what is wrong with them.

What is wrong, worst first:

1. **buffered**: at least ``BUFFERED_PROBLEM`` bytes wait to be sent to a
   client that does not read (the server closes it at its slow-consumer
   limit, and until then it holds the memory), most first;
2. **slow**: a keepalive round trip of at least ``LATENCY_PROBLEM`` seconds,
   slowest first;
3. **idle**: nothing received for at least ``IDLE_PROBLEM`` seconds, longest
   first;
4. then every other connection, by buffered bytes, latency, idle time.

The thresholds are the ones at which the table colours those cells. The
server sorts by one key at a time, so the view asks for one page of each of
the three orders (``PROBLEM_SORTS``) and ranks their union here: the worst
``n`` connections by this order are always among the first ``n`` of one of
the three (when their values differ, as measured values do), so the
problems of a page are exact at three pages' cost; the rows without a
problem that fill the page are the best of those candidates.

Pure: no asyncio, no textual, no network.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping

__all__ = [
    "PROBLEM_SORTS",
    "BUFFERED_PROBLEM",
    "LATENCY_PROBLEM",
    "IDLE_PROBLEM",
    "problem_of",
    "problem_key",
    "rank_problems",
    "merge_problem_pages",
    "problems_titles",
]

BUFFERED_PROBLEM = 64 * 1024
"""Bytes buffered toward a client from which it counts as a problem."""
LATENCY_PROBLEM = 0.25
"""Seconds of keepalive round trip from which a connection counts as slow."""
IDLE_PROBLEM = 60.0
"""Seconds without a message from the client from which it counts as idle."""
PROBLEM_SORTS = ("-buffered", "-latency", "last_activity")
"""The server's orders whose first pages hold the worst connections."""

_KINDS = ("buffered", "slow", "idle")


def _values(row: Mapping[str, Any], now: float) -> tuple[float, float, float]:
    buffered = float(row.get("buffered") or 0)
    latency = float(row.get("latency") or 0.0)
    last = row.get("last_activity")
    idle = max(0.0, now - float(last)) if isinstance(last, (int, float)) else 0.0
    return buffered, latency, idle


def problem_of(row: Mapping[str, Any], now: float) -> str | None:
    """What is worst with a connection: ``buffered``, ``slow``, ``idle``, or None."""
    buffered, latency, idle = _values(row, now)
    if buffered >= BUFFERED_PROBLEM:
        return "buffered"
    if latency >= LATENCY_PROBLEM:
        return "slow"
    if idle >= IDLE_PROBLEM:
        return "idle"
    return None


def problem_key(row: Mapping[str, Any], now: float) -> tuple[Any, ...]:
    """Sorts the worst connection first (see the module's docstring)."""
    buffered, latency, idle = _values(row, now)
    problem = problem_of(row, now)
    tier = _KINDS.index(problem) if problem is not None else len(_KINDS)
    primary = {0: buffered, 1: latency, 2: idle}.get(tier, 0.0)
    return (tier, -primary, -buffered, -latency, -idle, str(row.get("id", "")))


def rank_problems(rows: Iterable[Mapping[str, Any]], now: float,
                  limit: int) -> list[Mapping[str, Any]]:
    """The ``limit`` worst connections of ``rows`` (each id once), worst first."""
    unique: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        unique.setdefault(str(row.get("id")), row)
    return sorted(unique.values(), key=lambda row: problem_key(row, now))[:limit]


def merge_problem_pages(pages: list[Mapping[str, Any]], now: float,
                        limit: int) -> dict[str, Any]:
    """One ``list`` answer of the problems view from the pages of ``PROBLEM_SORTS``
    (the first page's groups, every page's missing nodes)."""
    rows = [row for page in pages for row in page.get("connections") or ()]
    ranked = rank_problems(rows, now, limit)
    merged: dict[str, Any] = {"connections": ranked, "total": len(ranked),
                              "next_cursor": None, "problems": True}
    first = pages[0] if pages else {}
    for key in ("groups", "groups_truncated", "groups_version"):
        if key in first:
            merged[key] = first[key]
    missing: dict[str, str] = {}
    for page in pages:
        if isinstance(page.get("missing"), dict):
            missing.update(page["missing"])
    if missing:
        merged["missing"] = missing
    return merged


def problems_titles(rows: Iterable[Mapping[str, Any]], now: float,
                    view_description: str) -> tuple[str, str]:
    """The table's title and subtitle in the problems view."""
    kinds = Counter(problem_of(row, now) for row in rows)
    found = [f"{kinds[kind]} {kind}" for kind in _KINDS if kinds[kind]]
    title = "PROBLEMS · most buffered, slowest, longest idle first"
    said = ", ".join(found) if found else "nothing wrong"
    return title, f"{view_description} · {said} · p or esc leaves"
