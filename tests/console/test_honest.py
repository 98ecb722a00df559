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
import io
import time
from typing import Any, AsyncIterator

import pytest
from rich.text import Text

from wsconsole.console.app import ConsoleApp
from wsconsole.console.cli import main
from wsconsole.console.client import ControlClient, hello_problem
from wsconsole.console.layout import GROUPS_MIN_WIDTH, fit_parts, groups_visible, \
    visible_columns
from wsconsole.console.link import LinkState, LinkStatus
from wsconsole.console.screens import ComposeScreen, DetailScreen
from wsconsole.console.widgets import ChoiceSet, GroupsPanel, KeysFooter, StatusBar
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
async def demo_server(control_port: int = 0) -> AsyncIterator[Any]:
    """The demo application (echo) on port 0, its control plane on ``control_port``."""
    server = serve(demo_handler, "127.0.0.1", 0, node="honest",
                   control=ControlConfig(host="127.0.0.1", port=control_port, token=TOKEN,
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
    kwargs.setdefault("stats_interval", 0.1)  # the status bar's first figures at once
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
    text, kind = link_banner(LinkState().ended("the demo's server has stopped."))
    assert kind == "error" and text.startswith("The server has stopped: nothing to reconnect")


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


async def test_at_100x30_the_layout_adapts_and_the_palette_tells_the_truth(
        monkeypatch, tmp_path):
    """At 100x30 the table keeps the columns an operator needs (the groups panel
    steps aside; G and g bring it back). The palette lists the console's actions,
    Theme, Screenshot and Quit, not Textual's "Copy selected text" (ctrl+c quits
    here); a screenshot without
    ~/Downloads goes to the current directory and says the path; the compose
    dialog opened on its second choice highlights that row, where the dot is."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/Downloads
    monkeypatch.chdir(tmp_path)
    async with demo_server() as server:
        app = console(control_url(server))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.up and app.stats)
            # At 100x30: the groups panel is hidden, so the table keeps age,
            # messages and buffered bytes; G shows and hides it, g shows it and
            # moves there; the status line fits without cutting a word.
            screen = app.main_screen
            panel = screen.query_one(GroupsPanel)
            assert not panel.display
            table = screen.table
            await wait_for(lambda: {"connected_at", "msgs_in", "msgs_out", "buffered"}
                           <= set(table.shown))
            bar = screen.query_one(StatusBar)
            line = bar.query_one("#status-line")
            assert "connections" in line.shown and "…" not in line.shown
            # The close summary beside the rates is not cut either: the
            # sparklines give it their room.
            bar.show_closes("1006×12 1008×5 4001×1 in 5 min")
            assert str(bar.query_one("#closes").render()) == \
                "abnormal closes 1006×12 1008×5 4001×1 in 5 min"
            assert bar.has_class("no-sparklines")
            # The footer leaves out whole keys (Textual's cut "Disconnect all
            # shown" mid-word), keeps ? Help and the palette's key.
            footer = screen.query_one(KeysFooter)
            await wait_for(footer.is_current)
            keys_line = footer.render_line(0).text.rstrip()
            assert keys_line.endswith("^p palette") and " ? Help " in keys_line
            for key in footer.drawn:
                assert key.description in keys_line
            await pilot.press("G")
            await wait_for(lambda: panel.display)
            await pilot.press("G")
            await wait_for(lambda: not panel.display and table.has_focus)
            await pilot.press("g")
            await wait_for(lambda: panel.display and panel.has_focus)

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
    operator role; the footer shows it dimmed. In the detail view, m, d and T
    say why too, and the view stays."""
    from websockets.asyncio.client import connect

    async with demo_server() as server:
        ann = await connect(f"{public_url(server)}/?user=ann")
        app = console(control_url(server), token=READ_ONLY)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.main_screen
            await wait_for(lambda: app.link_state.up and app.link_state.read_only
                           and screen.table.row_count == 1)
            await pilot.press("b")
            await wait_for(lambda: any("read-only token: sending needs the operator role"
                                       in n for n in notes(app)))
            assert app.screen is screen
            app._notifications.clear()
            screen.table.focus()
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, DetailScreen)
                           and app.screen.is_mounted)
            detail = app.screen
            await pilot.press("m", "d", "T")
            for verb in ("sending", "disconnecting", "tapping"):
                await wait_for(lambda: any(f"read-only token: {verb} needs the operator role"
                                           in n for n in notes(app)))
            assert app.screen is detail
        await ann.close()


