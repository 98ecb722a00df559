"""Cluster mode with a real redis-server and three real `wsconsole serve` nodes
(the fleet of tests/cluster/conftest.py, shared with test_operator_side.py): an
operator attached to any node sees and acts on the whole fleet."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

from wsconsole.server.protocol import EventKind

from tests.helpers import TIMEOUT, wait_for
from tests.cluster.cluster_helpers import READ_ONLY_TOKEN, operator, user

EVERYONE = {"everyone": True}


async def all_live(ctl, names=("a", "b", "c")) -> list[dict]:
    """Wait until `nodes` lists every one of ``names`` as live; return the entries."""
    entries: list[dict] = []

    async def check() -> bool:
        nonlocal entries
        entries = (await ctl.ok("nodes"))["nodes"]
        live = {e["node"] for e in entries if e["health"] == "live" and e["control_url"]}
        return live >= set(names)

    await wait_for(check, TIMEOUT * 2, interval=0.05)
    return entries


async def test_every_node_lists_every_node(fleet):
    """From any node, `nodes` lists the three, live, sorted by name, with their
    control URL, version and connections; hello names the cluster."""
    for name, node in fleet.items():
        async with operator(node) as ctl:
            hello = await ctl.ok("hello")
            assert (hello["cluster"], hello["node"]) == ("wsconsole", name)
            entries = await all_live(ctl)
            assert [e["node"] for e in entries] == ["a", "b", "c"]
            for entry in entries:
                assert entry["control_url"] == fleet[entry["node"]].control_url
                assert entry["state"] == "serving" and entry["version"]
                assert entry["last_seen"] > 0 and isinstance(entry["connections"], int)


async def test_list_merges_and_pages_across_nodes(fleet):
    """A page from node b holds connections of every node in one order; paging
    with the cursor visits each connection once, also while others come and go;
    groups are summed and counted by node; `node` narrows to one node."""
    a, b, c = fleet["a"], fleet["b"], fleet["c"]
    async with operator(b) as ctl:
        await all_live(ctl)
        async with user(a, "ann"), user(a, "ann"), user(b, "bob"), user(c, "cy"), \
                user(c, "ann", room="lobby"):
            await wait_for(lambda: _total(ctl, 5), TIMEOUT)
            seen: list[dict] = []
            cursor = None
            async with AsyncExitStack() as later:
                while True:
                    page = await ctl.ok("list", limit=2, cursor=cursor)
                    assert "missing" not in page
                    seen += page["connections"]
                    if cursor is None:
                        # A connection that comes mid-listing, on another node:
                        # the ones that stay are neither skipped nor repeated.
                        await later.enter_async_context(user(c, "dee"))
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                ids = [row["id"] for row in seen]
                assert len(ids) == len(set(ids))
                assert {row["user"] for row in seen} >= {"ann", "bob", "cy"}
                keys = [(row["connected_at"], row["id"]) for row in seen]
                assert keys == sorted(keys)
                assert {row["node"] for row in seen} == {"a", "b", "c"}
                for row in seen:
                    assert row["id"].startswith(row["node"] + "/")
                await wait_for(lambda: _total(ctl, 6), TIMEOUT)
                full = await ctl.ok("list")
                assert full["groups"]["users"] == {"ann": 3, "bob": 1, "cy": 1, "dee": 1}
                assert full["groups"]["nodes"] == {"a": 2, "b": 1, "c": 3}
                assert full["groups"]["topics"] == {"lobby": 1}
                by_user = await ctl.ok("list", sort="-user", groups=False)
                assert [row["user"] for row in by_user["connections"]] == [
                    "dee", "cy", "bob", "ann", "ann", "ann"]
                only_c = await ctl.ok("list", node="c", user="ann")
                assert [row["node"] for row in only_c["connections"]] == ["c"]
                # A pattern, matched on each node against its own names, merged.
                ann_star = await ctl.ok("list", user="a*", groups=False)
                assert ann_star["total"] == 3 and sorted(
                    row["node"] for row in ann_star["connections"]) == ["a", "a", "c"]


async def test_pages_asked_as_objects_or_as_columns_merge_alike(fleet):
    """A node that asks the others for rows as objects (as nodes did before
    rows came as columns) lists the same rows, in the same order, with the
    same fields, as a node that asks for columns; an empty page of a node
    merges too."""
    a, b, c = fleet["a"], fleet["b"], fleet["c"]
    async with operator(a) as as_objects, operator(b) as as_columns, \
            user(a, "ann"), user(b, "bob", room="lobby"), user(c, "cy"), user(c, "cy"):
        await all_live(as_objects)
        await all_live(as_columns)
        async with user(a, "objects") as setter:
            await setter.send("list_rows:objects")
            assert await setter.recv() == "objects"
            try:
                await wait_for(lambda: _total(as_columns, 5), TIMEOUT)
                for args in ({"limit": 3}, {"sort": "-user", "groups": False},
                             {"user": "cy"}, {"user": "bob"}):
                    pages = [await ctl.ok("list", **args) for ctl in (as_objects, as_columns)]
                    for page in pages:
                        assert "missing" not in page
                    shown = [[(row["id"], row["node"], row["user"], row["topics"])
                              for row in page["connections"]] for page in pages]
                    assert shown[0] == shown[1] and shown[0]
                    assert [list(row) for row in pages[0]["connections"]] == [
                        list(row) for row in pages[1]["connections"]]
                    assert pages[0]["next_cursor"] == pages[1]["next_cursor"]
                    assert pages[0]["total"] == pages[1]["total"]
                    assert pages[0].get("groups") == pages[1].get("groups")
            finally:
                await setter.send("list_rows:columns")
                assert await setter.recv() == "columns"


async def test_groups_follow_every_node_and_skip_when_nothing_changed(fleet):
    """A node keeps the others' groups until they change: the summed groups
    follow a connection that opens or closes on any node, and a console that
    sends back the page's groups_version gets the page alone while no node's
    groups changed (as from a single node)."""
    a, b, c = fleet["a"], fleet["b"], fleet["c"]
    async with operator(a) as ctl, user(b, "bob", room="lobby"):
        await all_live(ctl)
        await wait_for(lambda: _total(ctl, 1), TIMEOUT)
        first = await ctl.ok("list")
        assert first["groups"]["users"] == {"bob": 1}
        version = first["groups_version"]
        assert isinstance(version, int)
        same = await ctl.ok("list", groups_since=version)
        assert "groups" not in same and same["groups_version"] == version
        assert [row["user"] for row in same["connections"]] == ["bob"]
        async with user(c, "cy"):
            await wait_for(lambda: _total(ctl, 2), TIMEOUT)
            changed = await ctl.ok("list", groups_since=version)
            assert changed["groups_version"] != version
            assert changed["groups"]["users"] == {"bob": 1, "cy": 1}
            assert changed["groups"]["topics"] == {"lobby": 1}
            assert changed["groups"]["nodes"] == {"a": 0, "b": 1, "c": 1}
        await wait_for(lambda: _total(ctl, 1), TIMEOUT)
        after = await ctl.ok("list", groups_since=changed["groups_version"])
        assert after["groups"]["users"] == {"bob": 1}
        assert after["groups"]["nodes"] == {"a": 0, "b": 1, "c": 0}


async def test_a_repeated_page_shows_at_once_what_moved_on_any_node(fleet):
    """Asked again, the same page (answered from the pages the nodes keep and
    the requester holds while nothing changed) shows at once a message counted
    on another node's connection, a connection that opened there and one that
    closed, in the order a page made anew has; its cursor pages on."""
    a, b, c = fleet["a"], fleet["b"], fleet["c"]
    async with operator(a) as ctl, user(b, "bob") as bob, user(c, "cy"):
        await all_live(ctl)
        await wait_for(lambda: _total(ctl, 2), TIMEOUT)
        for _ in range(2):
            first = await ctl.ok("list", sort="-msgs_in", groups=False)
        counted = {row["user"]: row["msgs_in"] for row in first["connections"]}
        await bob.send("hi")
        assert await bob.recv() == "hi"
        moved = await ctl.ok("list", sort="-msgs_in", groups=False)
        assert {row["user"]: row["msgs_in"] for row in moved["connections"]} == {
            **counted, "bob": counted["bob"] + 1}
        async with user(c, "dee"):
            await wait_for(lambda: _total(ctl, 3), TIMEOUT)
            opened = await ctl.ok("list", limit=2)
            shown = [row["user"] for row in opened["connections"]]
            rest = await ctl.ok("list", limit=2, cursor=opened["next_cursor"])
            # The order is the nodes' own connected_at stamps, taken as each
            # node registers its connection: on a busy machine a node can be
            # preempted between its 101 and its stamp, so the clients' order
            # need not be it. A page of them all, asked once, tells it.
            whole = await ctl.ok("list", limit=10, groups=False)
            order = [row["user"] for row in whole["connections"]]
            assert sorted(order) == ["bob", "cy", "dee"]
            assert shown + [row["user"] for row in rest["connections"]] == order
        await wait_for(lambda: _total(ctl, 2), TIMEOUT)
        closed = await ctl.ok("list", limit=2)
        assert [row["user"] for row in closed["connections"]] == [
            name for name in order if name != "dee"]
        assert closed["next_cursor"] is None and "missing" not in closed


async def _total(ctl, n: int) -> bool:
    return (await ctl.ok("list", groups=False))["total"] == n


async def test_get_goes_to_the_node_that_owns_the_connection(fleet):
    """An id names its node: `get` from a returns c's connection in full, also
    for a unique prefix (`c/1f0c`, or `1f0c` with node c); an id that is not
    open is unknown_connection, wherever it points."""
    async with operator(fleet["a"]) as ctl, user(fleet["c"], "gus"):
        await all_live(ctl)
        await wait_for(lambda: _has_user(ctl, "gus"), TIMEOUT)
        (row,) = (await ctl.ok("list", user="gus"))["connections"]
        detail = await ctl.ok("get", id=row["id"])
        assert detail["node"] == "c" and detail["user"] == "gus"
        assert any(name.lower() == "host" for name, _ in detail["request_headers"])
        assert (await ctl.ok("get", id=row["id"], node="c"))["id"] == row["id"]
        # A prefix with the node part goes to that node, which resolves it; the
        # hex part alone needs the node given.
        assert (await ctl.ok("get", id=row["id"][:5]))["id"] == row["id"]
        assert (await ctl.ok("get", id=row["id"][2:7], node="c"))["id"] == row["id"]
        for missing in ("c/0000000000", "nowhere/0000000000", "0000000000"):
            assert await ctl.error("get", id=missing) == "unknown_connection"
        assert await ctl.error("get", id=row["id"], node="zz") == "unknown_node"


async def _has_user(ctl, name: str) -> bool:
    return (await ctl.ok("list", user=name, groups=False))["total"] == 1


async def test_send_dry_run_and_disconnect_act_on_every_node(fleet):
    """send reaches the selected connections of every node, with per-node
    counts; a dry run sends nothing; an id goes to its node only; disconnect
    closes on the node that holds the connection, with the operator's code."""
    a, b, c = fleet["a"], fleet["b"], fleet["c"]
    async with operator(a) as ctl:
        await all_live(ctl)
        async with user(a, "hal", room="ops") as on_a, user(b, "ivy", room="ops") as on_b, \
                user(c, "jo") as on_c:
            await wait_for(lambda: _topic_size(ctl, "ops", 2), TIMEOUT)
            dry = await ctl.ok("send", selector={"topic": "ops"}, text="x", dry_run=True)
            assert dry["recipients"] == 2 and dry["delivered"] == 0 and len(dry["sample"]) == 2
            assert dry["per_node"] == {"a": {"recipients": 1, "delivered": 0, "skipped": 0},
                                       "b": {"recipients": 1, "delivered": 0, "skipped": 0},
                                       "c": {"recipients": 0, "delivered": 0, "skipped": 0}}
            # A pattern selects on every node: ivy and hal, not jo.
            both = await ctl.ok("send", selector={"user": "???", "topic": "o*"}, text="x",
                                dry_run=True)
            assert both["recipients"] == 2 and both["per_node"]["c"]["recipients"] == 0
            sent = await ctl.ok("send", selector={"topic": "ops"}, text="deploy at noon")
            assert (sent["recipients"], sent["delivered"]) == (2, 2) and "missing" not in sent
            assert await on_a.recv() == "deploy at noon"
            assert await on_b.recv() == "deploy at noon"
            (jo,) = (await ctl.ok("list", user="jo"))["connections"]
            one = await ctl.ok("send", selector={"ids": [jo["id"]]}, binary="aGk=")
            assert one["per_node"] == {"c": {"recipients": 1, "delivered": 1, "skipped": 0}}
            assert await on_c.recv() == b"hi"
            kicked = await ctl.ok("disconnect", selector={"user": "ivy"}, code=4001,
                                  reason="bye")
            assert kicked["count"] == 1 and kicked["per_node"]["b"] == {"count": 1}
            await asyncio.wait_for(on_b.wait_closed(), TIMEOUT)
            assert (on_b.close_code, on_b.close_reason) == (4001, "bye")
    # Each node's audit log records what it did for an operator attached to a.
    (line,) = [entry for entry in b.audit() if entry["op"] == "disconnect"
               and entry["args"]["selector"] == {"user": "ivy"}]
    assert (line["node"], line["requested_on"], line["client"]) == ("b", "a", "node a")
    assert (line["role"], line["decision"]) == ("operator", "accepted")
    assert any(e["op"] == "disconnect" and e["args"]["selector"] == {"user": "ivy"}
               and "requested_on" not in e for e in a.audit())


