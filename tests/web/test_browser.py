"""The web console in a real headless Chromium, driven by Playwright.

An operator logs in with a token, sees the connection table, broadcasts to a
group from the browser and a real websockets client receives it; a wrong
token is refused; a page of another origin cannot open the console's
WebSocket, though the browser holds a session; a tab past the session cap
gets no console.

The system's Chromium (Debian's ``chromium``; ``$WSCONSOLE_CHROMIUM`` names
another), never a browser Playwright downloads: without one, or without
Playwright, the module is skipped and says why. One browser, one control
plane, one web console and one console process in all: the steps are one
test, since pytest-xdist's worksteal would hand separate tests of a module to
both workers, each starting its own browser and console.
What the console draws is read from the WebSocket frames the page received
(the terminal is a canvas), escape sequences removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from typing import Any, AsyncIterator

import pytest

pytest.importorskip("textual_serve", reason="the web extra is not installed "
                    "(pip install -e '.[test]' brings textual-serve)")
pytest.importorskip("playwright.async_api", reason="playwright is not installed "
                    "(pip install -e '.[test]' brings it)")
CHROMIUM = os.environ.get("WSCONSOLE_CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium installed (apt-get install chromium, as .ci/run does; or set "
                "WSCONSOLE_CHROMIUM to a Chromium binary)", allow_module_level=True)
# Chromium, a web console and its console process: about 16 s of one worker,
# a quarter of the default suite's minute on two cores. CI runs it (.ci/run
# sets WSCONSOLE_TEST_BROWSER=1, as CI=true does); the HTTP-level tests of the
# web console (tests/web/test_http.py) run in every default run.
if os.environ.get("WSCONSOLE_TEST_BROWSER", os.environ.get("CI", "")).lower() in ("", "0", "false"):
    pytest.skip("the Chromium session takes about 16 s, past the default suite's budget: "
                "CI runs it; WSCONSOLE_TEST_BROWSER=1 .venv/bin/pytest tests/web/test_browser.py "
                "runs it here", allow_module_level=True)

import pytest_asyncio  # noqa: E402
from aiohttp import web as aioweb  # noqa: E402
from websockets.asyncio.client import ClientConnection  # noqa: E402
from playwright.async_api import Browser, BrowserContext, Page, async_playwright  # noqa: E402

from wsconsole.console.web.server import WebConsole  # noqa: E402

from tests.console.live_server import OPERATOR_TOKEN, Live, live_server  # noqa: E402
from tests.helpers import TIMEOUT, wait_for  # noqa: E402
from tests.web.web_helpers import drawn_text, started_web_console  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")

MS = TIMEOUT * 1000
"""Playwright's timeouts are in milliseconds."""


class Screen:
    """What the console drew in one page: the frames of its WebSocket."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.chunks: list[bytes] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: Any) -> None:
        self.chunks.append(payload if isinstance(payload, bytes) else payload.encode())

    def mark(self) -> int:
        return len(self.chunks)

    def text(self, since: int = 0) -> str:
        return drawn_text(self.chunks[since:])

    async def shows(self, *words: str, since: int = 0) -> None:
        try:
            await wait_for(lambda: all(word in self.text(since) for word in words),
                           interval=0.02)
        except TimeoutError:
            raise AssertionError(f"the console did not draw {words}; it drew: "
                                 f"{self.text(since)[-3000:]!r}") from None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live() -> AsyncIterator[Live]:
    async with live_server() as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def web(live: Live) -> AsyncIterator[WebConsole]:
    async with started_web_console(live.url, max_sessions=1, login_rate=0) as web:
        yield web


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            await browser.close()


def origin(web: WebConsole) -> str:
    return f"http://127.0.0.1:{web.port}"


async def log_in(page: Page, web: WebConsole, token: str) -> None:
    await page.goto(f"{origin(web)}/")
    assert page.url == f"{origin(web)}/login"
    await page.fill("#token", token)
    await page.click("#login")


async def lobby(live: Live) -> list[ClientConnection]:
    """Ann and Bob in the lobby, Eve in the kitchen: connected before the console
    starts, so that its first page has them (later ones wait for its throttle)."""
    await live.client(user="eve", topics=("kitchen",))
    return [await live.client(user=user, topics=("lobby",)) for user in ("ann", "bob")]


@contextlib.asynccontextmanager
async def operator(browser: Browser, web: WebConsole
                   ) -> AsyncIterator[tuple[BrowserContext, Screen]]:
    """A browser logged in with the operator token, its console drawn."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    context.set_default_timeout(MS)
    page = await context.new_page()
    screen = Screen(page)
    await log_in(page, web, OPERATOR_TOKEN)
    await page.wait_for_selector("body.-first-byte")
    try:
        yield context, screen
    finally:
        await context.close()


