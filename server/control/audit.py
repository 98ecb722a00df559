"""The audit log: one JSON line per mutating operation, accepted or refused.

Each entry is also published as an ``operator_action`` event, so that every
subscribed operator sees what another one did. An entry keeps a summary of the
arguments (selectors, clipped text, sizes), never a whole message, a token or
an ``Authorization`` header.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from typing import Any, Callable, TextIO

from ..errors import ConfigError, WsconsoleError
from ..protocol import EventKind, Role

__all__ = [
    "AuditLog",
    "AUDIT_TEXT_LIMIT",
    "AUDIT_IDS_LIMIT",
]

logger = logging.getLogger("wsconsole.control")

AUDIT_TEXT_LIMIT = 200
"""Characters of a sent text message kept in the audit log; the rest is elided."""
AUDIT_IDS_LIMIT = 20
"""Connection ids of a selector kept in the audit log; the rest are counted."""

Publish = Callable[[str, dict[str, Any]], None]


class AuditLog:
    """Where audit entries go: an append-only file (optional) and the event stream.

    ``path`` None keeps no file, but entries are still published.
    """

    def __init__(self, path: str | None, node: str, publish: Publish) -> None:
        self.path = path
        """The audit file as configured, or None."""
        self.node = node
        """The node that received the requests (every entry names it)."""
        self._publish = publish
        self._file: TextIO | None = _open(path) if path else None

    def record(self, role: Role, client: str, op: str, args: Any, *,
               result: Any = None, error: WsconsoleError | None = None) -> None:
        """Write and publish the entry of one mutating request."""
        entry: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "node": self.node,
            "role": role,
            "client": client,
            "op": op,
            "args": _summarize_args(op, args),
        }
        if error is None:
            entry["result"] = _summarize_result(op, result)
        else:
            entry["error"] = {"code": error.code, "message": error.message}
        if self._file is not None:
            try:
                self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
                self._file.flush()
            except (OSError, ValueError):
                logger.exception("cannot write the audit log %s", self.path)
        self._publish(EventKind.OPERATOR_ACTION, entry)

    def close(self) -> None:
        """Close the file; later entries are only published."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None


def _open(path: str) -> TextIO:
    path = os.path.expanduser(path)
    try:
        # Operators' message snippets and addresses: not for everyone to read.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open the audit log {path}: {exc.strerror}") from exc
    return os.fdopen(fd, "a", encoding="utf-8")


def _summarize_args(op: str, args: Any) -> dict[str, Any]:
    """What the audit log keeps of a request's arguments: never a whole message."""
    if not isinstance(args, dict):
        return {}
    summary: dict[str, Any] = {}
    selector = args.get("selector")
    if isinstance(selector, dict):
        kept: dict[str, Any] = {}
        for key in ("everyone", "user", "path", "topic"):
            value = selector.get(key)
            if value is not None:
                kept[key] = _clip(value) if isinstance(value, str) else value
        ids = selector.get("ids")
        if isinstance(ids, list):
            kept["ids"] = [_clip(i) if isinstance(i, str) else i for i in ids[:AUDIT_IDS_LIMIT]]
            if len(ids) > AUDIT_IDS_LIMIT:
                kept["ids_total"] = len(ids)
        summary["selector"] = kept
    elif selector is not None:
        summary["selector"] = "<invalid>"
    text = args.get("text")
    if isinstance(text, str):
        summary["text"] = _clip(text)
        summary["text_length"] = len(text)
    binary = args.get("binary")
    if isinstance(binary, str):
        summary["binary_bytes"] = len(binary) * 3 // 4  # base64: approximate size
    for key in ("dry_run", "code", "mode", "deadline"):
        value = args.get(key)
        if value is not None and isinstance(value, (bool, int, float, str)):
            summary[key] = _clip(value) if isinstance(value, str) else value
    reason = args.get("reason")
    if isinstance(reason, str) and reason:
        summary["reason"] = _clip(reason)
    return summary


def _summarize_result(op: str, result: Any) -> Any:
    # A send's sample of ids is not kept; the nodes that did not answer are.
    if isinstance(result, dict) and op == "send":
        return {k: result[k] for k in ("recipients", "delivered", "skipped", "dry_run", "missing")
                if k in result}
    return result


def _clip(value: str, limit: int = AUDIT_TEXT_LIMIT) -> str:
    return value if len(value) <= limit else value[:limit] + "…"