async def _topic_size(ctl, topic: str, n: int) -> bool:
    return (await ctl.ok("list", topic=topic, groups=False))["total"] == n


async def test_stats_are_cluster_totals_with_each_node_beside(fleet):
    """stats sums the nodes' counts and keeps each node's own stats in per_node."""
    async with operator(fleet["c"]) as ctl, user(fleet["a"], "kim"), user(fleet["b"], "lou"):
        await all_live(ctl)
        await wait_for(lambda: _stats_connections(ctl, 2), TIMEOUT)
        stats = await ctl.ok("stats")
        assert stats["node"] == "c" and set(stats["per_node"]) == {"a", "b", "c"}
        assert stats["connections"] == sum(s["connections"] for s in stats["per_node"].values())
        assert stats["opened_total"] == sum(s["opened_total"] for s in stats["per_node"].values())
        assert (await ctl.ok("stats", node="a"))["per_node"].keys() == {"a"}


async def _stats_connections(ctl, n: int) -> bool:
    return (await ctl.ok("stats"))["connections"] == n


async def test_events_of_every_node_reach_a_subscriber(fleet):
    """A subscriber on a sees connections open and close on c, tagged with c,
    and operator actions taken on b."""
    async with operator(fleet["a"]) as watcher, operator(fleet["b"]) as actor:
        await all_live(watcher)
        await watcher.ok("subscribe", stats_interval=60)

        async def seen_on_c() -> bool:
            # Forwarding starts once c has heard that a has a subscriber.
            async with user(fleet["c"], "max"):
                try:
                    event = await watcher.event(
                        lambda e: e.kind == EventKind.CONNECTION_OPENED
                        and e.data["user"] == "max", timeout=0.5)
                except TimeoutError:
                    return False
            assert event.data["node"] == "c"
            return True

        await wait_for(seen_on_c, TIMEOUT * 2, interval=0.05)
        closed = await watcher.event(lambda e: e.kind == EventKind.CONNECTION_CLOSED
                                     and e.data["user"] == "max")
        assert closed.data["node"] == "c"
        await actor.ok("send", selector={"user": "nobody"}, text="x")
        action = await watcher.event(lambda e: e.kind == EventKind.OPERATOR_ACTION)
        assert action.data["node"] == "b" and action.data["op"] == "send"
        assert set(action.data["result"]["per_node"]) == {"a", "b", "c"}


