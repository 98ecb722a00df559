"""The compose dialog: a text or JSON message to a connection, a group or everyone.

Before the operator confirms, a dry run says how many connections the message
would reach, counted again as connections come and go while the dialog is
open, and once more when Send is pressed: if the count changed since it was
shown, nothing is sent and the button names the new count (press again to
send to it). After sending, the dialog closes with the count the message
actually reached, delivered and skipped. JSON is checked before anything is
sent.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Label, RadioButton, RadioSet, Static, TextArea

from wsconsole.server.errors import WsconsoleError
from wsconsole.server.protocol import EventKind
from wsconsole.server.wire import Event

from ..formatting import literal, missing_note, routed
from ..link import ControlLink
from ..messages import ActionCompleted, CommandFailed
from ..output import counted

RECOUNT_DELAY = 0.3
"""Seconds from a connection opening or closing to the recount of the recipients
(many in a row make one recount)."""

_CHANGES_COUNT = frozenset({EventKind.CONNECTION_OPENED, EventKind.CONNECTION_CLOSED,
                            EventKind.BURST, EventKind.SLOW_CONSUMER})


def sent_summary(label: str, result: dict[str, Any], shown: int) -> str:
    """What a send did: the count it actually reached (said apart from the one
    confirmed when they differ), delivered and skipped."""
    reached = int(result.get("recipients", 0))
    text = f"sent to {label}: {counted(reached, 'connection')}"
    if reached != shown:
        text += f" ({shown} when confirmed)"
    return (text + f": delivered {result.get('delivered', 0)}, skipped "
            f"{result.get('skipped', 0)}" + missing_note(result))
from ..widgets import ChoiceSet, KeysFooter

__all__ = ["ComposeScreen", "check_message", "sent_summary", "RECOUNT_DELAY"]

Target = tuple[str, "dict[str, Any] | None"]


def check_message(text: str, as_json: bool) -> str | None:
    """Why ``text`` cannot be sent, or None when it can."""
    if not text:
        return "Write a message first."
    if as_json:
        try:
            json.loads(text)
        except ValueError as exc:
            return f"Invalid JSON: {exc}. Nothing was sent."
    return None


class ComposeScreen(ModalScreen["str | None"]):
    """Write a message, see who it reaches, send it; dismissed with a summary."""

    CSS_PATH = "compose.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="compose_cancel", tooltip="Close without sending"),
        Binding("ctrl+s", "send", "Send", id="compose_send",
                tooltip="Send to the recipients counted by the dry run"),
    ]

    def __init__(self, link: ControlLink, targets: list[Target], *, default: int = 0,
                 text: str = "", as_json: bool = False) -> None:
        super().__init__()
        self.link = link
        self.targets = targets
        self.target_index = default if targets[default][1] is not None else next(
            i for i, (_, selector) in enumerate(targets) if selector is not None)
        self.initial_text = text
        self.as_json = as_json
        self.recipients: int | None = None
        """Connections the last dry run counted; None until it answers."""
        self.sending = False
        self._recount_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="compose-dialog"):
            yield Label("Send a message", id="compose-title")
            yield Label("To", classes="field-label")
            with ChoiceSet(id="compose-targets"):
                for index, (label, selector) in enumerate(self.targets):
                    # Labels name users and paths: shown as they are, not markup.
                    yield RadioButton(literal(label), value=index == self.target_index,
                                      disabled=selector is None)
            with Horizontal(id="compose-format-row"):
                yield Label("As", classes="field-label")
                with ChoiceSet(id="compose-format"):
                    yield RadioButton("text", value=not self.as_json)
                    yield RadioButton("JSON (checked before sending)", value=self.as_json)
            yield TextArea(self.initial_text, id="compose-message", soft_wrap=True,
                           show_line_numbers=False)
            yield Static(id="compose-check")
            yield Static("Counting recipients…", id="compose-recipients")
            with Horizontal(id="compose-buttons"):
                yield Button("Send", variant="primary", id="compose-send", disabled=True)
                yield Button("Cancel", id="compose-cancel")
        # The dialog's own keys: the main screen's footer would show keys that
        # do nothing while the dialog is up.
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#compose-dialog").border_title = "Compose"
        self.query_one(TextArea).focus()
        self._check()
        self.dry_run(self.selector)
        server_events = getattr(self.app, "server_events", None)
        if server_events is not None:
            server_events.subscribe(self, self._server_events)

    def _server_events(self, events: tuple[Event, ...]) -> None:
        # Someone joined or left: the count shown may be out of date.
        if (self._recount_timer is None and not self.sending
                and any(event.kind in _CHANGES_COUNT for event in events)):
            self._recount_timer = self.set_timer(RECOUNT_DELAY, self._recount)

    def _recount(self) -> None:
        self._recount_timer = None
        if not self.sending:
            self.dry_run(self.selector)

    @property
    def selector(self) -> dict[str, Any]:
        selector = self.targets[self.target_index][1]
        assert selector is not None
        return selector

    @property
    def text(self) -> str:
        return self.query_one(TextArea).text

    @on(RadioSet.Changed, "#compose-targets")
    def _target_changed(self, event: RadioSet.Changed) -> None:
        self.target_index = event.index
        self.recipients = None
        self.query_one("#compose-recipients", Static).update("Counting recipients…")
        self._check()
        self.dry_run(self.selector)

    @on(RadioSet.Changed, "#compose-format")
    def _format_changed(self, event: RadioSet.Changed) -> None:
        self.as_json = event.index == 1
        self._check()

    @on(TextArea.Changed)
    def _text_changed(self) -> None:
        self._check()

    def _check(self) -> bool:
        problem = check_message(self.text, self.as_json)
        check = self.query_one("#compose-check", Static)
        check.update(literal(problem or ("Valid JSON." if self.as_json else "")))
        check.set_class(problem is not None and bool(self.text), "error")
        button = self.query_one("#compose-send", Button)
        ready = problem is None and bool(self.recipients) and not self.sending
        button.disabled = not ready
        if self.recipients is not None:
            n = self.recipients
            label = f"Send to {counted(n, 'connection')}"
            if str(button.label) != label:
                button.label = label
                # A Button is not laid out again when its label changes, and a
                # layout asked for while one is pending reuses the size computed
                # for the old label: ask after the refresh, or "Send to 4" is cut.
                self.call_after_refresh(button.refresh, layout=True)
        return ready

    @work(exclusive=True, group="dry-run", exit_on_error=False)
    async def dry_run(self, selector: dict[str, Any]) -> None:
        """Count the recipients without sending anything."""
        try:
            wire_selector, node = routed(selector)
            result = await self.link.require().send(wire_selector, text="", dry_run=True,
                                                    node=node)
        except WsconsoleError as exc:
            self.post_message(self.DryRunFailed(exc.message))
            return
        self.post_message(self.RecipientsCounted(selector, result))

    class RecipientsCounted(ActionCompleted):
        """The dry run answered."""

        def __init__(self, selector: dict[str, Any], result: dict[str, Any]) -> None:
            super().__init__("Dry run", "")
            self.selector = selector
            self.result = result

    class DryRunFailed(CommandFailed):
        """The dry run failed (link down, forbidden, ...)."""

        def __init__(self, message: str) -> None:
            super().__init__("Dry run", message)

    class MessageSent(ActionCompleted):
        """The message went out; ``summary`` has the counts."""

    @on(RecipientsCounted)
    def _counted(self, message: RecipientsCounted) -> None:
        message.stop()
        self._show_count(message.selector, message.result)

    def _show_count(self, selector: dict[str, Any], result: dict[str, Any]) -> None:
        if selector != self.selector:
            return
        self.recipients = int(result.get("recipients", 0))
        sample = result.get("sample") or []
        line = f"Dry run: {counted(self.recipients, 'recipient')}"
        if sample:
            shown = sample[:5]
            more = self.recipients - len(shown)
            line += " (" + ", ".join(shown) + (f", +{more} more" if more > 0 else "") + ")"
        if self.recipients == 0:
            line += ". Nothing to send to."
        self.query_one("#compose-recipients", Static).update(literal(line))
        self._check()

    @on(DryRunFailed)
    def _dry_run_failed(self, message: DryRunFailed) -> None:
        message.stop()
        self.recipients = None
        self.query_one("#compose-recipients", Static).update(
            literal(f"Cannot count the recipients: {message.message}"))
        self._check()

    def action_send(self) -> None:
        """Send, if the message is valid and the dry run found recipients."""
        if not self._check():
            problem = check_message(self.text, self.as_json)
            if problem:
                self.notify(problem, title="Not sent", severity="error", markup=False)
            return
        self.sending = True
        self._check()
        self.send(self.selector, self.text, self.recipients or 0)

    @on(Button.Pressed, "#compose-send")
    def _send_pressed(self) -> None:
        self.action_send()

    @on(Button.Pressed, "#compose-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="send", exit_on_error=False)
    async def send(self, selector: dict[str, Any], text: str, shown: int) -> None:
        """Count again, then send once if the count is the one the operator saw;
        never retried, so a message is never sent twice."""
        label = self.targets[self.target_index][0]
        try:
            wire_selector, node = routed(selector)
            client = self.link.require()
            counted_now = await client.send(wire_selector, text="", dry_run=True, node=node)
            now = int(counted_now.get("recipients", 0))
            if now != shown:
                # Grown or shrunk since it was shown: the operator confirms anew.
                self.post_message(self.CountChanged(selector, counted_now, shown))
                return
            result = await client.send(wire_selector, text=text, node=node)
        except WsconsoleError as exc:
            self.post_message(self.SendFailed("Send", exc.message))
            return
        self.post_message(self.MessageSent("Sent", sent_summary(label, result, shown)))

    class CountChanged(ActionCompleted):
        """The count taken when Send was pressed differs from the one shown:
        nothing was sent."""

        def __init__(self, selector: dict[str, Any], result: dict[str, Any], shown: int) -> None:
            super().__init__("Not sent", "")
            self.selector = selector
            self.result = result
            self.shown = shown

    @on(CountChanged)
    def _count_changed(self, message: CountChanged) -> None:
        message.stop()
        self.sending = False
        now = int(message.result.get("recipients", 0))
        note = (f"The count changed from {message.shown} to {now} since it was shown; "
                f"nothing was sent. Press Send again to send to {counted(now, 'connection')}."
                if now else f"The count changed from {message.shown} to 0; nothing was sent.")
        self._show_count(message.selector, message.result)
        check = self.query_one("#compose-check", Static)
        check.update(literal(note))
        check.add_class("error")
        self.notify(note, title="Not sent", severity="warning", markup=False)

    class SendFailed(CommandFailed):
        """The send request failed; nothing is retried."""

    @on(MessageSent)
    def _sent(self, message: MessageSent) -> None:
        message.stop()
        self.notify(message.summary, title="Message sent", markup=False)
        self.dismiss(message.summary)

    @on(SendFailed)
    def _send_failed(self, message: SendFailed) -> None:
        message.stop()
        self.sending = False
        self.query_one("#compose-check", Static).update(literal(f"Not sent: {message.message}"))
        self.query_one("#compose-check", Static).add_class("error")
        self.notify(message.message, title="Not sent", severity="error", markup=False)
        self._check()
