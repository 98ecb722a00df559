"""How wsconsole writes a network address: ``host:port``, IPv6 in brackets.

One spelling for the listen addresses in logs and ``hello``, the control URL,
and the client addresses of connection records and audit entries.

Pure: must never import asyncio, websockets or textual.
"""

from __future__ import annotations

import ipaddress

__all__ = ["host_port", "is_loopback"]


def host_port(host: str, port: int | str) -> str:
    """``127.0.0.1:8765``, ``[::1]:8765``; a host already in brackets stays as it is."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def is_loopback(host: str | None) -> bool:
    """True if binding to ``host`` exposes nothing beyond this machine (the
    control listener's and the web console's rule)."""
    if host is None or host == "":
        return False  # every interface
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A host name could resolve to anything: treat it as exposed.
        return False
