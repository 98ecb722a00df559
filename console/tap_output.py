"""How the console shows a tap: its selector words, its records as lines, its limits.

Pure: values in, strings out (no I/O, no asyncio, no textual), shared by
``wsconsole tap`` and the console's tap screen. Payloads are the clients'
data: every line goes through :func:`~wsconsole.console.output.printable`,
so an escape sequence or a bidi override in a message is shown as ``\\x1b``
or ``\\u202e``, never sent to the operator's terminal.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable, Mapping

from .output import printable, size

__all__ = ["parse_tap_selector", "describe_selector", "describe_limits", "tap_line",
           "tap_summary"]

_KINDS = {"id": "ids", "ids": "ids", "user": "user", "path": "path", "topic": "topic",
          "room": "topic"}


def parse_tap_selector(words: Iterable[str]) -> dict[str, Any]:
    """A tap's selector from words: ``ID``, ``id=ID``, ``user=ann`` or ``@ann``,
    ``path=/chat`` or ``/chat``, ``topic=lobby`` or ``#lobby``, ``all``.

    Several words combine with AND, as every selector does (several ids: any
    of them). Raises ValueError with a sentence for the operator.
    """
    selector: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if sep:
            name = _KINDS.get(key.strip().lower())
            if name is None:
                raise ValueError(f"unknown selector {key!r}: use id=, user=, path=, topic= "
                                 "or all")
        elif word in ("all", "everyone"):
            selector["everyone"] = True
            continue
        elif word.startswith("/"):
            name, value = "path", word
        elif word.startswith("#"):
            name, value = "topic", word[1:]
        elif word.startswith("@"):
            name, value = "user", word[1:]
        else:
            name, value = "ids", word
        if not value:
            raise ValueError(f"empty value in selector {word!r}")
        if name == "ids":
            selector.setdefault("ids", []).append(value)
        elif name in selector and selector[name] != value:
            raise ValueError(f"two values for {name}: {selector[name]!r} and {value!r}")
        else:
            selector[name] = value
    if not selector:
        raise ValueError("tap needs a selector: a connection id, user=NAME, path=/P, "
                         "topic=T or all")
    return selector


def describe_selector(selector: Mapping[str, Any]) -> str:
    """``user=ann topic=lobby``, ``id=3f2a…``, or ``everyone``."""
    parts = [f"{key}={selector[key]}" for key in ("user", "path", "topic") if selector.get(key)]
    parts += [f"id={value}" for value in selector.get("ids") or ()]
    return printable(" ".join(parts) or ("everyone" if selector.get("everyone") else "nothing"))


def describe_limits(limits: Mapping[str, Any]) -> str:
    """``in and out, 256 B each, 50 msg/s, 32 KiB/s, 5m00s``."""
    direction = limits.get("direction")
    duration = float(limits.get("duration") or 0)
    minutes, seconds = divmod(int(round(duration)), 60)
    return (f"{'in and out' if not direction else f'{direction} only'}, "
            f"{size(limits.get('max_bytes'))} each, {limits.get('rate')} msg/s, "
            f"{size(limits.get('byte_rate'))}/s, "
            f"{f'{minutes}m{seconds:02d}s' if minutes else f'{seconds}s'}")


def tap_line(record: Mapping[str, Any], *, clock: bool = True) -> str:
    """One record as a line: ``12:00:01.250 3f2a9c1b7e ann in text 11 B "hello"…``.

    Text is quoted and escaped, binary is hex; ``…`` after the payload says it
    was cut at the tap's ``max_bytes``.
    """
    when = float(record.get("time") or 0.0)
    stamp = (time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when * 1000) % 1000:03d}"
             if clock and when else "")
    head = f"{stamp} {record.get('id')} {record.get('user')}".lstrip()
    kind = record.get("kind")
    if kind == "closed":
        reason = record.get("reason") or ""
        text = f"{head} closed {record.get('code')}" + (f" {json.dumps(reason)}" if reason else "")
        return printable(text)
    payload = _payload(record)
    return printable(f"{head} {kind:<3} {record.get('opcode', ''):<6} "
                     f"{size(record.get('size'))} {payload}".rstrip())


def _payload(record: Mapping[str, Any]) -> str:
    if record.get("filtered"):
        return "[payload hidden by the server's tap_filter]"
    data = record.get("data")
    if data is None:
        return ""
    cut = "…" if record.get("truncated") else ""
    if record.get("opcode") == "text":
        # Quotes and backslashes escaped so the payload's end is plain; control
        # and bidi characters are escaped with the whole line by printable(),
        # as every client string is (\x1b, \x0a, \u202e).
        quoted = str(data).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}"{cut}'
    return f"{data}{cut}"


def tap_summary(data: Mapping[str, Any]) -> str:
    """``tap 3f2a9c1b ended (stopped): 120 shown, 4 dropped``."""
    reason = str(data.get("reason") or "stopped").replace("_", " ")
    return printable(f"tap {data.get('tap')} ended ({reason}): {data.get('shown', 0)} shown, "
                     f"{data.get('dropped', 0)} dropped")
