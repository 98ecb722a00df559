"""The console's widgets and dialogs on their own, each in a bare Textual app:
what they show depends only on what they are given, so no server is needed."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen

from tests.helpers import wait_for
from wsconsole.console.formatting import ViewFilter, describe_connection
from wsconsole.console.link import ControlLink
from wsconsole.console.screens import ComposeScreen, DisconnectScreen
from wsconsole.console.view_state import ViewState
from wsconsole.console.widgets import GroupsPanel, KeysFooter

# Strings a client chooses, written as Rich/Textual markup (as in test_app).
MARKUP_USER = "[bold red]x[/]"
MARKUP_PATH = "/[/oops]"
MARKUP_ROOM = "[link=https://example.invalid]y[/link]"
MARKED_UP = {"id": "c1", "user": MARKUP_USER, "path": MARKUP_PATH}
SIZE = (100, 30)
"""As the app tests: the dialogs' own width fits."""


def shown(widget: Any) -> str:
    """The widget's lines as drawn now, as plain text."""
    return "\n".join(widget.render_line(y).text for y in range(widget.outer_size.height))


def no_link() -> ControlLink:
    """A link that is down: a dialog's dry run fails at once, nothing is sent."""
    return ControlLink(lambda: None)  # type: ignore[arg-type,return-value]


class KeysScreen(Screen[None]):
    """One key whose availability the test switches, and keys to fill the line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "act", "Act", id="act", tooltip="Does the act"),
        Binding("y", "other('y')", "Why not", id="why"),
        Binding("z", "other('z')", "Zebra stripes", id="zebra"),
        Binding("question_mark", "other('help')", "Help", id="help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.allowed = True
        self.pressed: list[str] = []

    def compose(self) -> ComposeResult:
        yield KeysFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.allowed if action == "act" else True

    def action_act(self) -> None:
        self.pressed.append("act")

    def action_other(self, name: str) -> None:
        self.pressed.append(name)


def footer_keys(screen: Screen[None]) -> list[str]:
    """The descriptions of the keys the screen's footer drew last, left to right."""
    return [key.description for key in screen.query_one(KeysFooter).drawn]


async def test_keys_footer_draws_again_only_when_its_keys_change() -> None:
    """Asking the footer to refresh with the same keys changes nothing; a key that
    becomes unavailable leaves the line, drawn again in place (no widget per key)."""
    app = App[None]()
    async with app.run_test(size=(80, 5)):
        screen = KeysScreen()
        await app.push_screen(screen)
        footer = screen.query_one(KeysFooter)
        await wait_for(lambda: "Act" in footer_keys(screen))
        changes = footer.changes
        screen.refresh_bindings()
        await screen.wait_for_refresh()
        assert footer.changes == changes
        screen.allowed = False
        screen.refresh_bindings()
        await wait_for(lambda: "Act" not in footer_keys(screen))
        assert footer_keys(screen) == ["Why not", "Zebra stripes", "Help", "palette"]
        assert footer.changes == changes + 1 and not footer.children


async def test_keys_footer_leaves_out_whole_keys_when_narrow_and_clicks_press_keys() -> None:
    """Too narrow for every key, the footer leaves out whole keys, the last first and
    Help after every other, never half a word; a click on a key presses it, and
    hovering it shows its tooltip."""
    app = App[None]()
    async with app.run_test(size=(36, 5)) as pilot:
        screen = KeysScreen()
        await app.push_screen(screen)
        footer = screen.query_one(KeysFooter)
        await wait_for(lambda: footer.is_current() and footer.drawn)
        assert footer_keys(screen) == ["Act", "Help", "palette"]
        line = footer.render_line(0).text
        assert "Why" not in line and "Zeb" not in line and line.rstrip().endswith("palette")
        await pilot.hover(KeysFooter, offset=(1, 0))
        await wait_for(lambda: footer.tooltip == "Does the act")
        await pilot.click(KeysFooter, offset=(1, 0))
        await wait_for(lambda: screen.pressed == ["act"])
        help_at = line.index("?")
        await pilot.click(KeysFooter, offset=(help_at, 0))
        await wait_for(lambda: screen.pressed == ["act", "help"])
        await pilot.resize_terminal(80, 5)
        await wait_for(lambda: footer_keys(screen) == ["Act", "Why not", "Zebra stripes",
                                                       "Help", "palette"])


