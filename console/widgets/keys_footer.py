"""The footer of the console's screens: the keys that work now, one line, one widget.

Textual's Footer mounts a widget per key and recomposes (all of them
unmounted, about 16 mounted again, a layout of the whole screen) each time
the keys change: ``/`` (the filter box's keys while it has the focus),
Enter and Esc (the others come back), the page keys coming and going. That
was about a third of what such a key cost the console. This footer is one
widget that draws its line from the screen's active bindings: when the keys
change it draws that line again, and nothing moves.

It shows what Textual's Footer shows, in its order and its colours (the
``$footer-*`` theme variables): each key and its description, the keys of
a binding group side by side before the group's name, a disabled key dimmed,
the command palette's key on the right. Where Textual's Footer cut the line
in the middle of a word, this one leaves out whole keys, the last ones
first; keys named in ``keep`` (Help, by default) go last. A click on a key
presses it; hovering a key shows its tooltip.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any, Iterable

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import RenderResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget

__all__ = ["KeysFooter", "DrawnKey", "shown_keys"]


def shown_keys(screen: Screen[Any], active: dict[str, Any] | None = None,
               ) -> tuple[tuple[str, Binding, bool, str], ...]:
    """What a footer of ``screen`` shows now: each key, its binding, enabled, tooltip
    (from ``active``, the screen's active bindings, when given)."""
    if active is None:
        active = screen.active_bindings
    return tuple(
        (key, binding, enabled, tooltip)
        for key, (_, binding, enabled, tooltip) in active.items()
        if binding.show
    )


@dataclass(frozen=True)
class DrawnKey:
    """One key as the footer draws it."""

    key: str
    """The key pressed when it is clicked (Textual's name: ``escape``, ``slash``)."""
    display: str
    description: str
    """Empty for a key of a group: the group's name follows its keys."""
    action: str
    enabled: bool
    tooltip: str
    binding_id: str | None = None


@dataclass(frozen=True)
class _Item:
    """What the footer leaves out or shows as a whole: a key, or a group's keys."""

    keys: tuple[DrawnKey, ...]
    label: str | None
    """A group's name, after its keys; None for a single key."""
    keep: bool

    @property
    def width(self) -> int:
        if self.label is None:
            key = self.keys[0]
            return Text(f" {key.display} {key.description} ").cell_len
        displays = " ".join(key.display for key in self.keys)
        return Text(f" {displays} {self.label} ").cell_len


PALETTE_BORDER = "▏"


def _palette_width(key: DrawnKey) -> int:
    return Text(f"{PALETTE_BORDER}{key.display} {key.description} ").cell_len


class KeysFooter(Widget, can_focus=False):
    """The keys of the screen it is on, drawn as one line; whole keys left out
    when the line is too narrow."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {
        "keys-footer--key",
        "keys-footer--description",
        "keys-footer--hover",
        "keys-footer--palette-border",
    }
    DEFAULT_CSS = """
    KeysFooter {
        dock: bottom;
        height: 1;
        width: 1fr;
        text-wrap: nowrap;
        color: $footer-foreground;
        background: $footer-background;
        .keys-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .keys-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .keys-footer--hover {
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
        .keys-footer--palette-border {
            color: $foreground 20%;
        }
    }
    """

    def __init__(self, *, keep: Iterable[str] = ("help",), show_command_palette: bool = True,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.keep = frozenset(keep)
        """Binding ids of the keys left out last when the line is too narrow."""
        self.show_command_palette = show_command_palette
        self._bindings: tuple[tuple[str, Binding, bool, str], ...] | None = None
        self._items: tuple[_Item, ...] = ()
        self._palette: DrawnKey | None = None
        self.drawn: tuple[DrawnKey, ...] = ()
        """The keys of the line drawn last, left to right (the palette's last)."""
        self.changes = 0
        """How many times the keys changed (each is one line drawn again)."""
        # Columns of the line drawn last: (start, end, key) for each key.
        self._spans: list[tuple[int, int, DrawnKey]] = []
        self._hover: DrawnKey | None = None
        self._update_pending = False
        self._drawn_from: tuple[tuple[str, Binding, bool, str], ...] | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen[Any]) -> None:
        # As Textual's Footer, after the refresh under way: the change that
        # asked may not be complete yet (a row parked before it goes). Several
        # asks before then are one.
        if not self._update_pending:
            self._update_pending = True
            self.call_after_refresh(self._update_keys)

    def _update_keys(self) -> None:
        self._update_pending = False
        # Not while the app has no focus (it blurs the focused widget then, and
        # the keys would flicker), and only for the footer's own screen.
        if not self.is_attached or not self.app.app_focus:
            return
        screen = self.screen
        # Each look at the active bindings asks every key's check_action.
        active = screen.active_bindings
        bindings = shown_keys(screen, active)
        if bindings == self._bindings:
            return
        self._bindings = bindings
        self._items, self._palette = self._collect(screen, bindings, active)
        self.changes += 1
        self.refresh()

    def _collect(self, screen: Screen[Any], bindings: Iterable[tuple[str, Binding, bool, str]],
                 active: dict[str, Any]) -> tuple[tuple[_Item, ...], DrawnKey | None]:
        app = screen.app
        # One key per action (the first of its keys), in the bindings' order;
        # consecutive actions of one group side by side (Textual's Footer's rules).
        per_action: dict[str, DrawnKey] = {}
        groups: dict[str, Binding.Group | None] = {}
        for key, binding, enabled, tooltip in bindings:
            if binding.action in per_action:
                continue
            per_action[binding.action] = DrawnKey(
                key, app.get_key_display(binding), binding.description, binding.action,
                enabled, tooltip or binding.tooltip or binding.description, binding.id)
            groups[binding.action] = binding.group
        items: list[_Item] = []
        for group, actions in groupby(per_action, groups.__getitem__):
            keys = [per_action[action] for action in actions]
            if group is not None and len(keys) > 1:
                grouped = tuple(DrawnKey(k.key, k.display, "", k.action, k.enabled,
                                          k.tooltip, k.binding_id) for k in keys)
                keep = any(k.binding_id in self.keep for k in keys)
                items.append(_Item(grouped, group.description, keep))
            else:
                items.extend(_Item((k,), None, k.binding_id in self.keep) for k in keys)
        palette = None
        if self.show_command_palette and app.ENABLE_COMMAND_PALETTE:
            palette_binding = active.get(app.COMMAND_PALETTE_BINDING)
            if palette_binding is not None:
                _, binding, enabled, tooltip = palette_binding
                palette = DrawnKey(binding.key, app.get_key_display(binding),
                                    binding.description, binding.action, enabled,
                                    tooltip or binding.tooltip or binding.description, binding.id)
        return tuple(items), palette

    def _fit(self, width: int) -> tuple[list[_Item], DrawnKey | None]:
        """The items that fit in ``width`` columns whole, and the palette if it fits."""
        palette = self._palette
        room = width
        if palette is not None:
            palette_width = _palette_width(palette)
            if palette_width > width:
                palette = None
            else:
                room -= palette_width
        shown = list(self._items)
        used = sum(item.width for item in shown)
        # Leave out the last keys first, the kept ones after every other.
        for candidate in [i for i in reversed(self._items) if not i.keep] + \
                [i for i in reversed(self._items) if i.keep]:
            if used <= room:
                break
            shown.remove(candidate)
            used -= candidate.width
        return shown, palette

    def render(self) -> RenderResult:
        width = self.size.width
        items, palette = self._fit(width)
        key_style = self.get_component_rich_style("keys-footer--key")
        description_style = self.get_component_rich_style("keys-footer--description")
        hover_style = self.get_component_rich_style("keys-footer--hover")
        dim = Style(dim=True)
        line = Text(no_wrap=True, overflow="crop", end="")
        spans: list[tuple[int, int, DrawnKey]] = []
        drawn: list[DrawnKey] = []

        def add_key(key: DrawnKey, text: str, style: Style) -> None:
            start = line.cell_len
            hovered = self._hover is not None and key == self._hover
            style = hover_style if hovered else style
            line.append(text, style + dim if not key.enabled else style)
            spans.append((start, line.cell_len, key))
            drawn.append(key)

        def add_item(item: _Item) -> None:
            if item.label is None:
                key = item.keys[0]
                add_key(key, f" {key.display} ", key_style)
                line.append(f"{key.description} ",
                            description_style + dim if not key.enabled else description_style)
                # The description is part of the key's target, as in Textual's Footer.
                start, _, _ = spans[-1]
                spans[-1] = (start, line.cell_len, key)
                return
            line.append(" ", key_style)
            for index, key in enumerate(item.keys):
                if index:
                    line.append(" ", key_style)
                add_key(key, key.display, key_style)
            line.append(f" {item.label} ", description_style)

        for item in items:
            add_item(item)
        if palette is not None:
            # On the right after a thin line, as in Textual's Footer: "▏^p palette ".
            pad = width - line.cell_len - _palette_width(palette)
            line.append(" " * max(pad, 0))
            line.append(PALETTE_BORDER, self.get_component_rich_style("keys-footer--palette-border"))
            add_key(palette, palette.display, key_style)
            line.append(f" {palette.description} ", description_style)
            spans[-1] = (spans[-1][0], line.cell_len, palette)
        self._spans = spans
        self.drawn = tuple(drawn)
        self._drawn_from = self._bindings
        return line

    def is_current(self) -> bool:
        """True when the line drawn last shows the keys the screen's bindings say now."""
        return (self.is_attached and self._drawn_from is not None
                and self._drawn_from == shown_keys(self.screen))

    def key_at(self, x: int) -> DrawnKey | None:
        """The key drawn at column ``x`` of the footer, if any."""
        for start, end, key in self._spans:
            if start <= x < end:
                return key
        return None

    def on_mouse_down(self, event: events.MouseDown) -> None:
        key = self.key_at(event.x)
        if key is None:
            return
        event.stop()
        if key.enabled:
            self.app.simulate_key(key.key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._hover_on(self.key_at(event.x))

    def on_leave(self, event: events.Leave) -> None:
        self._hover_on(None)

    def _hover_on(self, key: DrawnKey | None) -> None:
        if key == self._hover:
            return
        self._hover = key
        self.tooltip = key.tooltip if key is not None and key.tooltip else None
        self.refresh()
