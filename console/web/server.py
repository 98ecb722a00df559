"""``wsconsole web``'s server: the Textual console in a browser, behind a login.

textual-serve turns a Textual app into a web page: ``textual.js`` in the page
opens a WebSocket, and for each one an :class:`~textual_serve.app_service.AppService`
starts the app as a subprocess and relays the terminal. textual-serve itself
has no authentication and starts a process for whoever connects, so this
module keeps its parts (the page's static files, ``AppService``) and puts its
own aiohttp application around them:

- every request must name one of the allowed hosts (``Host``; DNS rebinding),
  and an ``Origin``, when there is one, must be an allowed origin; a POST and
  the WebSocket must have one;
- every page, static file and the WebSocket needs a session, which only
  ``POST /login`` gives: the token is checked against the control plane (its
  ``hello`` says the role; a token it refuses is refused here), then a random
  cookie (HttpOnly, SameSite=Strict, Secure and ``__Host-`` on TLS, Max-Age
  the session's lifetime) names the session;
- login attempts are rate-limited per client address and in total;
- at most ``max_sessions`` consoles run at once;
- each console is ``wsconsole console --url CONTROL_URL`` in a subprocess with
  the session's token in its environment (``WSCONSOLE_TOKEN``), never in its
  command line or a URL: ``/proc/PID/environ`` is readable by its user only;
- a console ends when its browser goes away (the WebSocket closes, or misses
  its heartbeats), at logout, when its session expires, and at shutdown;
  one that does not quit when told is killed;
- logins, refusals and consoles are audited (:mod:`.audit`).

Imports the server's pure modules only (errors, protocol, limits, addresses);
aiohttp and textual-serve are the ``web`` extra's, loaded with this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import os
import re
import shlex
import ssl
import string
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import textual_serve
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

from wsconsole.server.addresses import host_port
from wsconsole.server.errors import ConfigError, ControlUnavailable, WsconsoleError
from wsconsole.server.protocol import Role, token_problem

from ..client import ControlClient
from .audit import RefusalThrottle, WebAudit, WebEvent
from .sessions import LoginLimiter, SessionStore, WebSession
from .settings import WebSettings, allowed_origins, check_settings

__all__ = ["WebConsole", "SessionConsole", "console_command", "drawn_text", "COOKIE_NAME",
           "SECURE_COOKIE_NAME", "STOP_GRACE", "HEARTBEAT"]

logger = logging.getLogger("wsconsole.web")

COOKIE_NAME = "wsconsole_session"
"""The session cookie over plain HTTP (loopback, or ``--insecure``)."""
SECURE_COOKIE_NAME = "__Host-wsconsole_session"
"""The session cookie over TLS: the ``__Host-`` prefix makes the browser keep
it only if Secure, for this host alone and for every path."""
STOP_GRACE = 5.0
"""Seconds a console has to quit when told; then it is killed."""
HEARTBEAT = 15.0
"""Seconds between pings to the browser; a browser that stops answering (a
laptop lid closed, a network gone) ends its console after about this long."""
CLOSE_TIMEOUT = 2.0
"""Seconds a browser has to answer the close of its WebSocket."""
SWEEP_INTERVAL = 30.0
"""Seconds between two looks for expired sessions (their consoles end)."""
LOGIN_TIMEOUT = 5.0
"""Seconds the control plane has to say whether a token is good."""
_MAX_BODY = 16 * 1024
"""Bytes of a request body (the login form); more is refused with 413."""
_MAX_FRAME = 64 * 1024
"""Bytes of one frame from the browser (keys, pastes, resizes)."""
_MAX_CELLS = 1000
"""A terminal size beyond this many columns or rows is taken as this."""
_SESSION: Any = web.RequestKey("wsconsole_session", object) if hasattr(web, "RequestKey") \
    else "wsconsole_session"
"""Where the guard leaves the request's session (or None) for the handler."""
_TEMPLATES = Path(__file__).parent / "templates"
_STATIC = Path(textual_serve.__file__).parent / "static"

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
"""What a page may load: its own files only (xterm.js adds style elements)."""


