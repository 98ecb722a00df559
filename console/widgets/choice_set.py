"""A RadioSet whose highlight starts on the chosen button.

Textual's RadioSet highlights its first enabled button when mounted, whichever
button is pressed: a dialog that opens on its second choice showed the bar on
one row and the dot on another (the compose dialog's "the current view").
This one moves the highlight to the pressed button. It sets the private
``_selected`` of Textual's RadioSet: pinned by tests/console/test_honest.py.
"""

from __future__ import annotations

from textual.widgets import RadioSet

__all__ = ["ChoiceSet"]


class ChoiceSet(RadioSet):
    """A RadioSet that opens with the highlight on the pressed button."""

    def on_mount(self) -> None:
        # Textual calls this before RadioSet's own _on_mount (which highlights
        # the first enabled button): after it, then.
        self.call_later(self._highlight_pressed)

    def _highlight_pressed(self) -> None:
        if self.pressed_index >= 0:
            self._selected = self.pressed_index