# Layout that adapts


def test_narrow_widths_keep_age_messages_and_buffered():
    """At 80 and 100 columns the table keeps id, user, path, age, messages and
    buffered bytes; the client address and byte counts go first, and a single
    node's name goes before anything else; in a cluster the node stays."""
    order = ["id", "node", "user", "path", "remote", "connected_at", "last_activity",
             "msgs_in", "bytes_in", "msgs_out", "bytes_out", "buffered", "latency"]
    widths = {"id": 10, "node": 6, "user": 8, "path": 14, "remote": 15, "connected_at": 6,
              "last_activity": 4, "msgs_in": 7, "bytes_in": 8, "msgs_out": 8,
              "bytes_out": 9, "buffered": 8, "latency": 7}
    at_80 = visible_columns(77, widths, order)
    assert at_80 == ("id", "user", "path", "connected_at", "msgs_in", "msgs_out", "buffered")
    at_100 = visible_columns(97, widths, order)
    assert {"last_activity", "latency"} <= set(at_100) and "remote" not in at_100
    assert "node" not in visible_columns(134, widths, order)
    assert visible_columns(77, widths, order, cluster=True)[:3] == ("id", "node", "user")
    assert visible_columns(5, widths, order) == ("id",)  # the first always shows


def test_the_groups_panel_hides_on_narrow_terminals_unless_asked_for():
    """Below GROUPS_MIN_WIDTH the panel starts hidden; the operator's choice wins."""
    assert not groups_visible(120, None) and groups_visible(GROUPS_MIN_WIDTH, None)
    assert groups_visible(80, True) and not groups_visible(200, False)


def test_the_status_line_drops_whole_parts_least_important_first():
    """A narrow line loses the listen address, then opened/closed, then the
    uptime, never half a word."""
    parts = [(0, Text("demo  serving")), (4, Text("  ws://127.0.0.1:8765")),
             (2, Text("  up 1h02m")), (1, Text("  16 connections")),
             (3, Text(" (131 opened, 115 closed)"))]
    assert fit_parts(parts, None).plain == \
        "demo  serving  ws://127.0.0.1:8765  up 1h02m  16 connections (131 opened, 115 closed)"
    assert fit_parts(parts, 64).plain == \
        "demo  serving  up 1h02m  16 connections (131 opened, 115 closed)"
    assert fit_parts(parts, 40).plain == "demo  serving  up 1h02m  16 connections"
    assert fit_parts(parts, 30).plain == "demo  serving  16 connections"
    assert fit_parts(parts, 8).plain == "demo  s…"


def test_the_close_summary_keeps_its_most_frequent_code_and_counts_the_rest():
    """A narrow status bar drops the rarer codes (counted in +N more), then the
    window, then the words, never a code cut in half."""
    from wsconsole.console.layout import fit_closes

    summary = "1006×12 1008×5 4001×1 in 5 min"
    assert fit_closes(summary, None).plain == "abnormal closes " + summary
    assert fit_closes(summary, 46).plain == "abnormal closes " + summary
    assert fit_closes(summary, 45).plain == "abnormal closes 1006×12 +6 more in 5 min"
    assert fit_closes(summary, 39).plain == "abnormal closes 1006×12 +6 more"
    assert fit_closes(summary, 30).plain == "closes 1006×12 +6 more"
    assert fit_closes(summary, 15).plain == "1006×12 +6 more"
    assert fit_closes("1006×3 1008×2 1011×1 4001×1 +3 more in 5 min", 40).plain == \
        "abnormal closes 1006×3 +7 more in 5 min"
    assert fit_closes("", 40).plain == ""


# Stale while the link is down


