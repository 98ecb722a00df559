"""The control listener: an authenticated JSON-over-WebSocket API beside the public server.

It accepts operator connections on its own port (loopback by default), checks
their bearer token in the opening handshake, and answers requests in the wire
format of :mod:`wsconsole.server.wire` by calling the hub. It also serves
``GET /metrics`` and ``GET /healthz``, pushes the hub's events to subscribed
control connections (coalesced, with bounded memory per subscriber), and
writes every mutating operation to the audit log.

Fail closed: no token, an unreadable token file, or a non-loopback bind
without TLS (unless ``allow_insecure``) refuses to start with a ConfigError.
Tokens and ``Authorization`` headers are never logged.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import ipaddress
import json
import logging
import os
import secrets
import ssl
import time
from collections import deque
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from websockets.asyncio.server import Server, ServerConnection, unix_serve
from websockets.asyncio.server import serve as websockets_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import wire
from .config import ControlConfig
from .errors import (
    ConfigError,
    Forbidden,
    ProtocolViolation,
    ServerStateError,
    UnknownConnection,
    WsconsoleError,
)
from .hub import HubState
from .metrics import Metrics, health
from .registry import REDACTED, REDACTED_HEADERS
from .wire import ErrorCode, EventKind

if TYPE_CHECKING:  # pragma: no cover
    from .hub import Hub

__all__ = [
    "ControlListener",
    "OPERATOR",
    "READ_ONLY",
    "METRICS_PATH",
    "HEALTH_PATH",
    "MAX_TOKEN_BYTES",
    "load_token",
    "is_loopback",
    "websockets_logger",
]

logger = logging.getLogger("wsconsole.control")

class _RedactHeaders(logging.Filter):
    """Blank secret header values in websockets' DEBUG handshake lines.

    With DEBUG on, websockets logs every request header, ``Authorization``
    (our bearer token) included; this logger is the one the listener hands it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (isinstance(args, tuple) and len(args) == 2 and isinstance(record.msg, str)
                and record.msg.endswith("%s: %s") and str(args[0]).lower() in REDACTED_HEADERS):
            record.args = (args[0], REDACTED)
        return True


websockets_logger = logging.getLogger("wsconsole.control.websockets")
"""The logger of the control listener's websockets server (headers redacted)."""
websockets_logger.addFilter(_RedactHeaders())

OPERATOR = "operator"
"""Role of the operator token: every operation."""
READ_ONLY = "read_only"
"""Role of the read-only token: no operation in ``wire.MUTATING_OPERATIONS``."""

METRICS_PATH = "/metrics"
"""Prometheus exposition on the control listener."""
HEALTH_PATH = "/healthz"
"""JSON health check on the control listener (never needs a token)."""

MAX_TOKEN_BYTES = 1024
"""A longer ``Authorization`` value is refused before any comparison."""

AUDIT_TEXT_LIMIT = 200
"""Characters of a sent text message kept in the audit log; the rest is elided."""
AUDIT_IDS_LIMIT = 20
"""Connection ids of a selector kept in the audit log; the rest are counted."""


def is_loopback(host: str | None) -> bool:
    """True if binding to ``host`` exposes nothing beyond this machine."""
    if host is None or host == "":
        return False  # every interface
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A host name could resolve to anything: treat it as exposed.
        return False


def _check_token(token: str, where: str) -> str:
    if not token:
        raise ConfigError(f"{where} is empty")
    if len(token) > MAX_TOKEN_BYTES:
        raise ConfigError(f"{where} is longer than {MAX_TOKEN_BYTES} characters")
    if not all("!" <= ch <= "~" for ch in token):
        # Anything else could not travel in an HTTP header as the client sends it.
        raise ConfigError(f"{where} must be printable ASCII without spaces")
    return token


