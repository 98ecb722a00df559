"""The footer of the console's screens: Textual's Footer, recomposed only when
what it shows has changed.

Textual's Footer rebuilds all its keys whenever a screen says its bindings may
have changed: on every focus change, every screen push and every
``refresh_bindings``, about a tenth of a second of CPU each on a small machine.
Most of those calls change nothing the footer shows.

It also lets go of the keys it replaced. Each ``FooterKey`` binds the
footer's ``compact`` reactive (``data_bind``), which puts a watcher on the
footer; Textual drops a removed key's watcher only when ``compact`` changes,
which in the console it never does. So every rebuild kept the previous keys
alive with their styles and render caches: ``wsconsole demo`` grew by about
20 MB a minute while Footer rebuilt on every refresh (Textual issue 6666).
This relies on two private names of Textual's (``__watchers``, ``_closing``):
if either changes, ``tests/console/test_memory_bounds.py`` fails.
"""

from __future__ import annotations

from typing import Any

from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Footer

__all__ = ["KeysFooter", "shown_keys", "forget_closed_watchers"]


def shown_keys(screen: Screen[Any]) -> tuple[tuple[Any, ...], ...]:
    """What a footer of ``screen`` shows now: each key, its action, label, state."""
    return tuple(
        (key, binding.action, binding.description, binding.group, enabled, tooltip)
        for key, (_, binding, enabled, tooltip) in screen.active_bindings.items()
        if binding.show
    )


def forget_closed_watchers(node: DOMNode) -> int:
    """Drop the watchers that closed nodes left on ``node``; return how many.

    The test Textual applies when a watched value changes
    (``Reactive._check_watchers``), applied now rather than never.
    """
    watchers: dict[str, list[tuple[Any, Any]]] = getattr(node, "__watchers", {})
    dropped = 0
    for entries in watchers.values():
        alive = [(watcher, callback) for watcher, callback in entries if not watcher._closing]
        dropped += len(entries) - len(alive)
        entries[:] = alive
    return dropped


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
        # Before the rebuild: the keys of the last one are closed by now (at
        # most one set of old keys lives until then), and the rebuild itself
        # runs exactly as Textual's.
        forget_closed_watchers(self)
        super().bindings_changed(screen)
