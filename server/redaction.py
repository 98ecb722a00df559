"""What never leaves wsconsole unredacted: secret headers, secret-looking query
values, and both of these in websockets' DEBUG handshake log lines.

One rule for every place that shows a client's or an operator's request: the
control plane's ``get`` (headers), connection summaries (query), and the log
lines of the public server, the control listener and the console's client.

Pure: must never import asyncio, websockets or textual (``logging`` is fine).
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "SECRET_QUERY_KEYS",
    "redact_headers",
    "redact_query",
    "redact_log_args",
    "RedactingLogger",
]

REDACTED = "[redacted]"
"""What replaces a secret value."""

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
"""Header names whose values are never shown (lower case)."""

SECRET_QUERY_KEYS = re.compile(
    r"token|secret|passw|auth|api[-_]?key|signature|session|jwt|credential", re.I
)
"""Query parameters whose values are redacted (browser clients often pass a
token as ``?access_token=``, since they cannot set headers)."""


def redact_headers(headers: Any) -> list[list[str]]:
    """Return ``[name, value]`` pairs with secret values replaced by ``[redacted]``.

    ``headers`` is an iterable of pairs, or any object with ``raw_items()``
    (such as websockets' ``Headers``, which records keep as they are rather
    than copy, to save memory per connection).
    """
    if hasattr(headers, "raw_items"):
        headers = headers.raw_items()
    return [
        [name, REDACTED if name.lower() in SECRET_HEADERS else value]
        for name, value in headers
    ]


def redact_query(query: str) -> str:
    """The query string with the values of secret-looking keys replaced.

    ``user=ann&access_token=abc`` becomes ``user=ann&access_token=[redacted]``;
    the rest is kept byte for byte.
    """
    if not query or not SECRET_QUERY_KEYS.search(query):
        return query
    parts = []
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if sep and value and SECRET_QUERY_KEYS.search(key):
            part = f"{key}={REDACTED}"
        parts.append(part)
    return "&".join(parts)


# websockets' handshake lines at DEBUG (websockets/server.py, client.py): one
# per header, and the request line, whose path may carry a query.
_HEADER_LINES = frozenset({"< %s: %s", "> %s: %s"})
_REQUEST_LINE = "< %s %s %s"


def redact_log_args(msg: Any, args: Any) -> Any:
    """The arguments of one websockets log call, with secrets redacted.

    ``msg`` and ``args`` as websockets passes them to its logger; anything
    that is not a handshake line comes back unchanged (the same object).
    """
    if not isinstance(args, tuple):
        return args
    if len(args) == 2 and msg in _HEADER_LINES and str(args[0]).lower() in SECRET_HEADERS:
        return (args[0], REDACTED)
    if len(args) == 3 and msg == _REQUEST_LINE and "?" in str(args[1]):
        path, _, query = str(args[1]).partition("?")
        return (args[0], f"{path}?{redact_query(query)}", args[2])
    return args


class RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger to hand to websockets (``logger=``): secrets never reach a handler.

    It keeps the wrapped logger's name, so logging configured for that name
    (``websockets.server`` by default) still applies, and the caller's
    ``extra``.
    """

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
        super().__init__(logger, None)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        args = redact_log_args(msg, args)
        # The record names websockets' call site, not this method.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        super().log(level, msg, *args, **kwargs)