async def test_a_subscriber_in_cluster_mode_gets_its_nodes_backlog(fleet):
    """In cluster mode, subscribe's backlog brings the events of before on the node attached to."""
    async with user(fleet["a"], "zed") as ws:
        await ws.close(4004, "bye")

    async def in_backlog() -> bool:
        async with operator(fleet["a"]) as ctl:
            result = await ctl.ok("subscribe", stats_interval=60, backlog=1000)
            past = [await ctl.event(lambda e: e.backlog) for _ in range(result["backlog"])]
        return any(e.kind == EventKind.CONNECTION_CLOSED and e.data["user"] == "zed"
                   and e.data["code"] == 4004 and e.data["node"] == "a" for e in past)

    # The close is recorded once the server has seen the TCP connection go.
    await wait_for(in_backlog, TIMEOUT, interval=0.05)


async def test_a_read_only_token_cannot_act_on_any_node(fleet):
    """The read-only role reads the whole fleet, and is refused send, disconnect
    and shutdown on every node, whichever it targets."""
    for node in fleet.values():
        async with operator(node, READ_ONLY_TOKEN) as ctl:
            assert (await ctl.ok("hello"))["role"] == "read_only"
            await all_live(ctl)
            for target in (None, "a", "b", "c"):
                extra = {} if target is None else {"node": target}
                assert await ctl.error("send", selector=EVERYONE, text="x", **extra) == "forbidden"
                assert await ctl.error("disconnect", selector=EVERYONE, **extra) == "forbidden"
                assert await ctl.error("shutdown", mode="graceful", **extra) == "forbidden"
    async with operator(fleet["a"]) as ctl:
        assert {e["state"] for e in await all_live(ctl)} == {"serving"}


