"""When Redis or a node goes away: partial answers within the deadline, never
a stop of service; and the cluster's security: forged, replayed, stale,
foreign or oversized messages are dropped and counted, never acted on."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from wsconsole.server.cluster.envelope import Message, MessageKind, seal
from wsconsole.server.cluster.redis_server import PrivateRedis

from tests.cluster.cluster_helpers import GONE, SECRET, Node, operator, user
from tests.helpers import TIMEOUT, wait_for

EVERYONE = {"everyone": True}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Redis and nodes p and q; tests start and stop more nodes beside them."""
    folder = tmp_path_factory.mktemp("failures")
    redis = PrivateRedis(folder / "redis").start()
    # Started together (the cost of one start): k is killed, z shut down alone,
    # w1 and w2 form another cluster on the same Redis.
    # p takes a node for gone after 3 s of silence (each node judges by its own
    # settings), so that a stopped q stays expected by p; q sees k go quickly.
    # q allows the tap: k taps it, then is killed.
    options = {"p": ("--suspect-after", "1", "--gone-after", "3"), "q": ("--allow-tap",)}
    nodes = [Node(name, redis.url, folder, *options.get(name, ()))
             for name in ("p", "q", "k", "z")]
    nodes += [Node(name, redis.url, folder / "other", "--cluster", "other")
              for name in ("w1", "w2")]
    state: dict = {"redis": redis, "folder": folder}
    try:
        for node in nodes:
            state[node.name] = node.ready()
        yield state
    finally:
        for node in nodes:
            node.stop()
        state["redis"].stop()


async def health_of(ctl, name: str) -> str | None:
    for entry in (await ctl.ok("nodes"))["nodes"]:
        if entry["node"] == name:
            return entry["health"]
    return None


async def wait_health(ctl, name: str, health: str | None, timeout: float = TIMEOUT * 2):
    async def reached() -> bool:
        return await health_of(ctl, name) == health

    await wait_for(reached, timeout, interval=0.05)


async def test_a_full_answer_does_not_wait_for_the_deadline(cluster):
    """With every node answering, a request with a 10 s timeout returns at once."""
    async with operator(cluster["p"]) as ctl:
        await wait_health(ctl, "q", "live")
        started = time.monotonic()
        page = await ctl.ok("list", timeout=10)
        assert time.monotonic() - started < 2 and "missing" not in page


async def test_connections_redis_closes_are_replaced_by_the_next_messages(cluster):
    """Redis closes every connection but the subscriptions (CLIENT KILL TYPE
    normal, as an operator or a proxy's idle timeout would): each node's
    messages go out on a new connection from the next one, and the cluster
    answers in full again without a node taking Redis for down."""
    async with operator(cluster["p"]) as ctl:
        await wait_health(ctl, "q", "live")
        assert "missing" not in await ctl.ok("stats")
        client = aioredis.Redis.from_url(cluster["redis"].url)
        try:
            killed = await client.client_kill_filter(_type="normal", skipme=True)
        finally:
            await client.aclose()
        assert killed >= 4  # a connection that publishes on each of p, q, k, z at least

        async def full() -> bool:
            return "missing" not in await ctl.ok("stats", timeout=0.5)

        await wait_for(full, TIMEOUT)
        for name in ("p", "q"):
            assert await health_of(ctl, name) == "live"


async def test_a_stopped_node_is_named_missing_within_the_deadline(cluster):
    """A node under SIGSTOP does not answer: the reply comes at the request's
    deadline, not later, with this node's part and the other named missing."""
    p, q = cluster["p"], cluster["q"]
    async with operator(p) as ctl, user(p, "pat"):
        await wait_health(ctl, "q", "live")
        q.pause()
        try:
            started = time.monotonic()
            page = await ctl.ok("list", timeout=1)
            elapsed = time.monotonic() - started
            assert 0.9 <= elapsed < 1.9, elapsed
            assert page["missing"] == {"q": "no reply before the deadline"}
            assert [row["user"] for row in page["connections"]] == ["pat"]
            sent = await ctl.ok("send", selector=EVERYONE, text="x", timeout=0.5)
            assert sent["per_node"]["p"]["delivered"] == 1 and "q" in sent["missing"]
        finally:
            q.resume()
        await wait_health(ctl, "q", "live")


