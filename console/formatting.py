"""Pure helpers of the console: the view filter and how values are shown.

No textual, no asyncio, no network: these take values and return values, so
the filter syntax and the number formats are tested with plain values.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass, replace
from typing import Any

from rich.text import Text

from wsconsole.server.errors import BadPattern
from wsconsole.server.patterns import escape, parse_pattern

from .output import age, printable
from .output import size as human_bytes

__all__ = [
    "describe_connection",
    "literal",
    "ViewFilter",
    "parse_filter",
    "human_bytes",
    "human_count",
    "human_duration",
    "human_rate",
    "human_latency",
    "CLOSE_CODE_NAMES",
    "describe_close",
    "natural_key",
    "routed",
    "missing_note",
]

_FILTER_KEYS = {"user": "user", "path": "path", "topic": "topic", "room": "topic", "id": "id_prefix",
                "node": "node"}


@dataclass(frozen=True)
class ViewFilter:
    """Which connections the table shows; the server does the filtering."""

    user: str | None = None
    path: str | None = None
    topic: str | None = None
    id_prefix: str | None = None
    node: str | None = None
    """One node of a cluster: the request goes to that node only."""

    @property
    def empty(self) -> bool:
        """True when every connection is shown."""
        return not (self.user or self.path or self.topic or self.id_prefix or self.node)

    def list_args(self) -> dict[str, Any]:
        """Keyword arguments of ``ControlClient.list_connections``."""
        return {
            "user": self.user,
            "path": self.path,
            "topic": self.topic,
            "id_prefix": self.id_prefix,
            "node": self.node,
        }

    def selector(self) -> dict[str, Any] | None:
        """The control plane selector of the same connections, and under
        ``node`` the node they are on (see :func:`routed`).

        None when the filter cannot be said as a selector (an id prefix), so
        that an action never targets more than the operator sees.
        """
        if self.id_prefix:
            return None
        selector: dict[str, Any] = {}
        for name in ("user", "path", "topic"):
            value = getattr(self, name)
            if value:
                selector[name] = value
        selector = selector or {"everyone": True}
        if self.node:
            selector["node"] = self.node
        return selector

    def text(self) -> str:
        """The filter in the syntax :func:`parse_filter` reads back."""
        parts = []
        for key, name in (("node", "node"), ("user", "user"), ("path", "path"),
                          ("topic", "topic"), ("id", "id_prefix")):
            value = getattr(self, name)
            if value:
                parts.append(f"{key}={_quote(value)}")
        return " ".join(parts)

    def describe(self) -> str:
        """What the table shows, for titles and dialogs: ``everyone`` or ``user=ann``."""
        return self.text() or "everyone"

    def with_group(self, kind: str, value: str | None) -> ViewFilter:
        """The filter of exactly one group (kind: node, user, path or topic): its
        name escaped, so that a user called ``a*b`` is that user, no pattern."""
        if value is not None and kind != "node":
            value = escape(value)
        return replace(ViewFilter(), **{kind: value})


def routed(selector: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(the wire's selector, the node) of one of the console's targets.

    The console's targets carry the node a view is narrowed to beside the
    selector's kinds; the wire takes it as the request's ``node`` argument,
    never inside the selector.
    """
    wire_selector = {key: value for key, value in selector.items() if key != "node"}
    return wire_selector, selector.get("node")


def missing_note(result: Any) -> str:
    """``"; no answer from node-b, node-c"`` for an action's partial answer, or ""."""
    missing = result.get("missing") if isinstance(result, dict) else None
    if not isinstance(missing, dict) or not missing:
        return ""
    return "; no answer from " + ", ".join(sorted(map(str, missing)))


def natural_key(name: str) -> tuple[tuple[Any, ...], str]:
    """Sort key that orders numbers in names by value: ``u2`` before ``u10``.

    Case is ignored, then the name itself breaks ties (``u01`` and ``u1``,
    ``Ann`` and ``ann``), so the order is total and stable.
    """
    # re.split with a group alternates text and digits, text first: the
    # parts at the same position are always both str or both int.
    return _natural_key(name)


@functools.lru_cache(maxsize=4096)
def _natural_key(name: str) -> tuple[tuple[Any, ...], str]:
    # Asked for every group name with every page under churn: kept.
    parts = re.split(r"([0-9]+)", name)
    return tuple(int(part) if index % 2 else part.casefold()
                 for index, part in enumerate(parts)), name


def describe_connection(connection: dict[str, Any]) -> str:
    """``connection ID (USER on PATH)``: how dialogs and notices name one connection."""
    return (f"connection {connection.get('id')} ({connection.get('user')} on "
            f"{connection.get('path')})")