async def test_while_the_link_is_down_everything_shown_says_stale():
    """Once the control plane has gone, the status bar no longer says a green
    "serving": it says STALE SINCE HH:MM:SS and dims the figures; the table's
    subtitle and the groups panel say stale too; back up, none of it stays."""
    async with demo_server() as server:
        port = server.control.port
        app = console(control_url(server), reconnect_delays=(0.05,))
        async with app.run_test(size=(140, 30)) as pilot:
            screen = app.main_screen
            bar = screen.query_one(StatusBar)
            line = bar.query_one("#status-line")
            await wait_for(lambda: app.link_state.up and "serving" in line.shown)
            assert "STALE" not in line.shown
            # A detail view open meanwhile says it too (no connection: it is closed).
            detail = DetailScreen({"id": "0123456789"})
            await app.push_screen(detail)
            summary = detail.query_one("#detail-summary")
            await wait_for(lambda: detail.closed)
            assert "link is down" not in str(summary.border_title)
            server.close()
            await server.wait_closed()
            await wait_for(lambda: app.link_state.stale)
            since = time.strftime("%H:%M:%S", time.localtime(app.link_state.down_since))
            await wait_for(lambda: f"stale since {since}: the link is down"
                           in str(summary.border_title))
            app.pop_screen()
            await wait_for(lambda: f"STALE SINCE {since}" in line.shown)
            state = next(text for _, text in line.parts if text.plain.startswith("stopp")
                         or text.plain.startswith("serving") or text.plain.startswith("drain"))
            assert "green" not in str(state.style) and "dim" in str(state.style)
            assert bar.has_class("stale")
            assert f"stale since {since}" in str(screen.table.border_subtitle)
            groups = screen.query_one(GroupsPanel)
            assert groups.has_class("stale") and "stale" in str(groups.border_title)
            async with demo_server(control_port=port):
                await wait_for(lambda: app.link_state.up, timeout=3 * TIMEOUT)
                await wait_for(lambda: "STALE" not in line.shown and not bar.has_class("stale"))
                assert "stale" not in str(screen.table.border_subtitle)
                assert not groups.has_class("stale") and groups.border_title == "Groups"


# The keep-alive drain: deadline, countdown, escalation


async def test_the_drain_dialog_counts_down_and_tells_an_escalation_from_the_cli():
    """The keep-alive dialog shows its deadline and counts down to it; a graceful
    shutdown from the command line cuts the drain short, and the dialog says so,
    with who closed on their own and who was closed, not "every connection
    closed"."""
    from websockets.asyncio.client import connect

    from wsconsole.console.screens import ShutdownScreen

    async with demo_server() as server:
        clients = [await connect(f"{public_url(server)}/?user=u{i}") for i in range(2)]
        app = console(control_url(server))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.up and app.stats.get("connections") == 2)
            await pilot.press("X")
            # Pushed is not yet composed: mounted before a click can find its buttons.
            await wait_for(lambda: isinstance(app.screen, ShutdownScreen)
                           and app.screen.is_mounted)
            dialog = app.screen
            await pilot.click("#shutdown-mode RadioButton:last-of-type")
            await wait_for(lambda: dialog.mode == "keep_alive")
            dialog.query_one("#shutdown-deadline").value = "300"
            await pilot.click("#shutdown-confirm")
            await wait_for(lambda: dialog.phase == "draining")
            text = dialog.query_one("#shutdown-progress-text")
            deadline = time.strftime("%H:%M:%S", time.localtime(server.hub.shutdown_deadline))
            await wait_for(lambda: f"Deadline {deadline}, in 4m 5" in str(text.render())
                           or f"Deadline {deadline}, in 5m 00s" in str(text.render()))
            await clients[0].close()
            await wait_for(lambda: "1 of 2 still open" in str(text.render()))
            # The app has stdout while it runs: the command's own, for its line.
            with contextlib.redirect_stdout(io.StringIO()) as out:
                assert await run("shutdown", "--graceful", "--url", control_url(server),
                                 "--token", TOKEN) == 0
            assert ("the keep-alive drain is cut short: closing the 1 connection still open"
                    in out.getvalue())
            await wait_for(lambda: dialog.phase == "stopped")
            shown = str(text.render())
            assert ("cut short by a graceful shutdown: 1 of 2 connections closed on their "
                    "own, the server closed the other 1 (code 1001)") in shown
            assert "has stopped" in shown and "every connection closed" not in shown
            # The event log says it too: one line for the escalation.
            log = app.main_screen.event_log
            await wait_for(lambda: any("Keep-alive drain cut short" in line
                                       for line in log.entries))


# The demo, once its own server has stopped