def load_token(token: str | None, path: str | None, what: str) -> tuple[str | None, str | None, bool]:
    """Resolve one token: ``(token, file it came from or None, created)``.

    A token given directly wins; else the file is read, or created (mode 0600,
    parent directories 0700) with a new random token if it does not exist.
    """
    if token is not None:
        return _check_token(token, f"the {what} token"), None, False
    if path is None:
        return None, None, False
    path = os.path.expanduser(path)
    created = False
    try:
        with open(path, encoding="ascii") as file:
            value = file.read().strip()
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        value = secrets.token_urlsafe(32)
        try:
            # O_EXCL: never overwrite a file another process created meanwhile.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_token(None, path, what)
        except OSError as exc:
            raise ConfigError(f"cannot create the {what} token file {path}: {exc.strerror}") from exc
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(value + "\n")
        created = True
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise ConfigError(f"cannot read the {what} token file {path}: {reason}") from exc
    else:
        try:
            mode = os.stat(path).st_mode
        except OSError:  # pragma: no cover - removed between read and stat
            mode = 0
        if mode & 0o077:
            logger.warning("the %s token file %s is readable by others (mode %o); "
                           "chmod 600 it", what, path, mode & 0o777)
    return _check_token(value, f"the {what} token file {path}"), path, created


class _TokenBucket:
    """Requests allowed per connection: ``rate`` per second, bursts up to ``burst``."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


_CONNECTION_EVENTS = frozenset({EventKind.CONNECTION_OPENED, EventKind.CONNECTION_CLOSED})


class _Subscription:
    """Events waiting for one subscriber, in bounded memory.

    The hub calls :meth:`push` synchronously for every event, so it must stay
    O(1): it appends to a bounded buffer, and once a window holds
    ``threshold`` connection events it only counts the rest. :meth:`take`
    turns the window into frames: past the threshold, the first ``head``
    connection events and one ``burst`` event with the counts of the others.
    """

    __slots__ = ("stats_interval", "threshold", "head", "max_other", "pending",
                 "connection_events", "burst_opened", "burst_closed", "dropped",
                 "stats", "wakeup")

    def __init__(self, stats_interval: float, threshold: int, head: int, max_other: int) -> None:
        self.stats_interval = stats_interval
        self.threshold = threshold
        self.head = head
        self.max_other = max_other
        self.pending: deque[tuple[str, Any, float]] = deque()
        self.connection_events = 0
        self.burst_opened = 0
        self.burst_closed = 0
        self.dropped = 0
        self.stats: tuple[dict[str, Any], float] | None = None
        self.wakeup = asyncio.Event()

    def push(self, kind: str, data: Any, now: float) -> None:
        if kind in _CONNECTION_EVENTS:
            if self.connection_events >= self.threshold:
                if kind == EventKind.CONNECTION_OPENED:
                    self.burst_opened += 1
                else:
                    self.burst_closed += 1
                return
            self.connection_events += 1
        elif len(self.pending) - self.connection_events >= self.max_other:
            self.dropped += 1
            return
        self.pending.append((kind, data, now))
        self.wakeup.set()

    def push_stats(self, data: dict[str, Any], now: float) -> None:
        # Only the latest sample matters: a newer one replaces an unsent one.
        self.stats = (data, now)
        self.wakeup.set()

    def take(self, now: float) -> list[str]:
        pending, self.pending = self.pending, deque()
        opened, closed, dropped = self.burst_opened, self.burst_closed, self.dropped
        overflow = bool(opened or closed)
        self.connection_events = self.burst_opened = self.burst_closed = self.dropped = 0
        frames: list[str] = []
        kept = 0
        for kind, data, when in pending:
            if overflow and kind in _CONNECTION_EVENTS:
                if kept >= self.head:
                    if kind == EventKind.CONNECTION_OPENED:
                        opened += 1
                    else:
                        closed += 1
                    continue
                kept += 1
            frames.append(wire.encode_event(kind, data, when))
        if opened or closed or dropped:
            frames.append(wire.encode_event(
                EventKind.BURST, {"opened": opened, "closed": closed, "dropped": dropped}, now))
        if self.stats is not None:
            data, when = self.stats
            self.stats = None
            frames.append(wire.encode_event(EventKind.STATS, data, when))
        self.wakeup.clear()
        return frames


class _Session:
    """One authenticated control connection."""

    __slots__ = ("connection", "role", "client", "bucket", "subscription", "pump")

    def __init__(self, connection: ServerConnection, role: str, client: str,
                 bucket: _TokenBucket) -> None:
        self.connection = connection
        self.role = role
        self.client = client
        self.bucket = bucket
        self.subscription: _Subscription | None = None
        self.pump: asyncio.Task[None] | None = None


class _ReplyFirst:
    """An operation's result, plus work to start only once the reply is sent."""

    __slots__ = ("result", "then")

    def __init__(self, result: Any, then: Callable[[], None]) -> None:
        self.result = result
        self.then = then


