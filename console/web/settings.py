"""What ``wsconsole web`` is configured with, and the rules it checks before binding.

Plain values: where to listen, TLS, the origins browsers may use, the caps,
the session lifetime, the login rate and the audit file. :func:`check_settings`
fails closed with a :class:`ConfigError`, as the control listener does: a
non-loopback bind needs TLS or an explicit ``insecure``, and a wildcard bind
needs the origins browsers will use, since a request naming any other host is
refused (DNS rebinding).

Pure: must never import asyncio, aiohttp, websockets or textual.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wsconsole.server.addresses import host_port, is_loopback
from wsconsole.server.errors import ConfigError

__all__ = [
    "WebSettings",
    "check_settings",
    "allowed_origins",
    "origin_of",
    "DEFAULT_WEB_PORT",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_SESSION_TTL",
    "DEFAULT_LOGIN_RATE",
    "DEFAULT_MAX_LOGINS",
]

DEFAULT_WEB_PORT = 8767
"""Beside the public port (8765) and the control port (8766)."""
DEFAULT_MAX_SESSIONS = 4
"""Consoles running at once: each is a Python process of some 60 MB."""
DEFAULT_SESSION_TTL = 8 * 3600.0
"""Seconds a login lasts (a working day); its consoles end with it."""
DEFAULT_LOGIN_RATE = 10.0
"""Login attempts per minute from one client address (bursts of as many)."""
DEFAULT_MAX_LOGINS = 64
"""Logins kept at once; past it the oldest is forgotten (and its consoles end)."""


@dataclass
class WebSettings:
    """Where the web console listens, for which control plane, and its limits."""

    control_url: str
    """The control plane every login is checked against and every console attaches to."""
    host: str = "127.0.0.1"
    """Bind address; non-loopback needs TLS (cert and key) or ``insecure``."""
    port: int = DEFAULT_WEB_PORT
    """TCP port; 0 picks a free one."""
    cert: str | None = None
    """TLS certificate (PEM): the page, the cookie and the WebSocket over HTTPS."""
    key: str | None = None
    """TLS private key (PEM)."""
    insecure: bool = False
    """Allow a non-loopback bind without TLS (the operator said so explicitly)."""
    origins: tuple[str, ...] = ()
    """The origins browsers use (``https://console.example.com:8767``); by default
    the bind address's, and on loopback ``localhost``'s, ``127.0.0.1``'s and ``[::1]``'s."""
    max_sessions: int = DEFAULT_MAX_SESSIONS
    """Consoles (browser tabs) running at once; one more is refused with HTTP 503."""
    session_ttl: float = DEFAULT_SESSION_TTL
    """Seconds a login lasts: the cookie's Max-Age, and when its consoles end."""
    login_rate: float = DEFAULT_LOGIN_RATE
    """Login attempts per minute from one client address; 0: no limit."""
    login_total_rate: float = field(default=0.0)
    """Login attempts per minute in total; 0: six times ``login_rate``."""
    max_logins: int = DEFAULT_MAX_LOGINS
    """Logins (session cookies) remembered at once."""
    audit_log: str | None = None
    """Append one JSON line per login, refusal and console to this file."""
    node: str | None = None
    """``--node`` of each console: the node of a cluster it shows to begin with."""

    @property
    def tls(self) -> bool:
        """True when a certificate and key are configured."""
        return self.cert is not None and self.key is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return host == ""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, default ports left out,
    as a browser writes it in ``Origin``; ConfigError for anything else."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--origin {url!r} is not an http:// or https:// origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(f"--origin {url!r} has more than scheme://host[:port]")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"--origin {url!r} has a bad port") from None
    host = parts.hostname.lower()
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != (443 if parts.scheme == "https" else 80):
        shown = f"{shown}:{port}"
    return f"{parts.scheme}://{shown}"


def allowed_origins(settings: WebSettings, port: int) -> frozenset[str]:
    """The origins a page, a login or a WebSocket may come from, once bound to ``port``."""
    if settings.origins:
        return frozenset(origin_of(origin) for origin in settings.origins)
    hosts = [settings.host]
    if is_loopback(settings.host):
        hosts += ["localhost", "127.0.0.1", "::1"]
    return frozenset(origin_of(f"{settings.scheme}://{host_port(host, port)}") for host in hosts)


def check_settings(settings: WebSettings) -> None:
    """Refuse, with one line, a configuration the web console must not run with."""
    if (settings.cert is None) != (settings.key is None):
        raise ConfigError("the web console's TLS needs both a certificate and a key "
                          "(--cert, --key)")
    if not is_loopback(settings.host) and not settings.tls and not settings.insecure:
        raise ConfigError(
            f"refusing to serve the web console on {settings.host or 'every interface'} "
            "without TLS: tokens and session cookies would cross the network in clear "
            "text; give a certificate and key (--cert, --key), bind to 127.0.0.1, or pass "
            "--insecure")
    if _is_wildcard(settings.host) and not settings.origins:
        raise ConfigError(
            f"the web console on {settings.host or 'every interface'} needs --origin, the "
            "address browsers will use (e.g. https://console.example.com:8767): pages "
            "naming any other host are refused")
    for origin in settings.origins:
        origin_of(origin)
    if settings.max_sessions < 1:
        raise ConfigError("--max-sessions must be at least 1")
    if not settings.session_ttl > 0:
        raise ConfigError("--session-ttl must be more than 0 seconds")
    if settings.login_rate < 0 or settings.login_total_rate < 0:
        raise ConfigError("--login-rate must be 0 (no limit) or more")
    if settings.max_logins < 1:
        raise ConfigError("--max-logins must be at least 1")
