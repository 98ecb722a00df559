"""The control plane's shared limits: per token, in total, open connections, and
turns with the public server. Real servers on port 0, real clients."""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.exceptions import InvalidStatus

from wsconsole.server import wire
from wsconsole.server.control.fairness import FairTurns
from wsconsole.server.errors import RateLimited

from tests.helpers import TIMEOUT, wait_for
from tests.server.control_helpers import READ_ONLY_TOKEN, TOKEN, control, public, running

# Only the limit under test: the others off, so that a refusal can only be its.
ONLY = dict(connection_rate=None, token_rate=None, total_rate=None, loop_share=None)


async def pipeline(ctl, count: int, op: str = "stats") -> list[wire.Reply]:
    """Send ``count`` requests at once, then read every reply."""
    first = ctl._next_id + 1
    for offset in range(count):
        await ctl.ws.send(wire.encode_request(first + offset, op, {}))
    ctl._next_id += count
    return [await ctl.reply_to(first + offset) for offset in range(count)]


async def test_a_token_over_its_rate_is_refused_while_another_token_is_served():
    """Two read-only connections share their token's budget: past it they get
    rate_limited (saying it is the token's), and the operator token is still served."""
    async with running(**{**ONLY, "token_rate": 1.0, "token_burst": 10.0}) as server:
        async with control(server, READ_ONLY_TOKEN) as first, \
                control(server, READ_ONLY_TOKEN) as second, control(server, TOKEN) as operator:
            replies = await pipeline(first, 8) + await pipeline(second, 8)
            refused = [reply for reply in replies if not reply.ok]
            # Within one second, the token's 10 plus at most one refilled.
            assert 5 <= len(refused) <= 6
            assert {reply.error_code for reply in refused} == {RateLimited.code}
            assert "read_only token" in refused[0].error_message
            assert "not run" in refused[0].error_message
            assert all(reply.ok for reply in await pipeline(operator, 10))
            assert server.hub.control_requests[("stats", RateLimited.code)] == len(refused)


async def test_the_total_rate_refuses_every_token_past_it():
    """Past the whole control plane's budget both tokens are refused, and the
    message says it is the total; later requests succeed again."""
    async with running(**{**ONLY, "total_rate": 2.0, "total_burst": 6.0}) as server:
        async with control(server, READ_ONLY_TOKEN) as reader, control(server, TOKEN) as operator:
            replies = await pipeline(reader, 5) + await pipeline(operator, 5)
            refused = [reply for reply in replies if not reply.ok]
            assert 3 <= len(refused) <= 4
            assert not replies[-1].ok
            assert "whole control plane" in replies[-1].error_message

            async def recovers() -> bool:
                return (await operator.reply("stats")).ok

            await wait_for(recovers, interval=0.1)


async def test_a_refused_request_takes_nothing_from_the_other_budgets():
    """A request refused by its token's budget does not spend the total: a flood
    on one token leaves the total for the other."""
    async with running(**{**ONLY, "token_rate": 0.1, "token_burst": 2.0,
                          "total_rate": 0.1, "total_burst": 6.0}) as server:
        async with control(server, READ_ONLY_TOKEN) as reader, control(server, TOKEN) as operator:
            assert sum(reply.ok for reply in await pipeline(reader, 20)) == 2
            assert sum(reply.ok for reply in await pipeline(operator, 4)) == 2
            # The total had 6: 2 spent by each token, 2 left.
            assert server.control.budgets.total.tokens == pytest.approx(2.0, abs=0.1)


async def test_past_max_connections_a_control_handshake_gets_503():
    """With max_connections open, one more is refused with HTTP 503, Retry-After
    and a sentence saying why; once one closes, a new one is accepted."""
    async with running(**{**ONLY, "max_connections": 2}) as server:
        async with control(server) as first:
            async with control(server, READ_ONLY_TOKEN):
                with pytest.raises(InvalidStatus) as refused:
                    async with control(server):
                        pass
                response = refused.value.response
                assert response.status_code == 503
                assert response.headers["Retry-After"] == "1"
                assert b"too many control connections (2 open" in response.body
                assert server.hub.control_connections_refused == 1
            # The slot is freed when the TCP connection is gone.
            await wait_for(lambda: len(server.control.connections) == 1)
            async with control(server) as third:
                assert (await third.reply("hello")).ok
            assert (await first.reply("hello")).ok


async def test_the_console_says_why_the_control_plane_refused_it():
    """An operator command past max_connections fails with the server's own
    sentence, not a bare HTTP status."""
    from wsconsole.console.client import ControlClient
    from wsconsole.server.errors import ControlUnavailable

    async with running(**{**ONLY, "max_connections": 1}) as server, control(server):
        with pytest.raises(ControlUnavailable) as refused:
            await ControlClient(server.control.url, TOKEN).connect()
        assert "(HTTP 503): too many control connections (1 open" in str(refused.value)


async def test_a_bad_token_is_told_401_not_that_the_plane_is_full():
    """The connection cap is checked after the token: a client without a valid
    token learns nothing about how many operators are connected."""
    async with running(**{**ONLY, "max_connections": 1}) as server:
        async with control(server):
            with pytest.raises(InvalidStatus) as refused:
                async with control(server, "not-the-token-0123456789"):
                    pass
            assert refused.value.response.status_code == 401


async def test_a_pipelining_operator_lets_public_clients_through():
    """Control requests take turns with the public server: while an operator's
    300 pipelined requests are answered, a public client's echo comes back
    long before the last of them (not after them, as when one connection's
    queued requests ran back to back)."""
    async with running(**ONLY) as server, control(server) as ctl, public(server) as client:
        count = 300
        for request_id in range(count):
            await ctl.ws.send(wire.encode_request(request_id, "stats", {}))

        def answered() -> int:
            return server.hub.control_requests[("stats", "ok")]

        await wait_for(lambda: answered() >= 1)
        await client.send("ping")
        async with asyncio.timeout(TIMEOUT):
            assert await client.recv() == "ping"
        assert answered() < count
        for request_id in range(count):
            assert (await ctl.reply_to(request_id)).ok


async def test_past_its_share_of_the_loop_the_next_request_waits():
    """FairTurns charges each request's time: once the burst is spent, the next
    turn comes only when the share has paid it back."""
    turns = FairTurns(share=0.5, burst=0.01)
    await turns.take()
    turns.spent(0.06)  # 0.05 s over budget: 0.1 s at half the loop's time
    started = time.perf_counter()
    await turns.take()
    assert time.perf_counter() - started >= 0.09


async def test_turns_go_round_in_arrival_order_one_per_loop_iteration():
    """Waiting requests get their turns in arrival order, one per iteration."""
    turns = FairTurns(share=None)
    order: list[tuple[str, int]] = []
    iteration = 0

    async def tick() -> None:
        nonlocal iteration
        while True:
            iteration += 1
            await asyncio.sleep(0)

    async def requester(name: str) -> None:
        for _ in range(3):
            await turns.take()
            order.append((name, iteration))

    ticker = asyncio.create_task(tick())
    try:
        await asyncio.gather(requester("a"), requester("b"), requester("c"))
    finally:
        ticker.cancel()
    assert [name for name, _ in order] == ["a", "b", "c"] * 3
    iterations = [at for _, at in order]
    assert len(set(iterations)) == len(iterations)  # never two in one iteration
