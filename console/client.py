"""The control-plane client: an asyncio websockets client that speaks ``wire``.

Both operator front ends use it: the command line (``wsconsole ls``, ``send``,
...) and the Textual console. One connection carries requests, their replies
and, after :meth:`ControlClient.subscribe`, the live event stream::

    async with ControlClient(resolve_url(None), resolve_token(None, None)) as client:
        page = await client.list_connections(user="ann")
        await client.send({"user": "ann"}, text="hello")

Every failure is a :class:`~wsconsole.server.errors.WsconsoleError`:
:class:`ControlUnavailable` when the control plane cannot be reached or goes
away, :class:`Unauthorized` when the token is missing or refused, and for an
error reply the very class the server raised, found by its code
(``UnknownConnection``, ``SelectorError``, ``Forbidden``, ...; a
:class:`ControlError` keeping the code for one this version does not know). No
websockets exception escapes this module.

Imports only ``wsconsole.server.wire`` and ``wsconsole.server.errors`` from the
server, never the hub, the serving code or the control listener; never textual.
The token is never logged, printed or put in an error message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import socket
from typing import Any, AsyncIterator

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

from wsconsole.server import wire
from wsconsole.server.protocol import Role, ShutdownMode, token_problem
from wsconsole.server.redaction import RedactingLogger
from wsconsole.server.errors import (
    ControlUnavailable,
    Forbidden,
    NotAControlPlane,
    ProtocolViolation,
    Unauthorized,
)

__all__ = [
    "DEFAULT_URL",
    "EVENT_BUFFER",
    "MAX_TIMEOUT",
    "REPLY_GRACE",
    "UNIX_SCHEME",
    "ControlClient",
    "default_token_file",
    "resolve_url",
    "resolve_token",
    "find_token",
    "hello_problem",
]

logger = logging.getLogger("wsconsole.console")

DEFAULT_URL = "ws://127.0.0.1:8766"
"""Where ``wsconsole serve`` puts its control listener unless told otherwise."""

UNIX_SCHEME = "ws+unix:"
"""URL prefix of a control listener on a Unix socket: ``ws+unix:/run/wsconsole.sock``."""

EVENT_BUFFER = 1000
"""Events kept for a slow consumer; past this the oldest are dropped."""

# Replies to ``list`` with a large page and group counts can pass websockets'
# 1 MiB default; the server is trusted, the limit only guards against a bug.
_MAX_REPLY_BYTES = 64 * 1024 * 1024

MAX_TIMEOUT = 60.0
"""The longest deadline (``timeout``) the control plane accepts for a request."""

REPLY_GRACE = 5.0
"""Seconds the client waits for a reply past the request's own ``timeout``: the
node we are attached to answers at its deadline with what it gathered."""

_END = object()
"""Queued after the last event, so that :meth:`ControlClient.events` ends."""


def resolve_url(url: str | None) -> str:
    """The control URL: ``url``, else ``$WSCONSOLE_URL``, else :data:`DEFAULT_URL`."""
    return url or os.environ.get("WSCONSOLE_URL") or DEFAULT_URL


def default_token_file() -> str:
    """The token file ``wsconsole serve`` creates when given no token.

    ``$XDG_STATE_HOME/wsconsole/token``, or ``~/.local/state/wsconsole/token``;
    ``wsconsole serve`` uses this function too.
    """
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "wsconsole", "token")


def resolve_token(token: str | None, token_file: str | None) -> str:
    """The operator's token, from the first place that has one.

    ``token``, else the contents of ``token_file``, else ``$WSCONSOLE_TOKEN``,
    else :func:`default_token_file` if it exists. Raises :class:`Unauthorized`
    when none of them gives a token, or a named token file cannot be read.
    """
    return find_token(token, token_file)[0]


def find_token(token: str | None, token_file: str | None) -> tuple[str, str]:
    """:func:`resolve_token`'s token and where it came from (``--token``,
    ``token file PATH``, ``$WSCONSOLE_TOKEN``), so that a refusal can say which
    one to fix without quoting the token."""
    if token:
        return _checked(token.strip(), "--token"), "--token"
    if token_file:
        return _read_token_file(token_file), f"token file {token_file}"
    env = os.environ.get("WSCONSOLE_TOKEN")
    if env:
        return _checked(env.strip(), "$WSCONSOLE_TOKEN"), "$WSCONSOLE_TOKEN"
    default = default_token_file()
    if os.path.exists(default):
        return _read_token_file(default), f"token file {default}"
    raise Unauthorized(
        "no token: pass --token or --token-file, set WSCONSOLE_TOKEN, "
        f"or run `wsconsole serve` on this machine (it writes {default})"
    )


def _read_token_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except OSError as exc:
        raise Unauthorized(f"cannot read token file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise Unauthorized(f"token file {path} is not UTF-8 text") from None
    if not token:
        raise Unauthorized(f"token file {path} is empty")
    return _checked(token, f"token file {path}")


def _checked(token: str, source: str) -> str:
    # The server's rule, checked before connecting: a token it would refuse
    # fails here with where it came from (never the token itself).
    problem = token_problem(token)
    if problem is not None:
        raise Unauthorized(f"the token from {source} {problem}")
    return token


class ControlClient:
    """One connection to a control listener: requests, replies and events.

    Use ``async with``, or :meth:`connect` and :meth:`close`. A single reader
    task reads every frame: a reply resolves the request waiting for its id;
    an event goes to a bounded queue that :meth:`events` drains, dropping the
    oldest event when the consumer falls :data:`EVENT_BUFFER` behind.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        open_timeout: float = 5.0,
        request_timeout: float = 10.0,
        token_source: str | None = None,
    ) -> None:
        self.url = url
        """The control listener's URL, ``ws://host:port`` or ``wss://...``."""
        self.open_timeout = open_timeout
        """Seconds to open the connection (TCP, TLS and the HTTP handshake)."""
        self.request_timeout = request_timeout
        """Seconds to wait for each reply before raising ControlUnavailable."""
        self.role: Role | None = None
        """The role the server gave our token, after connect."""
        self.node: str | None = None
        """The server's node name, after connect."""
        self.cluster: str | None = None
        """The cluster the server belongs to, after connect; None for a single node."""
        self.server_info: dict[str, Any] = {}
        """The whole ``hello`` result."""
        self.dropped_events = 0
        """Events dropped because the consumer of :meth:`events` was too slow."""
        self.token_source = token_source
        """Where the token came from (see :func:`find_token`), named when it is refused."""
        # Kept private and out of repr so that it never reaches a log or a traceback.
        self._token = token
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[wire.Reply]] = {}
        self._next_id = 0
        self._events: asyncio.Queue[Any] = asyncio.Queue(maxsize=EVENT_BUFFER + 1)
        self._closed_reason = "not connected"
        self._identified = False
        # True once the first frame read was a control plane's answer to hello.

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<ControlClient {self.url} {state} role={self.role}>"

    # Lifecycle

    @property
    def connected(self) -> bool:
        """True while the control connection is open and being read."""
        return (
            self._ws is not None
            and self._reader is not None
            and not self._reader.done()
        )

    async def connect(self) -> dict[str, Any]:
        """Open the connection, say ``hello``, and return its result (node, role, ...)."""
        if self.connected:
            return self.server_info
        headers = {}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {_checked(self._token, 'the client')}"
        try:
            self._ws = await self._open(headers)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise Unauthorized(
                    f"token{self._from_source()} refused by {self.url} (HTTP 401)"
                    if self._token is not None
                    else f"{self.url} needs a token (HTTP 401); pass --token or --token-file"
                ) from None
            if status == 403:
                raise Forbidden(f"{self.url} refused the connection (HTTP 403)") from None
            if status == 503:
                # The server says why (too many control connections, shutting
                # down): one line of it, printable, bounded.
                said = exc.response.body.decode("utf-8", "replace").strip().partition("\n")[0]
                said = "".join(c if c.isprintable() else "?" for c in said)[:200]
                raise ControlUnavailable(f"{self.url} refused the connection (HTTP 503)"
                                         + (f": {said}" if said else "")) from None
            answer = f"HTTP {status} {exc.response.reason_phrase}".rstrip()
            if status >= 500:
                # A proxy in front of a control plane that is down: worth retrying.
                raise ControlUnavailable(f"cannot reach {self.url}: {answer}") from None
            # A control listener answers a handshake with 101, 401, 403 or 503 only.
            raise NotAControlPlane(_not_a_control_plane(
                self.url, f"it answered the WebSocket handshake with {answer}")) from None
        except InvalidURI as exc:
            raise ControlUnavailable(f"cannot reach {self.url}: not a ws:// URL ({exc})") from None
        except TimeoutError:
            raise ControlUnavailable(
                f"cannot reach {self.url}: timed out after {self.open_timeout:g} s"
            ) from None
        except OSError as exc:
            raise ControlUnavailable(f"cannot reach {self.url}: {_os_reason(exc)}") from None
        except (WebSocketException, ValueError) as exc:
            raise ControlUnavailable(f"cannot reach {self.url}: {exc}") from None
        self._closed_reason = "closed"
        self._identified = False
        self._events = asyncio.Queue(maxsize=EVENT_BUFFER + 1)
        self._reader = asyncio.get_running_loop().create_task(
            self._read(self._ws), name="wsconsole-control-reader"
        )
        try:
            info = await self.hello()
        except BaseException:
            await self.close()
            raise
        return info

    def _from_source(self) -> str:
        return f" from {self.token_source}" if self.token_source else ""

    def _open(self, headers: dict[str, str]) -> Any:
        options: dict[str, Any] = dict(
            additional_headers=headers,
            open_timeout=self.open_timeout,
            max_size=_MAX_REPLY_BYTES,
            # Events arrive in bursts; let the reader task keep up.
            max_queue=64,
            # Compression buys little for small JSON frames on loopback.
            compression=None,
            # At DEBUG, websockets logs every header it sends, our
            # Authorization (the token) included.
            logger=RedactingLogger(logging.getLogger("websockets.client")),
        )
        if self.url.startswith(UNIX_SCHEME):
            # The control listener's own spelling of a Unix socket: ws+unix:PATH.
            return unix_connect(self.url[len(UNIX_SCHEME):], uri="ws://localhost/", **options)
        # The control plane is normally on loopback; a system proxy would only
        # get in the way (and see the bearer token).
        return connect(self.url, proxy=None, **options)

    async def close(self) -> None:
        """Close the connection; pending requests fail with ControlUnavailable."""
        ws, reader = self._ws, self._reader
        if ws is not None:
            self._closed_reason = "closed by the client"
            try:
                await ws.close()
            except Exception:  # pragma: no cover - closing must never raise
                pass
        if reader is not None:
            try:
                await reader
            except BaseException:  # pragma: no cover - the reader handles its errors
                pass

    async def __aenter__(self) -> ControlClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    # The reader

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                if not self._identified:
                    # The first frame answers our hello: it says whether this
                    # is a control plane at all (see hello_problem).
                    problem = hello_problem(frame)
                    if problem is not None:
                        self._not_a_control_plane(problem)
                        await ws.close()
                        break
                    self._identified = True
                try:
                    message = wire.parse_message(frame)
                except ProtocolViolation as exc:
                    logger.warning("ignoring a frame from the control plane: %s", exc)
                    continue
                if isinstance(message, wire.Event):
                    self._push_event(message)
                    continue
                future = self._pending.pop(message.id, None)  # type: ignore[arg-type]
                if future is not None and not future.done():
                    future.set_result(message)
                elif message.id is None and not message.ok:
                    # The server could not read one of our requests at all.
                    logger.warning("control plane error: %s", message.error_message)
            self._closed_reason = _close_reason(ws) or self._closed_reason
        except ConnectionClosed:
            self._closed_reason = _close_reason(ws) or (
                "was lost without a close frame (the server was killed, or the network failed)")
        except Exception as exc:  # pragma: no cover - defensive: a reader bug
            logger.exception("control client reader failed")
            self._closed_reason = f"reader failed: {exc}"
        finally:
            error = ControlUnavailable(
                f"control connection to {self.url} {self._closed_reason}"
            )
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()
            self._push_event(_END)

    def _not_a_control_plane(self, problem: str) -> None:
        self._closed_reason = "closed: not a wsconsole control plane"
        error = NotAControlPlane(_not_a_control_plane(self.url, problem))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    @property
    def closed_reason(self) -> str:
        """Why the connection is not (or no longer) open: ``closed by the server
        (code 1001: ...)``, ``was lost without a close frame ...``, ``not connected``."""
        return self._closed_reason

    def _push_event(self, item: Any) -> None:
        # Drop the oldest rather than grow without bound or stall the reader
        # (a stalled reader would also stall replies to requests). The queue
        # has one slot more than EVENT_BUFFER, so the end marker always fits.
        if item is not _END:
            while self._events.qsize() >= EVENT_BUFFER:
                self._events.get_nowait()
                self.dropped_events += 1
        self._events.put_nowait(item)

    # Requests

    async def request(self, op: str, **args: Any) -> Any:
        """Run one operation and return its result.

        Raises the class the server raised for an error reply (found by its
        code: :class:`Forbidden` for ``forbidden``, ...), and :class:`ControlUnavailable`
        when not connected, when the connection drops, or after
        ``request_timeout`` seconds without a reply (with a ``timeout``
        argument, that plus :data:`REPLY_GRACE` if longer).

        A result may carry ``missing`` (``{node: reason}``): the nodes of a
        cluster that did not answer. It is still the result: what was gathered.
        """
        ws = self._ws
        if ws is None or not self.connected:
            raise ControlUnavailable(f"not connected to {self.url} ({self._closed_reason})")
        self._next_id += 1
        request_id = self._next_id
        frame = wire.encode_request(request_id, op, args)
        limit = self.server_info.get("max_request_bytes") or wire.MAX_REQUEST_BYTES
        if len(frame.encode()) > limit:
            # The server would close the whole control connection (1009).
            raise ProtocolViolation(
                f"{op} request is {len(frame.encode())} bytes; the control plane "
                f"accepts at most {limit}",
            )
        wait = self.request_timeout
        if isinstance(args.get("timeout"), (int, float)):
            wait = max(wait, args["timeout"] + REPLY_GRACE)
        future: asyncio.Future[wire.Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            try:
                await ws.send(frame)
            except ConnectionClosed:
                raise ControlUnavailable(
                    f"control connection to {self.url} {_close_reason(ws) or 'closed'}"
                ) from None
            try:
                async with asyncio.timeout(wait):
                    reply = await future
            except TimeoutError:
                # A control plane answers hello at once; silence may be an
                # application that waits for its own protocol (still retried:
                # it may also be a control plane too busy to answer).
                hint = " (is it a wsconsole control plane?)" if op == "hello" else ""
                raise ControlUnavailable(
                    f"no reply from {self.url} to {op} within {wait:g} s{hint}"
                ) from None
        finally:
            self._pending.pop(request_id, None)
        if reply.ok:
            return reply.result
        raise reply.exception()

    async def hello(self) -> dict[str, Any]:
        """Who is the server and who are we: node, role, protocol version, operations."""
        info = await self.request("hello")
        if isinstance(info, dict):
            self.server_info = info
            role = info.get("role")
            # A role this version does not know stays None: it grants nothing here.
            self.role = Role(role) if role in tuple(Role) else None
            self.node = info.get("node")
            self.cluster = info.get("cluster")
        return info

    async def list_connections(
        self,
        *,
        user: str | None = None,
        path: str | None = None,
        topic: str | None = None,
        id_prefix: str | None = None,
        sort: str = "connected_at",
        limit: int = 100,
        cursor: str | None = None,
        groups: bool = True,
        node: str | None = None,
        timeout: float | None = None,
        groups_since: int | None = None,
    ) -> dict[str, Any]:
        """One page of connections: ``connections``, ``total``, ``next_cursor``, ``groups``.

        ``node``: that node's connections only. ``timeout``: seconds the nodes
        of a cluster may take (the server's default when None); likewise below.
        ``groups_since``: the ``groups_version`` of an earlier reply; the reply
        leaves ``groups`` out while they are unchanged (sent only when given,
        so that a server without it still answers).
        """
        return await self.request(
            "list", user=user, path=path, topic=topic, id_prefix=id_prefix,
            sort=sort, limit=limit, cursor=cursor, groups=groups,
            **({} if groups_since is None else {"groups_since": groups_since}),
            **_routing(node, timeout),
        )

    async def get(self, id: str, *, node: str | None = None,
                  timeout: float | None = None) -> dict[str, Any]:
        """One connection in full, headers included (secrets redacted by the server)."""
        return await self.request("get", id=id, **_routing(node, timeout))

    async def send(
        self,
        selector: dict[str, Any],
        *,
        text: str | None = None,
        binary: bytes | None = None,
        dry_run: bool = False,
        node: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one text or binary message: ``recipients``, ``delivered``,
        ``skipped``, and ``per_node`` (the same counts by node)."""
        if (text is None) == (binary is None):
            raise ProtocolViolation("send needs exactly one of text or binary")
        encoded = base64.b64encode(bytes(binary)).decode("ascii") if binary is not None else None
        return await self.request(
            "send", selector=_selector(selector), text=text, binary=encoded, dry_run=dry_run,
            **_routing(node, timeout),
        )

    async def disconnect(
        self, selector: dict[str, Any], *, code: int = 1000, reason: str = "",
        node: str | None = None, timeout: float | None = None,
    ) -> dict[str, Any]:
        """Close the selected connections with ``code`` and ``reason`` (``count``,
        ``per_node``)."""
        return await self.request(
            "disconnect", selector=_selector(selector), code=code, reason=reason,
            **_routing(node, timeout),
        )

    async def shutdown(
        self,
        mode: ShutdownMode,
        *,
        code: int = 1001,
        reason: str = "",
        deadline: float | None = None,
        node: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Stop the server: ``graceful`` (close everyone) or ``keep_alive`` (drain).

        In a cluster: ``node`` alone, or with None every node (the one we are
        attached to last)."""
        return await self.request(
            "shutdown", mode=ShutdownMode(mode), code=code, reason=reason, deadline=deadline,
            **_routing(node, timeout),
        )

    async def stats(self, *, node: str | None = None,
                    timeout: float | None = None) -> dict[str, Any]:
        """Node, state, uptime, connections, totals and rates (in a cluster: the
        totals, and each node's own under ``per_node``)."""
        return await self.request("stats", **_routing(node, timeout))

    async def nodes(self, *, node: str | None = None,
                    timeout: float | None = None) -> dict[str, Any]:
        """The nodes of the fleet (``nodes``: name, state, health, connections,
        rates, version, control URL, last heartbeat), sorted by name."""
        return await self.request("nodes", **_routing(node, timeout))

    async def tap_start(
        self,
        selector: dict[str, Any],
        *,
        direction: str | None = None,
        max_bytes: int | None = None,
        rate: int | None = None,
        byte_rate: int | None = None,
        duration: float | None = None,
        node: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Start a live tap (None takes the server's default; ``node``: that node's
        connections only); its ``tap`` and ``tap_ended`` events arrive on
        :meth:`events`, with no :meth:`subscribe`. The result has the tap's id
        (``tap``) and its limits."""
        return await self.request(
            "tap_start", selector=_selector(selector), direction=direction,
            max_bytes=max_bytes, rate=rate, byte_rate=byte_rate, duration=duration,
            node=node, timeout=timeout)

    async def tap_stop(self, tap: str) -> dict[str, Any]:
        """Stop a tap of this connection: ``stopped``, ``shown``, ``dropped``."""
        return await self.request("tap_stop", tap=tap)

    async def subscribe(self, stats_interval: float = 1.0, backlog: int = 0) -> int:
        """Start the event stream on this connection; read it with :meth:`events`.

        ``backlog``: first receive up to that many recent events of the past
        (each ``Event.backlog``). Returns how many the server sends; a server
        older than the backlog refuses the argument, and then streams without it.
        """
        if not backlog:
            await self.request("subscribe", stats_interval=stats_interval)
            return 0
        try:
            result = await self.request("subscribe", stats_interval=stats_interval,
                                        backlog=backlog)
        except ProtocolViolation as exc:
            if "backlog" not in exc.message:
                raise
            await self.request("subscribe", stats_interval=stats_interval)
            return 0
        sent = result.get("backlog") if isinstance(result, dict) else None
        return sent if isinstance(sent, int) else 0

    async def events(self) -> AsyncIterator[wire.Event]:
        """Events pushed after :meth:`subscribe`; ends when the connection closes."""
        if self._reader is None:
            return
        while True:
            item = await self._events.get()
            if item is _END:
                # Leave the marker for any other consumer, so it ends too.
                self._push_event(_END)
                return
            yield item

    async def event_batches(self) -> AsyncIterator[list[wire.Event]]:
        """Events pushed after :meth:`subscribe`, every one that has arrived
        since the last batch (at least one); ends when the connection closes.

        Under churn events come by the hundred a second, and a consumer that
        pays a fixed cost per item it handles (a message to post, a screen to
        tell) pays it once a batch instead of once an event.
        """
        if self._reader is None:
            return
        while True:
            queue = self._events
            batch = [await queue.get()]
            while not queue.empty() and batch[-1] is not _END:
                batch.append(queue.get_nowait())
            ended = batch[-1] is _END
            if ended:
                # Leave the marker for any other consumer, so it ends too.
                self._push_event(batch.pop())
            if batch:
                yield batch
            if ended:
                return


CONTROL_PLANE_SERVER = "server"
"""The ``hello`` result's field that names the server software: ``"wsconsole"``."""


def hello_problem(frame: str | bytes) -> str | None:
    """Why ``frame``, the first one read after sending ``hello``, is not a
    wsconsole control plane's answer; None when it is one.

    A control plane answers ``hello`` first, and with ``{"id": 1, "ok": true,
    "result": {"server": "wsconsole", ...}}`` (or an error reply with a code,
    e.g. rate_limited). An application on the public port typically echoes the
    request back, sends a greeting of its own, or answers something else.
    """
    if isinstance(frame, bytes):
        return "it answered hello with a binary frame"
    try:
        data = json.loads(frame)
    except ValueError:
        return "it answered hello with text that is not JSON"
    if not isinstance(data, dict):
        return "it answered hello with JSON that is not an object"
    if "op" in data and "ok" not in data:
        return "it echoed the hello request back"
    ok = data.get("ok")
    if ok is True:
        result = data.get("result")
        if isinstance(result, dict) and result.get(CONTROL_PLANE_SERVER) == "wsconsole":
            return None
        return 'its answer to hello does not say "server": "wsconsole"'
    error = data.get("error")
    if ok is False and isinstance(error, dict) and isinstance(error.get("code"), str):
        return None  # a control plane's error reply (rate_limited, ...): raised as such
    return "it answered hello with a frame that is not a control-plane reply"


def _not_a_control_plane(url: str, problem: str) -> str:
    return (f"{url} is not a wsconsole control plane: is it the public port? ({problem}; "
            "the control plane is --control-port, 8766 by default)")


def _routing(node: str | None, timeout: float | None) -> dict[str, Any]:
    """The ``node`` and ``timeout`` arguments, sent only when given: a server
    older than cluster mode knows neither, and refuses an unknown argument."""
    args: dict[str, Any] = {}
    if node is not None:
        args["node"] = node
    if timeout is not None:
        args["timeout"] = timeout
    return args


def _selector(selector: Any) -> dict[str, Any]:
    # Accept a registry Selector as well as its wire form (a dict).
    to_dict = getattr(selector, "to_dict", None)
    return to_dict() if callable(to_dict) else selector


def _close_reason(ws: ClientConnection) -> str | None:
    """``closed by the server (code 1001: ...)``, or None if not closed yet."""
    rcvd = ws.protocol.close_rcvd
    if rcvd is not None:
        text = f"closed by the server (code {rcvd.code}"
        return text + (f": {rcvd.reason})" if rcvd.reason else ")")
    if ws.protocol.close_sent is not None:
        return "closed"
    return None


def _os_reason(exc: OSError) -> str:
    """A short reason: "Connection refused", not "[Errno 111] Connect call failed (...)"."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror})"
    errno = exc.errno
    if not errno:
        # asyncio reports one error per address tried as "Multiple exceptions:
        # [Errno 111] ..., [Errno 111] ..."; the first errno says enough.
        match = re.search(r"\[Errno (\d+)\]", str(exc))
        errno = int(match.group(1)) if match else None
    if errno:
        return os.strerror(errno)
    return str(exc) or type(exc).__name__