def literal(value: Any, style: str = "") -> Text:
    """``value`` as text to show as it is, never read as markup.

    Textual and Rich read a plain ``str`` as markup (DataTable cells, Tree
    labels, Static, RadioButton labels, border titles, Rich table cells). User
    names, paths, topics, headers, close reasons and the server's own messages
    are chosen by others: given as ``str``, ``[bold red]x`` would restyle the
    operator's screen and ``[/oops]`` would raise a MarkupError. Control and
    bidi characters are escaped too (``\\x1b``): Rich keeps ESC, which would
    reach the operator's terminal as an escape sequence. ``None`` is shown as
    nothing.
    """
    return Text("" if value is None else printable(value, keep_lines=True), style=style)


def parse_filter(text: str) -> ViewFilter:
    """Read what the operator typed after ``/``.

    ``user=ann path=/chat topic=lobby id=3f`` in any combination, each value
    a name or a pattern (``user=guest*``: ``wsconsole.server.patterns``). A
    bare word is the start of a user's name (``guest`` is ``user=guest*``),
    a bare ``/word`` the start of a path, ``#word`` of a topic; with a
    wildcard of its own it is that pattern as it is. ``id=`` takes the start
    of an id (a trailing ``*`` is allowed). Raises ValueError with a message
    for the operator.
    """
    try:
        words = _split(text)
    except ValueError as exc:
        raise ValueError(f"cannot read the filter: {exc}") from None
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if sep:
            name = _FILTER_KEYS.get(key.strip().lower())
            if name is None:
                raise ValueError(f"unknown filter {key!r}: use user=, path=, topic=, id= "
                                 "or node=")
        else:
            if word.startswith("/"):
                name, value = "path", word
            elif word.startswith("#"):
                name, value = "topic", word[1:]
            else:
                name, value = "user", word.removeprefix("@")
            if value:
                value = _prefix_pattern(value, name)
        if name == "id_prefix":
            value = value.rstrip("*")
        if not value:
            raise ValueError(f"empty value for {key or name}")
        if name in ("user", "path", "topic"):
            try:
                parse_pattern(value, name)
            except BadPattern as exc:
                raise ValueError(exc.message) from None
        if name in fields and fields[name] != value:
            raise ValueError(f"two values for {name}: {fields[name]!r} and {value!r}")
        fields[name] = value
    return ViewFilter(**fields)


def _quote(value: str) -> str:
    """A value as :func:`_split` reads it back: bare unless it holds a space or
    a quote (``user=guest*``, ``user='ann lee'``)."""
    if value and not any(c.isspace() or c in "'\"" for c in value):
        return value
    return shlex.quote(value)


def _split(text: str) -> list[str]:
    """Words as a shell splits them (quotes keep spaces), but a backslash is an
    ordinary character: it belongs to the pattern (``user=a\\*b``)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""
    lexer.commenters = ""
    return list(lexer)


def _prefix_pattern(value: str, name: str) -> str:
    """A bare word's pattern: what starts with it, unless it has wildcards of its own."""
    try:
        exact = parse_pattern(value, name).exact
    except BadPattern as exc:
        raise ValueError(exc.message) from None
    return value + "*" if exact else value


def human_count(n: float | int | None) -> str:
    """``999``, ``12.3k``, ``4.5M``."""
    if n is None:
        return "-"
    value = float(n)
    if abs(value) < 1000:
        return f"{int(value)}" if value == int(value) else f"{value:.1f}"
    for unit in ("k", "M", "G"):
        value /= 1000
        if abs(value) < 1000 or unit == "G":
            return f"{value:.1f}{unit}" if abs(value) < 100 else f"{value:.0f}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def human_rate(n: float | None) -> str:
    """A per-second rate: ``0``, ``3.5``, ``1.2k``."""
    if n is None:
        return "-"
    if n < 10:
        return f"{n:.1f}" if n else "0"
    return human_count(round(n))


def human_latency(seconds: float | None) -> str:
    """A ping round trip: ``-`` (not measured yet), ``0.4 ms``, ``35 ms``, ``1.2 s``.

    Loopback and LAN round trips are under a millisecond: a whole number of
    milliseconds would show them all as ``0 ms``.
    """
    if not seconds:
        return "-"
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{seconds:.1f} s"


def human_duration(seconds: float | None) -> str:
    """``4s``, ``3m05s``, ``2h10m``, ``3d04h`` (as the command line's ages)."""
    if seconds is None:
        return "-"
    return age(seconds)


CLOSE_CODE_NAMES = {
    1000: "normal",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status",
    1006: "abnormal",
    1007: "invalid data",
    1008: "policy violation",
    1009: "too big",
    1010: "extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
}
"""Short names of the close codes an operator meets."""


def describe_close(code: int | None, reason: str = "") -> str:
    """``1001 going away`` or ``4000 "maintenance"``."""
    if code is None:
        return "no code"
    text = f"{code} {CLOSE_CODE_NAMES.get(code, '')}".rstrip()
    if reason:
        text += f" {reason!r}"
    return text
