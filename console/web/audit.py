"""The web console's audit: who logged in, who was refused, which consoles ran.

The control plane's audit log (``wsconsole serve --audit-log``) already has one
line per action an operator takes, from the browser as from a terminal: the
web console's consoles are control clients like any other. What only the web
front sees is written here: logins (with the role the control plane gave),
refused and rate-limited logins, logouts, consoles started and ended (and
why), expired sessions, and refused requests (a foreign ``Origin`` or
``Host``, a WebSocket without a session, the session cap).

Each entry is one JSON line appended to ``--audit-log FILE`` (created mode
0600; opened with ``O_APPEND``; reopened if rotated away), and one line on the
``wsconsole.web`` logger (INFO for what went ahead, WARNING for a refusal).
Never a token or a cookie: a session is named by its label, the first
characters of the SHA-256 of its cookie. A login is refused (HTTP 503) if its
audit line cannot be written: fail closed.

Pure of the network: no asyncio, aiohttp, websockets or textual.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from wsconsole.server.errors import ConfigError

__all__ = ["WebAudit", "WebEvent", "RefusalThrottle"]

logger = logging.getLogger("wsconsole.web")

_TEXT_LIMIT = 200
"""Characters of a string field kept (a client chooses its User-Agent)."""


class WebEvent(StrEnum):
    """The ``event`` of an audit line."""

    LOGIN = "login"
    LOGIN_REFUSED = "login_refused"
    LOGIN_RATE_LIMITED = "login_rate_limited"
    LOGIN_FAILED = "login_failed"
    """The control plane could not be asked (unreachable): nobody was let in."""
    LOGOUT = "logout"
    SESSION_EXPIRED = "session_expired"
    CONSOLE_STARTED = "console_started"
    CONSOLE_ENDED = "console_ended"
    REFUSED = "refused"
    """A page or WebSocket refused: foreign Origin or Host, no session, the cap."""


_WARNINGS = {WebEvent.LOGIN_REFUSED, WebEvent.LOGIN_RATE_LIMITED, WebEvent.LOGIN_FAILED,
             WebEvent.REFUSED}


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        value = "".join(ch if ch.isprintable() else "?" for ch in value)
        return value if len(value) <= _TEXT_LIMIT else value[:_TEXT_LIMIT] + "…"
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return _clip(str(value))


class WebAudit:
    """Appends audit lines to a file (if any) and to the ``wsconsole.web`` log."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lines = 0
        """Lines written to the file."""
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None

    def open(self) -> None:
        """Open (create, mode 0600) the file; ConfigError if it cannot be."""
        if self.path is None:
            return
        try:
            self._reopen()
        except OSError as exc:
            raise ConfigError(f"cannot open the web audit log {self.path}: "
                              f"{exc.strerror or exc}") from None

    def _reopen(self) -> None:
        assert self.path is not None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        info = os.fstat(fd)
        self._fd, self._identity = fd, (info.st_dev, info.st_ino)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def write(self, event: WebEvent, **fields: Any) -> None:
        """One entry. Raises OSError if the file cannot take it (the log still does)."""
        entry: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "event": str(event),
        }
        entry.update({name: _clip(value) for name, value in fields.items()
                      if value is not None})
        described = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("time", "event"))
        logger.log(logging.WARNING if event in _WARNINGS else logging.INFO,
                   "web %s %s", event, described)
        if self.path is None:
            return
        line = (json.dumps(entry, ensure_ascii=False, allow_nan=False) + "\n").encode()
        if self._fd is None or self._rotated():
            self._reopen()
        assert self._fd is not None
        os.write(self._fd, line)
        self.lines += 1

    def _rotated(self) -> bool:
        assert self.path is not None
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return True
        return not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != self._identity


class RefusalThrottle:
    """Audit a repeated refusal once per ``interval`` per key, with the count
    of the ones not written (a flood of rate-limited logins is one line a minute)."""

    def __init__(self, interval: float = 60.0, max_keys: int = 1024) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[str, tuple[float, int]] = {}

    def due(self, key: str) -> int | None:
        """The count of unwritten refusals to report if this one is to be written, else None."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) >= self.max_keys:
            self._last.clear()
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0
