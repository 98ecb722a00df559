"""Regenerate ``screenshots/*.svg`` from fixed sample data: ``wsconsole screenshots``.

The console runs headless at a fixed size against :class:`SampleControlClient`,
which answers like a control plane from fixed data (a fixed node, fixed ids,
fixed counters, a frozen clock), so that the pictures change only when the
console does. Also runnable as ``python -m wsconsole.console.screenshots``.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from textual.screen import Screen
from textual.widgets import Button, DataTable, Input, RadioButton, Static, TextArea

from wsconsole.server.patterns import parse_pattern
from wsconsole.server.wire import Event, EventKind

from .app import ConsoleApp
from .screens import ComposeScreen, DetailScreen, ShutdownScreen, TapScreen
from .widgets import GroupsPanel, KeysFooter, StatusBar

__all__ = ["SampleControlClient", "SampleClusterClient", "write_screenshots", "NOW", "SIZE",
           "SHOTS"]

NOW = 1_767_229_200.0
"""The frozen clock: 2026-01-01 01:00:00 UTC."""
SIZE = (160, 46)
"""Terminal columns and rows of every screenshot."""
NARROW_SIZE = (100, 30)
"""Terminal columns and rows of ``narrow.svg`` and ``drain.svg``: the layout of a
small terminal."""
SHOTS = ("main", "events", "problems", "detail", "tap", "compose", "narrow", "shutdown",
         "drain", "cluster")
"""The screenshots, by file name (``screenshots/NAME.svg``)."""

_PEOPLE = [
    ("ann", "/chat", ["lobby"]), ("bob", "/chat", ["lobby"]), ("chen", "/chat", ["dev"]),
    ("dara", "/chat", ["dev"]), ("eve", "/feed", []), ("eve", "/feed", []),
    ("frank", "/feed", ["markets"]), ("grace", "/api/stream", []), ("heidi", "/chat", ["lobby"]),
    ("ivan", "/api/stream", ["markets"]), ("judy", "/notifications", []),
    ("ken", "/chat", ["random"]), ("guest-12", "/chat", ["lobby"]), ("guest-31", "/feed", []),
    ("mallory", "/feed", []), ("guest-40", "/api/stream", ["random"]),
]


def _sample_connections() -> list[dict[str, Any]]:
    rng = random.Random(5)
    connections = []
    for index, (user, path, topics) in enumerate(_PEOPLE):
        age = 3600 - index * 170 - rng.randint(0, 90)
        msgs_in = int(age * rng.uniform(0.2, 2.5))
        msgs_out = int(msgs_in * rng.uniform(1.0, 2.2))
        slow = user == "mallory"
        connections.append({
            "id": f"{rng.getrandbits(40):010x}",
            "node": "demo",
            "user": user,
            "path": path,
            "query": f"user={user}" + (f"&room={topics[0]}" if topics else ""),
            "remote": f"10.{index // 8}.0.{index % 8 + 2}:{51000 + rng.randint(0, 9000)}",
            "connected_at": NOW - age,
            # judy's notifications are quiet for nine minutes: idle, a problem.
            "last_activity": NOW - (545 if user == "judy" else rng.randint(0, 4) if not slow
                                    else 0),
            "msgs_in": msgs_in,
            # The slow reader sends little and reads nothing: its bytes go out.
            "bytes_in": msgs_in * rng.randint(40, 90),
            "msgs_out": msgs_out,
            "bytes_out": msgs_out * (131072 if slow else rng.randint(40, 120)),
            "buffered": 2_883_584 if slow else 0,
            "kernel_queued": 3_276_800 if slow else 0,
            # ivan is on a slow link: a problem too.
            "latency": 0.0 if slow else 0.62 if user == "ivan" else rng.uniform(0.0004, 0.004),
            "topics": topics,
        })
    return connections


def _sample_stats(index: int) -> dict[str, Any]:
    rng = random.Random(index)
    msgs_in = 18 + 6 * ((index * 7) % 5) + rng.uniform(0, 4)
    return {
        "node": "demo", "state": "serving", "listen": ["127.0.0.1:8765"],
        "started_at": NOW - 3725, "uptime": 3725.0, "connections": len(_PEOPLE),
        "opened_total": 131, "closed_total": 115,
        "totals": {"msgs_in": 81234, "bytes_in": 5_123_456, "msgs_out": 160321,
                   "bytes_out": 9_876_543},
        "rates": {"msgs_in": msgs_in, "bytes_in": msgs_in * 61,
                  "msgs_out": msgs_in * 1.9, "bytes_out": msgs_in * 1.9 * 64},
        "shutdown_mode": None, "shutdown_deadline": None,
    }


_BACKLOG_EVENTS = 3
"""The first sample events come as the server's backlog (from before the console attached)."""