class ControlListener:
    """The control plane of one server: auth, roles, dispatch, events, audit.

    Built by :func:`wsconsole.server.serve` when given ``control=ControlConfig(...)``;
    started after the public server, stopped once it has fully stopped, so that
    an operator can watch and act on a draining server until its end.
    """

    flush_interval = 0.1
    """Seconds between two event flushes to one subscriber (at most)."""
    burst_threshold = 100
    """Connection events in one flush window past which a burst is summarized."""
    burst_head = 10
    """Connection events sent individually before the ``burst`` summary."""
    max_pending_events = 1000
    """Other events buffered per subscriber; past this they are counted as dropped."""
    rate_limit = 500.0
    """Requests per second per control connection, sustained."""
    rate_burst = 1000.0
    """Requests a control connection may send at once before ``rate_limited``."""
    close_timeout = 1.0
    """Seconds :meth:`stop` gives subscribers to receive their last events."""

    def __init__(self, hub: Hub, config: ControlConfig) -> None:
        self.hub = hub
        """The hub this control plane drives."""
        self.config = config
        """Where to listen and whom to let in."""
        self.token_file: str | None = None
        """The operator token's file, once started (None if given directly)."""
        self.token_file_created = False
        """True if :meth:`start` created :attr:`token_file`."""
        self.read_only_token_file: str | None = None
        """The read-only token's file, once started."""
        self.read_only_token_file_created = False
        """True if :meth:`start` created :attr:`read_only_token_file`."""
        self.metrics: Metrics | None = None
        """The Prometheus exposition, created at start."""
        self._tokens: list[tuple[bytes, str]] = []
        self._server: Server | None = None
        self._port: int | None = None
        self._tls = False
        self._sessions: set[_Session] = set()
        self._subscribers: dict[_Session, _Subscription] = {}
        self._audit: Any = None
        self._hub_listening = False
        self._stopped = False

    # Lifecycle

    async def start(self) -> None:
        """Check the configuration, load the tokens, and start listening.

        Raises :class:`ConfigError` for a configuration it must not run with.
        """
        if self._server is not None:
            raise ServerStateError("the control listener is already started")
        config = self.config
        ssl_context = self._check_bind(config)
        self._load_tokens(config)
        self.metrics = Metrics(
            self.hub,
            route_templates=config.metrics_route_templates or None,
            max_paths=config.metrics_max_paths,
        )
        if config.audit_log:
            self._audit = _open_audit_log(config.audit_log)
        common: dict[str, Any] = dict(
            process_request=self._process_request,
            max_size=config.max_request_bytes,
            # Compression would let a small frame inflate past max_size checks'
            # intent, and control traffic is small anyway.
            compression=None,
            server_header="wsconsole",
            logger=websockets_logger,
            ssl=ssl_context,
        )
        try:
            if config.unix_path is not None:
                self._server = await unix_serve(self._handler, config.unix_path, **common)
            else:
                self._server = await websockets_serve(
                    self._handler, config.host, config.port, **common)
        except BaseException:
            self._close_audit()
            raise
        self._tls = ssl_context is not None
        if config.unix_path is None:
            # Kept: after stop() the sockets are gone, and describe() still works.
            self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Send subscribers their last events, close every control connection, stop."""
        if self._server is None or self._stopped:
            return
        self._stopped = True
        self.hub.remove_listener(self._on_event)
        self._hub_listening = False
        # Let subscribers see the final state_changed before the close.
        try:
            async with asyncio.timeout(self.close_timeout):
                await asyncio.gather(
                    *(self._flush(session, sub) for session, sub in self._subscribers.items()),
                    return_exceptions=True,
                )
        except TimeoutError:
            pass
        self._server.close(close_connections=True, code=1001, reason="server stopped")
        await self._server.wait_closed()
        self._close_audit()

    def _check_bind(self, config: ControlConfig) -> ssl.SSLContext | None:
        if (config.cert is None) != (config.key is None):
            raise ConfigError("the control listener's TLS needs both a certificate and a key")
        if config.cert is not None and config.key is not None:
            if config.unix_path is not None:
                raise ConfigError("TLS is for TCP; a Unix socket is protected by its file mode")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(config.cert, config.key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load the control listener's TLS certificate "
                                  f"{config.cert} and key {config.key}: {exc}") from exc
            return context
        if config.unix_path is None and not is_loopback(config.host) and not config.allow_insecure:
            raise ConfigError(
                f"refusing to run the control listener on {config.host or 'every interface'} "
                "without TLS: tokens would cross the network in clear text; give a "
                "certificate and key (--control-cert, --control-key), bind to 127.0.0.1, "
                "or pass --insecure-control"
            )
        return None

    def _load_tokens(self, config: ControlConfig) -> None:
        operator, self.token_file, self.token_file_created = load_token(
            config.token, config.token_file, "operator")
        read_only, self.read_only_token_file, self.read_only_token_file_created = load_token(
            config.read_only_token, config.read_only_token_file, "read-only")
        if operator is None and read_only is None:
            raise ConfigError("the control listener needs a token: give --token, "
                              "--token-file or WSCONSOLE_TOKEN (or use --no-control)")
        if operator is not None and operator == read_only:
            raise ConfigError("the operator and read-only tokens must differ")
        self._tokens = []
        if operator is not None:
            self._tokens.append((operator.encode("ascii"), OPERATOR))
        if read_only is not None:
            self._tokens.append((read_only.encode("ascii"), READ_ONLY))

    # Where

    @property
    def port(self) -> int | None:
        """The TCP port it listens on (handy with port 0); None on a Unix socket."""
        return self._port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (``wss://`` with TLS); ``ws+unix:PATH`` on a Unix socket."""
        if self.config.unix_path is not None:
            return f"ws+unix:{self.config.unix_path}"
        host = self.config.host or "0.0.0.0"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = self.port if self.port is not None else self.config.port
        return f"{'wss' if self._tls else 'ws'}://{host}:{port}"

    @property
    def loopback(self) -> bool:
        """True if only this machine can reach the listener (then /metrics needs no token)."""
        return self.config.unix_path is not None or is_loopback(self.config.host)

    def describe(self) -> list[str]:
        """Human lines: where it listens, which token files; never a token."""
        lines = [f"control plane on {self.url}"
                 + ("" if self.loopback or self._tls else " (INSECURE: no TLS off loopback)")]
        for what, path, created in (
            ("operator", self.token_file, self.token_file_created),
            ("read-only", self.read_only_token_file, self.read_only_token_file_created),
        ):
            if path is not None:
                lines.append(f"{what} token {'created in' if created else 'read from'} {path}")
        if self.token_file is None and self._tokens and self._tokens[0][1] == OPERATOR:
            lines.append("operator token given on the command line or in WSCONSOLE_TOKEN")
        if self.config.unix_path is None:
            http_base = self.url.replace("ws", "http", 1)
            lines.append(f"metrics on {http_base}{METRICS_PATH}"
                         + ("" if self.loopback else " (bearer token required)"))
        if self.config.audit_log:
            lines.append(f"audit log: {self.config.audit_log}")
        return lines

    # HTTP: auth, metrics, health

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        # No browser page may drive the control plane: browsers always send
        # Origin on WebSocket handshakes, operator tools never do.
        if "Origin" in request.headers:
            return _response(http.HTTPStatus.FORBIDDEN,
                             "the control plane refuses requests from browsers (Origin)\n")
        path = request.path.partition("?")[0]
        if path in (METRICS_PATH, HEALTH_PATH):
            if request.method not in ("GET", "HEAD"):
                return _response(http.HTTPStatus.METHOD_NOT_ALLOWED, "Method Not Allowed\n",
                                 Allow="GET, HEAD")
            if path == METRICS_PATH and not self.loopback and self._authenticate(request) is None:
                return _unauthorized()
            head = request.method == "HEAD"
            return self._metrics(request, head) if path == METRICS_PATH else self._health(head)
        role = self._authenticate(request)
        if role is None:
            return _unauthorized()
        if request.method != "GET":
            return _response(http.HTTPStatus.METHOD_NOT_ALLOWED,
                             "control connections are WebSocket handshakes (GET)\n", Allow="GET")
        connection.wsc_role = role  # type: ignore[attr-defined]
        return None

    def _authenticate(self, request: Request) -> str | None:
        """The role of the request's bearer token, or None. Never logs the header."""
        values = request.headers.get_all("Authorization")
        if len(values) != 1:
            return None
        value = values[0]
        if len(value) > MAX_TOKEN_BYTES + len("Bearer "):
            return None
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            candidate = credentials.strip().encode("ascii")
        except UnicodeEncodeError:
            return None
        if not candidate:
            return None
        role = None
        # Compare against every token, always, so timing says nothing about which.
        for token, token_role in self._tokens:
            if hmac.compare_digest(candidate, token) and role is None:
                role = token_role
        return role

    def _metrics(self, request: Request, head: bool) -> Response:
        accept = ", ".join(request.headers.get_all("Accept")) or None
        body, content_type = self.metrics.render(accept)
        return _response(http.HTTPStatus.OK, body, head=head, content_type=content_type)

    def _health(self, head: bool) -> Response:
        status, data = health(self.hub)
        body = json.dumps(data, separators=(",", ":")) + "\n"
        return _response(http.HTTPStatus(status), body, head=head,
                         content_type="application/json")

    # WebSocket: dispatch

    async def _handler(self, connection: ServerConnection) -> None:
        role = getattr(connection, "wsc_role", None)
        if role is None:  # pragma: no cover - process_request always sets it
            await connection.close(1008, "unauthenticated")
            return
        session = _Session(connection, role, _address(connection),
                           _TokenBucket(self.rate_limit, self.rate_burst))
        self._sessions.add(session)
        logger.info("control connection from %s (%s)", session.client, role)
        try:
            async for frame in connection:
                reply, then = self._dispatch(session, frame)
                try:
                    await connection.send(reply)
                finally:
                    # An accepted shutdown runs even if its operator just left.
                    if then is not None:
                        then()
        except ConnectionClosed:
            pass
        finally:
            self._unsubscribe(session)
            self._sessions.discard(session)

    def _dispatch(self, session: _Session, frame: str | bytes) -> tuple[str, Callable[[], None] | None]:
        """Answer one frame: (reply frame, work to do once the reply is sent)."""
        # Every frame costs a token, valid or not; parsing is the cheap part,
        # and it gives the id that the rate_limited error must carry.
        allowed = session.bucket.take()
        try:
            request = wire.parse_request(frame)
        except ProtocolViolation as exc:
            request_id = getattr(exc, "request_id", None)
            op = _op_of_invalid(frame) if request_id is not None else None
            self._count(op or "invalid", exc.code)
            if op in wire.MUTATING_OPERATIONS and allowed:
                self._audit_entry(session, op, _raw_args(frame), error=exc)
            return wire.encode_error(request_id, exc.code, exc.message), None
        op = request.op
        if not allowed:
            self._count(op, ErrorCode.RATE_LIMITED)
            # Not audited: a flood must not flood the audit log too.
            return wire.encode_error(
                request.id, ErrorCode.RATE_LIMITED,
                f"more than {self.rate_limit:g} requests per second on this connection; "
                "slow down"), None
        mutating = op in wire.MUTATING_OPERATIONS
        then: Callable[[], None] | None = None
        try:
            if mutating and session.role != OPERATOR:
                raise Forbidden(f"the {session.role} role may not run {op}")
            result = getattr(self, f"_op_{op}")(session, request)
        except WsconsoleError as exc:
            self._count(op, exc.code)
            if mutating:
                self._audit_entry(session, op, request.args, error=exc)
            return wire.encode_error(request.id, exc.code, exc.message), None
        except Exception as exc:
            logger.exception("control operation %s failed", op)
            self._count(op, ErrorCode.INTERNAL)
            if mutating:
                self._audit_entry(session, op, request.args, error=exc)
            return wire.encode_error(request.id, ErrorCode.INTERNAL,
                                     "internal error; the server logged it"), None
        if isinstance(result, _ReplyFirst):
            result, then = result.result, result.then
        self._count(op, "ok")
        if mutating:
            self._audit_entry(session, op, request.args, result=result)
        return wire.encode_reply(request.id, result), then

    def _count(self, op: str, outcome: str) -> None:
        self.hub.control_requests[(op, outcome)] += 1

    # Operations: one method per wire operation, (session, request) -> result

    def _op_hello(self, session: _Session, request: wire.Request) -> dict[str, Any]:
        return {
            "server": "wsconsole",
            "protocol": wire.PROTOCOL_VERSION,
            "node": self.hub.node,
            "role": session.role,
            "operations": list(wire.OPERATIONS),
            "mutating": sorted(wire.MUTATING_OPERATIONS),
            "state": self.hub.state,
            "max_request_bytes": self.config.max_request_bytes,
        }

    def _op_list(self, session: _Session, request: wire.Request) -> dict[str, Any]:
        args = request.args
        registry = self.hub.registry
        page = registry.query(
            user=args["user"], path=args["path"], topic=args["topic"],
            id_prefix=args["id_prefix"], sort=args["sort"], limit=args["limit"],
            cursor=args["cursor"], refresh=self.hub.refresh,
        )
        result: dict[str, Any] = {
            "connections": [record.summary() for record in page.records],
            "total": page.total,
            "next_cursor": page.next_cursor,
        }
        if args["groups"]:
            limit = args["group_limit"]
            truncated = False
            groups: dict[str, dict[str, int]] = {}
            for name, counts in (("users", registry.user_counts()),
                                 ("paths", registry.path_counts()),
                                 ("topics", registry.topic_counts())):
                if len(counts) > limit:
                    truncated = True
                    # O(n log limit): 10,000 distinct users, the 200 largest.
                    groups[name] = dict(_largest(limit, counts))
                else:
                    groups[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            result["groups"] = groups
            result["groups_truncated"] = truncated
        return result

    def _op_get(self, session: _Session, request: wire.Request) -> dict[str, Any]:
        record = self.hub.registry.get(request.args["id"])
        if record is None:
            raise UnknownConnection(f"no open connection with id {request.args['id']}")
        self.hub.refresh(record)
        return record.detail()

    def _op_send(self, session: _Session, request: wire.Request) -> dict[str, Any]:
        result = self.hub.send(request.selector, wire.decode_payload(request.args),
                               dry_run=request.args["dry_run"])
        return result.as_dict()

    def _op_disconnect(self, session: _Session, request: wire.Request) -> dict[str, Any]:
        args = request.args
        return {"count": self.hub.disconnect(request.selector, args["code"], args["reason"])}

    def _op_shutdown(self, session: _Session, request: wire.Request) -> _ReplyFirst:
        args = request.args
        hub = self.hub
        mode = args["mode"]
        # Check here what hub.shutdown would refuse, so that a refusal is the
        # reply, and the reply can go out before the shutdown starts.
        escalation = mode == "graceful" and hub.shutdown_mode == "keep_alive"
        if hub.state != HubState.SERVING and not (escalation and hub.state == HubState.DRAINING):
            raise ServerStateError(f"the server is already {hub.state}")
        result = {"mode": mode, "state": HubState.DRAINING,
                  "connections": len(hub.registry), "deadline": args["deadline"]}

        def start_shutdown() -> None:
            try:
                hub.shutdown(mode, code=args["code"], reason=args["reason"],
                             deadline=args["deadline"])
            except WsconsoleError as exc:  # pragma: no cover - raced another shutdown
                logger.warning("shutdown after reply failed: %s", exc)

        return _ReplyFirst(result, start_shutdown)

    def _op_stats(self, session: _Session, request: wire.Request) -> dict[str, Any]:
        return self.hub.stats()

    def _op_subscribe(self, session: _Session, request: wire.Request) -> dict[str, Any]:
        interval = float(request.args["stats_interval"])
        subscription = session.subscription
        if subscription is None:
            subscription = _Subscription(interval, self.burst_threshold, self.burst_head,
                                         self.max_pending_events)
            session.subscription = subscription
            self._subscribers[session] = subscription
            if not self._hub_listening and not self._stopped:
                # Only while someone listens: with a listener, the hub builds
                # an event dict on every connect and close.
                self.hub.add_listener(self._on_event)
                self._hub_listening = True
            session.pump = asyncio.get_running_loop().create_task(
                self._pump(session, subscription))
        else:
            subscription.stats_interval = interval
        return {"subscribed": True, "stats_interval": interval}

    def _op_unsubscribe(self, session: _Session, request: wire.Request) -> dict[str, Any]:
        was = session.subscription is not None
        self._unsubscribe(session)
        return {"subscribed": False, "was_subscribed": was}

    # Events

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        # Called synchronously by the hub, on its hot path when connections
        # open and close: O(1) per subscriber, no awaiting, no encoding.
        if not self._subscribers:
            return
        now = time.time()
        for subscription in self._subscribers.values():
            subscription.push(kind, data, now)

    def _unsubscribe(self, session: _Session) -> None:
        self._subscribers.pop(session, None)
        if not self._subscribers and self._hub_listening:
            self.hub.remove_listener(self._on_event)
            self._hub_listening = False
        session.subscription = None
        if session.pump is not None:
            session.pump.cancel()
            session.pump = None

    async def _pump(self, session: _Session, subscription: _Subscription) -> None:
        """Flush a subscriber's events at most every ``flush_interval``, and sample stats.

        Stats events use the hub's sampled totals: with many subscribers and
        10,000 connections, each event would otherwise walk every connection."""
        loop = asyncio.get_running_loop()
        subscription.push_stats(self.hub.stats(sampled=True), time.time())
        next_stats = loop.time() + subscription.stats_interval
        try:
            while True:
                timeout = next_stats - loop.time()
                if timeout > 0 and not subscription.wakeup.is_set():
                    try:
                        async with asyncio.timeout(timeout):
                            await subscription.wakeup.wait()
                    except TimeoutError:
                        pass
                if loop.time() >= next_stats:
                    subscription.push_stats(self.hub.stats(sampled=True), time.time())
                    next_stats = loop.time() + subscription.stats_interval
                # While these sends wait for a slow subscriber, new events
                # pile up in the bounded window, not in the socket buffer.
                await self._flush(session, subscription)
                await asyncio.sleep(self.flush_interval)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("event stream to %s failed", session.client)
            await session.connection.close(1011, "event stream failed")

    @staticmethod
    async def _flush(session: _Session, subscription: _Subscription) -> None:
        for frame in subscription.take(time.time()):
            await session.connection.send(frame)

    # Audit

    def _audit_entry(self, session: _Session, op: str, args: Any, *,
                     result: Any = None, error: BaseException | None = None) -> None:
        entry: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "node": self.hub.node,
            "role": session.role,
            "client": session.client,
            "op": op,
            "args": _summarize_args(op, args),
        }
        if error is None:
            entry["result"] = _summarize_result(op, result)
        elif isinstance(error, WsconsoleError):
            entry["error"] = {"code": error.code, "message": error.message}
        else:
            entry["error"] = {"code": ErrorCode.INTERNAL, "message": "internal error"}
        if self._audit is not None:
            try:
                self._audit.write(json.dumps(entry, ensure_ascii=False) + "\n")
                self._audit.flush()
            except (OSError, ValueError):
                logger.exception("cannot write the audit log %s", self.config.audit_log)
        self.hub.emit(EventKind.OPERATOR_ACTION, entry)

    def _close_audit(self) -> None:
        if self._audit is not None:
            try:
                self._audit.close()
            finally:
                self._audit = None


