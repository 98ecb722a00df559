"""Shared by the web console's tests: a started :class:`WebConsole` on port 0,
an HTTP client that keeps cookies for 127.0.0.1, and the text of what a
console drew.

The web console runs the real ``wsconsole console`` for each WebSocket, a
subprocess that takes about a second to draw: the tests open as few as they can.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp

from wsconsole.console.web.server import WebConsole, drawn_text
from wsconsole.console.web.settings import WebSettings

__all__ = ["started_web_console", "http_session", "drawn_text", "login", "command_lines",
           "environment_of"]

@contextlib.asynccontextmanager
async def started_web_console(control_url: str, *, clock: Callable[[], float] | None = None,
                              **settings: Any) -> AsyncIterator[WebConsole]:
    web = WebConsole(WebSettings(control_url=control_url, port=0, **settings),
                     **({"clock": clock} if clock is not None else {}))
    await web.start()
    try:
        yield web
    finally:
        await web.stop()


def http_session() -> aiohttp.ClientSession:
    """A client that keeps the cookies of 127.0.0.1 (aiohttp's jar refuses an
    IP address's by default), and never follows redirects unasked."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(session: aiohttp.ClientSession, web: WebConsole, token: str) -> aiohttp.ClientResponse:
    origin = f"http://127.0.0.1:{web.port}"
    async with session.post(f"{origin}/login", data={"token": token},
                            headers={"Origin": origin}, allow_redirects=False) as response:
        await response.read()
        return response


def command_lines() -> list[str]:
    """Every process's command line, as ``ps -ef`` shows them to any user."""
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    "utf-8", "replace"))
    return lines


def environment_of(pid: int) -> dict[str, str]:
    """A process's environment, as /proc shows it to its own user only."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


