"""The live message tap: what it shows, to whom, and within which bounds.

Real servers on port 0, real clients on loopback; the pure parts with plain values.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest

from tests.helpers import TIMEOUT, wait_for
from wsconsole.server import serve, wire
from wsconsole.server.config import ControlConfig
from wsconsole.server.registry import Selector
from wsconsole.server.serving import WsconsoleServer
from wsconsole.server.tap import (
    BINARY_OPCODE,
    CONTINUATION_OPCODE,
    TEXT_OPCODE,
    FrameJoiner,
    Tap,
    TapLimits,
    excerpt,
    limits_problem,
)
from wsconsole.server.wire import EventKind

from .control_helpers import READ_ONLY_TOKEN, TOKEN, Control, app, control, public


@asynccontextmanager
async def tapping(audit_log: str | None = None, **options: Any) -> AsyncIterator[WsconsoleServer]:
    """A server that allows taps (unless told otherwise), with a control listener."""
    options.setdefault("allow_tap", True)
    config = ControlConfig(port=0, token=TOKEN, read_only_token=READ_ONLY_TOKEN,
                           audit_log=audit_log)
    async with serve(app, "127.0.0.1", 0, control=config, **options) as server:
        yield server


async def tap_records(ctl: Control, tap_id: str, count: int) -> list[dict[str, Any]]:
    """Read ``tap`` events of one tap until ``count`` records arrived."""
    records: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while len(records) < count:
            event = await ctl.event(lambda e: e.kind == EventKind.TAP)
            if event.data["tap"] == tap_id:
                records.extend(event.data["records"])
    return records


async def tap_ended(ctl: Control, tap_id: str) -> dict[str, Any]:
    event = await ctl.event(lambda e: e.kind == EventKind.TAP_ENDED and e.data["tap"] == tap_id)
    return event.data


def client_id(server: WsconsoleServer, user: str) -> str:
    return next(record.id for record in server.hub.registry if record.user == user)


# The pure part


def test_excerpt_shows_text_as_text_cut_at_a_character_and_binary_as_hex():
    """Text is cut before a character that would not fit whole; binary is hex;
    0 bytes shows no payload, only that there was one."""
    assert excerpt(TEXT_OPCODE, "héllo".encode(), 256) == ("héllo", False)
    assert excerpt(TEXT_OPCODE, "héllo".encode(), 2) == ("h", True)  # é is 2 bytes
    assert excerpt(TEXT_OPCODE, b"ok\xff", 256) == ("ok\ufffd", False)
    assert excerpt(BINARY_OPCODE, b"\x00\x01\xff\x1b", 3) == ("0001ff", True)
    assert excerpt(TEXT_OPCODE, b"secret", 0) == (None, True)


def test_frame_joiner_joins_fragments_and_keeps_only_what_a_tap_shows():
    """A fragmented message is one message of the summed size; control frames
    in between are not messages; only ``keep`` bytes are kept."""
    joiner = FrameJoiner(keep=4)
    assert joiner.feed(TEXT_OPCODE, b"abc", False) is None
    assert joiner.feed(9, b"ping", True) is None
    text = joiner.feed(CONTINUATION_OPCODE, b"defg", True)
    assert text is not None and (text.opcode, text.size, text.head) == (TEXT_OPCODE, 7, b"abcd")
    joiner.feed(BINARY_OPCODE, b"abc", False)
    message = joiner.feed(CONTINUATION_OPCODE, b"defg", True)
    assert message is not None
    assert (message.opcode, message.size, message.head, message.complete) == (
        BINARY_OPCODE, 7, b"abcd", False)
    whole = joiner.feed(TEXT_OPCODE, b"hi", True)
    assert whole is not None and whole.complete and whole.head == b"hi"
    assert joiner.feed(CONTINUATION_OPCODE, b"orphan", True) is None


def test_limits_are_checked_by_one_rule():
    """Out-of-range limits are refused with a sentence that names the limit."""
    assert limits_problem(None, 256, 50, 32768, 300) is None
    assert "direction" in limits_problem("sideways", 256, 50, 32768, 300)
    assert "max_bytes" in limits_problem("in", 70_000, 50, 32768, 300)
    assert "rate" in limits_problem(None, 256, 0, 32768, 300)
    assert "duration" in limits_problem(None, 256, 50, 32768, 0)
    assert "duration" in limits_problem(None, 256, 50, 32768, 7200)
    with pytest.raises(ValueError):
        TapLimits(rate=5000)


def test_a_tap_drops_what_passes_its_rate_and_counts_it():
    """At 10 messages a second, a burst of 30 shows 10 and drops 20; a second
    later there is room again; the queue never grows past its bound."""
    tap = Tap("t", Selector(everyone=True), TapLimits(rate=10), node="n", owner={},
              now=0.0, started_at=0.0)
    admitted = sum(tap.admit(10, 0.0) for _ in range(30))
    assert (admitted, tap.dropped) == (10, 20)
    assert tap.admit(10, 1.0)
    for _ in range(100):
        tap.push({})
    assert len(tap.take()) == tap.max_pending == 20


# Safety


async def test_the_tap_is_off_unless_the_server_allows_it():
    """Without allow_tap, tap_start is refused with a message that says how to turn it on."""
    async with tapping(allow_tap=False) as server, control(server) as ctl:
        reply = await ctl.reply("tap_start", selector={"everyone": True})
    assert reply.error_code == "tap_disabled"
    assert "--allow-tap" in reply.error_message and "allow_tap=True" in reply.error_message


async def test_a_read_only_token_can_never_tap():
    """The read-only role is refused (forbidden): payloads are the users' data."""
    async with tapping() as server, control(server, READ_ONLY_TOKEN) as ctl:
        assert await ctl.error("tap_start", selector={"everyone": True}) == "forbidden"
        assert not server.hub.taps.taps


