"""The notice a screen shows instead of its layout while the terminal is too small.

The app decides when the terminal is too small (it sets ``too-small`` on
itself); its stylesheet then hides every screen's widgets but this notice, and
steps dialogs aside so the notice of the screen beneath them shows.
"""

from __future__ import annotations

from textual.app import RenderResult
from textual.widget import Widget

__all__ = ["TooSmallNotice", "MIN_SIZE", "too_small"]

MIN_SIZE = (80, 20)
"""Smallest terminal (columns, rows) the console can be used in."""


def too_small(size: tuple[int, int]) -> bool:
    """True when a terminal of ``size`` (columns, rows) is below ``MIN_SIZE``."""
    return size[0] < MIN_SIZE[0] or size[1] < MIN_SIZE[1]


class TooSmallNotice(Widget):
    """Says the terminal's size and the smallest one the console can be used in."""

    DEFAULT_CSS = """
    TooSmallNotice {
        display: none;
        width: 1fr;
        height: 1fr;
        content-align: center middle;
        text-align: center;
        text-style: bold;
        color: $warning;
    }
    """

    def render(self) -> RenderResult:
        # Drawn again on each resize (the notice fills the screen, so its size changes).
        width, height = self.app.size
        return (f"The terminal is too small: {width}×{height}.\n"
                f"wsconsole needs at least {MIN_SIZE[0]}×{MIN_SIZE[1]}; "
                "enlarge the window (ctrl+c quits).")
