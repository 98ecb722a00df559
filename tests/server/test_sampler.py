"""The sampler on a real server: live orders follow traffic, a pass is cut in steps."""

from __future__ import annotations

import asyncio

from wsconsole.server import serve
from wsconsole.server.config import ControlConfig
from wsconsole.server.indexes import SEGMENT_SIZE
from wsconsole.server.registry import ConnectionRecord

from tests.helpers import TIMEOUT, wait_for
from tests.server.control_helpers import TOKEN, app, control, public

INTERVAL = 0.05
"""A short sample interval, so that the tests wait for samples, not seconds."""


def running(**options):
    return serve(app, "127.0.0.1", 0, sample_interval=INTERVAL,
                 control=ControlConfig(port=0, token=TOKEN), **options)


async def test_a_listing_sorted_by_traffic_follows_the_sampler():
    """After a client talks, `list` sorted by messages or last activity puts it
    first once sampled, and pages through everyone with the cursor."""
    async with running() as server:
        async with public(server, "/?user=quiet1"), public(server, "/?user=quiet2"), \
                public(server, "/?user=talker") as talker, control(server) as operator:
            await wait_for(lambda: len(server.hub.registry) == 3)
            for n in range(3):
                await talker.send(f"hello {n}")
                await talker.recv()

            async def talker_first(sort: str) -> bool:
                page = await operator.ok("list", sort=sort, groups=False)
                return page["connections"][0]["user"] == "talker"

            await wait_for(lambda: talker_first("-msgs_in"))
            await wait_for(lambda: talker_first("-last_activity"))
            seen, cursor = [], None
            while True:
                page = await operator.ok("list", sort="-msgs_in", limit=1, cursor=cursor,
                                         groups=False)
                seen += [row["user"] for row in page["connections"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen[0] == "talker" and sorted(seen) == ["quiet1", "quiet2", "talker"]


async def test_group_counts_come_with_every_page():
    """`list` answers the largest groups of each kind from counts kept as
    connections come, subscribe and go, and says when it cut them."""
    async with running() as server:
        async with public(server, "/chat?user=ann"), public(server, "/chat?user=ann"), \
                public(server, "/feed?user=bob") as bob, control(server) as operator:
            await bob.send("join:lobby")
            assert await bob.recv() == "joined"
            await wait_for(lambda: len(server.hub.registry) == 3)
            page = await operator.ok("list", limit=1, group_limit=1)
            assert page["groups"] == {"users": {"ann": 2}, "paths": {"/chat": 2},
                                      "topics": {"lobby": 1}, "nodes": {server.hub.node: 3}}
            assert page["groups_truncated"] is True
            page = await operator.ok("list", limit=1)
            assert page["groups"]["users"] == {"ann": 2, "bob": 1}
            assert page["groups_truncated"] is False
        await wait_for(lambda: len(server.hub.registry) == 0)
        async with control(server) as operator:
            page = await operator.ok("list")
            assert page["groups"] == {"users": {}, "paths": {}, "topics": {},
                                      "nodes": {server.hub.node: 0}}


async def test_a_pass_is_cut_in_steps_of_one_segment_with_the_loop_free_between():
    """With 1,500 connections a pass is three steps of at most 512 records, spread
    over the interval; the totals it keeps count every one of them."""
    async with running() as server:
        hub = server.hub
        registry = hub.registry
        # Records without a connection (a simulation): 1,500 sockets would
        # measure the machine's file limit, not the sampler.
        records = []
        for i in range(1500):
            record = ConnectionRecord(registry.new_id(), node=hub.node, user=f"u{i}", path="/")
            registry.add(record)
            records.append(record)
        assert registry.segment_count == 3
        steps: list[tuple[float, int]] = []
        real_step = registry.sample_step

        def recorded_step(now, probe=None):
            visited = real_step(now, probe)
            steps.append((asyncio.get_running_loop().time(), visited))
            return visited

        registry.sample_step = recorded_step
        for record in records:
            record.msgs_in += 2
        await wait_for(lambda: hub.sampler.totals.msgs_in == 3000, timeout=TIMEOUT)
        await wait_for(lambda: len(steps) >= 6)
        assert all(visited <= SEGMENT_SIZE for _, visited in steps)
        assert sum(visited for _, visited in steps[:3]) == 1500
        # asyncio.sleep never returns early: the steps are at least
        # interval / 3 apart, so the loop ran other work in between.
        gaps = [later - earlier for (earlier, _), (later, _) in zip(steps, steps[1:])]
        assert min(gaps) >= INTERVAL / 3 * 0.9
        for record in records:
            registry.remove(record.id)