async def test_bad_selectors_and_limits_are_refused():
    """Unknown selector fields and limits out of range are errors, nothing starts."""
    async with tapping() as server, control(server) as ctl:
        assert await ctl.error("tap_start", selector={"room": "x"}) == "bad_selector"
        assert await ctl.error("tap_start", selector={}) == "bad_selector"
        assert await ctl.error("tap_start", selector={"everyone": True},
                               max_bytes=-1) == "bad_request"
        assert await ctl.error("tap_start", selector={"everyone": True},
                               rate=10_000) == "bad_request"
        assert await ctl.error("tap_start", selector={"everyone": True},
                               direction="both") == "bad_request"
        reply = await ctl.raw('{"id": 9, "op": "tap_start", "args": '
                              '{"selector": {"everyone": true}, "duration": 1e999}}')
        assert reply.error_code == "bad_request"
        assert not server.hub.taps.taps


async def test_concurrent_taps_are_capped():
    """Past max_taps, tap_start is refused with too_many_taps."""
    async with tapping(max_taps=2) as server, control(server) as ctl:
        for _ in range(2):
            await ctl.ok("tap_start", selector={"everyone": True})
        assert await ctl.error("tap_start", selector={"everyone": True}) == "too_many_taps"


# What it shows


async def test_a_tap_on_one_connection_shows_both_directions_in_order():
    """Each message the client sends and receives, in order, with its size, and
    the payload cut at max_bytes; another client's messages are not shown."""
    async with tapping() as server, control(server) as ctl, \
            public(server, "/chat?user=ann") as ann, public(server, "/chat?user=bob") as bob:
        await wait_for(lambda: len(server.hub.registry) == 2)
        ann_id = client_id(server, "ann")
        started = await ctl.ok("tap_start", selector={"ids": [ann_id]}, max_bytes=5)
        assert started["max_bytes"] == 5 and started["ends_at"] > started["started_at"]
        await bob.send("not ann")
        await bob.recv()
        await ann.send("hello world")
        assert await ann.recv() == "hello world"
        await ann.send(b"\x00\x01\x02")
        await ann.recv()
        records = await tap_records(ctl, started["tap"], 4)
    assert [(r["kind"], r["opcode"], r["size"], r["data"], r["truncated"]) for r in records] == [
        ("in", "text", 11, "hello", True),
        ("out", "text", 11, "hello", True),
        ("in", "binary", 3, "000102", False),
        ("out", "binary", 3, "000102", False),
    ]
    assert {r["id"] for r in records} == {ann_id} and {r["user"] for r in records} == {"ann"}
    assert all(r["node"] == server.hub.node for r in records)


async def test_one_direction_only():
    """direction=in shows what the client sends and nothing it receives."""
    async with tapping() as server, control(server) as ctl, public(server, "/?user=ann") as ann:
        await wait_for(lambda: len(server.hub.registry) == 1)
        started = await ctl.ok("tap_start", selector={"user": "ann"}, direction="in")
        for text in ("one", "two"):
            await ann.send(text)
            await ann.recv()
        records = await tap_records(ctl, started["tap"], 2)
    assert [(r["kind"], r["data"]) for r in records] == [("in", "one"), ("in", "two")]


