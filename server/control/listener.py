"""The control listener: the transport of the control plane.

It accepts operator connections on its own port (loopback by default) or Unix
socket, with TLS when asked, lets :mod:`.auth` check their bearer token in the
opening handshake, answers ``GET /metrics`` and ``GET /healthz`` on the same
port (this node's), and turns each frame into a reply by way of
:mod:`.operations`, which ask a :class:`~wsconsole.server.fleet.Fleet`,
counting every request and writing every mutating one to :mod:`.audit`.

Fail closed: no token, an unreadable token file, or a non-loopback bind
without TLS (unless ``allow_insecure``) refuses to start with a ConfigError.
Tokens and ``Authorization`` headers are never logged.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, Callable

from websockets.asyncio.server import Server, ServerConnection, unix_serve
from websockets.asyncio.server import serve as websockets_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .. import wire
from ..addresses import host_port, is_loopback
from ..config import ControlConfig
from ..cycles import ReleasingServerConnection
from ..errors import (
    ConfigError,
    InternalError,
    ProtocolViolation,
    RateLimited,
    ServerStateError,
    WsconsoleError,
)
from ..fleet import Fleet, LocalFleet
from ..limits import ControlBudgets, TokenBucket
from ..metrics import Metrics, health
from ..protocol import EventKind, Role
from ..redaction import RedactingLogger
from ..responses import http_response
from .audit import AuditLog
from .auth import Authenticator, authorize
from .events import EventStream
from .fairness import FairTurns, TimedSteps, unwatch_collections, watch_collections
from .operations import Operations, ReplyFirst
from .tap_stream import TapStreams

if TYPE_CHECKING:  # pragma: no cover
    from ..hub import Hub

__all__ = [
    "ControlListener",
    "Session",
    "METRICS_PATH",
    "HEALTH_PATH",
    "is_loopback",
    "websockets_logger",
    "FrameSizesOnlyLogger",
]

logger = logging.getLogger("wsconsole.control")

websockets_logger = logging.getLogger("wsconsole.control.websockets")
"""The logger of the control listener's websockets server. With DEBUG on,
websockets logs every request header, ``Authorization`` (our bearer token)
included: the listener hands websockets this logger wrapped in a
:class:`RedactingLogger` with its hub's rules, so those lines arrive redacted."""

METRICS_PATH = "/metrics"
"""Prometheus exposition on the control listener."""
HEALTH_PATH = "/healthz"
"""JSON health check on the control listener (never needs a token)."""


class FrameSizesOnlyLogger(RedactingLogger):
    """The control listener's websockets logger: redacted, and frames by size only.

    At DEBUG, websockets logs the first bytes of every frame it sends and
    receives. On the control plane those are tap records (the users' data)
    and operators' messages: they are logged as their opcode and size.
    """

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if msg in ("< %s", "> %s") and args and hasattr(args[0], "opcode") and \
                hasattr(args[0], "data"):
            frame = args[0]
            args = (f"{getattr(frame.opcode, 'name', frame.opcode)} [{len(frame.data)} bytes]",)
        # One more frame between websockets' call and the record.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        super().log(level, msg, *args, **kwargs)



class Session:
    """One authenticated control connection."""

    __slots__ = ("connection", "role", "client", "bucket")

    def __init__(self, connection: ServerConnection, role: Role, client: str,
                 bucket: TokenBucket) -> None:
        self.connection = connection
        self.role = role
        """The role its token grants (see :mod:`.auth`)."""
        self.client = client
        """The operator's address, ``host:port``, as the audit log names it."""
        self.bucket = bucket
        """This connection's own request budget."""


