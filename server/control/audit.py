"""The audit log: one JSON line per request that names a mutating operation.

What it guarantees:

- **Fail closed.** The line of an accepted request is written before the
  operation runs; if it cannot be written (full disk, I/O error, a file that
  cannot be reopened), the operation is not run and the operator is answered
  :class:`~wsconsole.server.errors.AuditFailed`. A refused request (bad
  arguments, no id, a binary frame, the read-only role) is written too, best
  effort: it changed nothing either way.
- **Every line is valid, flat, bounded JSON.** Only a summary of the request is
  copied (selectors, clipped strings, sizes), each value a scalar except the
  selector and its first ids; strings are clipped and made valid UTF-8; no NaN
  or Infinity (``allow_nan=False``); a partial line left by a failed write is
  cut off again. A line is at most :data:`AUDIT_LINE_LIMIT` bytes. Never a
  whole message, a token or an ``Authorization`` header.
- **Rotation.** Before each line the file is checked: a deleted or renamed
  file is reopened at its path (``logrotate``'s default ``create``), a truncated
  one is appended to from its new end (``copytruncate``, thanks to
  ``O_APPEND``); :meth:`AuditLog.reopen` (SIGHUP in ``wsconsole serve``) reopens
  unconditionally.
- **Visible state.** :meth:`AuditLog.status`: ok, failing or disabled, lines
  written and failed, the last error; in ``stats``, ``/healthz`` and metrics.

Each entry, completed with the operation's ``result`` or ``error``, is also
published as an ``operator_action`` event, so that every subscribed operator
sees what another one did (and what the audit log refused).

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from ..errors import AuditFailed, ConfigError, WsconsoleError
from ..protocol import AuditState, EventKind, Role
from ..wire import is_unicode_text

__all__ = [
    "AuditLog",
    "AuditStatus",
    "AUDIT_TEXT_LIMIT",
    "AUDIT_IDS_LIMIT",
    "AUDIT_ID_LIMIT",
    "AUDIT_MESSAGE_LIMIT",
    "AUDIT_LINE_LIMIT",
]

logger = logging.getLogger("wsconsole.control")

AUDIT_TEXT_LIMIT = 200
"""Characters of a string from the request (text, reason, user, ...) kept; the rest is elided."""
AUDIT_IDS_LIMIT = 20
"""Connection ids of a selector kept in the audit log; the rest are counted."""
AUDIT_ID_LIMIT = 64
"""Characters of one connection id kept (real ones are far shorter)."""
AUDIT_MESSAGE_LIMIT = 300
"""Characters of an error message kept (a message may quote the client)."""
AUDIT_LINE_LIMIT = 32 * 1024
"""Bytes of one audit line, at most: the limits above keep every line far below;
a line that would still be longer loses its arguments (``args_clipped``)."""

Publish = Callable[[str, dict[str, Any]], None]

_ARG_SCALARS = ("dry_run", "code", "mode", "deadline", "reason", "node",
                "tap", "direction", "max_bytes", "rate", "byte_rate", "duration")
"""Arguments copied as one clipped scalar each (besides selector, text, binary)."""
_MAX_INTEGER = 2**63
"""Integers beyond this are shown as a description: JSON readers lose them anyway."""


@dataclass(frozen=True, slots=True)
class AuditStatus:
    """The audit log's state, as ``stats``, ``/healthz`` and the metrics show it."""

    state: AuditState
    path: str | None
    """The audit file, or None when disabled."""
    entries_written: int
    """Lines written since the server started."""
    entries_failed: int
    """Lines that could not be written (each refused its request if it was accepted)."""
    last_error: str | None
    """Why the last failed line failed (``No space left on device``), or None."""
    last_error_time: float | None
    """When (Unix time) the last line failed, or None."""
    reopened: int
    """Times the file was reopened (rotated, deleted, or asked by SIGHUP)."""

    def as_dict(self, *, with_path: bool = True) -> dict[str, Any]:
        """The wire form; ``with_path=False`` for ``/healthz``, which needs no token."""
        data: dict[str, Any] = {
            "state": self.state,
            "entries_written": self.entries_written,
            "entries_failed": self.entries_failed,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
            "reopened": self.reopened,
        }
        if with_path:
            data["path"] = self.path
        return data