async def test_a_fragmented_message_is_one_record_of_its_whole_size():
    """A message sent in fragments is shown once, with the size of the whole."""
    async with tapping() as server, control(server) as ctl, public(server, "/?user=ann") as ann:
        await wait_for(lambda: len(server.hub.registry) == 1)
        started = await ctl.ok("tap_start", selector={"user": "ann"}, direction="in")
        await ann.send(["frag", "ment", "ed"])
        await ann.recv()
        records = await tap_records(ctl, started["tap"], 1)
    assert (records[0]["size"], records[0]["data"]) == (10, "fragmented")


async def test_a_tap_on_a_topic_shows_only_its_members_and_follows_who_joins():
    """Only connections in the topic are shown; one that joins during the tap is
    shown from then on."""
    async with tapping() as server, control(server) as ctl, \
            public(server, "/?user=ann") as ann, public(server, "/?user=bob") as bob:
        await ann.send("join:lobby")
        assert await ann.recv() == "joined"
        started = await ctl.ok("tap_start", selector={"topic": "lobby"}, direction="in")
        await bob.send("bob outside")
        await bob.recv()
        await ann.send("ann inside")
        await ann.recv()
        await bob.send("join:lobby")
        await bob.recv()
        await bob.send("bob inside")
        await bob.recv()
        records = await tap_records(ctl, started["tap"], 2)
    # bob's join:lobby arrived before his handler put him in the topic.
    assert [(r["user"], r["data"]) for r in records] == [
        ("ann", "ann inside"), ("bob", "bob inside")]


async def test_a_broadcast_from_the_console_is_visible_in_a_tap_on_a_recipient():
    """An operator's send reaches the tap of its recipient as an outgoing message."""
    async with tapping() as server, control(server) as ctl, public(server, "/?user=ann") as ann:
        await wait_for(lambda: len(server.hub.registry) == 1)
        started = await ctl.ok("tap_start", selector={"user": "ann"})
        async with control(server) as other:
            await other.ok("send", selector={"everyone": True}, text="maintenance at noon")
        assert await ann.recv() == "maintenance at noon"
        records = await tap_records(ctl, started["tap"], 1)
    assert (records[0]["kind"], records[0]["data"]) == ("out", "maintenance at noon")


async def test_control_characters_travel_as_data_and_binary_garbage_as_hex():
    """An escape sequence is data in the record (the console escapes it when it
    shows it); binary garbage is hex, never raw bytes."""
    async with tapping() as server, control(server) as ctl, public(server, "/?user=ann") as ann:
        await wait_for(lambda: len(server.hub.registry) == 1)
        started = await ctl.ok("tap_start", selector={"user": "ann"}, direction="in")
        await ann.send("\x1b]0;pwned\x07\u202e")
        await ann.recv()
        await ann.send(bytes(range(256)))
        await ann.recv()
        records = await tap_records(ctl, started["tap"], 2)
    assert records[0]["data"] == "\x1b]0;pwned\x07\u202e"
    assert records[1]["data"] == bytes(range(256)).hex() and not records[1]["truncated"]


# Bounds


async def test_a_flooding_client_is_dropped_by_the_tap_not_by_the_server():
    """At rate 10, a client sending 300 messages as fast as it can gets every
    echo; the tap shows about its rate and counts the rest as dropped."""
    async with tapping() as server, control(server) as ctl, public(server, "/?user=ann") as ann:
        await wait_for(lambda: len(server.hub.registry) == 1)
        started = await ctl.ok("tap_start", selector={"user": "ann"}, direction="in", rate=10)
        for index in range(300):
            await ann.send(f"m{index}")
        for _ in range(300):
            await ann.recv()
        tap = server.hub.taps.taps[started["tap"]]
        await wait_for(lambda: tap.shown + tap.dropped == 300)
        assert tap.shown < 50 and tap.dropped > 250
        result = await ctl.ok("tap_stop", tap=started["tap"])
        assert (result["stopped"], result["shown"], result["dropped"]) == (
            True, tap.shown, tap.dropped)
        ended = await tap_ended(ctl, started["tap"])
    assert (ended["reason"], ended["dropped"]) == ("stopped", tap.dropped)


async def test_a_tap_ends_after_its_duration():
    """A tap ends on its own when its duration is over, and says why."""
    async with tapping() as server, control(server) as ctl:
        started = await ctl.ok("tap_start", selector={"everyone": True}, duration=0.2)
        ended = await tap_ended(ctl, started["tap"])
        assert ended["reason"] == "duration"
        assert not server.hub.taps.taps