class ControlListener:
    """The control plane of one server: auth, roles, dispatch, events, audit.

    Built by :func:`wsconsole.server.serve` when given ``control=ControlConfig(...)``;
    started after the public server, stopped once it has fully stopped, so that
    an operator can watch and act on a draining server until its end.
    """

    def __init__(self, hub: Hub, config: ControlConfig, fleet: Fleet | None = None) -> None:
        self.hub = hub
        """This process's hub: its metrics, health and request counts."""
        self.config = config
        """Where to listen and whom to let in."""
        self.fleet = fleet if fleet is not None else LocalFleet(hub)
        """What the operations act on (by default this process's hub alone)."""
        self.metrics: Metrics | None = None
        """The Prometheus exposition, created at start."""
        self.events = EventStream(self.fleet)
        """The subscribers and their event streams, and this node's backlog."""
        self.audit = AuditLog(config.audit_log, hub.node, self._publish_action)
        """The audit log of mutating requests (opened at start)."""
        # A cluster's nodes write what they do for another node's operator here too.
        self.fleet.audit_log = self.audit
        self.taps = TapStreams(self.fleet, self.audit)
        """The live taps, each on the control connection that started it."""
        self.operations = Operations(self.fleet, config, self.events, self.audit, self.taps)
        """What each request does."""
        self.budgets = ControlBudgets(
            connection=(config.connection_rate, config.connection_burst),
            token=(config.token_rate, config.token_burst),
            total=(config.total_rate, config.total_burst),
            clock=time.monotonic,
        )
        """The request budgets: per connection, per token, in total."""
        self.turns = FairTurns(config.loop_share)
        """At most one control request starts per event-loop iteration, and
        together they take at most ``loop_share`` of the loop's time."""
        self.connections: set[ServerConnection] = set()
        """Control connections past the handshake's checks, until their TCP
        connection is lost (what ``max_connections`` counts)."""
        self._auth: Authenticator | None = None
        self._server: Server | None = None
        self._port: int | None = None
        self._tls = False
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
        self._auth = Authenticator(config)
        self.audit.open()
        self.metrics = Metrics(
            self.hub,
            route_templates=config.metrics_route_templates or None,
            max_paths=config.metrics_max_paths,
            audit=self.audit,
            # Cluster mode: the node's cluster metrics too.
            cluster=None if isinstance(self.fleet, LocalFleet) else self.fleet,
        )
        common: dict[str, Any] = dict(
            process_request=self._process_request,
            # An operator's connection, a scrape: nothing left in cycles when
            # it ends (frozen, it would wait for a thaw; server/cycles.py).
            create_connection=ReleasingServerConnection,
            max_size=config.max_request_bytes,
            # Compression would let a small frame inflate past max_size checks'
            # intent, and control traffic is small anyway.
            compression=None,
            server_header="wsconsole",
            # The names the operator added to the hub's rules apply here too.
            logger=FrameSizesOnlyLogger(websockets_logger, self.hub.redaction),
            ssl=ssl_context,
        )
        try:
            if config.unix_path is not None:
                self._server = await unix_serve(self._handler, config.unix_path, **common)
            else:
                self._server = await websockets_serve(
                    self._handler, config.host, config.port, **common)
        except BaseException:
            self.audit.close()
            raise
        self._tls = ssl_context is not None
        # The requests' turns are charged their own time, not the collector's.
        watch_collections()
        # The backlog hears this node's events from the hub directly: in a
        # cluster, a listener on the fleet would make every other node forward
        # its events here. Operator actions come by the audit log.
        self.hub.add_listener(self._remember)
        _limit_receive_buffers(self._server)
        if config.unix_path is None:
            # Kept: after stop() the sockets are gone, and describe() still works.
            self._port = self._server.sockets[0].getsockname()[1]
        self.fleet.control_url = self.url

    async def stop(self) -> None:
        """Send subscribers their last events, close every control connection, stop."""
        if self._server is None or self._stopped:
            return
        self._stopped = True
        # Let tappers and subscribers see their last events before the close.
        await self.taps.stop_all()
        await self.events.stop()
        self.hub.remove_listener(self._remember)
        self._server.close(close_connections=True, code=1001, reason="server stopped")
        await self._server.wait_closed()
        unwatch_collections()
        self.audit.close()

    def _remember(self, kind: str, data: dict[str, Any]) -> None:
        if kind != EventKind.OPERATOR_ACTION:  # those come by _publish_action
            self.events.backlog.record(kind, data)

    def _publish_action(self, kind: str, data: dict[str, Any]) -> None:
        # The audit log's events: every subscriber, and this node's backlog.
        self.events.backlog.record(kind, data)
        self.fleet.publish(kind, data)

    def reopen_audit_log(self) -> None:
        """Reopen the audit file at its path, after a rotation (``wsconsole serve``
        calls it on SIGHUP). Never raises: a file that cannot be reopened shows
        as failing in ``stats`` and ``/healthz``, and refuses mutating requests."""
        self.audit.reopen()

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

    # Where

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets (empty before start)."""
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def port(self) -> int | None:
        """The TCP port it listens on (handy with port 0); None on a Unix socket."""
        return self._port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (``wss://`` with TLS); ``ws+unix:PATH`` on a Unix socket."""
        if self.config.unix_path is not None:
            return f"ws+unix:{self.config.unix_path}"
        port = self.port if self.port is not None else self.config.port
        return f"{'wss' if self._tls else 'ws'}://{host_port(self.config.host or '0.0.0.0', port)}"

    @property
    def loopback(self) -> bool:
        """True if only this machine can reach the listener (then /metrics needs no token)."""
        return self.config.unix_path is not None or is_loopback(self.config.host)

    def describe(self) -> list[str]:
        """Human lines: where it listens, which token files; never a token."""
        lines = [f"control plane on {self.url}"
                 + ("" if self.loopback or self._tls else " (INSECURE: no TLS off loopback)")]
        if self._auth is not None:
            lines += self._auth.describe()
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
            return http_response(http.HTTPStatus.FORBIDDEN,
                                 "the control plane refuses requests from browsers (Origin)\n")
        assert self._auth is not None
        path = request.path.partition("?")[0]
        if path in (METRICS_PATH, HEALTH_PATH):
            if request.method not in ("GET", "HEAD"):
                return http_response(http.HTTPStatus.METHOD_NOT_ALLOWED, "Method Not Allowed\n",
                                     Allow="GET, HEAD")
            if (path == METRICS_PATH and not self.loopback
                    and self._auth.role_of(request.headers) is None):
                return _unauthorized()
            head = request.method == "HEAD"
            return self._metrics(request, head) if path == METRICS_PATH else self._health(head)
        role = self._auth.role_of(request.headers)
        if role is None:
            return _unauthorized()
        if request.method != "GET":
            return http_response(http.HTTPStatus.METHOD_NOT_ALLOWED,
                                 "control connections are WebSocket handshakes (GET)\n", Allow="GET")
        maximum = self.config.max_connections
        if maximum and len(self.connections) >= maximum:
            self.hub.control_connections_refused += 1
            return http_response(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"too many control connections ({maximum} open, the most this control "
                "plane accepts: max_connections); close one or retry later\n",
                Retry_After="1")
        self.connections.add(connection)
        # Counted until the TCP connection is gone, however the handshake ends
        # (connection_lost_waiter is websockets' own; tests pin it).
        connection.connection_lost_waiter.add_done_callback(
            lambda _: self.connections.discard(connection))
        connection.wsc_role = role  # type: ignore[attr-defined]
        return None

    def _metrics(self, request: Request, head: bool) -> Response:
        assert self.metrics is not None
        accept = ", ".join(request.headers.get_all("Accept")) or None
        body, content_type = self.metrics.render(accept)
        return http_response(http.HTTPStatus.OK, body, head=head, content_type=content_type)

    def _health(self, head: bool) -> Response:
        status, data = health(self.hub, self.audit)
        body = json.dumps(data, separators=(",", ":")) + "\n"
        return http_response(http.HTTPStatus(status), body, head=head,
                             content_type="application/json")

    # WebSocket: dispatch

    async def _handler(self, connection: ServerConnection) -> None:
        role = getattr(connection, "wsc_role", None)
        if role is None:  # pragma: no cover - process_request always sets it
            await connection.close(1008, "unauthenticated")
            return
        session = Session(connection, role, _address(connection),
                          self.budgets.connection_bucket())
        logger.info("control connection from %s (%s)", session.client, role)
        try:
            async for frame in connection:
                await self.turns.take()
                # Charged for the loop time it ran, not for what it waited on
                # (the other nodes of a cluster, for one).
                dispatch = TimedSteps(self._dispatch(session, frame))
                try:
                    reply, then = await dispatch
                except Exception:
                    # Nothing a client sends may end its connection (or anyone's).
                    logger.exception("control request from %s failed", session.client)
                    reply, then = _error_frame(None, InternalError(
                        "internal error; the server logged it")), None
                self.turns.spent(dispatch.seconds)
                try:
                    await connection.send(reply)
                finally:
                    # An accepted shutdown runs even if its operator just left.
                    if then is not None:
                        then()
        except ConnectionClosed:
            pass
        finally:
            self.events.unsubscribe(session)
            self.taps.session_closed(session)

    async def _dispatch(self, session: Session, frame: str | bytes) -> tuple[str, Callable[[], None] | None]:
        """Answer one frame: (reply frame, work to do once the reply is sent).

        A request that names a mutating operation is one audit line, whatever
        becomes of it, except when the rate limiter refuses it: refused before
        it runs (the line says why), or accepted, in which case the line is
        written before it runs, and a line that cannot be written refuses it
        (``audit_failed``).
        """
        # Every frame costs a token, valid or not; parsing is the cheap part,
        # and it gives the id that the rate_limited error must carry.
        refusal = self.budgets.admit(session.bucket, session.role)
        allowed = refusal is None
        try:
            request = wire.parse_request(frame)
        except ProtocolViolation as exc:
            # The error says what the frame held: refused mutating requests
            # are audited, and counted by operation (unknown names are not).
            self._count(exc.op or "invalid", exc.code)
            if exc.op in wire.MUTATING_OPERATIONS and allowed:
                self.audit.refuse(self.audit.entry(session.role, session.client, exc.op,
                                                   exc.raw_args), exc)
            return _error_frame(exc.request_id, exc), None
        op = request.op
        if not allowed:
            limited = RateLimited(refusal)
            self._count(op, limited.code)
            # Not audited: a flood must not flood the audit log too.
            return _error_frame(request.id, limited), None
        entry: dict[str, Any] | None = None
        try:
            if op in wire.MUTATING_OPERATIONS:
                entry = self.audit.entry(session.role, session.client, op, request.args)
                try:
                    authorize(session.role, op)
                except WsconsoleError as exc:
                    self.audit.refuse(entry, exc)
                    raise
                self.audit.accept(entry)  # AuditFailed: nothing is run
            else:
                authorize(session.role, op)
        except WsconsoleError as exc:
            self._count(op, exc.code)
            return _error_frame(request.id, exc), None
        then: Callable[[], None] | None = None
        try:
            result = await self.operations.run(session, request)
        except Exception as exc:
            if isinstance(exc, WsconsoleError):
                error = exc
            else:
                logger.exception("control operation %s failed", op)
                error = InternalError("internal error; the server logged it")
            self._count(op, error.code)
            if entry is not None:
                self.audit.finish(entry, op, error=error)
            return _error_frame(request.id, error), None
        if isinstance(result, ReplyFirst):
            result, then = result.result, result.then
        if entry is not None:
            self.audit.finish(entry, op, result=result)
        try:
            reply = wire.encode_reply(request.id, result)
        except ValueError:
            # A value of the application's (an identity, a topic) that JSON
            # text cannot carry: this reply fails, the connection stays.
            logger.exception("the reply to %s cannot be encoded", op)
            error = InternalError("internal error: the reply could not be encoded; "
                                  "the server logged it")
            self._count(op, error.code)
            return _error_frame(request.id, error), then
        self._count(op, "ok")
        return reply, then

    def _count(self, op: str, outcome: str) -> None:
        self.hub.control_requests[(op, outcome)] += 1