async def test_a_killed_node_is_gone_after_the_heartbeat_timeout(cluster):
    """SIGKILL: no goodbye; the node turns suspect, then gone once its heartbeats
    stop for the gone interval, and requests stop waiting for it; q's part of a
    tap that k started ends with k's heartbeat."""
    node = cluster["k"]
    async with operator(cluster["q"]) as ctl, operator(cluster["q"]) as watcher, \
            operator(node) as on_k:
        await wait_health(ctl, "k", "live")
        await watcher.ok("subscribe", stats_interval=60)
        await on_k.ok("tap_start", selector=EVERYONE, node="q")
        taps = (await ctl.ok("stats", node="q"))["taps"]
        assert [(tap["node"], tap["requested_on"]) for tap in taps] == [("q", "k")]
        node.kill()
        killed = time.monotonic()
        await wait_health(ctl, "k", "gone", timeout=GONE + TIMEOUT)
        assert time.monotonic() - killed >= GONE * 0.8
        # Subscribers heard it turn suspect, then go: node events, with the nodes entry.
        suspect = await watcher.event(lambda e: e.kind == "node" and e.data["node"] == "k")
        gone = await watcher.event(lambda e: e.kind == "node" and e.data["node"] == "k")
        assert (suspect.data["health"], gone.data["health"]) == ("suspect", "gone")
        assert gone.data["control_url"] == node.control_url
        assert (await ctl.ok("stats", node="q"))["taps"] == []
        started = time.monotonic()
        page = await ctl.ok("list", timeout=5)
        assert time.monotonic() - started < 2
        assert page.get("missing", {}).get("k") in (None, "gone (no heartbeat)")


async def test_a_node_is_shut_down_alone_and_says_goodbye(cluster):
    """shutdown with node=NAME stops that node only; it leaves the view at once."""
    node = cluster["z"]
    async with operator(cluster["p"]) as ctl:
        await wait_health(ctl, "z", "live")
        result = await ctl.ok("shutdown", mode="graceful", node="z")
        assert list(result["per_node"]) == ["z"] and "missing" not in result
        assert await asyncio.to_thread(node.process.wait, TIMEOUT * 2) == 0
        said = time.monotonic()
        await wait_health(ctl, "z", "gone")
        assert time.monotonic() - said < 1  # its goodbye, not 3 s of silence (p's gone)
        # p's own state (all nodes would wait for k, killed above, at p's deadline).
        assert (await ctl.ok("stats", node="p"))["state"] == "serving"


async def test_a_whole_cluster_shuts_down_and_two_clusters_share_one_redis(cluster):
    """Two clusters on one Redis never see each other; shutdown without node
    stops every node of the one the operator is attached to, that one included."""
    w1, w2 = cluster["w1"], cluster["w2"]
    async with operator(w1) as ctl:
        await wait_health(ctl, "w2", "live")
        assert await health_of(ctl, "p") is None
        result = await ctl.ok("shutdown", mode="graceful")
        assert set(result["per_node"]) == {"w1", "w2"} and "missing" not in result
    for node in (w1, w2):
        assert await asyncio.to_thread(node.process.wait, TIMEOUT * 2) == 0
    async with operator(cluster["p"]) as ctl:
        assert await health_of(ctl, "w1") is None
        assert (await ctl.ok("stats", node="p"))["state"] == "serving"