async def test_an_application_reaches_a_user_on_another_node(fleet):
    """hub.send_everywhere on node a delivers to the user's connection on c and
    returns the summed counts, per node."""
    async with operator(fleet["a"]) as ctl, user(fleet["c"], "nia") as nia, \
            user(fleet["a"], "app") as app:
        await all_live(ctl)
        await wait_for(lambda: _has_user(ctl, "nia"), TIMEOUT)
        await app.send("tell:nia:hello from a")
        assert await asyncio.wait_for(nia.recv(), TIMEOUT) == "hello from a"
        counts = json.loads(await asyncio.wait_for(app.recv(), TIMEOUT))
        assert (counts["recipients"], counts["delivered"], counts["missing"]) == (1, 1, {})
        assert counts["per_node"]["c"]["delivered"] == 1 and counts["per_node"]["a"] == {
            "recipients": 0, "delivered": 0, "skipped": 0}


async def test_an_unknown_node_is_refused_with_the_names_of_the_nodes(fleet):
    """`node` naming no node of the cluster is unknown_node, and the message
    lists the nodes."""
    async with operator(fleet["b"]) as ctl:
        await all_live(ctl)
        reply = await ctl.reply("list", node="zz")
        assert reply.error_code == "unknown_node"
        assert "a, b, c" in reply.error_message


