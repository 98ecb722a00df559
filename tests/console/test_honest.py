"""Honest state under failure, and a layout that adapts: the console and the
command line say what is true when the link is wrong, down or gone.

Pilot tests run ``ConsoleApp.run_test()`` against a real embedded server on
loopback (the demo application: it echoes); command-line tests run
``wsconsole.console.cli.main`` in a thread against real servers; the view
logic is tested with plain values.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import pytest

from wsconsole.console.app import ConsoleApp
from wsconsole.console.cli import main
from wsconsole.console.client import ControlClient, hello_problem
from wsconsole.console.link import LinkState, LinkStatus
from wsconsole.console.screens import ComposeScreen
from wsconsole.console.widgets import ChoiceSet
from wsconsole.console.view_state import link_banner, link_health
from wsconsole.server import serve
from wsconsole.server.config import ControlConfig
from wsconsole.server.demo_app import demo_handler
from wsconsole.server.errors import NotAControlPlane

from tests.helpers import TIMEOUT, wait_for

TOKEN = "operator-token-for-honest-tests"
READ_ONLY = "read-only-token-for-honest-tests"
SIZE = (100, 30)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No operator's own URL, token or token file leaks into a test."""
    monkeypatch.delenv("WSCONSOLE_URL", raising=False)
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@contextlib.asynccontextmanager
async def demo_server() -> AsyncIterator[Any]:
    """The demo application (echo) on port 0, its control plane on port 0."""
    server = serve(demo_handler, "127.0.0.1", 0, node="honest",
                   control=ControlConfig(host="127.0.0.1", port=0, token=TOKEN,
                                         read_only_token=READ_ONLY))
    await server
    try:
        yield server
    finally:
        if server.hub.state == "serving":
            server.close()
        async with asyncio.timeout(TIMEOUT):
            await server.wait_closed()


def control_url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.control.port}"


def public_url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


def console(url: str, token: str = TOKEN, **kwargs: Any) -> ConsoleApp:
    kwargs.setdefault("refresh_delay", 0.01)
    kwargs.setdefault("min_refresh_interval", 0.05)
    return ConsoleApp(lambda: ControlClient(url, token), url=url, **kwargs)


async def run(*argv: str) -> int:
    """``wsconsole ARGV`` in a thread; its exit status."""
    async with asyncio.timeout(TIMEOUT * 2):
        return await asyncio.to_thread(main, list(argv))


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wsconsole: error: "), err
    return lines[0]


# Not a control plane


def test_a_hello_answer_is_recognised_by_its_shape():
    """Only a reply saying "server": "wsconsole" (or a control plane's error
    reply) is a control plane; an echo, a greeting or other JSON is not."""
    assert hello_problem('{"id": 1, "ok": true, "result": {"server": "wsconsole"}}') is None
    assert hello_problem('{"id": 1, "ok": false, "error": {"code": "rate_limited", '
                         '"message": "slow down"}}') is None
    assert "echoed" in hello_problem('{"id": 1, "op": "hello", "args": {}}')
    assert "not JSON" in hello_problem("ready")
    assert "binary" in hello_problem(b"\x00")
    assert "wsconsole" in hello_problem('{"id": 1, "ok": true, "result": {"server": "x"}}')
    assert hello_problem("[1]") is not None and hello_problem('{"hi": 1}') is not None


async def test_the_cli_at_the_public_port_says_so_in_words(capsys):
    """`wsconsole ls --url PUBLIC` fails with one line naming the likely mistake,
    not "unknown error"; an application that greets first is recognised too."""
    async with demo_server() as server:
        assert await run("ls", "--url", public_url(server), "--token", TOKEN) == 1
        line = one_error_line(capsys.readouterr().err)
        assert "is not a wsconsole control plane: is it the public port?" in line
        assert "echoed the hello request back" in line and TOKEN not in line


