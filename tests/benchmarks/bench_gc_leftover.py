"""What a closed connection leaves frozen with ``--gc-freeze``, until the thaw.

Run it from the repository root (it is not collected by pytest)::

    python tests/benchmarks/bench_gc_leftover.py                # 2,000 connections each way
    python tests/benchmarks/bench_gc_leftover.py --closes 5000 --loop uvloop
    python tests/benchmarks/bench_gc_leftover.py --kinds clean drop

A server in this process, frozen as ``wsconsole serve`` freezes it
(``apply_gc_policy``, never thawed here), and a client process that opens
``--closes`` connections one after the other for each way a connection
ends (``--kinds``): closed cleanly (a close frame) after one message echoed,
dropped (no close frame) after one message, a bad HTTP request (426), bytes
that are not HTTP, and no request before ``open_timeout`` (20 at a time).
Meanwhile the server runs a full collection every 50 ms, so that every
connection is frozen while it is open, as under churn at 10,000 connections. Then it prints, per closed connection: the RSS that
stayed, and the objects that the thaw's collection frees (what stayed frozen
in reference cycles: the tracked objects and memory blocks gone after it, not
``gc.collect()``'s count, which left out the protocol and its parser, a cycle
that a generator's finalizer breaks). Loopback only; it stops by itself.
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
import asyncio, sys
from websockets.asyncio.client import connect

async def one(port, kind, i):
    if kind in ("clean", "drop"):
        client = await connect(f"ws://127.0.0.1:{port}/?user=guest-{i}", ping_interval=None,
                               compression=None)
        await client.send("x")
        await client.recv()
        await asyncio.sleep(0.03)
        if kind == "clean":
            await client.close()
        else:  # no close frame: the TCP connection is dropped
            client.transport.abort()
            await asyncio.sleep(0)
        return
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if kind == "bad":  # an HTTP request that is no WebSocket handshake: 426
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    elif kind == "garbage":  # no HTTP at all
        writer.write(b"\x16\x03\x01 not http\r\n\r\n")
    # "timeout": nothing sent; the server gives up after open_timeout
    await reader.read()
    writer.close()

async def main(port, kind, count, parallel):
    async def worker(start):
        for i in range(start, count, parallel):
            await one(port, kind, i)
    await asyncio.gather(*(worker(start) for start in range(parallel)))

asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""

KINDS = ("clean", "drop", "bad", "garbage", "timeout")
"""How a connection ends: a close frame; dropped without one; a bad HTTP
request; bytes that are not HTTP; no request before ``open_timeout``."""

OPEN_TIMEOUT = 0.2


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _clients(port: int, kind: str, count: int) -> None:
    parallel = 20 if kind == "timeout" else 1
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, str(port),
                                                   kind, str(count), str(parallel))
    async with asyncio.timeout(60 + count / 10):
        await process.wait()


async def run(closes: int, kinds: tuple[str, ...] = KINDS) -> dict[str, dict[str, float]]:
    """For each way of ending, what a connection closed while frozen leaves."""
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
    server = await serve(echo, "127.0.0.1", 0, ping_interval=None, compression=None,
                         open_timeout=OPEN_TIMEOUT)
    apply_gc_policy(GcPolicy(freeze=True, thaw_after_closes=None))
    figures: dict[str, dict[str, float]] = {}
    try:
        for kind in kinds:
            await _clients(server.port, kind, 50)  # warm-up: what the first ones allocate once
            gc.collect()
            before = _rss()

            async def collect_often() -> None:
                while True:
                    await asyncio.sleep(0.05)
                    gc.collect()  # frozen after it: every connection open now

            collector = asyncio.get_running_loop().create_task(collect_often())
            await _clients(server.port, kind, closes)
            collector.cancel()
            await asyncio.sleep(0.5)
            grown = _rss() - before
            gc.unfreeze()
            # What the thaw's collection frees, counted as what is gone:
            # gc.collect()'s own count leaves out the cycles a generator's
            # finalizer breaks (websockets' protocol and its parser made one).
            tracked, blocks = len(gc.get_objects()), sys.getallocatedblocks()
            gc.collect()  # the thaw's collection (the freezer's callback freezes after it)
            blocks -= sys.getallocatedblocks()
            gc.unfreeze()
            tracked -= len(gc.get_objects())
            gc.freeze()
            figures[kind] = {"rss_per_close": grown / closes, "objects_per_close": tracked / closes,
                             "blocks_per_close": blocks / closes}
    finally:
        restore_gc_defaults()
        server.close()
        await server.wait_closed()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--closes", type=int, default=2000,
                        help="connections per way of ending (default 2000)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args(argv)
    from wsconsole.server.loop_policy import resolve_loop, run_on_loop

    kind = resolve_loop(args.loop)
    figures = run_on_loop(run(args.closes, tuple(args.kinds)), kind)
    print(f"bench_gc_leftover on {kind.describe()}: {args.closes} connections closed "
          "while frozen, each way; left per closed connection until the thaw:")
    for name, figure in figures.items():
        print(f"  {name:8} {figure['objects_per_close']:6.1f} objects in reference cycles "
              f"({figure['blocks_per_close']:6.1f} memory blocks), "
              f"{figure['rss_per_close']:8,.0f} bytes of RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