def _sample_events(connections: list[dict[str, Any]]) -> list[Event]:
    events = _live_events(connections)
    return [replace(e, backlog=True) if i < _BACKLOG_EVENTS else e for i, e in enumerate(events)]


def _live_events(connections: list[dict[str, Any]]) -> list[Event]:
    by_user = {c["user"]: c for c in connections}
    t = NOW - 40
    return [
        Event(EventKind.CONNECTION_CLOSED, t, {
            "id": "3be01f7a22", "user": "guest-37", "path": "/chat", "code": 1000,
            "reason": "bye", "msgs_in": 12, "msgs_out": 30, "duration": 14.2}),
        Event(EventKind.CONNECTION_OPENED, t + 3, by_user["guest-40"]),
        Event(EventKind.OPERATOR_ACTION, t + 9, {
            "role": "operator", "op": "send", "args": {"selector": {"topic": "lobby"},
                                                       "text_length": 31},
            "result": {"recipients": 4, "delivered": 4, "skipped": 0}}),
        Event(EventKind.CONNECTION_CLOSED, t + 15, {
            "id": "9a0c33d1e4", "user": "guest-22", "path": "/feed", "code": 1006,
            "reason": "", "msgs_in": 3, "msgs_out": 9, "duration": 6.9}),
        Event(EventKind.SLOW_CONSUMER, t + 21, {
            "id": "5f1e2d3c4b", "user": "mallory", "path": "/feed", "buffered": 4_325_376}),
        Event(EventKind.CONNECTION_CLOSED, t + 23, {
            "id": "5f1e2d3c4b", "user": "mallory", "path": "/feed", "code": 1008,
            "reason": "slow consumer: write buffer over limit", "msgs_in": 88,
            "msgs_out": 88, "duration": 22.0}),
        Event(EventKind.CONNECTION_OPENED, t + 29, by_user["mallory"]),
        Event(EventKind.CONNECTION_OPENED, t + 33, by_user["guest-12"]),
        Event(EventKind.OPERATOR_ACTION, t + 36, {
            "role": "operator", "op": "send",
            "args": {"selector": {"ids": [by_user["chen"]["id"]]}, "text_length": 18},
            "result": {"recipients": 1, "delivered": 1, "skipped": 0}}),
    ]


