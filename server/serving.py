"""``serve``: a drop-in for ``websockets.asyncio.server.serve`` that feeds a hub.

``serve``, ``unix_serve``, ``route`` and ``unix_route`` take websockets'
arguments and return websockets' ``Server`` (a subclass with ``hub`` and
``control``), built by websockets' own ``serve``. The handler still receives
the ordinary websockets ``ServerConnection`` (a subclass of it, or of the
user's own ``create_connection``); the user's ``process_request`` and
``process_response`` still run.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import http
import ipaddress
import logging
import os
import socket
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generator, Iterable
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.frames import BINARY, CONT, TEXT, CloseCode
from websockets.protocol import OPEN
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from .addresses import host_port
from .cycles import release_closed_connection, release_transport
from .errors import IdentifyError
from .exhaustion import ACCEPT_FAILURE_LOG_INTERVAL, AcceptFailureLog, open_file_limit
from .hub import DEFAULT_SLOW_CONSUMER_LIMIT, Hub
from .limits import (
    DEFAULT_MAX_HANDSHAKES,
    DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
    HandshakeLimiter,
    ShedLimit,
    address_key,
    descriptor_shortfall,
    is_loopback_host,
)
from .protocol import ShutdownMode
from .responses import http_response
from .tap import DEFAULT_MAX_TAPS
from .tapping import TapFilter, Taps
from .redaction import DEFAULT_RULES, RedactingLogger

if TYPE_CHECKING:  # pragma: no cover
    from websockets.asyncio.router import Router

__all__ = [
    "serve",
    "unix_serve",
    "route",
    "unix_route",
    "WsconsoleServer",
    "default_identify",
    "default_node",
    "HEALTH_PATH",
    "hub_of",
]

logger = logging.getLogger("wsconsole.server")

HEALTH_PATH = "/healthz"
"""Path of the public health check."""

Handler = Callable[[ServerConnection], Awaitable[None]]
Identify = Callable[[ServerConnection], str]


def hub_of(connection: ServerConnection) -> Hub:
    """The hub of the server a connection belongs to (for handlers: topics, sends)."""
    try:
        return connection.wsc_hub  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError("this connection was not accepted by wsconsole.server.serve") from None


def default_node() -> str:
    """This process's default node name: ``hostname:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def default_identify(connection: ServerConnection) -> str:
    """The basic-auth username if ``basic_auth`` ran, else ``?user=``, else anonymous."""
    username = getattr(connection, "username", None)
    if isinstance(username, str) and username:
        return username
    request = connection.request
    if request is not None and "?" in request.path:
        values = parse_qs(request.path.partition("?")[2]).get("user")
        if values and values[0]:
            return values[0]
    return "anonymous"


# The hot path. Counting happens in the connection, which websockets creates
# from our class (``create_connection``): bytes as they cross the socket,
# messages as frames are parsed and serialized. The sans-I/O protocol is left
# alone: swapping its class after websockets built it would cost every
# attribute access on it its fast path (about 7% of echo throughput).
#
# Per message in: one increment in data_received (bytes) and one in
# process_event (messages); out: a look at the first byte of each serialized
# frame in send_data (a frame that does not end its message is also told to
# the hub: Hub.send shares no frame with a connection halfway through a
# fragmented message, without reading each one's send_in_progress). Each
# hook adds to websockets' method and then calls it:
# no websockets code is copied. Totals are summed from records when read, and
# last activity is sampled once a second by the hub, so the clock is never
# read per message (tests/benchmarks/bench_server.py keeps this within budget).
#
# What the hooks rely on beyond websockets' documented API is pinned by
# tests/server/test_dropin.py: Connection.data_received feeds every parsed
# event to process_event; send_data drains protocol.writes, one serialized
# frame per item; pongs reach acknowledge_pings.

_FIN_DATA_FIRST_BYTES = frozenset({0x80, 0x81, 0x82})
"""First byte & 0x8F of a frame that ends a message: FIN with CONT, TEXT or BINARY."""

