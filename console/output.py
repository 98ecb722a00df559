"""Plain-text and JSON rendering for the operator commands.

Pure functions from values to strings: no I/O, no asyncio, nothing of the
server but its shared enums (``wsconsole.server.protocol``), so that the
command line's output can be tested and reused (e.g. by docs).
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable, Sequence

from wsconsole.server.protocol import EventKind

__all__ = [
    "printable",
    "counted",
    "no_match",
    "describe_filters",
    "to_json",
    "table",
    "key_values",
    "age",
    "size",
    "latency",
    "timestamp",
    "connections_table",
    "groups_table",
    "connection_detail",
    "stats_lines",
    "nodes_table",
    "per_node_table",
    "missing_line",
    "event_line",
]


# User names, paths, topics and header values are chosen by the server's
# clients. Printed raw, an escape sequence in one could retitle, clear or
# rewrite the operator's terminal, a newline could forge a table row, and a
# bidi override could reverse what is read. Tables show them escaped.
_BIDI = (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_UNSAFE_TEXT = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    **{c: f"\\u{c:04x}" for c in _BIDI},
}
# json.dumps escapes C0 already; C1, DEL and bidi can only occur inside JSON
# strings, where a \u escape keeps the document's meaning.
_UNSAFE_JSON = {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0), *_BIDI)}


_UNSAFE_LINES = {c: v for c, v in _UNSAFE_TEXT.items() if c not in (0x09, 0x0A)}


def printable(value: Any, *, keep_lines: bool = False) -> str:
    """``str(value)`` with control and bidi characters escaped (``\\x1b``);
    ``keep_lines`` keeps newlines and tabs (for multi-line text in the console)."""
    return str(value).translate(_UNSAFE_LINES if keep_lines else _UNSAFE_TEXT)


def counted(n: int | str, noun: str, plural: str | None = None) -> str:
    """``1 connection``, ``17 connections``, ``0 users``: a count and what it
    counts, singular for one (``n`` may be already formatted, ``"12.3k"``)."""
    one = n == 1 or n == "1"
    return f"{n} {noun if one else plural or noun + 's'}"


def describe_filters(filters: dict[str, Any]) -> str:
    """``user=bulk-* path=/api/*``: what a listing or selector was narrowed to
    (``everyone`` for nothing); values escaped for the terminal."""
    parts = [f"{key}={filters[key]}" for key in ("node", "user", "path", "topic")
             if filters.get(key)]
    if filters.get("id_prefix"):
        parts.append(f"id={filters['id_prefix']}")
    parts += [f"id={value}" for value in filters.get("ids") or ()]
    return printable(" ".join(parts)) or "everyone"


def no_match(description: str) -> str:
    """What an empty answer says: ``no connection matches user=bulk-*``."""
    if description == "everyone":
        return "no connections"
    return f"no connection matches {description}"


def to_json(value: Any, *, compact: bool = False) -> str:
    """JSON for scripts: indented by default, one line with ``compact``.

    Terminal control characters are ``\\u`` escapes, so the values parse back exact.
    """
    if compact:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(value, indent=2, ensure_ascii=False)
    return text.translate(_UNSAFE_JSON)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns aligned on the widest cell; the last column is not padded."""
    cells = [[printable(h) for h in headers]] + [
        ["" if c is None else printable(c) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths)]
        lines.append("  ".join(padded + [row[-1]]).rstrip())
    return "\n".join(lines)


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """``key  value`` lines, values aligned."""
    pairs = [(k, "-" if v is None or v == "" else printable(v)) for k, v in pairs]
    if not pairs:
        return ""
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


def age(seconds: float) -> str:
    """A short duration: ``42s``, ``3m12s``, ``2h05m``, ``3d04h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def size(n: float | int | None) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ``12 MiB``; ``-`` for None.

    The one byte format of the console: the TUI shows it as ``human_bytes``.
    Three significant figures at most, so that a table column stays narrow.
    """
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if abs(value) < 10 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def latency(seconds: float | None) -> str:
    """A ping round trip: ``-`` before the first ping (the server reports 0),
    ``0.4 ms``, ``35 ms``, ``1.2 s``, as the console shows it."""
    if not seconds:
        return "-"
    ms = float(seconds) * 1000
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{float(seconds):.1f} s"


def timestamp(epoch: float | None) -> str:
    """Local time, to the second: ``2026-01-01 12:00:00``."""
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def connections_table(connections: Sequence[dict[str, Any]], now: float, *,
                      wide: bool = False) -> str:
    """The ``ls`` table: ID NODE USER PATH REMOTE AGE IN OUT TOPICS (IN/OUT are
    messages); ``wide`` adds IDLE (since the last message in), the bytes in and
    out, BUFFERED (bytes waiting to be written) and LATENCY."""
    headers = ["ID", "NODE", "USER", "PATH", "REMOTE", "AGE"]
    if wide:
        headers += ["IDLE", "IN", "OUT", "BYTES IN", "BYTES OUT", "BUFFERED", "LATENCY"]
    else:
        headers += ["IN", "OUT"]
    rows = []
    for c in connections:
        connected_at = float(c.get("connected_at") or now)
        row = [c.get("id"), c.get("node") or "-", c.get("user"), c.get("path"),
               c.get("remote"), age(now - connected_at)]
        if wide:
            idle = now - float(c.get("last_activity") or connected_at)
            row += [age(idle), c.get("msgs_in", 0), c.get("msgs_out", 0),
                    size(c.get("bytes_in", 0)), size(c.get("bytes_out", 0)),
                    size(c.get("buffered", 0)), latency(c.get("latency"))]
        else:
            row += [c.get("msgs_in", 0), c.get("msgs_out", 0)]
        row.append(",".join(c.get("topics") or []) or "-")
        rows.append(row)
    return table(headers + ["TOPICS"], rows)


def groups_table(groups: dict[str, Any]) -> str:
    """Group counts as KIND NAME CONNECTIONS, largest first within each kind.

    Accepts each kind as ``{name: count}`` or as ``[[name, count], ...]``.
    """
    rows = []
    for kind in ("node", "user", "path", "topic"):
        counts = groups.get(kind) or groups.get(kind + "s") or groups.get("by_" + kind) or {}
        items = counts.items() if isinstance(counts, dict) else counts
        for name, count in sorted(items, key=lambda item: (-item[1], item[0])):
            rows.append([kind, name, count])
    return table(["KIND", "NAME", "CONNECTIONS"], rows)


def connection_detail(c: dict[str, Any], now: float) -> str:
    """The ``show`` view: key/value lines, then the request and response headers."""
    connected_at = c.get("connected_at")
    lines = [
        key_values(
            [
                ("id", c.get("id")),
                ("node", c.get("node")),
                ("user", c.get("user")),
                ("path", c.get("path")),
                ("query", c.get("query")),
                ("remote", c.get("remote")),
                ("connected", f"{timestamp(connected_at)} ({age(now - float(connected_at or now))} ago)"),
                ("last activity", timestamp(c.get("last_activity"))),
                ("messages in", f"{c.get('msgs_in', 0)} ({size(c.get('bytes_in', 0))})"),
                ("messages out", f"{c.get('msgs_out', 0)} ({size(c.get('bytes_out', 0))})"),
                ("buffered", size(c.get("buffered", 0))),
                ("kernel queued", size(c.get("kernel_queued"))),
                ("latency", latency(c.get("latency"))),
                ("topics", ", ".join(c.get("topics") or [])),
                ("subprotocol", c.get("subprotocol")),
                ("extensions", ", ".join(c.get("extensions") or [])),
            ]
        )
    ]
    for title, key in (("request headers", "request_headers"),
                       ("response headers", "response_headers")):
        headers = c.get(key) or []
        lines.append("")
        lines.append(title)
        lines.extend(f"  {printable(name)}: {printable(value)}" for name, value in headers)
    return "\n".join(lines)


def stats_lines(stats: dict[str, Any]) -> str:
    """The ``stats`` view: one key/value line each, totals and rates flattened."""
    totals = stats.get("totals") or {}
    rates = stats.get("rates") or {}
    pairs: list[tuple[str, Any]] = [
        ("node", stats.get("node")),
        ("state", stats.get("state")),
        ("listen", ", ".join(stats.get("listen") or [])),
        ("uptime", age(stats.get("uptime") or 0)),
        ("connections", stats.get("connections")),
        ("opened total", stats.get("opened_total")),
        ("closed total", stats.get("closed_total")),
    ]
    for direction in ("in", "out"):
        msgs, nbytes = totals.get(f"msgs_{direction}"), totals.get(f"bytes_{direction}")
        if msgs is not None:
            pairs.append((f"messages {direction}", f"{msgs} ({size(nbytes or 0)})"))
        mrate, brate = rates.get(f"msgs_{direction}"), rates.get(f"bytes_{direction}")
        if mrate is not None:
            pairs.append((f"rate {direction}", f"{mrate:.1f} msg/s ({size(brate or 0)}/s)"))
    if stats.get("shutdown_mode"):
        pairs.append(("shutdown mode", stats["shutdown_mode"]))
    if stats.get("shutdown_deadline"):
        pairs.append(("shutdown deadline", timestamp(stats["shutdown_deadline"])))
    known = {"node", "state", "listen", "uptime", "connections", "opened_total",
             "closed_total", "totals", "rates", "shutdown_mode", "shutdown_deadline",
             "started_at"}
    # Fields a newer server adds still show, after the ones we know.
    for key, value in stats.items():
        if key not in known and not isinstance(value, (dict, list)):
            pairs.append((key.replace("_", " "), value))
    text = key_values(pairs)
    per_node = stats.get("per_node")
    if isinstance(per_node, dict) and len(per_node) > 1:
        # A cluster: the lines above are its totals; each node's own below.
        rows = []
        for name in sorted(per_node):
            node = per_node[name] if isinstance(per_node[name], dict) else {}
            node_rates = node.get("rates") or {}
            rows.append([name, node.get("state", "-"), node.get("connections", "-"),
                         _rate(node_rates.get("msgs_in")), _rate(node_rates.get("msgs_out")),
                         age(node.get("uptime") or 0)])
        text += "\n\n" + table(["NODE", "STATE", "CONNECTIONS", "IN/S", "OUT/S", "UPTIME"],
                                rows)
    return text


def _rate(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"


def nodes_table(nodes: Sequence[dict[str, Any]], now: float) -> str:
    """The ``nodes`` table: one line per node of the fleet, in the server's order
    (by name). IN/S and OUT/S are messages per second; LAST SEEN is the age of
    the node's last heartbeat."""
    rows = []
    for n in nodes:
        rates = n.get("rates") or {}
        last_seen = n.get("last_seen")
        rows.append([
            n.get("node"),
            n.get("state") or "-",
            n.get("health") or "-",
            n.get("connections", "-"),
            _rate(rates.get("msgs_in")),
            _rate(rates.get("msgs_out")),
            "-" if last_seen is None else f"{age(now - float(last_seen))} ago",
            n.get("version") or "-",
            n.get("control_url") or "-",
        ])
    return table(["NODE", "STATE", "HEALTH", "CONNECTIONS", "IN/S", "OUT/S", "LAST SEEN",
                  "VERSION", "CONTROL URL"], rows)


_PER_NODE_COLUMNS = {
    "send": (("RECIPIENTS", "recipients"), ("DELIVERED", "delivered"), ("SKIPPED", "skipped")),
    "disconnect": (("CONNECTIONS", "count"),),
    "shutdown": (("CONNECTIONS", "connections"), ("STATE", "state")),
}


def per_node_table(op: str, per_node: Any, indent: str = "  ") -> str:
    """What each node did for a ``send``, ``disconnect`` or ``shutdown``: an
    indented table, nodes by name; empty for one node (the total says it all)."""
    if not isinstance(per_node, dict) or len(per_node) < 2:
        return ""
    columns = _PER_NODE_COLUMNS.get(op, ())
    rows = [[name, *((per_node[name] or {}).get(key, "-") for _, key in columns)]
            for name in sorted(per_node)]
    lines = table(["NODE", *(header for header, _ in columns)], rows).splitlines()
    return "\n".join(indent + line for line in lines)


def missing_line(missing: Any) -> str:
    """The one stderr line of a partial answer, or "" for a full one:
    ``partial answer: no reply from node-b (no reply before the deadline), ...``."""
    if not isinstance(missing, dict) or not missing:
        return ""
    named = ", ".join(f"{name} ({reason})" for name, reason in sorted(missing.items()))
    count = len(missing)
    return printable(f"partial answer: {count} node{'' if count == 1 else 's'} "
                     f"did not answer: {named}")


_EVENT_FIELDS = {
    EventKind.CONNECTION_OPENED: ("node", "id", "user", "path", "remote", "topics"),
    EventKind.CONNECTION_CLOSED: ("node", "id", "user", "path", "code", "reason", "duration"),
    EventKind.OPERATOR_ACTION: ("node", "role", "client", "op", "args", "result", "error"),
    EventKind.STATE_CHANGED: ("node", "state", "mode", "connections", "deadline"),
    EventKind.DRAIN_ESCALATED: ("node", "cause", "started_with", "served", "closing", "code",
                                "reason"),
    EventKind.BURST: ("node", "opened", "closed", "dropped"),
    EventKind.SLOW_CONSUMER: ("node", "id", "user", "path", "buffered", "kernel_queued"),
    # A node joined, turned suspect, went, came back or changed state.
    EventKind.NODE: ("node", "state", "health", "connections", "version", "control_url"),
}
"""The fields worth a human's line, per event kind; other kinds show every field."""


def event_line(kind: str, time_: float, data: Any) -> str:
    """One event as a human line: ``12:00:01 connection_opened id=1a2b3c user=ann ...``."""
    clock = time.strftime("%H:%M:%S", time.localtime(time_)) if time_ else "--:--:--"
    data = data if isinstance(data, dict) else {"data": data}
    if kind == EventKind.STATS:
        rates = data.get("rates") or {}
        node = f"node={data['node']} " if data.get("node") else ""
        detail = (f"{node}state={data.get('state')} connections={data.get('connections')} "
                  f"in={rates.get('msgs_in', 0):.1f}/s out={rates.get('msgs_out', 0):.1f}/s")
        return printable(f"{clock} {kind} {detail}")
    fields = _EVENT_FIELDS.get(kind, tuple(data))
    parts = []
    for key in fields:
        if key not in data or data[key] is None:
            continue
        value = data[key]
        if isinstance(value, (dict, list)):
            value = to_json(value, compact=True)
        elif isinstance(value, float):
            value = f"{value:.3f}".rstrip("0").rstrip(".")
        elif isinstance(value, str) and (value == "" or " " in value):
            value = json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={value}")
    return printable(f"{clock} {kind} {' '.join(parts)}".rstrip())