def console_command(settings: WebSettings) -> str:
    """The shell command of each session's console: the URL, never the token.

    ``exec``: the shell becomes the console, so that the process textual-serve
    watches (and kills, if it must) is the console itself.
    """
    argv = [sys.executable, "-m", "wsconsole.console.cli", "console",
            "--url", settings.control_url]
    if settings.node:
        argv += ["--node", settings.node]
    return "exec " + shlex.join(argv)


class SessionConsole(AppService):
    """textual-serve's app process, with the session's token in its environment."""

    def __init__(self, command: str, token: str, **kwargs: Any) -> None:
        super().__init__(command, **kwargs)
        self._token = token

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width=width, height=height)
        # Only the session's token: none of the web server's own, and no file
        # it might name. WSCONSOLE_TOKEN comes after --token-file in the
        # console's search, and the command line names neither.
        environment["WSCONSOLE_TOKEN"] = self._token
        environment.pop("WSCONSOLE_URL", None)
        # textual-serve draws at 60 frames a second; TEXTUAL_FPS, when the web
        # console's own environment sets it, asks for fewer (less CPU per console).
        if os.environ.get("TEXTUAL_FPS"):
            environment["TEXTUAL_FPS"] = os.environ["TEXTUAL_FPS"]
        return environment

    @property
    def pid(self) -> int | None:
        """The console process's id, once started."""
        return self._process.pid if self._process is not None else None

    async def stop(self) -> None:
        """Tell the console to quit; kill it if it has not within :data:`STOP_GRACE`."""
        process = self._process
        try:
            async with asyncio.timeout(STOP_GRACE):
                await super().stop()
                if process is not None:
                    await process.wait()
        except TimeoutError:
            if process is not None and process.returncode is None:
                logger.warning("web console process %s did not quit; killing it", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
                self._task = None
        if process is not None:
            await process.wait()


class _Running:
    """One console: its session, its browser's WebSocket, why it ended."""

    __slots__ = ("session", "websocket", "console", "started", "reason")

    def __init__(self, session: WebSession, websocket: web.WebSocketResponse) -> None:
        self.session = session
        self.websocket = websocket
        self.console: SessionConsole | None = None
        self.started = time.monotonic()
        self.reason = "browser went away"


class WebConsole:
    """The aiohttp application of ``wsconsole web``; :meth:`start`, then :meth:`stop`."""

    def __init__(self, settings: WebSettings, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_settings(settings)
        self.settings = settings
        self.sessions = SessionStore(settings.session_ttl, settings.max_logins, clock)
        """The logins, by cookie."""
        total = settings.login_total_rate or 6 * settings.login_rate
        self.limiter = LoginLimiter(settings.login_rate, total, clock)
        """Login attempts per address and in total."""
        self.audit = WebAudit(settings.audit_log)
        """The web front's audit (see :mod:`.audit`)."""
        self.running: set[_Running] = set()
        """The consoles running now (what ``max_sessions`` caps)."""
        self.command = console_command(settings)
        """The shell command of each console (no secret in it)."""
        self.origins: frozenset[str] = frozenset()
        """The origins allowed, once bound."""
        self.hosts: frozenset[str] = frozenset()
        """The ``Host`` values allowed, once bound."""
        self.port: int | None = None
        self._throttle = RefusalThrottle()
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._templates = {name: string.Template((_TEMPLATES / f"{name}.html").read_text())
                           for name in ("login", "console")}

    # Lifecycle

    @property
    def url(self) -> str:
        """Where to point a browser: the first allowed origin."""
        return f"{self.settings.scheme}://{host_port(self.settings.host, self.port or 0)}" \
            if not self.settings.origins else sorted(self.origins)[0]

    async def start(self) -> None:
        """Bind and serve; ConfigError for TLS files that cannot be loaded or a
        port that cannot be bound."""
        ssl_context = self._ssl_context()
        self.audit.open()
        app = web.Application(middlewares=[self._guard], client_max_size=_MAX_BODY)
        app.add_routes([
            web.get("/", self._index),
            web.get("/login", self._login_page),
            web.post("/login", self._login),
            web.post("/logout", self._logout),
            web.get("/ws", self._websocket),
            web.static("/static", _STATIC),
        ])
        access = logging.getLogger("aiohttp.access")
        self._runner = web.AppRunner(
            app, handle_signals=False,
            # The access log has no cookie or token in it, but one line per
            # static file is noise: at debug level only.
            access_log=access if access.isEnabledFor(logging.DEBUG) else None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port,
                           ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(f"cannot serve the web console on "
                              f"{host_port(self.settings.host, self.settings.port)}: "
                              f"{exc.strerror or exc}") from None
        self.port = self._runner.addresses[0][1]
        self.origins = allowed_origins(self.settings, self.port)
        self.hosts = frozenset(origin.partition("://")[2] for origin in self.origins)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def _ssl_context(self) -> ssl.SSLContext | None:
        settings = self.settings
        if not settings.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(settings.cert, settings.key)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the web console's TLS certificate "
                              f"{settings.cert} and key {settings.key}: {exc}") from exc
        return context

    async def stop(self) -> None:
        """End every console, then stop serving."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self._end_consoles(list(self.running), "web console stopping")
        # Each console's handler tells it to quit, and kills it after STOP_GRACE.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_GRACE + 1):
                while self.running:
                    await asyncio.sleep(0.02)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.audit.close()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            await self.expire_sessions()

    async def expire_sessions(self) -> None:
        """Forget the sessions whose time is up, and end their consoles (every
        :data:`SWEEP_INTERVAL` seconds; a request with an expired cookie is
        refused at once)."""
        for session in self.sessions.expire():
            self._audit(WebEvent.SESSION_EXPIRED, session=session.label, role=session.role)
            await self._end_session_consoles(session, "session expired")

    async def _end_session_consoles(self, session: WebSession, reason: str) -> None:
        await self._end_consoles([r for r in self.running if r.session is session], reason)

    async def _end_consoles(self, running: list[_Running], reason: str) -> None:
        for item in running:
            item.reason = reason
        # At once: a browser that went away answers no close frame, and each
        # close waits for the answer (CLOSE_TIMEOUT).
        await asyncio.gather(*(item.websocket.close(code=1001, message=reason.encode())
                               for item in running), return_exceptions=True)

    # The guard of every request

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            status, why = refusal
            self._refused(request, why)
            return self._plain(status, why)
        session = self.sessions.find(request.cookies.get(self._cookie_name))
        request[_SESSION] = session
        if session is None and request.path not in ("/login", "/logout"):
            if request.path == "/":
                return self._redirect("/login")
            if request.path == "/ws":
                self._refused(request, "no session")
            return self._plain(401, "log in first: /login")
        response = await handler(request)
        self._secure_headers(response)
        return response

    def _refusal(self, request: web.Request) -> tuple[int, str] | None:
        host = (request.headers.get("Host") or "").lower()
        if host not in self.hosts:
            return 421, "this web console does not answer for that host"
        origin = request.headers.get("Origin")
        if origin is None:
            if request.method not in ("GET", "HEAD") or request.path == "/ws":
                return 403, "no Origin: refused"
        elif origin.lower() not in self.origins:
            return 403, "foreign Origin: refused"
        return None

    def _refused(self, request: web.Request, why: str) -> None:
        client = self._client(request)
        unwritten = self._throttle.due(f"{client.rpartition(':')[0]} {request.path} {why}")
        if unwritten is not None:
            self._audit(WebEvent.REFUSED, client=client, path=request.path, reason=why,
                        origin=request.headers.get("Origin"),
                        host=request.headers.get("Host"), unwritten=unwritten or None)

    def _plain(self, status: int, text: str) -> web.Response:
        response = web.Response(status=status, text=text + "\n")
        self._secure_headers(response)
        return response

    def _redirect(self, location: str) -> web.Response:
        response = web.Response(status=303, headers={"Location": location})
        self._secure_headers(response)
        return response

    @staticmethod
    def _secure_headers(response: web.StreamResponse) -> None:
        if response.prepared:  # a WebSocket's handshake went out already
            return
        headers = response.headers
        headers.setdefault("Content-Security-Policy", _CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # Not no-referrer: under it a browser sends `Origin: null` with a form.
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cache-Control", "no-store")

    @staticmethod
    def _client(request: web.Request) -> str:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            return host_port(str(peer[0]), peer[1])
        return "unknown"

    def _audit(self, event: WebEvent, **fields: Any) -> None:
        """Best effort, for what already happened: a failed write is logged."""
        try:
            self.audit.write(event, **fields)
        except OSError as exc:
            logger.error("cannot write the web audit log %s: %s", self.audit.path,
                         exc.strerror or exc)

    # Login and logout

    @property
    def _cookie_name(self) -> str:
        return SECURE_COOKIE_NAME if self.settings.tls else COOKIE_NAME

    async def _login_page(self, request: web.Request) -> web.Response:
        if request[_SESSION] is not None:
            return self._redirect("/")
        return self._login_form()

    def _login_form(self, problem: str = "", status: int = 200) -> web.Response:
        text = self._templates["login"].substitute(
            problem=f'<p class="problem" id="problem">{html.escape(problem)}</p>' if problem
            else "",
            control=html.escape(self.settings.control_url))
        return web.Response(status=status, text=text, content_type="text/html")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        client = self._client(request)
        host = client.rpartition(":")[0].strip("[]")
        wait = self.limiter.admit(host)
        if wait is not None:
            unwritten = self._throttle.due(f"{host} rate")
            if unwritten is not None:
                self._audit(WebEvent.LOGIN_RATE_LIMITED, client=client,
                            unwritten=unwritten or None)
            response = self._login_form(f"Too many login attempts: try again in "
                                        f"{wait:.0f} s.", status=429)
            response.headers["Retry-After"] = str(int(wait + 0.999))
            return response
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            return self._login_form("The login form is too large.", status=413)
        except (ValueError, web.HTTPException):
            return self._login_form("The login form could not be read.", status=400)
        token = form.get("token")
        token = token.strip() if isinstance(token, str) else ""
        problem = token_problem(token)
        if problem is not None:
            self._audit(WebEvent.LOGIN_REFUSED, client=client, reason=f"the token {problem}")
            return self._login_form(f"Refused: the token {problem}.", status=401)
        try:
            role = await self._check_token(token)
        except ControlUnavailable as exc:
            # Not a refusal: nobody can log in until the control plane answers
            # (its message names the URL and why, never the token).
            self._audit(WebEvent.LOGIN_FAILED, client=client, reason=exc.message)
            return self._login_form(f"Nobody can log in now: {exc.message}.", status=502)
        if role is None:
            self._audit(WebEvent.LOGIN_REFUSED, client=client,
                        reason="refused by the control plane")
            return self._login_form("Refused: the control plane does not know this token.",
                                    status=401)
        await self.expire_sessions()
        cookie, session, evicted = self.sessions.create(role, token, client)
        for old in evicted:
            self._audit(WebEvent.SESSION_EXPIRED, session=old.label, role=old.role,
                        reason=f"more than {self.settings.max_logins} logins")
            await self._end_session_consoles(old, "session pushed out by newer logins")
        try:
            self.audit.write(WebEvent.LOGIN, client=client, session=session.label, role=role)
        except OSError as exc:
            # Fail closed: a login that cannot be audited does not happen.
            self.sessions.drop(session)
            logger.error("cannot write the web audit log %s: %s; login refused",
                         self.audit.path, exc.strerror or exc)
            return self._login_form("The audit log cannot be written: login refused.",
                                    status=503)
        response = self._redirect("/")
        response.set_cookie(self._cookie_name, cookie, max_age=int(self.sessions.ttl),
                            path="/", httponly=True, samesite="Strict",
                            secure=self.settings.tls)
        return response

    async def _check_token(self, token: str) -> Role | None:
        """The role the control plane gives ``token``, or None if it refuses it."""
        client = ControlClient(self.settings.control_url, token, open_timeout=LOGIN_TIMEOUT,
                               request_timeout=LOGIN_TIMEOUT)
        try:
            await client.connect()
        except ControlUnavailable:
            raise
        except WsconsoleError:
            return None  # Unauthorized, Forbidden, ...: refused
        finally:
            await client.close()
        return client.role

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        session: WebSession | None = request[_SESSION]
        if session is not None:
            self.sessions.drop(session)
            self._audit(WebEvent.LOGOUT, client=self._client(request), session=session.label,
                        role=session.role)
            await self._end_session_consoles(session, "logged out")
        response = self._redirect("/login")
        response.del_cookie(self._cookie_name, path="/", secure=self.settings.tls,
                            httponly=True, samesite="Strict")
        return response

    # The console

    async def _index(self, request: web.Request) -> web.Response:
        scheme = "wss" if self.settings.tls else "ws"
        font_size = request.query.get("fontsize", "16")
        text = self._templates["console"].substitute(
            # The Host was checked against the allowed ones: the page's own.
            websocket_url=html.escape(f"{scheme}://{request.headers['Host']}/ws"),
            font_size=font_size if font_size.isdigit() and 6 <= int(font_size) <= 64 else "16")
        return web.Response(text=text, content_type="text/html")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        session: WebSession = request[_SESSION]
        if len(self.running) >= self.settings.max_sessions:
            self._refused(request, f"the cap of {self.settings.max_sessions} consoles "
                                   "at once is reached")
            return self._plain(503, f"{self.settings.max_sessions} consoles are running "
                                    "already: close one, or ask for a larger --max-sessions")
        websocket = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=_MAX_FRAME,
                                          timeout=CLOSE_TIMEOUT)
        running = _Running(session, websocket)
        self.running.add(running)  # before the first await: the cap holds
        session.consoles += 1
        try:
            await websocket.prepare(request)
            await self._run_console(request, running)
        finally:
            self.running.discard(running)
            session.consoles -= 1
        return websocket

    async def _run_console(self, request: web.Request, running: _Running) -> None:
        websocket, session = running.websocket, running.session

        async def write_bytes(data: bytes) -> None:
            if not websocket.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await websocket.send_bytes(data)

        async def write_str(data: str) -> None:
            if not websocket.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await websocket.send_str(data)

        async def close() -> None:
            # The console says it exited: by itself (q), or because it was told to.
            if not websocket.closed:
                running.reason = "console quit"
            await websocket.close()

        console = running.console = SessionConsole(
            self.command, session.token, write_bytes=write_bytes, write_str=write_str,
            close=close, download_manager=DownloadManager())
        width = _cells(request.query.get("width"), 80)
        height = _cells(request.query.get("height"), 24)
        client = self._client(request)
        try:
            await console.start(width, height)
            self._audit(WebEvent.CONSOLE_STARTED, client=client, session=session.label,
                        role=session.role, pid=console.pid)
            await self._relay(websocket, console)
        finally:
            await console.stop()
            self._audit(WebEvent.CONSOLE_ENDED, client=client, session=session.label,
                        role=session.role, pid=console.pid, reason=running.reason,
                        seconds=round(time.monotonic() - running.started, 1))

    async def _relay(self, websocket: web.WebSocketResponse, console: SessionConsole) -> None:
        """The browser's keys, pastes and resizes to the console, until the browser
        goes away. textual.js's envelopes: ``["stdin", text]``, ``["resize",
        {"width", "height"}]``, ``["ping", data]``, ``["focus"]``, ``["blur"]``;
        anything else is ignored."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
            except (ValueError, RecursionError):  # RecursionError: [[[[...]]]]
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await console.send_bytes(data.encode("utf-8", "replace"))
            elif kind == "resize" and isinstance(data, dict):
                await console.set_terminal_size(_cells(data.get("width"), 80),
                                                _cells(data.get("height"), 24))
            elif kind == "ping" and isinstance(data, str) and len(data) <= 64:
                with contextlib.suppress(ConnectionError, RuntimeError):  # closing
                    await websocket.send_json(["pong", data])
            elif kind == "blur":
                await console.blur()
            elif kind == "focus":
                await console.focus()


_ESCAPES = re.compile(rb"\x1b\[[0-9;?<>=!$ ]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
                      rb"|\x1b[()][0-9A-Za-z]")


def drawn_text(chunks: list[bytes]) -> str:
    """What a console wrote to its terminal (the frames its page received),
    escape sequences removed: the words it drew (a row's user, a button's
    label) stay whole. For the tests and the screenshot, which cannot read the
    page's canvas."""
    return _ESCAPES.sub(b"", b"".join(chunks)).decode("utf-8", "replace")


def _cells(value: Any, default: int) -> int:
    """A terminal dimension from the browser, bounded; ``default`` if it is not one."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999
        return default
    return min(max(number, 1), _MAX_CELLS)
