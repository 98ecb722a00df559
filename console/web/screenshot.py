"""``wsconsole screenshots --web``: a picture of the console in a browser.

Starts, in this process, the demo server with its simulated clients (a fixed
seed) and a random token, ``wsconsole web`` on a free loopback port, and a
headless Chromium (the system's: ``$WSCONSOLE_CHROMIUM``, else ``chromium``
on the PATH) driven by Playwright; logs in through the login page, waits
until the table shows the simulated users, and writes ``web.png``. The data
is live, so the picture is not compared by the tests as the SVGs are.

Needs the web extra and Playwright (the test extra has both) and a Chromium.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path

from wsconsole.server.errors import ConfigError

__all__ = ["write_web_screenshot", "find_chromium", "WEB_SHOT", "VIEWPORT"]

WEB_SHOT = "web.png"
"""The file name of the browser's picture."""
VIEWPORT = (1440, 900)
"""The browser window's size in CSS pixels."""
_USERS = ("ann", "bob", "mallory")
"""Simulated users the table shows once the console has its first page."""


def find_chromium() -> str:
    """The Chromium to drive; ConfigError (one line) when there is none."""
    found = os.environ.get("WSCONSOLE_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    if not found:
        raise ConfigError("no Chromium found: apt-get install chromium, or set "
                          "WSCONSOLE_CHROMIUM to a Chromium binary")
    return found


def write_web_screenshot(out: str | os.PathLike[str] = "screenshots") -> Path:
    """Write ``out/web.png``; return its path."""
    chromium = find_chromium()
    try:
        from playwright.async_api import async_playwright  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError("the browser's screenshot needs Playwright: "
                          "pip install -e '.[test]'") from None
    from ..tui_command import logging_silenced

    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    with logging_silenced():  # the demo's slow consumer is in the picture, not on stderr
        return asyncio.run(_shoot(directory / WEB_SHOT, chromium))


async def _shoot(path: Path, chromium: str) -> Path:
    from playwright.async_api import async_playwright

    from wsconsole.server import serve
    from wsconsole.server.config import ControlConfig
    from wsconsole.server.demo_app import demo_handler

    from ..simulator import Simulator
    from ..tui_command import DEMO_NODE, DEMO_SLOW_CONSUMER_LIMIT
    from .server import WebConsole
    from .settings import WebSettings

    token = secrets.token_urlsafe(32)
    server = serve(demo_handler, "127.0.0.1", 0, node=DEMO_NODE, allow_tap=True,
                   slow_consumer_limit=DEMO_SLOW_CONSUMER_LIMIT,
                   control=ControlConfig(host="127.0.0.1", port=0, token=token))
    await server
    simulator = Simulator(f"ws://{server.hub.listen[0]}", seed=7, guests=4, slow_reader=True)
    simulator.start()
    web = WebConsole(WebSettings(control_url=server.control.url, port=0, max_sessions=1))
    await web.start()
    chunks: list[bytes] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium)
            try:
                page = await browser.new_page(
                    viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
                page.on("websocket", lambda ws: ws.on(
                    "framereceived",
                    lambda data: chunks.append(data if isinstance(data, bytes)
                                               else data.encode())))
                await page.goto(f"http://127.0.0.1:{web.port}/")
                await page.fill("#token", token)
                await page.click("#login")
                await page.wait_for_selector("body.-first-byte", timeout=30_000)
                await _until_drawn(chunks, _USERS)
                # A few seconds of traffic: the rate graphs and counters move.
                await asyncio.sleep(4)
                await page.screenshot(path=str(path))
            finally:
                await browser.close()
    finally:
        await web.stop()
        await simulator.stop()
        server.close()
        await server.wait_closed()
    return path


async def _until_drawn(chunks: list[bytes], words: tuple[str, ...], timeout: float = 30) -> None:
    from .server import drawn_text

    async with asyncio.timeout(timeout):
        while not all(word in drawn_text(chunks) for word in words):
            await asyncio.sleep(0.05)