class AuditLog:
    """Where audit entries go: an append-only file (optional) and the event stream.

    ``path`` None keeps no file (state ``disabled``), but entries are still
    published. Call :meth:`open` before the first entry.
    """

    def __init__(self, path: str | None, node: str, publish: Publish) -> None:
        self.path = os.path.abspath(os.path.expanduser(path)) if path else None
        """The audit file as an absolute path (a later chdir cannot move it), or None."""
        self.node = node
        """The node that received the requests (every entry names it)."""
        self._publish = publish
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._written = 0
        self._failed = 0
        self._last_error: str | None = None
        self._last_error_time: float | None = None
        self._reopened = 0

    # Lifecycle

    def open(self) -> None:
        """Open the file (created with mode 0600); ConfigError if it cannot be."""
        if self.path is None:
            return
        try:
            self._open()
        except OSError as exc:
            raise ConfigError(f"cannot open the audit log {self.path}: {exc.strerror}") from exc

    def reopen(self) -> None:
        """Close and reopen the file at its path: for rotation (SIGHUP).

        Never raises: a file that cannot be reopened makes the state failing
        (and mutating requests refused) until a later line can be written.
        """
        if self.path is None:
            return
        self._close_fd()
        try:
            self._open()
        except OSError as exc:
            self._note_error(exc.strerror or str(exc))
            logger.error("cannot reopen the audit log %s: %s", self.path, exc.strerror)
        else:
            self._reopened += 1
            logger.info("audit log %s reopened", self.path)

    def close(self) -> None:
        """Close the file; later entries are only published."""
        self._close_fd()
        self.path = None

    def status(self) -> AuditStatus:
        """ok, failing or disabled; lines written and failed; the last error."""
        if self.path is None:
            state = AuditState.DISABLED
        elif self._last_error is not None:
            state = AuditState.FAILING
        else:
            state = AuditState.OK
        return AuditStatus(state, self.path, self._written, self._failed, self._last_error,
                           self._last_error_time, self._reopened)

    # Entries

    def entry(self, role: Role, client: str, op: str, args: Any) -> dict[str, Any]:
        """The bounded summary of one request (not yet written)."""
        return {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "node": self.node,
            "role": role,
            "client": client,
            "op": op,
            "args": _summarize_args(args),
        }

    def accept(self, entry: dict[str, Any]) -> None:
        """Write the line of a request about to run; AuditFailed if it could not be.

        On failure the refusal is published (every operator sees it), and the
        caller answers with the AuditFailed raised and runs nothing.
        """
        entry["decision"] = "accepted"
        if self._write(entry):
            return
        error = AuditFailed(f"the audit log cannot be written ({self._last_error}); "
                            "the request was not carried out")
        entry["decision"] = "refused"
        entry["error"] = _error_summary(error)
        self._publish(EventKind.OPERATOR_ACTION, entry)
        raise error

    def refuse(self, entry: dict[str, Any], error: WsconsoleError) -> None:
        """Write (best effort) and publish the line of a request refused before it ran."""
        entry["decision"] = "refused"
        entry["error"] = _error_summary(error)
        self._write(entry)
        self._publish(EventKind.OPERATOR_ACTION, entry)

    def record(self, entry: dict[str, Any]) -> bool:
        """Write (best effort) and publish a line that no request asked for: a tap's
        end, with what it showed and dropped. True if it reached the file."""
        written = self._write(entry)
        self._publish(EventKind.OPERATOR_ACTION, entry)
        return written

    def finish(self, entry: dict[str, Any], op: str, *, result: Any = None,
               error: WsconsoleError | None = None) -> None:
        """Publish an accepted request's outcome (the file keeps the decision only)."""
        event = dict(entry)
        if error is None:
            event["result"] = _summarize_result(op, result)
        else:
            event["error"] = _error_summary(error)
        self._publish(EventKind.OPERATOR_ACTION, event)

    # The file

    def _write(self, entry: dict[str, Any]) -> bool:
        """Write one line; True if it reached the file (or there is no file)."""
        if self.path is None:
            return True
        try:
            line = _encode_line(entry)
        except (TypeError, ValueError):  # pragma: no cover - the summary is built to encode
            logger.exception("cannot encode an audit entry")
            self._failed += 1
            self._note_error("the entry could not be encoded")
            return False
        try:
            fd = self._current_fd()
            _append(fd, line)
        except OSError as exc:
            self._failed += 1
            message = exc.strerror or str(exc)
            # Once per episode, not once per refused request: a full disk
            # must not flood the server's log as well.
            if message != self._last_error:
                logger.error("cannot write the audit log %s: %s; mutating requests are "
                             "refused until it can be written", self.path, message)
            self._note_error(message)
            return False
        self._written += 1
        if self._last_error is not None:
            logger.warning("audit log %s writable again", self.path)
            self._last_error = None
        return True

    def _current_fd(self) -> int:
        """The open file, reopened first if its path now names another file or none."""
        assert self.path is not None
        if self._fd is not None:
            try:
                on_disk = os.stat(self.path)
            except FileNotFoundError:
                on_disk = None
            if on_disk is None or (on_disk.st_dev, on_disk.st_ino) != self._identity:
                # Renamed or deleted (logrotate without copytruncate): our fd
                # would write into the rotated file, or into nothing.
                self._close_fd()
                self._open()
                self._reopened += 1
                logger.info("audit log %s was moved or deleted; reopened", self.path)
                return self._fd  # type: ignore[return-value]
            return self._fd
        self._open()
        return self._fd  # type: ignore[return-value]

    def _open(self) -> None:
        assert self.path is not None
        # Operators' message snippets and addresses: not for everyone to read.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        info = os.fstat(fd)
        self._fd, self._identity = fd, (info.st_dev, info.st_ino)

    def _close_fd(self) -> None:
        fd, self._fd, self._identity = self._fd, None, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover - nothing left to lose
                pass

    def _note_error(self, message: str) -> None:
        self._last_error = message
        self._last_error_time = time.time()