def test_a_second_live_node_with_the_same_name_is_refused(cluster):
    """A node that takes the name of a live node refuses to start, saying why."""
    node = Node("p", cluster["redis"].url, cluster["folder"] / "dup")
    try:
        assert node.process.wait(TIMEOUT * 2) != 0
        assert "a live node named 'p' is already in cluster" in node.stderr()
    finally:
        node.stop()


def signed(kind: MessageKind, *, secret: str = SECRET, cluster: str = "wsconsole",
           ts: float | None = None, nonce: str = "", **fields) -> bytes:
    message = Message(kind=kind, cluster=cluster, src="intruder",
                      ts=time.time() if ts is None else ts, nonce=nonce, **fields)
    return seal(message, secret.encode())


async def test_forged_replayed_and_malformed_messages_are_dropped_and_counted(cluster):
    """Only messages signed with the cluster secret, fresh and seen once, are
    acted on; the rest are dropped and counted by reason, and the node keeps
    working. A signed request with the read-only role is refused by the node
    itself."""
    p = cluster["p"]
    client = aioredis.Redis.from_url(cluster["redis"].url)
    replies = client.pubsub()
    await replies.subscribe("wsconsole:wsconsole:node:intruder")
    send = dict(op="send", id="r1", role="operator",
                body={"args": {"selector": EVERYONE, "text": "forged"}})
    try:
        async with operator(p) as ctl, user(p, "victim") as victim:
            await wait_for(lambda: _has(ctl, "victim"), TIMEOUT)
            channel = "wsconsole:wsconsole:all"
            for payload in [
                b"not ours at all",
                b"wsc1." + b"0" * 64 + b".{}",
                signed(MessageKind.REQUEST, secret="another-secret-0123456789", **send),
                signed(MessageKind.REQUEST, ts=time.time() - 120, **send),
                signed(MessageKind.REQUEST, cluster="other", **send),
                b"wsc1." + b"x" * (9 << 20),
            ]:
                await client.publish(channel, payload)
            once = signed(MessageKind.REQUEST, nonce="only-once", **{
                **send, "body": {"args": {"selector": {"user": "victim"}, "text": "once"}}})
            await client.publish(channel, once)
            await client.publish(channel, once)  # replayed
            assert await asyncio.wait_for(victim.recv(), TIMEOUT) == "once"
            read_only = signed(MessageKind.REQUEST, **{**send, "id": "r2", "role": "read_only"})
            await client.publish("wsconsole:wsconsole:node:p", read_only)
            # Every node acted on the request to all (and answered); p delivered.
            bodies = await _replies(replies, {("p", "r1"), ("p", "r2")})
            assert bodies["p", "r1"]["ok"] is True
            assert bodies["p", "r1"]["result"]["delivered"] == 1
            assert bodies["p", "r2"]["error"]["code"] == "forbidden"

            async def counted() -> bool:
                entry = next(e for e in (await ctl.ok("nodes"))["nodes"] if e["node"] == "p")
                return entry["dropped"] == {"foreign": 1, "bad_signature": 2, "stale": 1,
                                            "other_cluster": 1, "oversized": 1, "replayed": 1}

            await wait_for(counted, TIMEOUT, interval=0.05)
            assert (await ctl.ok("stats", node="p"))["state"] == "serving"
            await victim.send("still served")
            assert await asyncio.wait_for(victim.recv(), TIMEOUT) == "still served"
    finally:
        await replies.aclose()
        await client.aclose()


async def _has(ctl, name: str) -> bool:
    return (await ctl.ok("list", user=name, groups=False))["total"] == 1


