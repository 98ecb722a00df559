"""The Textual application of ``wsconsole console``: thin, the screens do the work.

Takes a factory of control clients (so a test, the demo and the command line
each say where the control plane is and with which token) and shows the main
screen. Imports from the server only its wire format and errors.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Callable, ClassVar, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.screen import Screen

from .link import RECONNECT_DELAYS, ClientFactory, ControlLink
from .screens.main import MainScreen
from .widgets import too_small

__all__ = ["ConsoleApp"]


class ConsoleApp(App[None]):
    """The wsconsole console: watch and operate one live WebSocket server."""

    TITLE = "wsconsole"
    ENABLE_COMMAND_PALETTE = True

    # Too small (a class the app sets on itself): a screen shows only its
    # TooSmallNotice, and a dialog hides and turns transparent so that the
    # notice of the screen beneath it shows, instead of drawing over it.
    CSS = """
    ConsoleApp.too-small Screen > * {
        display: none;
    }
    ConsoleApp.too-small Screen > TooSmallNotice {
        display: block;
    }
    ConsoleApp.too-small ModalScreen {
        background: $background 0%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit the console (the server keeps running, "
                "except in the demo)"),
        Binding("ctrl+c", "quit", "Quit", id="quit_ctrl_c", show=False, priority=True,
                tooltip="Quit the console"),
    ]

    def __init__(
        self,
        client_factory: ClientFactory,
        *,
        url: str = "",
        clock: Callable[[], float] = time.time,
        reconnect_delays: tuple[float, ...] = RECONNECT_DELAYS,
        poll_interval: float = 1.0,
        stats_interval: float = 1.0,
        refresh_delay: float = 0.2,
        page_size: int | None = None,
    ) -> None:
        super().__init__()
        self.link = ControlLink(client_factory, url)
        """The control link the screens share."""
        self._main_options = dict(clock=clock, reconnect_delays=reconnect_delays,
                                  poll_interval=poll_interval, stats_interval=stats_interval,
                                  refresh_delay=refresh_delay)
        if page_size is not None:
            self._main_options["page_size"] = page_size
        self.sub_title = url

    def on_mount(self) -> None:
        # Pushed rather than returned by get_default_screen, so that Textual
        # loads the screen's .tcss (it does so only for pushed screens).
        self.push_screen(MainScreen(self.link, **self._main_options))  # type: ignore[arg-type]

    def on_resize(self, event: Resize) -> None:
        # Here, not per screen: a dialog over a screen must know it too.
        self.set_class(too_small(event.size), "too-small")

    @property
    def main_screen(self) -> MainScreen:
        """The main screen (under any dialog)."""
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("the main screen is not mounted yet")

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every action of the main screen that is possible now, then Textual's own."""
        try:
            main = self.main_screen
        except LookupError:
            main = None
        if main is not None:
            for _, binding in main._bindings:
                if not binding.description or binding.system:
                    continue
                if main.check_action(binding.action, ()) is not True:
                    continue
                key = self.get_key_display(binding)
                yield SystemCommand(
                    binding.description,
                    f"{binding.tooltip} ({key})" if binding.tooltip else key,
                    partial(self._run_main_action, binding.action),
                )
        yield from super().get_system_commands(screen)

    def _run_main_action(self, action: str) -> None:
        # The palette acts on the main screen; a dialog over it would hide the result.
        main = self.main_screen
        while self.screen is not main and len(self.screen_stack) > 2:
            self.pop_screen()
        self.call_later(main.run_action, action)
