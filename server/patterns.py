"""Filter values with wildcards: ``user=guest*``, ``path=/api/*``, ``topic=room-?``.

Every user, path and topic a filter or a selector names is a pattern:

- ``*`` stands for any run of characters (none too, ``/`` too);
- ``?`` stands for exactly one character;
- ``\\`` makes the next ``*``, ``?`` or ``\\`` an ordinary character
  (``a\\*b`` is the user ``a*b``); before any other character, or at the
  end, it is a mistake (:class:`~wsconsole.server.errors.BadPattern`), so that
  a name written without thinking of escapes is never read another way;
- every other character stands for itself, case counts.

A value without an unescaped ``*`` or ``?`` is an exact name: the registry
looks it up in its index, as before patterns existed. A pattern is matched
against the index's names (the distinct users, paths or topics), never
against each connection: the literal part before its first wildcard narrows
the names by a bisection, and ``guest*`` needs nothing more.

Pure: no asyncio, no websockets, no textual (the console reads filters with it).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache

from .errors import BadPattern

__all__ = ["Pattern", "parse_pattern", "escape", "is_pattern", "WILDCARDS",
           "MAX_PATTERN_LENGTH"]

WILDCARDS = frozenset("*?")
"""The characters that make a value a pattern (unless escaped with ``\\``)."""

_SPECIAL = frozenset("*?\\")

MAX_PATTERN_LENGTH = 1024
"""Characters of a pattern, at most."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """A filter value, read: an exact name, or a pattern with wildcards."""

    text: str
    """As written (with its escapes)."""
    literal: str | None
    """The exact name it stands for, escapes removed; None for a pattern with wildcards."""
    prefix: str
    """The literal characters before the first wildcard (the whole name if exact)."""
    regex: re.Pattern[str] | None
    """What a name must fully match; None when :attr:`literal` or a bare
    prefix (``guest*``) says it all."""

    @property
    def exact(self) -> bool:
        """True for a name without wildcards."""
        return self.literal is not None

    def matches(self, value: str) -> bool:
        """Does ``value`` match (the whole of it)?"""
        if self.literal is not None:
            return value == self.literal
        if self.regex is None:
            return value.startswith(self.prefix)
        return self.regex.match(value) is not None


@lru_cache(maxsize=512)
def parse_pattern(text: str, field: str = "value") -> Pattern:
    """Read a filter value; :class:`BadPattern` naming ``field`` if it is not one."""
    if not isinstance(text, str):
        raise BadPattern(f"{field} must be a string", field=field, pattern=str(text))
    if len(text) > MAX_PATTERN_LENGTH:
        raise BadPattern(f"{field} pattern is longer than {MAX_PATTERN_LENGTH} characters",
                         field=field, pattern=text[:80] + "...")
    if not (_SPECIAL & set(text)):
        return Pattern(text, text, text, None)
    # Literal runs at even places, wildcards at odd ones (None: "*").
    pieces: list[str | None] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            following = text[i + 1:i + 2]
            if not following or following not in _SPECIAL:
                where = "ends the pattern" if not following else f"comes before {following!r}"
                raise BadPattern(
                    f"bad pattern {field}={text}: the backslash at character {i + 1} "
                    f"{where}; \\ escapes only *, ? and \\ (\\\\ is a backslash)",
                    field=field, pattern=text, position=i)
            literal.append(following)
            i += 2
            continue
        if ch in WILDCARDS:
            pieces.append("".join(literal))
            pieces.append(None if ch == "*" else "?")
            literal = []
        else:
            literal.append(ch)
        i += 1
    tail = "".join(literal)
    if not pieces:
        return Pattern(text, tail, tail, None)
    pieces.append(tail)
    prefix = pieces[0] or ""
    # "guest*": the prefix alone decides.
    if len(pieces) == 3 and pieces[1] is None and not pieces[2]:
        return Pattern(text, None, prefix, None)
    # fnmatch's translation never backtracks more than once per star; its own
    # special characters are made literal as one-character classes.
    glob = "".join("*" if piece is None else piece if piece == "?" and index % 2
                   else "".join(f"[{c}]" if c in "*?[" else c for c in piece)
                   for index, piece in enumerate(pieces))
    return Pattern(text, None, prefix, re.compile(fnmatch.translate(glob)))


def is_pattern(text: str) -> bool:
    """True if ``text`` has an unescaped wildcard (a bad pattern is no pattern)."""
    try:
        return not parse_pattern(text).exact
    except BadPattern:
        return False


def escape(name: str) -> str:
    """The pattern that matches exactly ``name`` (``a*b`` -> ``a\\*b``)."""
    if not (_SPECIAL & set(name)):
        return name
    return "".join("\\" + c if c in _SPECIAL else c for c in name)
