"""The offer to quit once the server the console runs beside has stopped.

``wsconsole demo`` runs its own server: once that server has stopped (shut down
from this console, say), there is nothing to reconnect to, and retrying
forever would only look like a fault. The app stops the link and shows this:
what happened, and Quit (focused) or Stay (the last data stays on screen,
marked stale; ctrl+r would try again).
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ..formatting import literal
from ..widgets import KeysFooter

__all__ = ["ServerStoppedScreen"]


class ServerStoppedScreen(ModalScreen[bool]):
    """Says the server has stopped; dismissed with True to quit, False to stay."""

    CSS_PATH = "ended.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stay", "Stay", id="ended_stay",
                tooltip="Keep the console open on the last data received"),
        Binding("q", "quit_console", "Quit", id="ended_quit", tooltip="Quit the demo"),
    ]

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(id="ended-dialog"):
            yield Label("The server has stopped", id="ended-title")
            # The reason may carry the server's words: shown as they are.
            yield Static(literal(self.reason), id="ended-text")
            with Horizontal(id="ended-buttons"):
                yield Button("Quit", variant="primary", id="ended-quit")
                yield Button("Stay", id="ended-stay")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#ended-dialog").border_title = "Stopped"
        self.query_one("#ended-quit", Button).focus()

    @on(Button.Pressed, "#ended-quit")
    def action_quit_console(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#ended-stay")
    def action_stay(self) -> None:
        self.dismiss(False)