# Helpers


def _largest(n: int, counts: dict[str, int]) -> list[tuple[str, int]]:
    import heapq

    return heapq.nlargest(n, counts.items(), key=lambda kv: kv[1])


def _open_audit_log(path: str) -> Any:
    path = os.path.expanduser(path)
    try:
        # Operators' message snippets and addresses: not for everyone to read.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open the audit log {path}: {exc.strerror}") from exc
    return os.fdopen(fd, "a", encoding="utf-8")


def _response(status: http.HTTPStatus, body: str | bytes, *, head: bool = False,
              content_type: str = "text/plain; charset=utf-8", **headers: str) -> Response:
    data = body.encode() if isinstance(body, str) else body
    hdrs = Headers()
    hdrs["Content-Type"] = content_type
    hdrs["Content-Length"] = str(len(data))
    hdrs["Cache-Control"] = "no-store"
    for name, value in headers.items():
        hdrs[name.replace("_", "-")] = value
    return Response(status.value, status.phrase, hdrs, b"" if head else data)


def _unauthorized() -> Response:
    return _response(http.HTTPStatus.UNAUTHORIZED,
                     "a valid bearer token is required (Authorization: Bearer TOKEN)\n",
                     WWW_Authenticate='Bearer realm="wsconsole"')


def _address(connection: ServerConnection) -> str:
    peer = connection.remote_address
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer) if peer else "unix"


def _op_of_invalid(frame: str | bytes) -> str | None:
    """The known operation of a request that failed validation, else None.

    Only error paths re-parse, so that refused mutating requests are audited
    and counted by operation; unknown names stay out of the metric labels.
    """
    try:
        op = json.loads(frame).get("op")
    except (ValueError, AttributeError, RecursionError):
        return None
    return op if isinstance(op, str) and op in wire.OPERATIONS else None


def _raw_args(frame: str | bytes) -> Any:
    try:
        args = json.loads(frame).get("args")
    except (ValueError, AttributeError, RecursionError):
        return None
    return args


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
    if isinstance(result, dict) and op == "send":
        return {k: result[k] for k in ("recipients", "delivered", "skipped", "dry_run")
                if k in result}
    return result


def _clip(value: str, limit: int = AUDIT_TEXT_LIMIT) -> str:
    return value if len(value) <= limit else value[:limit] + "…"