def test_the_demo_says_its_server_stopped_and_quits(capsys):
    """Shutting the demo's own server down from its console does not leave it
    retrying forever: the link stops, a dialog says so with Quit focused, and
    enter quits the demo, which says why on its way out."""
    import argparse

    from wsconsole.console.screens import ServerStoppedScreen
    from wsconsole.console.tui_command import run_demo

    args = argparse.Namespace(host="127.0.0.1", port=0, control_port=0, seed=7, guests=0,
                              no_slow_reader=True)
    seen: dict[str, Any] = {}

    async def drive(app: ConsoleApp) -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.up, timeout=3 * TIMEOUT)
            # What the shutdown dialog sends (the dialog is tested on its own).
            await app.link.require().shutdown("graceful")
            # Pushed is not yet mounted: Quit is focused (on mount) before enter
            # can press it (an enter that comes first reaches no button).
            await wait_for(lambda: isinstance(app.screen, ServerStoppedScreen)
                           and getattr(app.screen.focused, "id", None) == "ended-quit",
                           timeout=3 * TIMEOUT)
            seen["status"] = app.link_state.status
            # The link worker was cancelled: it ends, and nothing tries again.
            await wait_for(lambda: not any(w.group == "link" and w.is_running
                                           for w in app.workers))
            await pilot.press("enter")
            await wait_for(lambda: not app.is_running)

    assert run_demo(args, run=drive) == 0
    assert seen == {"status": LinkStatus.ENDED}
    assert "the demo's server was shut down from its console" in capsys.readouterr().out


# The compose dialog's count


def test_a_send_reports_the_count_it_reached():
    """The summary names the count the message reached, and the one confirmed
    when they differ."""
    from wsconsole.console.screens.compose import sent_summary

    assert sent_summary("everyone", {"recipients": 7, "delivered": 7, "skipped": 0}, 6) == \
        "sent to everyone: 7 connections (6 when confirmed): delivered 7, skipped 0"
    assert sent_summary("ann", {"recipients": 1, "delivered": 1, "skipped": 0}, 1) == \
        "sent to ann: 1 connection: delivered 1, skipped 0"


async def test_the_compose_count_follows_joins_and_is_checked_before_sending():
    """A client joining while the dialog is open is counted (the button says 7,
    not the 6 counted when it opened); a count that changed between the one
    shown and Send sends nothing and says so; the send reports the count reached."""
    from websockets.asyncio.client import connect

    from wsconsole.console.screens import ComposeScreen

    async with demo_server() as server:
        clients = [await connect(f"{public_url(server)}/?user=u{i}") for i in range(6)]
        app = console(control_url(server))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.up and len(server.hub.registry) == 6)
            await pilot.press("b")
            await wait_for(lambda: isinstance(app.screen, ComposeScreen))
            compose = app.screen
            await wait_for(lambda: compose.recipients == 6)
            clients.append(await connect(f"{public_url(server)}/?user=late"))
            button = compose.query_one("#compose-send")
            await wait_for(lambda: compose.recipients == 7
                           and "7 connections" in str(button.label))
            # As if the operator had confirmed 6 and one joined since: not sent.
            sends = server.hub.operator_sends
            compose.query_one("TextArea").text = "hello"
            compose.send(compose.selector, "hello", 6)
            note = compose.query_one("#compose-check")
            await wait_for(lambda: "changed from 6 to 7" in str(note.render()))
            assert server.hub.operator_sends == sends and not compose.sending
            await pilot.press("ctrl+s")
            await wait_for(lambda: any("sent to everyone: 7 connections: delivered 7" in n
                                       for n in notes(app)))
            for ws in clients:
                await ws.close()


async def test_a_silent_endpoint_is_asked_whether_it_is_a_control_plane():
    """An endpoint that takes the handshake and never answers hello fails after
    the request timeout, asking whether it is a control plane at all."""
    from websockets.asyncio.server import serve as websockets_serve

    from wsconsole.server.errors import ControlUnavailable

    async def silent(ws):
        await ws.wait_closed()

    async with websockets_serve(silent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = ControlClient(f"ws://127.0.0.1:{port}", TOKEN, request_timeout=0.1)
        with pytest.raises(ControlUnavailable, match="is it a wsconsole control plane"):
            await client.connect()