# Helpers


def _error_frame(request_id: int | str | None, error: WsconsoleError) -> str:
    """The error reply; a message that JSON text cannot carry is spelled out."""
    try:
        return wire.encode_error(request_id, error.code, error.message, error.details())
    except ValueError:
        message = error.message.encode("utf-8", "backslashreplace").decode("utf-8")
        return wire.encode_error(request_id, error.code, message)


CONTROL_RECEIVE_BUFFER = 4 * 1024
"""Kernel receive buffer of a control connection, in bytes. websockets parses
a whole read at once, and every readable connection is read in the same loop
iteration: with this buffer one read is about a hundred small requests, so
twenty operators pipelining at once cost the loop a few milliseconds, not
the 350 ms of twenty 42 KB reads. A 1 MiB ``send`` still crosses loopback in
under 0.1 s; over a long link, large requests are slower (a small window)."""


def _limit_receive_buffers(server: Server) -> None:
    # On the listening sockets: accepted connections inherit the size, and
    # the window their handshake advertises is already the small one (set
    # later, the window already offered would still let a large burst in).
    for sock in server.sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CONTROL_RECEIVE_BUFFER)
            except OSError:  # pragma: no cover - a platform without the option
                pass


def _unauthorized() -> Response:
    return http_response(http.HTTPStatus.UNAUTHORIZED,
                         "a valid bearer token is required (Authorization: Bearer TOKEN)\n",
                         WWW_Authenticate='Bearer realm="wsconsole"')


def _address(connection: ServerConnection) -> str:
    peer = connection.remote_address
    if isinstance(peer, tuple) and len(peer) >= 2:
        return host_port(str(peer[0]), peer[1])
    return str(peer) if peer else "unix"