_CLOSE_FIRST_BYTE = 0x88
"""First byte of a close frame: FIN with CLOSE (a control frame is never
fragmented nor compressed)."""


def _shed_response(why: str) -> bytes:
    body = f"{why}; retry later\n".encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body))


SHED_RESPONSES = {
    ShedLimit.TOTAL: _shed_response("too many opening handshakes in progress"),
    ShedLimit.PER_ADDRESS: _shed_response(
        "too many opening handshakes in progress from your address"),
}
"""What a shed connection is sent before it is closed, built once: the client
may not even have sent its request, so this is all it costs."""

_NOT_COUNTED = object()
"""``wsc_handshake`` of a connection whose handshake is not (or no longer) counted."""
_SHED = object()
"""``wsc_handshake`` of a connection that was shed: websockets never saw it."""


def _tracked_connection_class(
    base: type[ServerConnection],
    hub: Hub,
    trusted: list[ipaddress._BaseNetwork],
    *,
    for_existing_instances: bool = False,
    cap_loopback_per_address: bool = False,
) -> type[ServerConnection]:
    """A subclass of ``base`` that reports to ``hub``.

    ``for_existing_instances`` builds the variant that a connection made by a
    user's factory function is switched to (``__class__`` assignment needs
    the same layout, so it has no slots of its own).
    """
    base_data_received = base.data_received
    base_process_event = base.process_event
    base_send_data = base.send_data
    limiter = hub.handshakes

    class TrackedServerConnection(base):  # type: ignore[valid-type, misc]
        """A websockets ServerConnection that reports to a wsconsole hub."""

        wsc_hub = hub

        if for_existing_instances:
            __slots__ = ()
            wsc_user: str | None = None
            wsc_record: Any = None
            wsc_handshake: Any = _NOT_COUNTED
        else:
            # Slots, not __dict__ entries: CPython shares one key table among
            # a class's instances for at most 30 names; websockets' connection
            # has 27, basic_auth adds `username`, and two more names of ours
            # would give every connection a full __dict__ (~1.3 KiB more each).
            __slots__ = ("wsc_user", "wsc_record", "wsc_handshake")

            def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
                self.wsc_user = None
                self.wsc_record = None
                self.wsc_handshake = _NOT_COUNTED
                super().__init__(protocol, *args, **kwargs)

        # The hooks call base methods directly: super() would build a proxy
        # object per call, on the path of every message.
        def data_received(self, data: bytes) -> None:
            record = self.wsc_record
            if record is not None:
                record.bytes_in += len(data)
            base_data_received(self, data)

        def process_event(self, event: Any) -> None:
            # Every parsed event: the handshake request first (no record yet),
            # then frames; a data message ends with its FIN frame.
            record = self.wsc_record
            if record is not None and event.fin:
                opcode = event.opcode
                if opcode is TEXT or opcode is BINARY or opcode is CONT:
                    record.msgs_in += 1
            base_process_event(self, event)

        def send_data(self) -> None:
            record = self.wsc_record
            if record is not None:
                # Each item is one serialized frame (or b"" for EOF).
                for chunk in self.protocol.writes:
                    if chunk:
                        record.bytes_out += len(chunk)
                        first = chunk[0]
                        if first & 0x8F in _FIN_DATA_FIRST_BYTES:
                            record.msgs_out += 1
                        elif not first & 0x80:
                            # A fragment that does not end its message: no
                            # broadcast may share a frame with it until it ends.
                            hub.fragment_sent(record)
                        elif first == _CLOSE_FIRST_BYTE:
                            # The protocol left OPEN as it queued this: no
                            # broadcast may write to it any more.
                            hub.closing_started(record)
                    else:
                        # The end of the stream: queued as the protocol left
                        # OPEN (failing without a close frame) or after.
                        hub.closing_started(record)
            base_send_data(self)

        def connection_made(self, transport: Any) -> None:
            # Shed before anything is read: an idle or half-open client then
            # costs a descriptor for one loop iteration, not open_timeout.
            peer = transport.get_extra_info("peername")
            key = None  # a Unix socket: no client address to count
            if isinstance(peer, tuple) and peer:
                host = str(peer[0])
                # Every client behind a proxy has the proxy's address: a
                # trusted one, or any on loopback (a local proxy or tool),
                # counts in the total only.
                if not ((trusted and _is_trusted(host, trusted))
                        or (not cap_loopback_per_address and is_loopback_host(host))):
                    key = address_key(host)
            shed = limiter.admit(key)
            if shed is not None:
                # websockets is not told (no handler task, no log line per
                # connection): the transport is closed before it reads a byte,
                # and connection_lost below ends it.
                self.wsc_handshake = _SHED
                transport.write(SHED_RESPONSES[shed])
                transport.close()
                release_transport(transport)
                return
            self.wsc_handshake = key
            super().connection_made(transport)

        def _wsc_handshake_ended(self) -> None:
            key = self.wsc_handshake
            if key is not _NOT_COUNTED and key is not _SHED:
                self.wsc_handshake = _NOT_COUNTED
                limiter.release(key)

        async def handshake(self, *args: Any, **kwargs: Any) -> None:
            try:
                await super().handshake(*args, **kwargs)
            finally:
                # However it ended: accepted, refused, timed out, cancelled.
                self._wsc_handshake_ended()
                if self.connection_lost_waiter.done():
                    # Lost during the handshake: what the handshake stored
                    # since connection_lost must not hold it in a cycle.
                    release_closed_connection(self)
            # Register here rather than in a wrapper around the user's handler:
            # a wrapper coroutine would add a frame to every resume of the
            # handler, i.e. to every message. websockets calls the handler
            # right after this returns, if the connection is open.
            if (
                self.protocol.state is OPEN
                and not self.connection_lost_waiter.done()
            ):
                hub.register(self, self.wsc_user or "anonymous",
                             _client_address(self, trusted))
            response = self.response
            # 2xx answers (the health check, an app's own HTTP route) are
            # served requests, not refused handshakes.
            if response is not None and response.status_code >= 300:
                hub.handshake_rejected(response.status_code)

        def acknowledge_pings(self, data: bytes) -> None:
            super().acknowledge_pings(data)
            if self.wsc_record is not None and self.latency:
                hub.latency_measured(self.latency)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.wsc_handshake is _SHED:
                return
            try:
                super().connection_lost(exc)
            finally:
                self._wsc_handshake_ended()
                hub.unregister(self)
                # Nothing of a closed connection waits for the collector
                # (frozen, it would wait for the next thaw): server/cycles.py.
                release_closed_connection(self)

    TrackedServerConnection.__qualname__ = "Tracked" + base.__name__
    return TrackedServerConnection