async def a_wrong_token_is_refused(browser: Browser, web: WebConsole) -> None:
    """The login page says the token was refused, and the browser gets no cookie."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await log_in(page, web, "a-token-nobody-has")
        problem = await page.wait_for_selector("#problem", timeout=MS)
        assert problem is not None and "Refused" in await problem.inner_text()
        assert page.url == f"{origin(web)}/login"
        assert await context.cookies() == []
    finally:
        await context.close()
    assert not web.running


async def log_in_see_the_table_and_broadcast_to_a_group(
        operator: tuple[BrowserContext, Screen], lobby: list[ClientConnection]) -> None:
    """Logged in, the browser shows the connection table; a broadcast composed in
    the browser to topic=lobby reaches the lobby's real clients, and the console
    says it delivered 2."""
    _, screen = operator
    ann, bob = lobby
    await screen.shows("ann", "bob", "eve", "3 connections")
    keyboard = screen.page.keyboard
    await screen.page.focus(".xterm-helper-textarea")

    mark = screen.mark()
    await keyboard.press("/")
    await screen.shows("filter", since=mark)  # the filter box is open (its placeholder)
    # Typed as one input (a paste would be the same): xterm.js sends it in one frame.
    await keyboard.insert_text("topic=lobby")
    await keyboard.press("Enter")
    await screen.shows("1-2 of 2", since=mark)
    mark = screen.mark()
    await keyboard.press("b")
    await screen.shows("Send to 2", since=mark)
    await keyboard.insert_text("hello from the browser")
    await keyboard.press("Control+s")
    async with asyncio.timeout(TIMEOUT):
        assert await ann.recv() == "hello from the browser"
        assert await bob.recv() == "hello from the browser"
    await screen.shows("delivered 2", since=mark)


async def another_origin_cannot_open_the_console_websocket(
        operator: tuple[BrowserContext, Screen], web: WebConsole) -> None:
    """A page served on another port of the same host (same site: the browser
    sends the session cookie along) opens the console's WebSocket: it is
    refused for its Origin, and no console starts."""
    context, _ = operator
    running = len(web.running)
    foreign = aioweb.Application()
    page_html = ("<title>waiting</title><script>"
                 f"const ws = new WebSocket('ws://127.0.0.1:{web.port}/ws');"
                 "ws.onopen = () => { document.title = 'opened'; };"
                 "ws.onclose = () => { if (document.title !== 'opened') "
                 "document.title = 'refused'; };</script>")

    async def foreign_page(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(text=page_html, content_type="text/html")

    foreign.router.add_get("/", foreign_page)
    runner = aioweb.AppRunner(foreign)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.wait_for_function("document.title !== 'waiting'", timeout=MS)
        assert await page.title() == "refused"
        await page.close()
    finally:
        await runner.cleanup()
    assert len(web.running) == running


async def a_tab_past_the_session_cap_gets_no_console(
        operator: tuple[BrowserContext, Screen], web: WebConsole) -> None:
    """With --max-sessions 1 and a console running, a second tab's console is
    refused: the page says the console ended; the first one still runs."""
    context, screen = operator
    assert len(web.running) == 1
    page = await context.new_page()
    await page.goto(f"{origin(web)}/")
    await page.wait_for_selector("body.-closed")
    assert await page.is_visible("#restart")
    await page.close()
    assert len(web.running) == 1
    mark = screen.mark()
    await screen.page.keyboard.press("Escape")  # the first console still answers keys
    await wait_for(lambda: screen.mark() > mark)


async def test_an_operator_in_chromium(browser: Browser, web: WebConsole, live: Live) -> None:
    """In a real browser: a wrong token is refused; the operator token logs in,
    shows the connection table, and a broadcast to a group composed in the page
    reaches that group's real clients; a page of another origin cannot open the
    console's WebSocket; a tab past the session cap gets no console."""
    await a_wrong_token_is_refused(browser, web)
    clients = await lobby(live)
    async with operator(browser, web) as (context, screen):
        await log_in_see_the_table_and_broadcast_to_a_group((context, screen), clients)
        await another_origin_cannot_open_the_console_websocket((context, screen), web)
        await a_tab_past_the_session_cap_gets_no_console((context, screen), web)
    # The browser went away: so did its console.
    await wait_for(lambda: not web.running)