def _append(fd: int, line: bytes) -> None:
    """Append one whole line, or nothing: a partial line is cut off again."""
    info = os.fstat(fd)
    regular = stat.S_ISREG(info.st_mode)
    size_before = info.st_size
    view = memoryview(line)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError:
        if regular and len(view) < len(line):
            # A full disk takes the part of the line that fits: a line no
            # reader can parse. (A copytruncate in between leaves it smaller.)
            try:
                if os.fstat(fd).st_size > size_before:
                    os.ftruncate(fd, size_before)
            except OSError:  # pragma: no cover - the write error is what we report
                pass
        raise


def _encode_line(entry: dict[str, Any]) -> bytes:
    line = json.dumps(entry, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
    if len(line) > AUDIT_LINE_LIMIT:  # pragma: no cover - the limits keep lines far shorter
        entry = {**entry, "args": {}, "args_clipped": True}
        line = json.dumps(entry, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
    return line


# The summary: what is copied from a request, bounded.


def _text(value: str, limit: int = AUDIT_TEXT_LIMIT) -> str:
    """A client's string, clipped, and valid UTF-8 (lone surrogates spelled out)."""
    clipped = value if len(value) <= limit else value[:limit] + "…"
    if not is_unicode_text(clipped):
        clipped = clipped.encode("utf-8", "backslashreplace").decode("utf-8")
    return clipped


def _scalar(value: Any, limit: int = AUDIT_TEXT_LIMIT) -> Any:
    """A client's value as one JSON scalar: never a container, never NaN or Infinity."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value, limit)
    if isinstance(value, int):
        return value if -_MAX_INTEGER < value < _MAX_INTEGER else "<integer too large>"
    if isinstance(value, float):
        return value if math.isfinite(value) else "<non-finite number>"
    if isinstance(value, dict):
        return f"<object of {len(value)} fields>"
    if isinstance(value, list):
        return f"<list of {len(value)}>"
    return f"<{type(value).__name__}>"  # pragma: no cover - json yields no other type


def _summarize_args(args: Any) -> dict[str, Any]:
    """What the audit log keeps of a request's arguments: flat, bounded, never a whole message."""
    if not isinstance(args, dict):
        return {} if args is None else {"invalid": _scalar(args)}
    summary: dict[str, Any] = {}
    if "selector" in args:
        selector = args["selector"]
        if isinstance(selector, dict):
            summary["selector"] = _summarize_selector(selector)
        else:
            summary["selector"] = _scalar(selector)
    if "text" in args:
        text = args["text"]
        summary["text"] = _scalar(text)
        if isinstance(text, str):
            summary["text_length"] = len(text)
    if "binary" in args:
        binary = args["binary"]
        if isinstance(binary, str):
            summary["binary_bytes"] = len(binary) * 3 // 4  # base64: approximate size
        else:
            summary["binary"] = _scalar(binary)
    for key in _ARG_SCALARS:
        value = args.get(key)
        if key == "reason" and value == "":
            continue
        if value is not None:
            summary[key] = _scalar(value)
    return summary


def _summarize_selector(selector: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key in ("everyone", "user", "path", "topic"):
        value = selector.get(key)
        if value is not None:
            kept[key] = _scalar(value)
    ids = selector.get("ids")
    if isinstance(ids, list):
        kept["ids"] = [_scalar(i, AUDIT_ID_LIMIT) for i in ids[:AUDIT_IDS_LIMIT]]
        if len(ids) > AUDIT_IDS_LIMIT:
            kept["ids_total"] = len(ids)
    elif ids is not None:
        kept["ids"] = _scalar(ids, AUDIT_ID_LIMIT)
    unknown = len(set(selector) - {"everyone", "user", "path", "topic", "ids"})
    if unknown:
        kept["unknown_fields"] = unknown
    return kept


def _error_summary(error: WsconsoleError) -> dict[str, str]:
    return {"code": error.code, "message": _text(error.message, AUDIT_MESSAGE_LIMIT)}


def _summarize_result(op: str, result: Any) -> Any:
    # A send's sample of ids is not kept; the nodes that acted (per_node) and
    # those that did not answer (missing) are.
    if isinstance(result, dict) and op == "send":
        return {k: result[k] for k in ("recipients", "delivered", "skipped", "dry_run",
                                       "per_node", "missing")
                if k in result}
    return result