async def test_a_tap_of_one_connection_says_when_it_closes_and_ends():
    """The tapped connection closes: a closed note with its code, then the tap ends
    (nothing left); a tap of a group keeps running."""
    async with tapping() as server, control(server) as ctl:
        async with public(server, "/?user=ann") as ann:
            await wait_for(lambda: len(server.hub.registry) == 1)
            one = await ctl.ok("tap_start", selector={"ids": [client_id(server, "ann")]})
            group = await ctl.ok("tap_start", selector={"user": "ann"})
            await ann.close(4001, "bye")
        records = await tap_records(ctl, one["tap"], 1)
        assert (records[0]["kind"], records[0]["code"], records[0]["reason"]) == (
            "closed", 4001, "bye")
        assert (await tap_ended(ctl, one["tap"]))["reason"] == "no_connections"
        assert group["tap"] in server.hub.taps.taps


async def test_a_tap_ends_when_its_control_connection_goes_away_and_unhooks():
    """The operator disconnects: the tap ends, the connection is unhooked (its
    class's methods again), and the audit log says so."""
    async with tapping() as server, public(server, "/?user=ann") as ann:
        await wait_for(lambda: len(server.hub.registry) == 1)
        connection = next(iter(server.hub.registry)).handle
        classes = type(connection), type(connection.protocol)
        async with control(server) as ctl:
            await ctl.ok("tap_start", selector={"everyone": True})
            assert type(connection) is not classes[0] and isinstance(connection, classes[0])
            assert type(connection.protocol) is not classes[1]
        await wait_for(lambda: not server.hub.taps.taps)
        assert (type(connection), type(connection.protocol)) == classes
        # Nothing was added to the objects: their classes' attribute tables are as they were.
        assert "process_event" not in vars(connection)
        assert "send_frame" not in vars(connection.protocol)
        await ann.send("still served")
        assert await ann.recv() == "still served"


async def test_every_start_and_end_is_audited_and_published(tmp_path):
    """The start is an accepted tap_start line; the end a tap_end line with who,
    the selector, the limits and what was shown and dropped; both reach other
    operators as operator_action, and stats shows the running tap to everyone."""
    audit = tmp_path / "audit.log"
    async with tapping(audit_log=str(audit)) as server, \
            control(server, READ_ONLY_TOKEN) as watcher, public(server, "/?user=ann") as ann:
        await watcher.ok("subscribe", stats_interval=60)
        async with control(server) as ctl:
            started = await ctl.ok("tap_start", selector={"user": "ann"}, rate=5, duration=60)
            stats = await watcher.ok("stats")
            assert [t["tap"] for t in stats["taps"]] == [started["tap"]]
            assert stats["taps"][0]["role"] == "operator"
            await ann.send("x")
            await ann.recv()
            await tap_records(ctl, started["tap"], 2)
            await ctl.ok("tap_stop", tap=started["tap"])
        start = await watcher.event(lambda e: e.kind == EventKind.OPERATOR_ACTION
                                    and e.data["op"] == "tap_start")
        end = await watcher.event(lambda e: e.kind == EventKind.OPERATOR_ACTION
                                  and e.data["op"] == "tap_end")
    assert start.data["result"]["tap"] == started["tap"]
    assert end.data["result"]["reason"] == "stopped" and end.data["result"]["shown"] == 2
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(line["op"], line["decision"]) for line in lines] == [
        ("tap_start", "accepted"), ("tap_end", "ended")]
    assert lines[0]["args"]["selector"] == {"user": "ann"} and lines[0]["args"]["rate"] == 5
    assert lines[1]["args"]["tap"] == started["tap"] and lines[1]["args"]["rate"] == 5
    assert (lines[1]["result"]["shown"], lines[1]["result"]["dropped"]) == (2, 0)
    assert "x" not in json.dumps(lines[1]["result"])


# The application's filter


def mask_password(connection: Any, message: str | bytes) -> str | bytes | None:
    if isinstance(message, bytes):
        return None
    if message == "raise":
        raise ValueError(f"cannot read {message}")
    data = json.loads(message)
    if "password" in data:
        data["password"] = "***"
    return json.dumps(data)


