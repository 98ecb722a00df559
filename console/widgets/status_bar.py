"""The status bar: node, listen addresses, state, uptime, counts, rates, link health;
in a cluster, its nodes (live, suspect, missing) and the cluster's rates."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from wsconsole.server.protocol import HubState

from ..formatting import human_bytes, human_duration, human_rate
from ..layout import fit_closes, fit_parts
from ..link import LinkState, LinkStatus, stale_note
from ..output import counted
from ..view_state import cluster_mode, link_health, nodes_summary

__all__ = ["StatusBar", "FittedLine", "SPARKLINE_SAMPLES"]

SPARKLINE_SAMPLES = 60
"""Stats samples kept for the sparklines (one a second: the last minute)."""
_RATE_MIN_WIDTH = 22
_SPARKLINE_MIN_ROOM = 11
"""A sparkline's least useful width, its margins included: below it, the close
summary (the problems) has their room."""

_STATE_STYLES = {HubState.SERVING: "bold green", HubState.DRAINING: "bold yellow",
                 HubState.STOPPED: "bold red"}
_NODE_STYLES = {"live": "green", "suspect": "bold yellow", "missing": "bold red"}
_LINK_STYLES = {LinkStatus.CONNECTED: "green", LinkStatus.CONNECTING: "yellow",
                LinkStatus.LOST: "bold red", LinkStatus.REFUSED: "bold red",
                LinkStatus.NOT_CONTROL_PLANE: "bold red", LinkStatus.ENDED: "bold red"}


class FittedLine(Widget):
    """One line of ranked parts that drops the least important ones to fit its
    width (``layout.fit_parts``), laid out again only when its parts change."""

    DEFAULT_CSS = """
    FittedLine {
        height: 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.parts: list[tuple[int, Text]] = []

    def show(self, parts: list[tuple[int, Text]]) -> None:
        """Show these parts (a repaint only when they changed)."""
        if parts != self.parts:
            self.parts = parts
            self.refresh()

    def render(self) -> Text:
        return fit_parts(self.parts, self.content_size.width or None)

    @property
    def shown(self) -> str:
        """The line as it is shown at this width."""
        return fit_parts(self.parts, self.content_size.width or None).plain


class StatusBar(Widget):
    """Two lines at the top: who and how the server is, and its traffic."""

    DEFAULT_CSS = """
    StatusBar {
        height: 2;
        background: $panel;
    }
    StatusBar #status-row {
        height: 1;
    }
    StatusBar #status-line {
        width: 1fr;
        height: 1;
        padding: 0 0 0 1;
    }
    StatusBar #link-line {
        width: auto;
        height: 1;
        padding: 0 1;
    }
    StatusBar.stale #traffic-line {
        opacity: 50%;
    }
    StatusBar #traffic-line {
        height: 1;
        padding: 0 1;
    }
    StatusBar .rate {
        width: auto;
        min-width: 22;
    }
    StatusBar #closes {
        width: auto;
        height: 1;
        padding: 0 1;
    }
    StatusBar Sparkline {
        width: 1fr;
        max-width: 40;
        margin: 0 2 0 1;
    }
    StatusBar.no-sparklines Sparkline {
        display: none;
    }
    StatusBar.no-sparklines #rates-in {
        margin: 0 2 0 0;
    }
    StatusBar #rates-in-spark > .sparkline--max-color { color: $success; }
    StatusBar #rates-in-spark > .sparkline--min-color { color: $success 30%; }
    StatusBar #rates-out-spark > .sparkline--max-color { color: $accent; }
    StatusBar #rates-out-spark > .sparkline--min-color { color: $accent 30%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.stats: dict[str, Any] = {}
        """The stats sample shown."""
        self.link = LinkState()
        """The link state shown."""
        self.retry_at: float | None = None
        """When (monotonic) the next attempt to reconnect is due, while the link is down."""
        self._in: deque[float] = deque([0.0] * SPARKLINE_SAMPLES, maxlen=SPARKLINE_SAMPLES)
        self._out: deque[float] = deque([0.0] * SPARKLINE_SAMPLES, maxlen=SPARKLINE_SAMPLES)
        self._shown: dict[str, Text] = {}
        self.cluster: str | None = None
        """The cluster's name, or None for one node."""
        self.nodes: list[tuple[int, str]] = []
        """The nodes by kind (live, suspect, missing), shown in a cluster."""
        self.closes = ""
        """The abnormal close codes of the last minutes, as shown (empty: none)."""

    def compose(self) -> ComposeResult:
        # The link's health has a place of its own on the right, so that a
        # narrow terminal cuts the server's details rather than the link's.
        with Horizontal(id="status-row"):
            yield FittedLine(id="status-line")
            yield Static(id="link-line")
        with Horizontal(id="traffic-line"):
            yield Static(classes="rate", id="rates-in")
            yield Sparkline(list(self._in), id="rates-in-spark")
            yield Static(classes="rate", id="rates-out")
            yield Sparkline(list(self._out), id="rates-out-spark")
            yield Static(id="closes")

    def on_mount(self) -> None:
        self._render_status()
        self._render_link()
        self._render_rates()
        self.set_interval(0.5, self._tick)

    def _tick(self) -> None:
        if self.retry_at is not None:
            self._render_link()

    def update_stats(self, stats: dict[str, Any]) -> None:
        """Show a new stats sample and extend the sparklines."""
        self.stats = stats
        rates = stats.get("rates") or {}
        self._in.append(float(rates.get("msgs_in", 0.0)))
        self._out.append(float(rates.get("msgs_out", 0.0)))
        self._render_status()
        self._render_rates()

    def show_nodes(self, hello: Mapping[str, Any], nodes: Any,
                   missing: Mapping[str, str]) -> None:
        """Show the nodes of a cluster: how many are live, suspect and missing."""
        clustered = cluster_mode(hello, nodes)
        cluster = (hello.get("cluster") or "cluster") if clustered else None
        summary = nodes_summary(nodes, missing) if clustered else []
        if (cluster, summary) != (self.cluster, self.nodes):
            self.cluster, self.nodes = cluster, summary
            self._render_status()
            self._render_rates()

    def show_closes(self, summary: str) -> None:
        """Show the abnormal close codes of the last minutes, e.g. ``1006×3 1008×1 in 5 min``
        (empty: there were none)."""
        if summary != self.closes:
            self.closes = summary
            self._render_closes()

    def on_resize(self) -> None:
        self._render_closes()

    def _render_closes(self) -> None:
        # The summary is never cut mid-word: on a narrow terminal the
        # sparklines give it their room, and then it keeps its most frequent
        # code and counts the rest (layout.fit_closes).
        if not self.is_mounted:
            return
        rates = sum(max(_RATE_MIN_WIDTH, self._shown[s].cell_len if s in self._shown else 0)
                    for s in ("#rates-in", "#rates-out"))
        width = self.size.width
        room = width - 2 - rates - 2 if width else None  # the line's padding, the summary's
        full = fit_closes(self.closes, None).cell_len
        sparklines = room is None or room - full >= 2 * _SPARKLINE_MIN_ROOM
        self.set_class(not sparklines, "no-sparklines")
        self._show("#closes", fit_closes(self.closes, room if sparklines or room is None
                                         else max(room - 2, 0)))

    def show_link(self, link: LinkState) -> None:
        """Show the control link's health; while an attempt is due, count down to it.
        While it is down, every figure shown is marked stale."""
        stale_before = self.link.stale
        self.link = link
        self.retry_at = None if link.retry_in is None else time.monotonic() + link.retry_in
        self._render_link()
        if link.stale != stale_before:
            self._render_status()

    def link_display(self) -> str:
        """The link's health as shown, e.g. ``lost, retrying in 3s``."""
        left = None if self.retry_at is None else self.retry_at - time.monotonic()
        text = link_health(self.link, left)
        if self.link.up and self.link.read_only:
            text += ", read-only"
        return text

    def _render_link(self) -> None:
        if not self.is_mounted:
            return
        shown = self.link_display()
        read_only = shown.endswith(", read-only")
        line = Text(no_wrap=True)
        line.append("link: ", style="dim")
        line.append(shown.removesuffix(", read-only"),
                    style=_LINK_STYLES.get(self.link.status, ""))
        if read_only:
            line.append(", ", style="dim")
            line.append("read-only", style="bold yellow")
        self._show("#link-line", line)

    def status_parts(self) -> list[tuple[int, Text]]:
        """The status line's parts, each with its rank (0 stays longest; see
        ``layout.fit_parts``): what a narrow terminal drops first is the listen
        address, then opened/closed, then the uptime."""
        stats = self.stats
        stale = self.link.stale
        # While the link is down every figure is the last one received: dimmed,
        # and said to be stale since the link went down.
        dim = "dim" if stale else ""
        parts: list[tuple[int, Text]] = []
        if stale:
            parts.append((0, Text(f" {stale_note(self.link.down_since).upper()} ",
                                  style="bold reverse yellow")))
            parts.append((0, Text(" ")))
        if not stats:
            parts.append((0, Text("no server data yet", style="dim")))
        else:
            parts.append((0, Text(f"{stats.get('node', '?')}", style="dim bold" if stale
                                  else "bold")))
            parts.append((0, Text("  ")))
        state = stats.get("state", "")
        label = state
        if state == HubState.DRAINING and stats.get("shutdown_mode"):
            label = f"draining ({str(stats['shutdown_mode']).replace('_', '-')})"
        parts.append((0, Text(label, style="dim" if stale else _STATE_STYLES.get(state, "bold"))))
        taps = stats.get("taps") or []
        if taps:
            # Payloads are being watched: every console says so, whoever taps,
            # near the left so that a narrow terminal does not cut it off.
            parts.append((0, Text.assemble("  ", (
                f" TAP ×{len(taps)} " if len(taps) > 1 else " TAP ", "bold reverse magenta"))))
        listen = stats.get("listen") or []
        if listen:
            parts.append((4, Text("  ws://" + ", ws://".join(listen), style="dim")))
        if "uptime" in stats:
            parts.append((2, Text(f"  up {human_duration(stats['uptime'])}", style=dim)))
        if "connections" in stats:
            parts.append((1, Text(f"  {counted(stats['connections'], 'connection')}",
                                  style="dim bold" if stale else "bold")))
            parts.append((3, Text(
                f" ({stats.get('opened_total', 0)} opened, {stats.get('closed_total', 0)} closed)",
                style="dim")))
        if self.cluster is not None:
            nodes = Text.assemble((f"  {self.cluster}: ", "dim"))
            for index, (count, kind) in enumerate(self.nodes):
                if index:
                    nodes.append(", ", style="dim")
                nodes.append(f"{count} {kind}", style="dim" if stale
                             else _NODE_STYLES.get(kind, ""))
            nodes.append(" nodes" if sum(c for c, _ in self.nodes) != 1 else " node",
                         style="dim")
            parts.append((1, nodes))
        return parts

    def _render_status(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#status-line", FittedLine).show(self.status_parts())
        self.set_class(self.link.stale, "stale")

    def _show(self, selector: str, line: Text) -> None:
        # A sample comes every second and an update lays the whole screen out
        # again: skip an unchanged line, and lay out only when its width changed.
        previous = self._shown.get(selector)
        if previous == line:
            return
        self._shown[selector] = line
        self.query_one(selector, Static).update(
            line, layout=previous is None or previous.cell_len != line.cell_len)

    def _render_rates(self) -> None:
        if not self.is_mounted:
            return
        rates = self.stats.get("rates") or {}
        # In a cluster the stats are its totals: said so.
        scope = "cluster " if self.cluster is not None else ""
        self._show("#rates-in", Text.assemble(
            (f"{scope}in ", "dim"), (f"{human_rate(rates.get('msgs_in', 0.0))} msg/s", "bold"),
            (f" {human_bytes(rates.get('bytes_in', 0.0))}/s", "dim"),
        ))
        self._show("#rates-out", Text.assemble(
            (f"{scope}out ", "dim"), (f"{human_rate(rates.get('msgs_out', 0.0))} msg/s", "bold"),
            (f" {human_bytes(rates.get('bytes_out', 0.0))}/s", "dim"),
        ))
        self.query_one("#rates-in-spark", Sparkline).data = list(self._in)
        self.query_one("#rates-out-spark", Sparkline).data = list(self._out)
        self._render_closes()  # the rates' widths leave it more or less room