class SampleControlClient:
    """Answers like ``ControlClient`` from fixed data; sends nothing anywhere."""

    cluster: str | None = None
    """The cluster's name in ``hello``; None: one node."""
    missing: dict[str, str] = {}
    """Nodes that do not answer (named in every reply)."""

    def __init__(self) -> None:
        self.connections = _sample_connections()
        self.role = "operator"
        self.node = "demo"
        self.connected = False

    async def connect(self) -> dict[str, Any]:
        self.connected = True
        return {"server": "wsconsole", "protocol": 1, "node": self.node, "role": "operator",
                "state": "serving", "cluster": self.cluster}

    def _node_entries(self) -> list[dict[str, Any]]:
        names = sorted({c["node"] for c in self.connections} | set(self.missing))
        return [{
            "node": name, "state": "serving",
            "health": "suspect" if name in self.missing else "live",
            "connections": sum(1 for c in self.connections if c["node"] == name),
            "rates": {"msgs_in": 9.5, "msgs_out": 18.0}, "started_at": NOW - 3725,
            "uptime": 3725.0, "version": "0.1.0", "listen": ["127.0.0.1:8765"],
            "control_url": "ws://127.0.0.1:8766", "last_seen": NOW - 1,
        } for name in names]

    def _answer(self, result: dict[str, Any]) -> dict[str, Any]:
        return {**result, "missing": dict(self.missing)} if self.missing else result

    async def nodes(self, **routing: Any) -> dict[str, Any]:
        return self._answer({"nodes": self._node_entries()})

    async def close(self) -> None:
        self.connected = False

    async def subscribe(self, stats_interval: float = 1.0, backlog: int = 0) -> int:
        return _BACKLOG_EVENTS if backlog else 0

    async def tap_start(self, selector: dict[str, Any], **options: Any) -> dict[str, Any]:
        self.tap = {"tap": "5ca1ab1e", "node": self.node, "selector": selector,
                    "direction": None, "max_bytes": 256, "rate": 50, "byte_rate": 32768,
                    "duration": 300.0, "role": "operator", "client": "127.0.0.1:50212",
                    "started_at": NOW - 60, "ends_at": NOW + 240, "shown": 0, "dropped": 0}
        return self.tap

    async def tap_stop(self, tap: str) -> dict[str, Any]:
        return {"tap": tap, "stopped": True, "reason": "stopped", "shown": 9, "dropped": 12}

    def _tap_records(self) -> list[dict[str, Any]]:
        tapped = (self.tap["selector"].get("ids") or [self.connections[2]["id"]])[0]
        user = next((c["user"] for c in self.connections if c["id"] == tapped), "chen")
        lines = [
            ("in", "text", '{"type": "typing", "room": "dev"}'),
            ("out", "text", '{"type": "typing", "user": "' + user + '", "room": "dev"}'),
            ("in", "text", '{"type": "message", "room": "dev", "text": "deploy looks good"}'),
            ("out", "text", '{"type": "message", "user": "' + user + '", "text": "deploy '
             'looks good", "at": 1767229140.5}'),
            ("in", "binary", "0a0b08d2091203646576"),
            ("out", "text", '{"type": "notice", "text": "Deploy at 17:00 UTC, expect a '
             'reconnect"}'),
            ("in", "text", "\x1b[31m not a colour: shown escaped"),
            ("out", "text", '{"type": "history", "room": "dev", "messages": [{"user": "dara", '
             '"text": "morning"}, {"user": "chen", "text": "hi"}, {"user": "dara", "te'),
        ]
        records: list[dict[str, Any]] = []
        for index, (kind, opcode, data) in enumerate(lines):
            size = len(data) // 2 if opcode == "binary" else len(data.encode())
            records.append({"time": NOW - 50 + index * 3.25, "id": tapped, "node": self.node,
                            "user": user, "kind": kind, "opcode": opcode,
                            "size": 4812 if index == 7 else size, "data": data,
                            "truncated": index == 7})
        records.append({"time": NOW - 20, "id": tapped, "node": self.node, "user": user,
                        "kind": "closed", "code": 1001, "reason": "page reload"})
        return records

    async def events(self) -> AsyncIterator[Event]:
        if getattr(self, "tap", None):
            # The client of a tap screen: one batch of records, then quiet.
            yield Event(EventKind.TAP, NOW, {"tap": self.tap["tap"],
                                             "records": self._tap_records(), "shown": 9,
                                             "dropped": 12})
            await asyncio.Event().wait()
        for index in range(60):
            yield Event(EventKind.STATS, NOW - 60 + index, _sample_stats(index))
        for event in _sample_events(self.connections):
            yield event
        # Then a quiet, live-looking link that never changes what is shown.
        await asyncio.Event().wait()

    async def event_batches(self) -> AsyncIterator[list[Event]]:
        # One event a batch: each picture waits for what it shows, in order.
        async for event in self.events():
            yield [event]

    async def list_connections(self, *, user: str | None = None, path: str | None = None,
                               topic: str | None = None, id_prefix: str | None = None,
                               sort: str = "connected_at", limit: int = 100,
                               cursor: str | None = None, groups: bool = True,
                               node: str | None = None, timeout: float | None = None,
                               ) -> dict[str, Any]:
        # The server's patterns (user=guest*), read by the same code.
        users, paths, topics = (parse_pattern(value) if value is not None else None
                                for value in (user, path, topic))
        rows = [c for c in self.connections
                if (node is None or c["node"] == node)
                and (users is None or users.matches(c["user"]))
                and (paths is None or paths.matches(c["path"]))
                and (topics is None or any(map(topics.matches, c["topics"])))
                and (id_prefix is None or c["id"].startswith(id_prefix))]
        key = sort.lstrip("-")
        rows.sort(key=lambda c: (c[key], c["id"]), reverse=sort.startswith("-"))
        counts: dict[str, dict[str, int]] = {"nodes": {}, "users": {}, "paths": {},
                                             "topics": {}}
        for c in self.connections:
            counts["nodes"][c["node"]] = counts["nodes"].get(c["node"], 0) + 1
            counts["users"][c["user"]] = counts["users"].get(c["user"], 0) + 1
            counts["paths"][c["path"]] = counts["paths"].get(c["path"], 0) + 1
            for t in c["topics"]:
                counts["topics"][t] = counts["topics"].get(t, 0) + 1
        return self._answer({"connections": rows[:limit], "total": len(rows),
                             "next_cursor": None, "groups": counts, "groups_truncated": False})

    async def get(self, id: str, **routing: Any) -> dict[str, Any]:
        c = next(c for c in self.connections if c["id"] == id)
        return dict(c, request_headers=[
            ["Host", "chat.example.com"], ["Upgrade", "websocket"], ["Connection", "Upgrade"],
            ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="], ["Sec-WebSocket-Version", "13"],
            ["Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"],
            ["Sec-WebSocket-Protocol", "chat.v2"], ["Origin", "https://chat.example.com"],
            ["User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"],
            ["Authorization", "[redacted]"], ["Cookie", "[redacted]"],
            ["X-Forwarded-For", "203.0.113.7"],
            # Long: it wraps in the detail view.
            ["Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
            ["X-Client-Context", "app=chat-web; version=2026.1.4; locale=en-GB; tz=Europe/"
             "London; features=threads,reactions,typing-indicators,read-receipts; "
             "experiment=composer-v3"],
        ], response_headers=[
            ["Upgrade", "websocket"], ["Connection", "Upgrade"],
            ["Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="],
            ["Sec-WebSocket-Extensions", "permessage-deflate"],
            ["Sec-WebSocket-Protocol", "chat.v2"], ["Date", "Thu, 01 Jan 2026 01:00:00 GMT"],
            ["Server", "Python/3.12 websockets/17.0"],
        ], subprotocol="chat.v2", extensions=["permessage-deflate"])

    async def send(self, selector: dict[str, Any], *, text: str | None = None,
                   binary: bytes | None = None, dry_run: bool = False,
                   node: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        page = await self.list_connections(
            user=selector.get("user"), path=selector.get("path"), topic=selector.get("topic"),
            node=node)
        ids = [c["id"] for c in page["connections"]]
        if "ids" in selector:
            ids = [i for i in ids if i in selector["ids"]]
        n = len(ids)
        return {"recipients": n, "delivered": 0 if dry_run else n, "skipped": 0,
                "sample": ids[:10], "dry_run": dry_run}

    async def disconnect(self, selector: dict[str, Any], *, code: int = 1000,
                         reason: str = "", **routing: Any) -> dict[str, Any]:
        raise RuntimeError("the sample client never disconnects")

    async def shutdown(self, mode: str, *, deadline: float | None = None,
                       **kwargs: Any) -> dict[str, Any]:
        # Accepted, and nothing more: the drain's picture is the dialog's own.
        return {"mode": mode, "state": "draining", "connections": len(self.connections),
                "deadline": deadline}


class SampleClusterClient(SampleControlClient):
    """The same connections on the nodes of cluster ``prod``: demo-1 (attached to)
    and demo-2 answer, demo-3 has missed its heartbeats and does not."""

    cluster = "prod"
    missing = {"demo-3": "no reply before the deadline"}

    def __init__(self) -> None:
        super().__init__()
        self.node = "demo-1"
        for index, connection in enumerate(self.connections):
            connection["node"] = "demo-1" if index % 3 else "demo-2"

    async def events(self) -> AsyncIterator[Event]:
        for index in range(60):
            yield Event(EventKind.STATS, NOW - 60 + index,
                        dict(_sample_stats(index), node="demo-1"))
        yield Event(EventKind.NODE, NOW - 12, dict(self._node_entries()[2], health="suspect"))
        yield Event(EventKind.CONNECTION_OPENED, NOW - 5, self.connections[3])
        await asyncio.Event().wait()


def footer_current(screen: Screen[Any]) -> bool:
    """True when the footer of ``screen`` has drawn the keys its bindings say now
    (it draws them on the refresh after they change)."""
    footer = next(iter(screen.query(KeysFooter)), None)
    return footer is not None and footer.is_current()


SETTLE_TIMEOUT = 60.0
"""Seconds each picture may take to reach its state (a loaded machine is slow)."""


async def _shoot(out: Path) -> list[Path]:
    app = ConsoleApp(SampleControlClient, url="ws://127.0.0.1:8766", clock=lambda: NOW,  # type: ignore[arg-type]
                     poll_interval=3600, stats_interval=3600)
    written: list[Path] = []

    async def until(condition: Callable[[], Any]) -> None:
        # Polls the state; the time it takes never decides what is shown.
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while not condition():
                await asyncio.sleep(0.01)

    async def save(name: str, shows: Callable[[], Any]) -> None:
        """Wait until the screen ``shows`` what the picture is of, drawn; then save it.

        Drawn means: the footer shows the screen's keys (Textual rebuilds it
        after a refresh, over several), and after a refresh of the screen the
        picture is the same as after the refresh before (a refresh can schedule
        another, e.g. a table widening a column) with the state still holding.
        """
        def ready() -> bool:
            return bool(shows()) and footer_current(app.screen)

        await until(ready)
        previous = None
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while True:
                await app.screen.wait_for_refresh()
                picture = app.export_screenshot(title="wsconsole")
                if picture == previous and ready():
                    break
                previous = picture
        path = out / f"{name}.svg"
        path.write_text(picture, encoding="utf-8")
        written.append(path)

    def no_notifications() -> bool:
        # Toasts are Textual's private widgets: found by their type's name.
        return not app.screen.query("Toast")

    async with app.run_test(size=SIZE) as pilot:
        main = app.main_screen
        everyone = len(_PEOPLE)
        # Every sample event is in the log (they come after the stats samples,
        # so the sparklines have every sample too), after the console's own
        # "connected" line, the backlog between its two marks.
        logged = 1 + len(_sample_events(_sample_connections())) + 2
        # The close summary beside the rates is shown a moment after the closes
        # (the status bar counts them at most every CLOSES_INTERVAL), and its
        # width decides the sparklines'.
        status = main.query_one(StatusBar)
        await until(lambda: main.table.row_count == everyone
                    and len(main.event_log.entries) == logged
                    and status.closes == main.event_log.closes.summary(NOW))
        app.clear_notifications()
        main.table.move_cursor(row=2)
        await save("main", lambda: main.table.cursor_row == 2 and no_notifications())

        # The event log over the screen (E), as an operator reads it.
        await pilot.press("E")
        await save("events", lambda: main.maximized is main.event_log
                   and main.event_log.has_focus)
        await pilot.press("escape")
        await until(lambda: main.maximized is None)
        main.table.focus()

        # The problems view (p): the slow reader, the slow link, the quiet one first.
        await pilot.press("p")
        await until(lambda: main.problems and main.table.row_count == everyone
                    and main.table.border_title.startswith("PROBLEMS"))
        main.table.move_cursor(row=0)
        await save("problems", lambda: main.table.cursor_row == 0
                   and main.table.sort_key == "problems")
        await pilot.press("p")
        await until(lambda: not main.problems and main.table.sort_key != "problems")
        main.table.move_cursor(row=2)

        await pilot.press("enter")

        def detail_shown() -> bool:
            screen = app.screen
            return (isinstance(screen, DetailScreen)
                    and bool(screen.connection.get("request_headers"))
                    and screen.query_one("#request-headers", DataTable).row_count > 0
                    and screen.query_one("#response-headers", DataTable).row_count > 0)

        await save("detail", detail_shown)
        await pilot.press("T")

        def tap_shown() -> bool:
            screen = app.screen
            return (isinstance(screen, TapScreen) and screen.shown == 9
                    and len(screen.log_widget.lines) == 9)

        await save("tap", tap_shown)
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("escape")
        await until(lambda: app.screen is main)

        lobby = sum(1 for _, _, topics in _PEOPLE if "lobby" in topics)
        main.query_one(GroupsPanel).post_message(GroupsPanel.GroupChosen("topic", "lobby"))
        await until(lambda: main.table.row_count == lobby)
        await pilot.press("b")
        await until(lambda: isinstance(app.screen, ComposeScreen) and app.screen.recipients)
        compose = app.screen
        assert isinstance(compose, ComposeScreen)
        compose.query_one("#compose-format").query(RadioButton).last().value = True
        area = compose.query_one(TextArea)
        area.cursor_blink = False
        area.text = '{"type": "notice", "text": "Deploy at 17:00 UTC, expect a reconnect"}'
        await save("compose", lambda: compose.as_json
                   and str(compose.query_one("#compose-check", Static).render()) == "Valid JSON."
                   and not compose.query_one("#compose-send", Button).disabled)
        await pilot.press("escape")
        await until(lambda: app.screen is main)

        main.query_one(GroupsPanel).post_message(GroupsPanel.GroupChosen("everyone", None))
        await until(lambda: main.table.row_count == everyone)

        # The narrow layout: no groups panel, the columns that matter, a status
        # line that drops whole parts.
        await pilot.resize_terminal(*NARROW_SIZE)
        await until(lambda: not main.query_one(GroupsPanel).display
                    and "buffered" in main.table.shown and "remote" not in main.table.shown)
        await save("narrow", lambda: app.size == NARROW_SIZE and no_notifications())
        await pilot.resize_terminal(*SIZE)
        await until(lambda: main.query_one(GroupsPanel).display and app.size == SIZE)

        await pilot.press("X")
        await until(lambda: isinstance(app.screen, ShutdownScreen))
        dialog = app.screen
        assert isinstance(dialog, ShutdownScreen)
        await pilot.click("#shutdown-mode RadioButton:last-of-type")
        await until(lambda: dialog.mode == "keep_alive")
        dialog.query_one("#shutdown-deadline", Input).value = "300"
        dialog.query_one("#shutdown-reason", Input).value = "deploy"
        cancel = dialog.query_one("#shutdown-cancel", Button)
        cancel.focus()
        await save("shutdown", lambda: dialog.query_one("#shutdown-deadline-row").display
                   and cancel.has_focus)

        # Confirmed: the keep-alive drain, its deadline and the countdown, at 100x30.
        await pilot.resize_terminal(*NARROW_SIZE)
        dialog.query_one("#shutdown-confirm", Button).press()
        await until(lambda: dialog.phase == "draining")
        app.clear_notifications()
        await save("drain", lambda: app.size == NARROW_SIZE and no_notifications()
                   and "Deadline" in str(dialog.query_one("#shutdown-progress-text",
                                                          Static).render()))

    cluster = ConsoleApp(SampleClusterClient, url="ws://127.0.0.1:8766",  # type: ignore[arg-type]
                         clock=lambda: NOW, poll_interval=3600, stats_interval=3600,
                         nodes_interval=3600)
    app = cluster
    async with cluster.run_test(size=SIZE):
        main = cluster.main_screen
        groups = main.query_one(GroupsPanel)
        # The three nodes are known, the missing one is marked, the banner names it.
        await until(lambda: main.table.row_count == everyone
                    and len(cluster.nodes.nodes) == 3
                    and ("node", "demo-3") in groups._group_nodes
                    and "demo-3" in str(main.query_one("#banner", Static).render())
                    and len(main.event_log.entries) == 3)
        cluster.clear_notifications()
        await save("cluster", no_notifications)
    return written


def write_screenshots(out: str | os.PathLike[str] = "screenshots") -> list[Path]:
    """Write every screenshot into ``out``; return the paths written."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    # Timestamps in the event log are local time: pin the zone for stable
    # pictures, and give the caller's zone back (a test process goes on after).
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        return asyncio.run(_shoot(directory))
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


if __name__ == "__main__":  # pragma: no cover
    for written_path in write_screenshots(sys.argv[1] if len(sys.argv) > 1 else "screenshots"):
        print(written_path)