async def test_tap_filter_masks_what_it_must_and_no_payload_reaches_a_log(caplog):
    """The filter's result is shown; None shows no payload; a filter that raises
    hides the payload and is logged without it."""
    caplog.set_level(logging.DEBUG, logger="wsconsole")
    async with tapping(tap_filter=mask_password) as server, control(server) as ctl, \
            public(server, "/?user=ann") as ann:
        await wait_for(lambda: len(server.hub.registry) == 1)
        started = await ctl.ok("tap_start", selector={"user": "ann"}, direction="in")
        await ann.send(json.dumps({"user": "ann", "password": "hunter2"}))
        await ann.send(b"\x01secret")
        await ann.send("raise")
        for _ in range(3):
            await ann.recv()
        records = await tap_records(ctl, started["tap"], 3)
    assert json.loads(records[0]["data"]) == {"user": "ann", "password": "***"}
    assert records[0]["size"] == len(json.dumps({"user": "ann", "password": "hunter2"}))
    assert (records[1]["data"], records[1]["filtered"]) == (None, True)
    assert (records[2]["data"], records[2]["filtered"]) == (None, True)
    assert "tap_filter raised ValueError" in caplog.text
    for secret in ("hunter2", "secret", "cannot read"):
        assert secret not in caplog.text


def test_tap_records_and_ends_are_event_kinds_of_the_wire():
    """tap and tap_ended are event kinds; tap_start is refused to the read-only role."""
    assert {EventKind.TAP, EventKind.TAP_ENDED} <= set(EventKind)
    assert "tap_start" in wire.MUTATING_OPERATIONS and "tap_stop" not in wire.MUTATING_OPERATIONS


async def test_the_readmes_field_masking_filter_masks_nested_secrets():
    """docs/examples/tap_filter.py, as the README shows it, masks secret fields
    at any depth, leaves other JSON readable and hides binary payloads."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "tap_filter.py"
    if not path.exists():
        pytest.skip("not running from a source checkout")
    spec = importlib.util.spec_from_file_location("tap_filter_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    async with tapping(tap_filter=module.mask_secrets) as server, control(server) as ctl, \
            public(server, "/?user=ann") as ann:
        await wait_for(lambda: len(server.hub.registry) == 1)
        started = await ctl.ok("tap_start", selector={"user": "ann"}, direction="in",
                               max_bytes=1000)
        await ann.send(json.dumps({"user": "ann", "card": {"card_number": "4111"},
                                   "items": [{"token": "t0k"}]}))
        await ann.send("plain text")
        await ann.send(b"\x00")
        for _ in range(3):
            await ann.recv()
        records = await tap_records(ctl, started["tap"], 3)
    assert json.loads(records[0]["data"]) == {"user": "ann", "card": {"card_number": "***"},
                                              "items": [{"token": "***"}]}
    assert records[1]["data"] == "plain text"
    assert records[2]["data"] is None and records[2]["filtered"]


async def test_a_tap_may_name_its_node():
    """tap_start with this node's name taps; another name is unknown_node (the
    cluster's node argument, on one process)."""
    async with tapping() as server, control(server) as ctl:
        assert await ctl.error("tap_start", selector={"everyone": True},
                               node="elsewhere") == "unknown_node"
        started = await ctl.ok("tap_start", selector={"everyone": True}, node=server.hub.node)
        assert started["node"] == server.hub.node


async def test_the_control_planes_debug_log_shows_frame_sizes_not_tap_records(caplog):
    """At DEBUG, websockets logs the first bytes of every frame; the control
    listener's frames (tap records among them) are logged by opcode and size."""
    caplog.set_level(logging.DEBUG, logger="wsconsole.control.websockets")
    async with tapping() as server, control(server) as ctl, public(server, "/?user=ann") as ann:
        await wait_for(lambda: len(server.hub.registry) == 1)
        started = await ctl.ok("tap_start", selector={"user": "ann"}, direction="in")
        await ann.send("card 4111-1111-1111-1111")
        await ann.recv()
        await tap_records(ctl, started["tap"], 1)
    assert "> TEXT [" in caplog.text and "< TEXT [" in caplog.text
    assert "> TEXT '" not in caplog.text and "4111" not in caplog.text


def test_a_clusters_stats_list_every_nodes_taps():
    """In cluster mode, stats (what every console's status bar reads) lists the
    taps of every node, not only of the node a console is attached to."""
    from wsconsole.server.cluster.fleet import _summed_stats

    per_node = {"a": {"node": "a", "connections": 1, "taps": []},
                "b": {"node": "b", "connections": 2, "taps": [{"tap": "t1", "node": "b"}]}}
    summed = _summed_stats(per_node, "a")
    assert summed["taps"] == [{"tap": "t1", "node": "b"}] and summed["connections"] == 3