async def test_a_tap_started_on_one_node_covers_the_others(fleet):
    """An operator on a taps user kim: what kim sends to node b and what b
    answers arrive on a, naming b; c (no --allow-tap) is named tap_disabled and
    the others tap all the same; b audits its part with the node that asked;
    stopping the tap on a ends b's part; a read-only token may not tap."""
    a, b = fleet["a"], fleet["b"]
    async with operator(a, READ_ONLY_TOKEN) as viewer:
        assert await viewer.error("tap_start", selector={"user": "kim"}) == "forbidden"
    async with operator(a) as ctl, operator(b) as on_b:
        await all_live(ctl)
        started = await ctl.ok("tap_start", selector={"user": "kim"}, max_bytes=4)
        assert set(started["missing"]) == {"c"}
        assert started["missing"]["c"].startswith("tap_disabled")
        # c alone: its refusal is the answer.
        assert await ctl.error("tap_start", selector={"user": "kim"}, node="c") == "tap_disabled"
        assert len(await _taps_on(on_b, "b")) == 1
        async with user(b, "kim") as kim:
            await kim.send("hello from b")
            assert await kim.recv() == "hello from b"
            records: list[dict] = []

            async def both_directions() -> bool:
                event = await ctl.event(lambda e: e.kind == EventKind.TAP)
                records.extend(event.data["records"])
                return {r["kind"] for r in records} >= {"in", "out"}

            await wait_for(both_directions, TIMEOUT)
        shown = [r for r in records if r["kind"] in ("in", "out")]
        assert [(r["kind"], r["node"], r["size"], r["data"], r["truncated"]) for r in shown] == [
            ("in", "b", 12, "hell", True), ("out", "b", 12, "hell", True)]
        assert all(r["id"].startswith("b/") and r["user"] == "kim" for r in shown)
        stopped = await ctl.ok("tap_stop", tap=started["tap"])
        assert stopped["stopped"] is True

        async def b_part_ended() -> bool:
            return not await _taps_on(on_b, "b")

        await wait_for(b_part_ended, TIMEOUT, interval=0.05)
    lines: list[dict] = []

    def part_audited() -> bool:
        lines[:] = [line for line in b.audit() if line["op"] in ("tap_start", "tap_end")]
        return bool(lines) and lines[-1]["op"] == "tap_end"

    await wait_for(part_audited, TIMEOUT, interval=0.02)
    start, end = lines[-2], lines[-1]
    assert (start["op"], start["decision"], start["requested_on"]) == ("tap_start", "accepted", "a")
    assert start["role"] == "operator" and start["client"].endswith("via node a")
    assert start["args"]["selector"] == {"user": "kim"} and start["args"]["max_bytes"] == 4
    assert (end["op"], end["result"]["reason"], end["requested_on"]) == ("tap_end", "stopped", "a")


async def _taps_on(ctl, node: str) -> list[dict]:
    return (await ctl.ok("stats", node=node))["taps"]