def _tracking_factory(
    create_connection: Callable[..., ServerConnection],
    hub: Hub,
    trusted: list[ipaddress._BaseNetwork],
    cap_loopback_per_address: bool = False,
) -> Callable[..., ServerConnection]:
    """Wrap a user's ``create_connection`` function so its connections are tracked.

    websockets documents ``create_connection`` as "a wrapper or a subclass":
    a function cannot be subclassed, so each connection it returns is switched
    to a tracked subclass of its own class (one per class, made once). The
    connection stays an instance of the class the function chose.
    """
    tracked_classes: dict[type, type[ServerConnection]] = {}

    def create_tracked_connection(*args: Any, **kwargs: Any) -> ServerConnection:
        connection = create_connection(*args, **kwargs)
        cls = type(connection)
        tracked = tracked_classes.get(cls)
        if tracked is None:
            if not issubclass(cls, ServerConnection):
                raise TypeError(
                    "create_connection must return a ServerConnection, "
                    f"not {cls.__name__}"
                )
            tracked = _tracked_connection_class(
                cls, hub, trusted, for_existing_instances=True,
                cap_loopback_per_address=cap_loopback_per_address)
            tracked_classes[cls] = tracked
        connection.__class__ = tracked
        return connection

    return create_tracked_connection


def _client_address(
    connection: ServerConnection, trusted: list[ipaddress._BaseNetwork]
) -> str:
    """``ip:port`` of the client; X-Forwarded-For counts only from trusted proxies."""
    peer = connection.remote_address
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = str(peer[0]), peer[1]
    else:
        return str(peer or "")
    if trusted and _is_trusted(host, trusted) and connection.request is not None:
        forwarded = connection.request.headers.get_all("X-Forwarded-For")
        hops = [h.strip() for value in forwarded for h in value.split(",") if h.strip()]
        # Walk from the nearest hop; the first one we do not trust is the client.
        for hop in reversed(hops):
            if not _is_trusted(hop, trusted):
                return hop if _is_ip(hop) else host
        if hops:
            return hops[0]
    return host_port(host, port)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_trusted(host: str, trusted: list[ipaddress._BaseNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def _parse_trusted(proxies: Iterable[str] | None) -> list[ipaddress._BaseNetwork]:
    if proxies is None:
        return []
    if isinstance(proxies, str):
        proxies = [proxies]
    return [ipaddress.ip_network(p, strict=False) for p in proxies]


class WsconsoleServer(Server):
    """What :func:`serve` returns: a websockets ``Server``, plus the hub.

    Every attribute and method is websockets' own (``server.server`` is the
    ``asyncio.Server``, ``close(close_connections=...)``, ``wait_closed``,
    ``serve_forever``, ``start_serving``, ``sockets``, ``async with``,
    ``await``); three are extended, and still call websockets':

    * awaiting it (or ``async with``) also attaches the hub and starts the
      control listener;
    * :meth:`close` also records the shutdown in the hub (state ``draining``,
      events); like websockets', only the first call acts;
    * :meth:`wait_closed` also waits until the hub is stopped and the control
      listener closed.

    Built by websockets' own ``serve``: :func:`serve` gives the ``Server`` it
    returns this class, so websockets' handling of every argument applies.
    """

    hub: Hub
    """The hub: registry, send, disconnect, shutdown, stats."""
    control: Any
    """The control listener, or None when disabled."""
    _wsc_watcher: asyncio.Task[None] | None
    _wsc_port: int | None
    _wsc_closing: bool
    _wsc_accept_failures: AcceptFailureLog | None
    cluster: Any
    """The :class:`~wsconsole.server.cluster.fleet.ClusterFleet` in cluster mode, else None."""

    def _wsc_adopt(self, hub: Hub, control: Any,
                   accept_failure_log_interval: float | None = None,
                   cluster: Any = None) -> None:
        # Instead of __init__: websockets built this object as a Server.
        self.hub = hub
        self.control = control
        self.cluster = cluster
        self._wsc_watcher = None
        self._wsc_port = None
        self._wsc_closing = False
        self._wsc_accept_failures = (
            AcceptFailureLog(hub, accept_failure_log_interval)
            if accept_failure_log_interval else None)

    def __await__(self) -> Generator[Any, None, WsconsoleServer]:
        yield from super().__await__()
        yield from self._wsc_start().__await__()
        return self

    async def _wsc_start(self) -> None:
        if self._wsc_watcher is not None:
            return
        names = [sock.getsockname() for sock in self.sockets]
        tcp = [name for name in names if isinstance(name, tuple)]
        self._wsc_port = tcp[0][1] if tcp else None
        # A Unix socket's name is its path.
        self.hub.attach(self, [host_port(name[0], name[1]) if isinstance(name, tuple)
                               else str(name) for name in names])
        if self.cluster is not None:
            try:
                # Redis unreachable is not a failure (the node serves locally
                # and keeps trying); a live namesake in the cluster is.
                await self.cluster.start()
            except BaseException:
                super().close()
                await super().wait_closed()
                raise
        if self.control is not None:
            try:
                await self.control.start()
            except BaseException:
                if self.cluster is not None:
                    await self.cluster.stop()
                super().close()
                await super().wait_closed()
                raise
        loop = asyncio.get_running_loop()
        if self._wsc_accept_failures is not None:
            self._wsc_accept_failures.install(
                loop, [*self.sockets, *getattr(self.control, "sockets", ())])
        self._wsc_check_open_file_limit()
        self._wsc_watcher = loop.create_task(self._wsc_watch())

    def _wsc_check_open_file_limit(self) -> None:
        control_config = getattr(self.control, "config", None)
        warning = descriptor_shortfall(
            open_file_limit(), self.hub.handshakes.max_total,
            getattr(control_config, "max_connections", None))
        if warning is not None:
            logger.warning("%s", warning)

    async def _wsc_watch(self) -> None:
        await super().wait_closed()
        self.hub.mark_stopped()
        if self.control is not None:
            await self.control.stop()
        if self.cluster is not None:
            # After the control plane: the drain stays visible to the cluster.
            await self.cluster.stop()
        if self._wsc_accept_failures is not None:
            self._wsc_accept_failures.uninstall()

    @property
    def port(self) -> int | None:
        """The public TCP port (handy with port 0), still known after close;
        None when listening on a Unix socket."""
        return self._wsc_port

    def close(
        self,
        close_connections: bool = True,
        code: CloseCode | int = CloseCode.GOING_AWAY,
        reason: str = "",
    ) -> None:
        """websockets' ``Server.close``, recorded by the hub.

        ``close_connections=False`` is the hub's keep-alive shutdown. As with
        websockets, a second call changes nothing; to cut a keep-alive drain
        short, call ``server.hub.shutdown("graceful")``.
        """
        mode = ShutdownMode.GRACEFUL if close_connections else ShutdownMode.KEEP_ALIVE
        decision = self.hub.may_shutdown(mode)
        # Not an escalation: as with websockets, only the first close() acts.
        if decision.allowed and not decision.escalation and not self._wsc_closing:
            self._wsc_closing = True
            # The hub records the shutdown and closes this server, calling
            # close() back: the flag sends that call straight to websockets.
            self.hub.shutdown(mode, code=code, reason=reason)
        # Idempotent: a no-op when the hub has already closed the server.
        super().close(close_connections, code, reason)

    async def wait_closed(self) -> None:
        """websockets' ``Server.wait_closed``; then also until the hub is
        stopped and the control listener closed."""
        await super().wait_closed()
        if self._wsc_watcher is not None:
            await asyncio.shield(self._wsc_watcher)


def serve(
    handler: Handler,
    host: str | None = None,
    port: int | None = None,
    *,
    identify: Identify | None = None,
    node: str | None = None,
    trusted_proxies: Iterable[str] | None = None,
    slow_consumer_limit: int | None = DEFAULT_SLOW_CONSUMER_LIMIT,
    sample_interval: float = 1.0,
    health_path: str | None = HEALTH_PATH,
    max_handshakes: int | None = DEFAULT_MAX_HANDSHAKES,
    max_handshakes_per_address: int | None = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
    cap_loopback_per_address: bool = False,
    accept_failure_log_interval: float | None = ACCEPT_FAILURE_LOG_INTERVAL,
    redact_logs: bool = True,
    control: Any = None,
    cluster: Any = None,
    redact_headers: Iterable[str] = (),
    redact_query: Iterable[str] = (),
    allow_tap: bool = False,
    max_taps: int = DEFAULT_MAX_TAPS,
    tap_filter: TapFilter | None = None,
    process_request: Callable[..., Any] | None = None,
    create_connection: Callable[..., ServerConnection] | None = None,
    logger: Any = None,
    **kwargs: Any,
) -> WsconsoleServer:
    """``websockets.asyncio.server.serve``, with every connection in a hub.

    Takes every argument of websockets' ``serve`` and returns its ``Server``
    (a :class:`WsconsoleServer`), plus:

    * ``identify``: connection -> user id (str). Default: :func:`default_identify`.
    * ``node``: this process's name. Default: :func:`default_node`.
    * ``trusted_proxies``: IPs or CIDRs whose ``X-Forwarded-For`` is believed.
    * ``slow_consumer_limit``: write-buffer bytes past which a client is closed
      with 1008; None disables.
    * ``sample_interval``: seconds between the hub's samples (rates, last
      activity, slow consumers, the metrics' traffic totals); 0 disables them.
    * ``health_path``: answered with 200 on GET; None disables.
    * ``max_handshakes``, ``max_handshakes_per_address``: opening handshakes
      in progress at once, in total and from one client address (an IPv6
      /64); a TCP connection past either is sent HTTP 503 and closed as soon
      as it is accepted, counted in ``wsconsole_handshakes_shed_total``.
      None disables a cap. Trusted proxies and loopback clients (a local
      proxy: every client behind it has its address) count in the total
      only, unless ``cap_loopback_per_address``.
    * ``accept_failure_log_interval``: an accept that fails for lack of
      descriptors is logged once per this many seconds, with the count,
      instead of asyncio's traceback per attempt; None leaves asyncio's.
    * ``redact_logs``: the ``logger`` (default ``websockets.server``) never
      sees secret header or query values, even at DEBUG; False logs them as
      websockets does.
    * ``control``: a ``ControlConfig`` to start the control listener beside it.
    * ``cluster``: a :class:`~wsconsole.server.cluster.ClusterSettings` (the
      settings of ``wsconsole serve --redis URL --cluster NAME
      --cluster-secret-file F``): this process joins the cluster as node
      ``node``, its control plane drives every node, and
      ``hub.send_everywhere`` reaches every node's connections. Redis is
      imported only then. Raises ConfigError without a cluster secret.
    * ``redact_headers``, ``redact_query``: more header and query parameter
      names whose values are never shown (records, ``get``, events, logs);
      they extend the built-in rule of :mod:`wsconsole.server.redaction`.
    * ``allow_tap``: let operators tap connections (watch their messages
      live, ``tap_start``); off by default. ``max_taps``: taps at once.
      ``tap_filter``: ``(connection, message) -> str | bytes | None``, what
      of a message a tap may show (None: no payload); see
      :mod:`wsconsole.server.tapping`.
    """
    identify_fn: Identify = identify or default_identify
    trusted = _parse_trusted(trusted_proxies)
    redaction = DEFAULT_RULES.extended(redact_headers, redact_query)
    hub = Hub(node or default_node(), slow_consumer_limit=slow_consumer_limit,
              sample_interval=sample_interval, redaction=redaction)
    hub.handshakes = HandshakeLimiter(max_handshakes, max_handshakes_per_address)
    if allow_tap:
        hub.taps = Taps(hub, max_taps=max_taps, tap_filter=tap_filter)
    cluster_fleet = None
    if cluster is not None:
        from .cluster.fleet import ID_SEPARATOR, ClusterFleet

        cluster_fleet = ClusterFleet(hub, cluster)
        hub.cluster = cluster_fleet
        # Before the first connection: ids are unique across the cluster.
        hub.id_prefix = hub.node + ID_SEPARATOR
    user_process_request = process_request

    async def tracked_process_request(
        connection: ServerConnection, request: Request
    ) -> Response | None:
        if health_path is not None and request.path.partition("?")[0] == health_path:
            if request.method not in ("GET", "HEAD"):
                return http_response(http.HTTPStatus.METHOD_NOT_ALLOWED,
                                     "Method Not Allowed\n", Allow="GET, HEAD")
            return http_response(http.HTTPStatus.OK, f"OK {hub.state}\n",
                                 head=request.method == "HEAD")
        if user_process_request is not None:
            # Every method, as websockets' own serve does: the app may answer
            # some HTTP routes itself.
            response = user_process_request(connection, request)
            if isinstance(response, Awaitable):
                response = await response
            if response is not None:
                return response
        if request.method != "GET":
            return None  # websockets answers 405, as without us
        try:
            user = identify_fn(connection)
        except Exception as exc:
            raise IdentifyError(f"identify() raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(user, str):
            raise IdentifyError(
                f"identify() must return a str, not {type(user).__name__}"
            )
        connection.wsc_user = user  # type: ignore[attr-defined]
        return None

    connection_factory: Callable[..., ServerConnection]
    if create_connection is None or isinstance(create_connection, type):
        connection_factory = _tracked_connection_class(
            create_connection or ServerConnection, hub, trusted,
            cap_loopback_per_address=cap_loopback_per_address)
    else:
        connection_factory = _tracking_factory(create_connection, hub, trusted,
                                               cap_loopback_per_address)
    server = websockets_serve(
        handler,
        host,
        port,
        process_request=tracked_process_request,
        create_connection=connection_factory,  # type: ignore[arg-type]
        logger=RedactingLogger(logger or logging.getLogger("websockets.server"), redaction)
        if redact_logs else logger,
        **kwargs,
    )
    # websockets' closures (its connection factory and connection handler)
    # hold this very object, so it is re-classed rather than wrapped or
    # rebuilt: websockets keeps doing everything it does for its own serve.
    if type(server) is not Server:  # pragma: no cover - pinned by test_dropin
        raise TypeError(
            f"websockets' serve returned {type(server).__qualname__}, not Server: "
            "wsconsole.server.serve does not support this websockets version"
        )
    server.__class__ = WsconsoleServer
    control_listener = None
    if control is not None:
        from .control import ControlListener

        control_listener = ControlListener(hub, control, fleet=cluster_fleet)
    server._wsc_adopt(hub, control_listener,  # type: ignore[attr-defined]
                      accept_failure_log_interval, cluster_fleet)
    return server  # type: ignore[return-value]


def unix_serve(
    handler: Handler,
    path: str | None = None,
    **kwargs: Any,
) -> WsconsoleServer:
    """``websockets.asyncio.server.unix_serve``: :func:`serve` on a Unix socket.

    ``server.port`` is None; the hub's ``listen`` shows the socket's path.
    """
    return serve(handler, unix=True, path=path, **kwargs)


def route(
    url_map: Any,
    *args: Any,
    server_name: str | None = None,
    ssl: Any = None,
    create_router: type[Router] | None = None,
    **kwargs: Any,
) -> WsconsoleServer:
    """``websockets.asyncio.router.route``: a :func:`serve` that dispatches
    connections to handlers by URL, with a werkzeug ``Map``.

    Same arguments as websockets' (``server_name``, ``ssl=True`` behind a
    TLS-terminating proxy, ``create_router``) plus every argument of
    :func:`serve`. Needs werkzeug, as websockets' does.
    """
    try:
        import werkzeug.routing  # noqa: F401
    except ImportError as exc:
        raise ImportError("route() requires werkzeug") from exc
    # Imported here: websockets' router module imports werkzeug, which
    # serve() alone does not need.
    from websockets.asyncio.router import Router

    # websockets' route() composed the same way, with our serve().
    url_scheme = "ws" if ssl is None else "wss"
    if ssl is not True and ssl is not None:
        kwargs["ssl"] = ssl
    router = (create_router or Router)(url_map, server_name, url_scheme)
    user_process_request = kwargs.pop("process_request", None)
    if user_process_request is None:
        process_request: Callable[..., Any] = router.route_request
    else:

        async def process_request(
            connection: ServerConnection, request: Request
        ) -> Response | None:
            response = user_process_request(connection, request)
            if isinstance(response, Awaitable):
                response = await response
            if response is not None:
                return response
            return router.route_request(connection, request)

    return serve(router.handler, *args, process_request=process_request, **kwargs)


def unix_route(url_map: Any, path: str | None = None, **kwargs: Any) -> WsconsoleServer:
    """``websockets.asyncio.router.unix_route``: :func:`route` on a Unix socket."""
    return route(url_map, unix=True, path=path, **kwargs)
