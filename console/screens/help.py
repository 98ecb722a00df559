"""The help screen (``?``): every key of the console, what it does, and the filter syntax."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..view_state import SORT_LETTERS, sort_letters_help
from ..widgets import KeysFooter

__all__ = ["HelpScreen", "FILTER_HELP", "DIALOG_KEYS"]

FILTER_HELP = (
    "Filter (/): user=NAME path=/PATH topic=NAME id=PREFIX node=NAME, in any combination, "
    "applied as you type; a name may be a pattern: * any characters, ? one, \\ before "
    "*, ? or \\ makes it literal (user=guest* path=/api/*). A bare word is the start of "
    "a user's name (guest finds guest-1, guest-2), /word of a path, #word of a topic. "
    "Enter closes the filter, Esc goes back to the one before. The server filters and "
    "pages: the table holds one page ([ and ] move between pages). Choosing a group in "
    "the groups panel (Enter) filters the same way; Esc shows everyone again."
)


DIALOG_KEYS = (
    ("ctrl+s", "Send (compose)", "Send the message to the recipients the dry run counted"),
    ("tab", "Next field (dialogs)", "Move between recipients, format, message and buttons"),
    ("esc", "Cancel / Back (dialogs)", "Close a dialog without acting, or leave the detail view"),
    ("m / d", "Message / Disconnect (detail)", "Act on the connection the detail view shows"),
    ("1 2 3 4 / 0", "Filter events (event log)",
     "In the event log (e, E): only abnormal closes (not 1000/1001), slow consumers, "
     "operator actions, errors; they add up; 0 shows every line"),
)
"""Keys of the dialogs, the detail view and the event log, listed under the main screen's."""


class HelpScreen(ModalScreen[None]):
    """A table of the keys of the screen below and of the app."""

    CSS_PATH = "help.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help_close"),
    ]

    def __init__(self, screen: Screen[object]) -> None:
        super().__init__()
        self.for_screen = screen

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Static(id="help-keys")
            yield Static(FILTER_HELP, id="help-filter", markup=False)
        # The dialog's own keys: the main screen's footer would show keys that
        # do nothing while the dialog is up.
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#help-dialog").border_title = "Keys"
        self.query_one("#help-dialog").border_subtitle = "Esc closes"
        table = Table(box=None, padding=(0, 2), expand=True, show_header=True,
                      header_style="bold")
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action", no_wrap=True)
        table.add_column("what it does")
        # Only the console's own bindings (they all have ids); Textual's focus
        # and copy keys would bury them.
        seen: set[str] = set()
        bindings: list[Binding] = []
        for source in (self.for_screen, self.app):
            for _, binding in source._bindings:
                if binding.id and binding.description and binding.id not in seen:
                    seen.add(binding.id)
                    bindings.append(binding)
        sort_ids = {f"sort_{key}" for key in SORT_LETTERS.values()}
        for binding in bindings:
            if binding.id in sort_ids:
                continue  # one row for all of them, after the s key's
            enabled = self.for_screen.check_action(binding.action.split("(")[0], ())
            key = self.app.get_key_display(binding)
            row_style = "" if enabled else "dim"
            note = binding.tooltip or ""
            if not enabled:
                note += " (not available now)"
            table.add_row(key, binding.description, Text(note), style=row_style)
            if binding.id == "sort" and any(b.id in sort_ids for b in bindings):
                table.add_row("⇧ letter", "Sort by column",
                              Text(f"Shift and a letter: {sort_letters_help()}; numbers "
                                   "largest first, age and idle longest first, names A-Z; "
                                   "the same key again reverses"))
        table.add_row("ctrl+p", "Command palette",
                      "Every action by name, and the theme, screenshot and quit commands")
        # The dialogs' keys (each dialog also shows them in its own footer).
        for key, action, note in DIALOG_KEYS:
            table.add_row(key, action, Text(note))
        self.query_one("#help-keys", Static).update(table)
