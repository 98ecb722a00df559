"""What a closed connection leaves frozen with ``--gc-freeze``, until the thaw.

Run it from the repository root (it is not collected by pytest)::

    python tests/benchmarks/bench_gc_leftover.py                # 2,000 connections
    python tests/benchmarks/bench_gc_leftover.py --closes 5000

A server in this process, frozen as ``wsconsole serve`` freezes it
(``apply_gc_policy``, never thawed here), and a client process that opens
``--closes`` connections one after the other, sends one message on each,
and closes it: cleanly (a close frame) four times in five, else by dropping
the TCP connection. Meanwhile the server runs a full collection every 50 ms,
so that every connection is frozen while it is open, as under churn at
10,000 connections. Then it prints, per closed connection: the RSS that
stayed, and the objects that the thaw's collection frees (what stayed frozen
in reference cycles). Loopback only; it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys

__all__ = ["main"]

CLIENT = r"""
import asyncio, random, sys
from websockets.asyncio.client import connect

async def main(port, count):
    rng = random.Random(1)
    for i in range(count):
        client = await connect(f"ws://127.0.0.1:{port}/?user=guest-{i}", ping_interval=None,
                               compression=None)
        await client.send("x")
        await client.recv()
        await asyncio.sleep(0.03)
        if rng.random() < 0.8:
            await client.close()
        else:
            client.transport.abort()
            await asyncio.sleep(0)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _clients(port: int, count: int) -> None:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, str(port),
                                                   str(count))
    async with asyncio.timeout(60 + count / 10):
        await process.wait()


async def run(closes: int) -> dict[str, float]:
    from websockets.exceptions import ConnectionClosed

    from wsconsole.server import serve
    from wsconsole.server.loop_policy import GcPolicy, apply_gc_policy, restore_gc_defaults

    async def echo(connection: object) -> None:
        try:
            async for message in connection:  # type: ignore[attr-defined]
                await connection.send(message)  # type: ignore[attr-defined]
        except ConnectionClosed:
            pass

    logging.disable(logging.CRITICAL)
    server = await serve(echo, "127.0.0.1", 0, ping_interval=None, compression=None)
    apply_gc_policy(GcPolicy(freeze=True, thaw_after_closes=None))
    try:
        await _clients(server.port, 200)  # warm-up: what the first connections allocate once
        gc.collect()
        before = _rss()

        async def collect_often() -> None:
            while True:
                await asyncio.sleep(0.05)
                gc.collect()  # frozen after it: every connection open now

        collector = asyncio.get_running_loop().create_task(collect_often())
        await _clients(server.port, closes)
        collector.cancel()
        await asyncio.sleep(0.5)
        grown = _rss() - before
        gc.unfreeze()
        freed = gc.collect()  # the thaw's collection
    finally:
        restore_gc_defaults()
        server.close()
        await server.wait_closed()
    return {"rss_per_close": grown / closes, "objects_per_close": freed / closes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--closes", type=int, default=2000)
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args.closes))
    print(f"bench_gc_leftover: {args.closes} connections closed while frozen (4 in 5 "
          f"cleanly): {figures['rss_per_close']:,.0f} bytes of RSS and "
          f"{figures['objects_per_close']:.1f} objects in reference cycles left per closed "
          "connection until the thaw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
