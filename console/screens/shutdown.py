"""The shutdown dialog: graceful or keep-alive, explained; then the drain, live.

In a cluster the dialog first asks which nodes: every node (the one the console
is attached to stops last, so that the drain stays visible) or one node.

The drain is followed through the app's ``stats`` (every sample and state
change; for one node of a cluster, that node's own under ``per_node``) and
``link_state`` (after a shutdown of this node, the control plane going away
means it has stopped); what it says is ``view_state.drain``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Input,
    Label,
    ProgressBar,
    RadioButton,
    RadioSet,
    Static,
)

from wsconsole.server.errors import WsconsoleError
from wsconsole.server.protocol import (
    HubState,
    ShutdownMode,
    check_close_reason,
    parse_close_code,
)

from ..formatting import literal
from ..link import LinkState, LinkStatus
from ..messages import ActionCompleted, CommandFailed
from ..view_state import drain, node_stats, server_summary, shutdown_targets
from ..widgets import ChoiceSet, KeysFooter

if TYPE_CHECKING:  # pragma: no cover - the app module imports the screens
    from ..app import ConsoleApp

__all__ = ["ShutdownScreen", "GRACEFUL_HELP", "KEEP_ALIVE_HELP"]

GRACEFUL_HELP = (
    "Graceful: stop accepting new connections and close every open one now, with the "
    "close code below (1001 \"going away\" unless you choose another code and reason). "
    "Clients see a clean close and may reconnect to another server."
)
KEEP_ALIVE_HELP = (
    "Keep-alive: stop accepting new connections, but keep serving the open ones until "
    "they close by themselves, as during a deploy where a new process takes the new "
    "clients. With a deadline, whatever is still open then is closed gracefully with "
    "the code below."
)


class ShutdownScreen(ModalScreen[None]):
    """Choose how to stop the server, confirm, then watch it drain."""

    CSS_PATH = "shutdown.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="shutdown_close",
                tooltip="Close this dialog (a drain in progress continues)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[tuple[str, str | None]] = []
        """(label, node) of each choice of which nodes to stop; node None: every node."""
        self.target_node: str | None = None
        """The node chosen to stop alone; None: every node (or the one server)."""
        self.stats: dict[str, Any] = {}
        """The server's stats as the dialog last showed them."""
        self.mode: str = ShutdownMode.GRACEFUL
        """The shutdown mode chosen, or the server's while it drains (a newer
        server's own mode is kept as its string)."""
        self.started_with: int | None = None
        """Connections open when the shutdown started (the progress bar's total)."""
        self.phase = "choose"
        """choose, then draining, then stopped."""

    def compose(self) -> ComposeResult:
        with Vertical(id="shutdown-dialog"):
            with Vertical(id="shutdown-choose"):
                yield Label("Shut the server down", id="shutdown-title")
                yield Static(id="shutdown-now")
                console = self.console
                self.targets = shutdown_targets(console.link_state.hello, console.nodes.nodes)
                with Horizontal(id="shutdown-target-row"):
                    yield Label("stop", classes="shutdown-label")
                    with ChoiceSet(id="shutdown-target"):
                        for index, (label, _) in enumerate(self.targets):
                            # Labels name nodes: shown as they are, not markup.
                            yield RadioButton(literal(label), value=index == 0)
                with ChoiceSet(id="shutdown-mode"):
                    yield RadioButton("Graceful: close everyone now", value=True)
                    yield RadioButton("Keep-alive: stop accepting, let open connections drain")
                yield Static(GRACEFUL_HELP, id="shutdown-help")
                with Horizontal(classes="shutdown-row"):
                    yield Label("code", classes="shutdown-label")
                    yield Input("1001", id="shutdown-code", restrict=r"[0-9]*", max_length=4)
                    yield Label("reason", classes="shutdown-label")
                    yield Input(placeholder="optional", id="shutdown-reason")
                with Horizontal(classes="shutdown-row", id="shutdown-deadline-row"):
                    yield Label("deadline", classes="shutdown-label")
                    yield Input(placeholder="seconds; empty: wait for every client",
                                id="shutdown-deadline", restrict=r"[0-9.]*")
                yield Static(id="shutdown-error")
                with Horizontal(classes="shutdown-buttons"):
                    yield Button("Shut down", variant="error", id="shutdown-confirm")
                    yield Button("Cancel", id="shutdown-cancel")
            with Vertical(id="shutdown-progress"):
                yield Label("Shutting down", id="shutdown-progress-title")
                yield Static(id="shutdown-progress-text")
                yield ProgressBar(id="shutdown-bar", show_eta=False)
                with Horizontal(classes="shutdown-buttons"):
                    yield Button("Close the rest now (graceful)", variant="warning",
                                 id="shutdown-escalate")
                    yield Button("Hide", id="shutdown-hide")
        # The dialog's own keys: the main screen's footer would show keys that
        # do nothing while the dialog is up.
        yield KeysFooter()

    def on_mount(self) -> None:
        console = self.console
        self.stats = dict(console.stats)
        # One server: nothing to choose.
        self.query_one("#shutdown-target-row").display = len(self.targets) > 1
        if len(self.targets) > 1:
            self.query_one("#shutdown-title", Label).update("Shut down the cluster, or one node")
        self.query_one("#shutdown-dialog").border_title = "Shutdown"
        self.query_one("#shutdown-deadline-row").display = False
        if self.stats.get("state") == HubState.DRAINING:
            # Opened again during a drain: straight to its progress.
            self.started_with = self.stats.get("connections")
            self.mode = self.stats.get("shutdown_mode") or ShutdownMode.KEEP_ALIVE
            self._to_phase("draining")
        else:
            self._to_phase("choose")
            self.query_one("#shutdown-cancel", Button).focus()
        self._show_stats()
        self.watch(console, "stats", self.show_stats, init=False)
        self.watch(console, "link_state", self._link_changed, init=False)
        # The deadline's countdown moves between samples.
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.phase == "draining" and self.stats.get("shutdown_deadline"):
            self._show_stats()

    @property
    def console(self) -> ConsoleApp:
        """The app, which owns the control link."""
        return cast("ConsoleApp", self.app)

    def _to_phase(self, phase: str) -> None:
        self.phase = phase
        self.set_class(phase != "choose", "progress")

    @on(RadioSet.Changed, "#shutdown-target")
    def _target_changed(self, event: RadioSet.Changed) -> None:
        self.target_node = self.targets[event.index][1]

    @on(RadioSet.Changed, "#shutdown-mode")
    def _mode_changed(self, event: RadioSet.Changed) -> None:
        self.mode = ShutdownMode.KEEP_ALIVE if event.index == 1 else ShutdownMode.GRACEFUL
        keep_alive = self.mode == ShutdownMode.KEEP_ALIVE
        self.query_one("#shutdown-help", Static).update(
            KEEP_ALIVE_HELP if keep_alive else GRACEFUL_HELP)
        self.query_one("#shutdown-deadline-row").display = keep_alive

    @on(Button.Pressed, "#shutdown-confirm")
    def _confirm(self) -> None:
        error = self.query_one("#shutdown-error", Static)
        try:
            code = parse_close_code(self.query_one("#shutdown-code", Input).value)
            # The server's own rules, in its words.
            reason = check_close_reason(self.query_one("#shutdown-reason", Input).value)
            deadline_text = self.query_one("#shutdown-deadline", Input).value.strip()
            deadline = None
            if self.mode == ShutdownMode.KEEP_ALIVE and deadline_text:
                try:
                    deadline = float(deadline_text)
                except ValueError:
                    raise ValueError(f"deadline must be a number of seconds, "
                                     f"not {deadline_text!r}") from None
        except ValueError as exc:
            error.update(literal(exc))
            return
        error.update("")
        self.query_one("#shutdown-confirm", Button).disabled = True
        self.shutdown(self.mode, code, reason, deadline)

    @work(exclusive=True, group="shutdown", exit_on_error=False)
    async def shutdown(self, mode: str, code: int, reason: str,
                       deadline: float | None) -> None:
        """Ask the server to stop; sent once, never retried."""
        try:
            result = await self.console.link.require().shutdown(
                mode, code=code, reason=reason, deadline=deadline, node=self.target_node)
        except WsconsoleError as exc:
            self.post_message(self.ShutdownFailed("Shutdown", exc.message))
            return
        self.post_message(self.ShutdownStarted(mode, result, self.target_node))

    class ShutdownStarted(ActionCompleted):
        """The server accepted the shutdown."""

        def __init__(self, mode: str, result: Any, node: str | None = None) -> None:
            super().__init__("Shutdown", f"{mode.replace('_', '-')} shutdown started"
                             + (f" on {node}" if node else ""))
            self.mode = mode
            self.result = result if isinstance(result, dict) else {}

    class ShutdownFailed(CommandFailed):
        """The server refused, or the link is down; nothing is retried."""

    @on(ShutdownStarted)
    def _started(self, message: ShutdownStarted) -> None:
        message.stop()
        self.mode = message.mode
        self.started_with = message.result.get("connections", self.stats.get("connections", 0))
        self.stats = dict(self.stats, state=HubState.DRAINING, shutdown_mode=message.mode,
                          connections=self.started_with)
        deadline = message.result.get("deadline")
        if (message.mode == ShutdownMode.KEEP_ALIVE and isinstance(deadline, (int, float))
                and not self.stats.get("shutdown_deadline")):
            # Until the server's own figure arrives (its state change, a sample).
            self.stats["shutdown_deadline"] = self.console.clock() + deadline
        self.notify(message.summary, title="Shutdown", markup=False)
        self._to_phase("draining")
        self._show_stats()

    @on(ShutdownFailed)
    def _failed(self, message: ShutdownFailed) -> None:
        message.stop()
        self.query_one("#shutdown-confirm", Button).disabled = False
        self.query_one("#shutdown-error", Static).update(
            literal(f"Not shut down: {message.message}"))
        self.notify(message.message, title="Shutdown failed", severity="error", markup=False)

    def show_stats(self, stats: dict[str, Any]) -> None:
        """Follow the drain: a sample or a state change of the server (of the
        node stopped alone, when one was chosen)."""
        self.stats = dict(self.stats, **node_stats(stats, self.target_node))
        self._show_stats()

    def _link_changed(self, state: LinkState) -> None:
        # After a shutdown of this node (alone or last of all), the control
        # plane going away means it has stopped.
        if self.phase == "draining" and state.status in (LinkStatus.LOST, LinkStatus.ENDED):
            self._to_phase("stopped")
            self.show_stats({"state": HubState.STOPPED, "connections": 0})

    def _show_stats(self) -> None:
        if self.phase == "choose":
            self.query_one("#shutdown-now", Static).update(literal(server_summary(self.stats)))
            return
        shown = drain(self.stats, started_with=self.started_with, mode=self.mode,
                      stopped=self.phase == "stopped", now=self.console.clock())
        if shown.stopped:
            self._to_phase("stopped")
        self.query_one("#shutdown-bar", ProgressBar).update(total=shown.total,
                                                             progress=shown.closed)
        # The state and mode are the server's words: shown as they are, not markup.
        self.query_one("#shutdown-progress-text", Static).update(literal(shown.text))
        self.query_one("#shutdown-escalate", Button).display = shown.can_escalate

    @on(Button.Pressed, "#shutdown-escalate")
    def _escalate(self) -> None:
        self.query_one("#shutdown-escalate", Button).disabled = True
        code = 1001
        try:
            code = parse_close_code(self.query_one("#shutdown-code", Input).value)
        except ValueError:
            pass
        self.shutdown(ShutdownMode.GRACEFUL, code,
                      self.query_one("#shutdown-reason", Input).value, None)

    @on(Button.Pressed, "#shutdown-cancel")
    @on(Button.Pressed, "#shutdown-hide")
    def action_close(self) -> None:
        self.dismiss(None)
