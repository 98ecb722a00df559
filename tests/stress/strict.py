"""Strict JSON checks for the stress runs and their regression tests.

Python's ``json.loads`` accepts what JSON does not (NaN, Infinity, duplicate
keys, lone surrogate escapes); the readers an operator points at an audit log
(``jq``, a SIEM) stop there, or drop what follows. These checks refuse it all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wsconsole.server.control.audit import AUDIT_LINE_LIMIT

__all__ = ["StrictJSONError", "strict_loads", "depth", "read_audit_file", "AUDIT_MAX_DEPTH"]

AUDIT_MAX_DEPTH = 4
"""Nesting of an audit line: entry -> args -> selector -> ids (and entry -> error)."""


class StrictJSONError(ValueError):
    """A text that a strict JSON reader would refuse."""


def _refuse_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise StrictJSONError(f"duplicate key in {keys}")
    return dict(pairs)


def _check_text(value: Any) -> None:
    """Every string is Unicode text: a lone surrogate escape is not."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise StrictJSONError(f"a string holds a lone surrogate: {item!r}") from exc
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def strict_loads(text: str | bytes) -> Any:
    """Parse like a strict reader: no NaN/Infinity, no duplicate keys, no lone surrogates."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError(f"not UTF-8: {exc}") from exc
    try:
        value = json.loads(text, parse_constant=_refuse_constant,
                           object_pairs_hook=_refuse_duplicates)
    except StrictJSONError:
        raise
    except ValueError as exc:
        raise StrictJSONError(str(exc)) from exc
    _check_text(value)
    return value


def depth(value: Any) -> int:
    """Nesting depth: a scalar is 0, ``{"a": 1}`` is 1."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def read_audit_file(path: str | Path) -> list[dict[str, Any]]:
    """Every line of an audit file, each checked: an object, strict JSON, flat, bounded.

    Raises StrictJSONError naming the first bad line (1-based).
    """
    data = Path(path).read_bytes()
    if data and not data.endswith(b"\n"):
        raise StrictJSONError("the file ends in a partial line")
    entries = []
    for number, line in enumerate(data.splitlines(), start=1):
        if len(line) + 1 > AUDIT_LINE_LIMIT:
            raise StrictJSONError(f"line {number}: {len(line)} bytes")
        try:
            entry = strict_loads(line)
        except StrictJSONError as exc:
            raise StrictJSONError(f"line {number}: {exc}: {line[:200]!r}") from None
        if not isinstance(entry, dict):
            raise StrictJSONError(f"line {number}: not an object")
        if depth(entry) > AUDIT_MAX_DEPTH:
            raise StrictJSONError(f"line {number}: nested {depth(entry)} deep")
        entries.append(entry)
    return entries