async def test_the_console_at_the_public_port_stops_and_does_not_retry():
    """The console says what the endpoint is not, and opens no further
    connection to the application with the operator's token."""
    async with demo_server() as server:
        app = console(public_url(server), reconnect_delays=(0.01,))
        async with app.run_test(size=SIZE):
            await wait_for(lambda: app.link_state.status == LinkStatus.NOT_CONTROL_PLANE)
            banner = str(app.main_screen.query_one("#banner").render())
            assert "not a wsconsole control plane: is it the public port?" in banner
            assert "Not retried on its own" in banner
            # The link worker has ended: nothing will try again on its own.
            await wait_for(lambda: not any(w.group == "link" and w.is_running
                                           for w in app.workers))
            assert server.hub.opened_total == 1
            assert app.main_screen.check_action("reconnect", ()) is True


def test_the_link_health_names_each_reason_for_not_trying():
    """Not a control plane and a stopped server are said apart from a refused token."""
    assert link_health(LinkState().not_control_plane("x")) == \
        "not a control plane (ctrl+r retries)"
    assert link_health(LinkState().ended("x")) == "server stopped (ctrl+r retries)"
    text, kind = link_banner(LinkState().not_control_plane("ws://h:1 is not ..."))
    assert kind == "error" and "fix --url" in text


# events: a lost link is an error exit


async def test_events_exit_1_with_one_line_when_the_server_goes_away(capsys):
    """`wsconsole events` whose server is killed (the connection drops with no
    close frame) exits 1 with one line on stderr, not 0 in silence."""
    async with demo_server() as server:
        task = asyncio.create_task(run("events", "--url", control_url(server),
                                       "--token", TOKEN, "--stats-interval", "0.1"))
        out: list[str] = []
        err: list[str] = []

        def printed_stats() -> bool:
            captured = capsys.readouterr()
            out.append(captured.out)
            err.append(captured.err)
            return " stats " in "".join(out) or task.done()

        await wait_for(printed_stats)  # subscribed and streaming
        # A kill: the kernel closes the connection, with no close frame.
        for connection in list(server.control._server.connections):
            connection.transport.abort()
        assert await task == 1
    line = one_error_line("".join(err) + capsys.readouterr().err)
    assert "the event stream ended" in line and "without a close frame" in line


# Small things


def notes(app: ConsoleApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_palette_screenshot_and_radio_highlight_tell_the_truth(monkeypatch, tmp_path):
    """The palette lists the console's actions, Theme, Screenshot and Quit, not
    Textual's "Copy selected text" (ctrl+c quits here); a screenshot without
    ~/Downloads goes to the current directory and says the path; the compose
    dialog opened on its second choice highlights that row, where the dot is."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/Downloads
    monkeypatch.chdir(tmp_path)
    async with demo_server() as server:
        app = console(control_url(server))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.up)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert "Copy selected text" not in titles and "Keys" not in titles
            assert "Focus Next" not in titles
            assert {"Broadcast", "Help", "Theme", "Screenshot", "Quit"} <= set(titles)
            path = app.save_screen()
            assert path is not None and path.startswith(str(tmp_path))
            assert (tmp_path / path.rpartition("/")[2]).read_text().startswith("<svg")
            await wait_for(lambda: f"Screenshot saved: {path}" in notes(app))

            targets = [("the selected ann", {"ids": ["x"]}), ("the current view", {"user": "a"}),
                       ("everyone", {"everyone": True})]
            await app.push_screen(ComposeScreen(app.link, targets, default=1))
            radios = app.screen.query_one("#compose-targets", ChoiceSet)
            await wait_for(lambda: radios._selected == 1)
            assert radios.pressed_index == 1


async def test_a_mutating_key_with_a_read_only_token_says_why(monkeypatch):
    """b with a read-only token opens nothing and says that sending needs the
    operator role; the footer shows it dimmed."""
    async with demo_server() as server:
        app = console(control_url(server), token=READ_ONLY)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.up and app.link_state.read_only)
            await pilot.press("b")
            await wait_for(lambda: any("read-only token: sending needs the operator role"
                                       in n for n in notes(app)))
            assert app.screen is app.main_screen