async def test_groups_panel_marks_kinds_the_server_truncated() -> None:
    """When the server sends only the largest groups, the longest kind says `+`."""
    app = App[None]()
    async with app.run_test(size=(30, 12)):
        panel = GroupsPanel()
        await app.mount(panel)
        panel.update_groups({"users": {"ann": 3, "bob": 2}, "paths": {"/chat": 5},
                             "topics": {}}, 5, truncated=True)
        labels = {str(node.label) for node in panel.root.children}
        # Each number says what it counts: groups in a section's label, connections
        # beside All (and beside each group).
        assert {"2+ users", "1 path", "0 topics"} <= labels
        assert "▶ All 5 connections" in labels
        assert panel.border_subtitle == "largest groups only"


async def test_groups_sort_numbers_by_value_and_insert_in_place() -> None:
    """Users u0, u1, u2, u10, u100 are listed in that order, and a new u3 is inserted
    between u2 and u10 without moving the others."""
    app = App[None]()
    async with app.run_test(size=(30, 20)):
        panel = GroupsPanel()
        await app.mount(panel)
        names = ["u10", "u2", "u100", "u0", "u1"]
        panel.update_groups({"users": dict.fromkeys(names, 1)}, len(names))
        users = panel._sections["user"]
        assert [node.data[1] for node in users.children] == ["u0", "u1", "u2", "u10", "u100"]
        before = {node.data[1]: node for node in users.children}
        panel.update_groups({"users": dict.fromkeys([*names, "u3"], 1)}, len(names) + 1)
        assert [node.data[1] for node in users.children] == [
            "u0", "u1", "u2", "u3", "u10", "u100"]
        assert all(panel._group_nodes[("user", name)] is node for name, node in before.items())


async def test_dialogs_show_client_chosen_names_as_written() -> None:
    """The compose dialog's recipients and the disconnect confirmation (of a row and
    of a view) show markup-looking user, path and room names as typed."""
    view = ViewState().filtered(ViewFilter(topic=MARKUP_ROOM))
    app = App[None]()
    async with app.run_test(size=SIZE):
        compose = ComposeScreen(no_link(), view.targets(MARKED_UP))
        await app.push_screen(compose)
        buttons = list(compose.query("#compose-targets RadioButton"))
        await wait_for(lambda: f"{MARKUP_USER} on {MARKUP_PATH}" in shown(buttons[0]))
        assert MARKUP_ROOM in shown(buttons[1])
        app.pop_screen()

        one = DisconnectScreen(describe_connection(MARKED_UP), {"ids": ["c1"]}, 1)
        await app.push_screen(one)
        text = one.query_one("#confirm-text")
        await wait_for(lambda: f"({MARKUP_USER} on {MARKUP_PATH})" in shown(text))
        app.pop_screen()

        what, selector, count = view.group_disconnect(1)
        group = DisconnectScreen(what, selector, count)
        await app.push_screen(group)
        text = group.query_one("#confirm-text")
        await wait_for(lambda: MARKUP_ROOM in shown(text))


async def test_the_disconnect_dialog_has_its_keys_and_shows_the_whole_close_code() -> None:
    """The disconnect dialog has a footer of its own; tabbing into the close code
    field, as an operator would, shows all four digits."""
    app = App[None]()
    async with app.run_test(size=SIZE) as pilot:
        dialog = DisconnectScreen(describe_connection(MARKED_UP), {"ids": ["c1"]}, 1)
        await app.push_screen(dialog)
        await wait_for(lambda: any(key.action == "cancel"
                                    for key in dialog.query_one(KeysFooter).drawn))
        code = dialog.query_one("#confirm-code")
        await pilot.press("tab")
        await wait_for(lambda: code.has_focus)
        await wait_for(lambda: "1000" in shown(code))


async def test_the_compose_dialog_has_a_footer_of_its_own_keys() -> None:
    """Over the main screen the dialog's own footer hides the main screen's: it
    shows ctrl+s (send) and esc (cancel)."""
    app = App[None]()
    async with app.run_test(size=SIZE):
        dialog = ComposeScreen(no_link(), [("everyone", {"everyone": True})])
        await app.push_screen(dialog)
        await wait_for(lambda: {"send", "cancel"} <= {
            key.action for key in dialog.query_one(KeysFooter).drawn})
