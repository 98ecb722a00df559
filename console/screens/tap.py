"""The tap screen: the live messages of one connection, or of a group, as they happen.

It opens a control connection of its own (so that closing the screen ends
the tap, whatever happens to the console's link) and starts a tap on it; a
worker reads the ``tap`` events and posts them. The log scrolls live, keeps
the last :attr:`TapScreen.MAX_LINES` records, and pauses (records are held,
up to the same bound) and resumes; the header counts what the server showed
and dropped. Every payload is shown escaped, as every client string is.

Imports from the server only its shared protocol.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import RichLog, Static

from wsconsole.server.errors import WsconsoleError
from wsconsole.server.protocol import EventKind

from ..formatting import routed
from ..output import age
from ..tap_output import describe_limits, tap_line
from ..widgets import KeysFooter, TooSmallNotice

if TYPE_CHECKING:  # pragma: no cover - the app module imports the screens
    from ..app import ConsoleApp

__all__ = ["TapScreen"]

_KIND_STYLES = {"in": "green", "out": "cyan", "closed": "yellow"}


class TapScreen(Screen[None]):
    """A live tap: its records scrolling, its counts, pause and resume."""

    CSS_PATH = "tap.tcss"

    MAX_LINES = 2000
    """Records the log keeps (and holds while paused): the screen's memory stays flat."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Stop tap", id="tap_close",
                tooltip="Stop the tap and go back"),
        Binding("space", "toggle_pause", "Pause", id="tap_pause",
                tooltip="Pause the log (records are held) or resume it"),
        Binding("c", "clear", "Clear", id="tap_clear", tooltip="Clear the log"),
    ]

    @dataclass
    class TapStarted(Message):
        """The server started the tap: its id and limits (``tap_start``'s result)."""

        tap: dict[str, Any]

    @dataclass
    class RecordsArrived(Message):
        """One ``tap`` event: new records, and the server's counts so far."""

        records: list[dict[str, Any]]
        shown: int
        dropped: int

    @dataclass
    class TapEnded(Message):
        """The tap ended (``tap_ended``), or could not start or go on (``reason``)."""

        reason: str
        shown: int | None = None
        dropped: int | None = None
        failed: bool = False

    def __init__(self, selector: dict[str, Any], what: str) -> None:
        super().__init__()
        self.selector = dict(selector)
        """What to tap, as the console's targets say it (with ``node`` for one node)."""
        self.what = what
        """What is tapped, for the title: ``connection 3f2a (ann on /chat)``, ``user=ann``."""
        self.tap: dict[str, Any] = {}
        """The server's description of the tap, once started."""
        self.shown = 0
        self.dropped = 0
        self.ended: str | None = None
        """Why the tap ended, once it has."""
        self.paused = False
        self.held: deque[dict[str, Any]] = deque(maxlen=self.MAX_LINES)
        """Records received while paused, shown on resume."""
        self.held_lost = 0
        """Records that did not fit in :attr:`held`."""
        self._client: Any = None

    def compose(self) -> ComposeResult:
        yield Static(id="tap-header")
        yield RichLog(id="tap-log", max_lines=self.MAX_LINES, wrap=False, markup=False)
        yield TooSmallNotice()
        yield KeysFooter()

    def on_mount(self) -> None:
        self._show_header()
        self.set_interval(1.0, self._show_header)
        self.run_tap()

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    @property
    def log_widget(self) -> RichLog:
        return self.query_one("#tap-log", RichLog)

    # The tap, on a control connection of its own

    @work(exclusive=True, group="tap", exit_on_error=False)
    async def run_tap(self) -> None:
        """Connect, start the tap, post its records until it ends."""
        selector, node = routed(self.selector)
        client: Any = None
        try:
            client = self.console.link.factory()
            await client.connect()
            self._client = client
            started = await client.tap_start(selector, node=node)
            self.post_message(self.TapStarted(started))
            async for event in client.events():
                data = event.data if isinstance(event.data, dict) else {}
                if data.get("tap") != started["tap"]:
                    continue
                if event.kind == EventKind.TAP:
                    self.post_message(self.RecordsArrived(
                        list(data.get("records") or ()), int(data.get("shown", 0)),
                        int(data.get("dropped", 0))))
                elif event.kind == EventKind.TAP_ENDED:
                    self.post_message(self.TapEnded(str(data.get("reason", "stopped")),
                                                    data.get("shown"), data.get("dropped")))
                    return
            self.post_message(self.TapEnded("the control connection closed", failed=True))
        except WsconsoleError as exc:
            self.post_message(self.TapEnded(exc.message, failed=True))
        finally:
            self._client = None
            if client is not None:
                try:
                    await client.close()
                except Exception:  # closing a broken connection must never raise
                    pass

    @on(TapStarted)
    def _started(self, message: TapStarted) -> None:
        message.stop()
        self.tap = message.tap
        self._show_header()

    @on(RecordsArrived)
    def _records(self, message: RecordsArrived) -> None:
        message.stop()
        self.shown, self.dropped = message.shown, message.dropped
        if self.paused:
            overflow = len(self.held) + len(message.records) - self.MAX_LINES
            if overflow > 0:
                self.held_lost += overflow
            self.held.extend(message.records)
        else:
            self._write(message.records)
        self._show_header()

    @on(TapEnded)
    def _ended(self, message: TapEnded) -> None:
        message.stop()
        self.ended = message.reason.replace("_", " ")
        if message.shown is not None:
            self.shown = int(message.shown)
        if message.dropped is not None:
            self.dropped = int(message.dropped)
        if message.failed:
            self.notify(message.reason, title="Tap", severity="error", markup=False)
        self._show_header()

    def _write(self, records: Any) -> None:
        log = self.log_widget
        for record in records:
            # tap_line escapes every client-chosen character; Text is never markup.
            log.write(Text(tap_line(record), style=_KIND_STYLES.get(record.get("kind"), "")))

    def _show_header(self) -> None:
        title = Text.assemble(("Tap ", "bold"), (self.what, "bold magenta"))
        if self.tap:
            title.append(f"  {describe_limits(self.tap)}", style="dim")
        status = Text()
        if self.ended is not None:
            status.append(f"ended: {self.ended}", style="bold red")
        elif not self.tap:
            status.append("starting…", style="yellow")
        elif self.paused:
            status.append("PAUSED", style="bold reverse yellow")
            status.append(f"  {len(self.held)} held", style="yellow")
            if self.held_lost:
                status.append(f" ({self.held_lost} not kept)", style="yellow")
        else:
            status.append("live", style="bold green")
        status.append(f"  {self.shown} shown", style="bold")
        status.append(f"  {self.dropped} dropped",
                      style="bold red" if self.dropped else "dim")
        ends_at = self.tap.get("ends_at")
        if ends_at and self.ended is None:
            status.append(f"  ends in {age(float(ends_at) - self.console.clock())}",
                          style="dim")
        self.query_one("#tap-header", Static).update(Text("\n").join([title, status]))

    # Keys

    def action_toggle_pause(self) -> None:
        """Pause the log (hold what arrives) or resume it (show what was held)."""
        self.paused = not self.paused
        if not self.paused:
            held, self.held = list(self.held), deque(maxlen=self.MAX_LINES)
            self.held_lost = 0
            self._write(held)
        self._show_header()

    def action_clear(self) -> None:
        self.log_widget.clear()

    def action_close(self) -> None:
        """Stop the tap (its audit line then says stopped) and go back."""
        if self._client is not None and self.tap and self.ended is None:
            self._stop_and_close(self._client, self.tap["tap"])
        else:
            self.dismiss()

    @work(group="tap-stop", exit_on_error=False)
    async def _stop_and_close(self, client: Any, tap_id: str) -> None:
        try:
            await client.tap_stop(tap_id)
        except WsconsoleError:
            pass  # gone already: closing the connection ends it all the same
        self.dismiss()
