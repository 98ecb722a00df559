"""The footer of the console's screens: Textual's Footer, recomposed only when
what it shows has changed.

Textual's Footer rebuilds all its keys whenever a screen says its bindings may
have changed: on every focus change, every screen push and every
``refresh_bindings``, about a tenth of a second of CPU each on a small machine.
Most of those calls change nothing the footer shows.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer

__all__ = ["KeysFooter", "shown_keys"]


def shown_keys(screen: Screen[Any]) -> tuple[tuple[Any, ...], ...]:
    """What a footer of ``screen`` shows now: each key, its action, label, state."""
    return tuple(
        (key, binding.action, binding.description, binding.group, enabled, tooltip)
        for key, (_, binding, enabled, tooltip) in screen.active_bindings.items()
        if binding.show
    )


class KeysFooter(Footer):
    """A Footer that skips the rebuilds that would show the same keys."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[tuple[Any, ...], ...] | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        # Only when Footer would rebuild (it skips while the app has no focus
        # and for other screens); then only if the keys differ.
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            keys = shown_keys(screen)
            if keys == self._shown:
                return
            self._shown = keys
        super().bindings_changed(screen)
