"""The disconnect confirmation: who will be closed, with which code and reason."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from wsconsole.server.protocol import MAX_CLOSE_REASON_BYTES, check_close_reason, parse_close_code

from ..formatting import literal, missing_note, routed
from ..link import ControlLink
from ..output import counted
from ..widgets import KeysFooter

__all__ = ["DisconnectScreen", "run_disconnect"]


async def run_disconnect(link: ControlLink, choice: dict[str, Any]) -> str:
    """Carry out what the dialog was dismissed with; return the notice to show.

    Raises the client's WsconsoleError when the server refuses or is gone.
    """
    selector, node = routed(choice["selector"])
    result = await link.require().disconnect(
        selector, code=choice["code"], reason=choice["reason"], node=node)
    count = result.get("count", 0) if isinstance(result, dict) else 0
    return (f"{choice['description']}: closing {count} with code {choice['code']}"
            + missing_note(result))


class DisconnectScreen(ModalScreen["dict[str, Any] | None"]):
    """Asks before closing connections; dismissed with selector, code and reason."""

    CSS_PATH = "confirm.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="disconnect_cancel",
                tooltip="Close nothing"),
    ]

    def __init__(self, description: str, selector: dict[str, Any], count: int | None) -> None:
        super().__init__()
        self.description = description
        self.selector = selector
        self.count = count

    def compose(self) -> ComposeResult:
        n = self.count
        with Vertical(id="confirm-dialog"):
            yield Label("Disconnect?", id="confirm-title")
            # The description holds user names and paths: shown as it is, not markup.
            yield Static(literal(
                f"Close {self.description}"
                + (f": {counted(n, 'connection')}." if n is not None else ".")
                + "\nThe clients get a close frame with this code and reason; whether they "
                "reconnect is up to them."), id="confirm-text")
            with Horizontal(classes="confirm-row"):
                yield Label("code", classes="confirm-label")
                yield Input("1000", id="confirm-code", restrict=r"[0-9]*", max_length=4)
            with Horizontal(classes="confirm-row"):
                yield Label("reason", classes="confirm-label")
                yield Input(placeholder=f"optional, at most {MAX_CLOSE_REASON_BYTES} bytes",
                            id="confirm-reason")
            yield Static(id="confirm-error")
            with Horizontal(id="confirm-buttons"):
                yield Button("Disconnect", variant="error", id="confirm-yes")
                yield Button("Cancel", id="confirm-no")
        # The dialog's own keys: the main screen's footer would show keys that
        # do nothing while the dialog is up.
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#confirm-dialog").border_title = "Disconnect"
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed, "#confirm-yes")
    @on(Input.Submitted)
    def _confirmed(self) -> None:
        # The server's own rules, so a code or reason it would refuse is
        # caught here, with the same words.
        try:
            code = parse_close_code(self.query_one("#confirm-code", Input).value)
            reason = check_close_reason(self.query_one("#confirm-reason", Input).value)
        except ValueError as exc:
            self.query_one("#confirm-error", Static).update(literal(exc))
            return
        self.dismiss({"selector": self.selector, "code": code, "reason": reason,
                      "description": self.description})

    @on(Button.Pressed, "#confirm-no")
    def action_cancel(self) -> None:
        self.dismiss(None)
