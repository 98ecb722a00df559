"""The console's widgets on their own, each in a bare Textual app: what they
show depends only on what they are given."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen

from tests.helpers import wait_for
from wsconsole.console.widgets import GroupsPanel, KeysFooter


class KeysScreen(Screen[None]):
    """One key whose availability the test switches."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("x", "act", "Act", id="act")]

    def __init__(self) -> None:
        super().__init__()
        self.allowed = True

    def compose(self) -> ComposeResult:
        yield KeysFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.allowed if action == "act" else True

    def action_act(self) -> None:
        """Nothing: the key only has to be shown."""


def footer_keys(screen: Screen[None]) -> list[object]:
    return list(screen.query("FooterKey"))


async def test_keys_footer_is_rebuilt_only_when_its_keys_change() -> None:
    """Asking the footer to refresh with the same keys keeps its key widgets; a key
    that becomes unavailable rebuilds it without that key."""
    app = App[None]()
    async with app.run_test(size=(40, 5)):
        screen = KeysScreen()
        await app.push_screen(screen)
        await wait_for(lambda: any(key.action == "act" for key in footer_keys(screen)))
        before = footer_keys(screen)
        screen.refresh_bindings()
        await screen.wait_for_refresh()
        await screen.wait_for_refresh()
        assert footer_keys(screen) == before
        screen.allowed = False
        screen.refresh_bindings()
        await wait_for(lambda: footer_keys(screen) != before)
        assert not any(key.action == "act" for key in footer_keys(screen))


async def test_groups_panel_marks_kinds_the_server_truncated() -> None:
    """When the server sends only the largest groups, the longest kind says `+`."""
    app = App[None]()
    async with app.run_test(size=(30, 12)):
        panel = GroupsPanel()
        await app.mount(panel)
        panel.update_groups({"users": {"ann": 3, "bob": 2}, "paths": {"/chat": 5},
                             "topics": {}}, 5, truncated=True)
        labels = {str(node.label) for node in panel.root.children}
        assert {"Users 2+", "Paths 1", "Topics 0"} <= labels
        assert panel.border_subtitle == "largest groups only"