async def _replies(pubsub, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """The bodies of the replies on the intruder's channel, by (node, request id)."""
    from wsconsole.server.cluster.envelope import unseal

    found: dict[tuple[str, str], dict] = {}
    async with asyncio.timeout(TIMEOUT):
        while not wanted <= set(found):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            reply = unseal(message["data"], SECRET.encode(), cluster="wsconsole",
                           now=time.time(), max_skew=30, max_bytes=1 << 20)
            found[reply.src, reply.id] = reply.body
    return found


async def test_without_redis_each_node_serves_and_answers_for_its_own(cluster):
    """Redis killed: public clients keep being served, the control plane answers
    with this node's part and names the others missing (broker unavailable);
    Redis back: the nodes rejoin by themselves and answers are full again.
    (Last in this file: it restarts the Redis of every test above.)"""
    p = cluster["p"]
    async with operator(p) as ctl, user(p, "rita") as rita, user(cluster["q"], "quinn") as quinn:
        await wait_health(ctl, "q", "live")
        await wait_for(lambda: _has(ctl, "quinn"), TIMEOUT)

        # k, killed above, goes for p 3 s after its last heartbeat: once Redis
        # is away nobody goes, and k would stay expected. The nodes expected
        # then (q, and whoever this worker's tests above left running) are
        # the ones named missing.
        stopped = {name for name in ("k", "z") if cluster[name].process.poll() is not None}
        entries: list[dict] = []

        async def stopped_ones_gone() -> bool:
            nonlocal entries
            entries = (await ctl.ok("nodes"))["nodes"]
            return stopped <= {e["node"] for e in entries if e["health"] == "gone"}

        await wait_for(stopped_ones_gone, TIMEOUT, interval=0.05)
        expected = {e["node"]: "broker unavailable" for e in entries
                    if e["health"] != "gone" and e["node"] != "p"}
        assert "q" in expected
        cluster["redis"].kill()
        await rita.send("ping")
        assert await asyncio.wait_for(rita.recv(), TIMEOUT) == "ping"

        async def degraded() -> bool:
            return (await ctl.ok("list")).get("missing") == expected

        await wait_for(degraded, TIMEOUT, interval=0.05)
        started = time.monotonic()
        page = await ctl.ok("list", timeout=5)
        assert time.monotonic() - started < 1  # nothing to wait for: nobody can be asked
        assert [row["user"] for row in page["connections"]] == ["rita"]
        sent = await ctl.ok("send", selector=EVERYONE, text="local")
        assert sent["per_node"] == {"p": {"recipients": 1, "delivered": 1, "skipped": 0}}
        assert sent["missing"] == expected
        assert await asyncio.wait_for(rita.recv(), TIMEOUT) == "local"
        await asyncio.sleep(GONE * 1.1)  # longer than a node takes to go: q stays expected
        assert (await ctl.ok("list")).get("missing") == expected
        cluster["redis"] = PrivateRedis(cluster["folder"] / "redis").start()

        async def recovered() -> bool:
            return "missing" not in await ctl.ok("list") and await health_of(ctl, "q") == "live"

        await wait_for(recovered, TIMEOUT * 2, interval=0.1)
        # What was sent while Redis was down never reaches q later: nothing is queued.
        sent = await ctl.ok("send", selector={"user": "quinn"}, text="after")
        assert sent["delivered"] == 1
        assert await asyncio.wait_for(quinn.recv(), TIMEOUT) == "after"


async def test_a_node_started_without_redis_serves_locally_and_joins_later(tmp_path):
    """Redis unreachable at start: the node starts anyway, says so, serves its
    clients and its own control plane, and joins once Redis is there."""
    late = PrivateRedis(tmp_path / "redis")
    node = Node("early", late.url, tmp_path).ready()
    try:
        assert "unreachable; serving locally" in node.wait_line("^wsconsole: node early")
        async with operator(node) as ctl, user(node, "eve") as eve:
            await eve.send("hi")
            assert await asyncio.wait_for(eve.recv(), TIMEOUT) == "hi"
            page = await ctl.ok("list")
            assert page["total"] == 1 and "missing" not in page
            late.start()
            other = Node("later", late.url, tmp_path).ready()
            try:
                await wait_health(ctl, "later", "live")
            finally:
                other.stop()
    finally:
        node.stop()
        late.stop()
