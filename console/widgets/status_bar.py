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
from ..link import LinkState, LinkStatus
from ..output import counted
from ..view_state import cluster_mode, link_health, nodes_summary

__all__ = ["StatusBar", "SPARKLINE_SAMPLES"]

SPARKLINE_SAMPLES = 60
"""Stats samples kept for the sparklines (one a second: the last minute)."""

_STATE_STYLES = {HubState.SERVING: "bold green", HubState.DRAINING: "bold yellow",
                 HubState.STOPPED: "bold red"}
_NODE_STYLES = {"live": "green", "suspect": "bold yellow", "missing": "bold red"}
_LINK_STYLES = {LinkStatus.CONNECTED: "green", LinkStatus.CONNECTING: "yellow",
                LinkStatus.LOST: "bold red", LinkStatus.REFUSED: "bold red",
                LinkStatus.NOT_CONTROL_PLANE: "bold red", LinkStatus.ENDED: "bold red"}


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
    StatusBar #traffic-line {
        height: 1;
        padding: 0 1;
    }
    StatusBar .rate {
        width: auto;
        min-width: 22;
    }
    StatusBar Sparkline {
        width: 1fr;
        max-width: 40;
        margin: 0 2 0 1;
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

    def compose(self) -> ComposeResult:
        # The link's health has a place of its own on the right, so that a
        # narrow terminal cuts the server's details rather than the link's.
        with Horizontal(id="status-row"):
            yield Static(id="status-line")
            yield Static(id="link-line")
        with Horizontal(id="traffic-line"):
            yield Static(classes="rate", id="rates-in")
            yield Sparkline(list(self._in), id="rates-in-spark")
            yield Static(classes="rate", id="rates-out")
            yield Sparkline(list(self._out), id="rates-out-spark")

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

    def show_link(self, link: LinkState) -> None:
        """Show the control link's health; while an attempt is due, count down to it."""
        self.link = link
        self.retry_at = None if link.retry_in is None else time.monotonic() + link.retry_in
        self._render_link()

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

    def _render_status(self) -> None:
        if not self.is_mounted:
            return
        stats = self.stats
        line = Text(no_wrap=True, overflow="ellipsis")
        if not stats:
            line.append("no server data yet", style="dim")
        else:
            line.append(f"{stats.get('node', '?')}", style="bold")
            line.append("  ")
        state = stats.get("state", "")
        label = state
        if state == HubState.DRAINING and stats.get("shutdown_mode"):
            label = f"draining ({str(stats['shutdown_mode']).replace('_', '-')})"
        line.append(label, style=_STATE_STYLES.get(state, "bold"))
        taps = stats.get("taps") or []
        if taps:
            # Payloads are being watched: every console says so, whoever taps,
            # near the left so that a narrow terminal does not cut it off.
            line.append("  ")
            line.append(f" TAP ×{len(taps)} " if len(taps) > 1 else " TAP ",
                        style="bold reverse magenta")
        listen = stats.get("listen") or []
        if listen:
            line.append("  ws://" + ", ws://".join(listen), style="dim")
        if "uptime" in stats:
            line.append(f"  up {human_duration(stats['uptime'])}")
        if "connections" in stats:
            line.append(f"  {counted(stats['connections'], 'connection')}", style="bold")
            line.append(
                f" ({stats.get('opened_total', 0)} opened, {stats.get('closed_total', 0)} closed)",
                style="dim",
            )
        if self.cluster is not None:
            line.append(f"  {self.cluster}: ", style="dim")
            for index, (count, kind) in enumerate(self.nodes):
                if index:
                    line.append(", ", style="dim")
                line.append(f"{count} {kind}", style=_NODE_STYLES.get(kind, ""))
            line.append(" nodes" if sum(c for c, _ in self.nodes) != 1 else " node",
                        style="dim")
        self._show("#status-line", line)

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
