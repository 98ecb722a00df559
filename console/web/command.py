"""The ``wsconsole web`` command line: arguments in, :class:`WebConsole` out.

aiohttp and textual-serve (the ``web`` extra) load only when the command runs:
without them, one line says how to install them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from ..client import resolve_url
from .settings import (
    DEFAULT_LOGIN_RATE,
    DEFAULT_MAX_LOGINS,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_TTL,
    DEFAULT_WEB_PORT,
    WebSettings,
)

__all__ = ["register", "run_web", "settings_from_args"]


def register(subparsers: Any) -> None:
    """Add ``web`` to the top-level parser."""
    parser = subparsers.add_parser(
        "web",
        help="the console in a browser, behind a login (needs the web extra)",
        description="Serve the terminal console to browsers: a login page takes an operator "
        "or read-only token, checked by the control plane at --url; each browser tab then "
        "runs its own console, with that token's role. Loopback only unless TLS or "
        "--insecure.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default: 127.0.0.1, loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_WEB_PORT,
                        help=f"port (default: {DEFAULT_WEB_PORT}; 0 picks a free one)")
    parser.add_argument("--url", metavar="URL",
                        help="the control listener logins are checked against and the "
                        "consoles attach to (default: $WSCONSOLE_URL or ws://127.0.0.1:8766)")
    parser.add_argument("--node", metavar="NAME",
                        help="each console shows this node of a cluster to begin with")
    group = parser.add_argument_group("security")
    group.add_argument("--cert", metavar="PEM", help="TLS certificate: serve HTTPS")
    group.add_argument("--key", metavar="PEM", help="TLS private key")
    group.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback address without TLS (tokens and cookies "
                       "in clear text: not recommended)")
    group.add_argument("--origin", action="append", default=[], metavar="URL",
                       help="an origin browsers use, e.g. https://console.example.com:8767 "
                       "(repeatable; default: the --host address, and on loopback "
                       "localhost, 127.0.0.1 and [::1]); requests naming another host or "
                       "origin are refused; required with a wildcard --host")
    group.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS, metavar="N",
                       help="consoles (browser tabs) at once, one process each; more are "
                       f"refused (default: {DEFAULT_MAX_SESSIONS})")
    group.add_argument("--session-ttl", type=float, default=DEFAULT_SESSION_TTL, metavar="S",
                       help="seconds a login lasts; its consoles end with it (default: "
                       f"{DEFAULT_SESSION_TTL:.0f}, 8 hours)")
    group.add_argument("--login-rate", type=float, default=DEFAULT_LOGIN_RATE, metavar="N",
                       help="login attempts per minute from one address, and 6 times as "
                       f"many in total (default: {DEFAULT_LOGIN_RATE:g}; 0: no limit)")
    group.add_argument("--max-logins", type=int, default=DEFAULT_MAX_LOGINS, metavar="N",
                       help=argparse.SUPPRESS)
    group.add_argument("--audit-log", metavar="FILE",
                       help="append one JSON line per login, refusal and console to FILE "
                       "(created mode 0600); the consoles' actions are in the control "
                       "plane's own audit log")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="log to stderr from this level (default: info: one line per "
                        "login and console; never a token or a cookie)")
    parser.set_defaults(func=run_web)


def settings_from_args(args: argparse.Namespace) -> WebSettings:
    return WebSettings(
        control_url=resolve_url(args.url), host=args.host, port=args.port,
        cert=args.cert, key=args.key, insecure=args.insecure, origins=tuple(args.origin),
        max_sessions=args.max_sessions, session_ttl=args.session_ttl,
        login_rate=args.login_rate, max_logins=args.max_logins,
        audit_log=args.audit_log, node=args.node)


def run_web(args: argparse.Namespace) -> int:
    """``wsconsole web``: serve until SIGINT or SIGTERM, then end every console."""
    try:
        from .server import WebConsole
    except ModuleNotFoundError as exc:
        if exc.name not in ("aiohttp", "textual_serve", "aiohttp_jinja2", "jinja2"):
            raise
        print("wsconsole: error: `wsconsole web` needs the web extra: "
              "pip install 'wsconsole[web]'", file=sys.stderr)
        return 1
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The console's client logs nothing of the token; websockets' own client
    # logger would log headers at debug level: keep it at info at most.
    logging.getLogger("websockets").setLevel(max(logging.INFO, logging.root.level))
    web = WebConsole(settings_from_args(args))
    return asyncio.run(_serve(web))


async def _serve(web: Any) -> int:
    await web.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"wsconsole web: serving the console on {web.url} for {web.settings.control_url} "
          "(ctrl+c stops)", flush=True)
    try:
        await stop.wait()
    finally:
        await web.stop()
    return 0
