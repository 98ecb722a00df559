"""Connect/disconnect churn against a real server, then a check that nothing
of the closed connections is left behind.

Run it from the repository root (a server in this process on loopback, port 0)::

    .venv/bin/python tests/stress/churn.py                     # 2,000 cycles
    .venv/bin/python tests/stress/churn.py --count 16400 --concurrency 50

Each cycle connects as one of 50 users on one of 5 paths, joins a topic, sends
a message and reads its echo, then leaves in one of four ways: a clean close,
a close while the server is still sending to it, a TCP abort without a close
frame, or a close that the server starts (``hub.disconnect``). Afterwards it
waits for the registry to empty and checks that the registry (records, user,
path and topic counts), the hub (its tasks, its opened and closed counts) and
``/metrics`` (open connections, per path) hold nothing of them, and that no
connection or record object survives a garbage collection. It prints the
cycles per second, the process's RSS before and after, and each check; it
exits 1 if one fails.

Must never reach beyond loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wsconsole.server import Selector, serve
from wsconsole.server.metrics import Metrics
from wsconsole.server.registry import ConnectionRecord

__all__ = ["main"]

USERS = 50
PATHS = 5
WAYS = ("close", "close-while-sent-to", "abort", "server-disconnect")


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


HUB: list[Any] = []
"""The hub of the server that :func:`run` started (the handler's way to it)."""


async def handler(connection: ServerConnection) -> None:
    hub = HUB[0]
    hub.subscribe(connection, f"topic-{connection.request.path}")
    try:
        async for message in connection:
            await connection.send(message)
            if message == "flood":
                # Fewer than the client's max_queue (16): past it the client
                # stops reading and its close waits 10 s for our close frame.
                for _ in range(10):
                    await connection.send("x" * 4096)
    except ConnectionClosed:
        pass


async def cycle(server: Any, i: int) -> None:
    port = server.sockets[0].getsockname()[1]
    way = WAYS[i % len(WAYS)]
    # A server-side disconnect selects its one connection by a user of its own.
    user = f"d{i}" if way == "server-disconnect" else f"u{i % USERS}"
    url = f"ws://127.0.0.1:{port}/p{i % PATHS}?user={user}"
    client = await connect(url, compression=None, open_timeout=30)
    try:
        await client.send("flood" if way == "close-while-sent-to" else f"hello {i}")
        await client.recv()
        if way in ("close", "close-while-sent-to"):
            await client.close()
        elif way == "abort":
            client.transport.abort()
        else:
            assert server.hub.disconnect(Selector(user=user)) == 1
            await client.wait_closed()
    finally:
        client.transport.abort()


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render(None)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


async def run(count: int, concurrency: int) -> int:
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        hub = server.hub
        HUB[:] = [hub]
        metrics = Metrics(hub)
        rss_before = rss_mb()
        started = time.perf_counter()
        failures = 0
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            nonlocal failures
            async with semaphore:
                try:
                    await cycle(server, i)
                except Exception as exc:  # counted and printed, never fatal
                    failures += 1
                    if failures <= 5:
                        print(f"cycle {i} failed: {exc!r}")

        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - started
        async with asyncio.timeout(30):
            while len(hub.registry):
                await asyncio.sleep(0.01)
            while hub._tasks:  # the close tasks that hub.disconnect spawned
                await asyncio.sleep(0.01)
        hub.sampler.sample()
        gc.collect()
        samples = scrape(metrics)
        open_gauge = sum(v for (name, _), v in samples.items()
                         if name == "wsconsole_connections_open")
        checks = {
            "registry empty": len(hub.registry) == 0 and not list(hub.registry.records()),
            "no user counts": hub.registry.user_counts() == {},
            "no path counts": hub.registry.path_counts() == {},
            "no topic counts": hub.registry.topic_counts() == {},
            "no hub tasks": not hub._tasks,
            f"opened_total == {count}": hub.opened_total == count,
            f"closed_total == {count}": sum(hub.closed_by_code.values()) == count,
            "metrics: 0 open": open_gauge == 0,
            "no ConnectionRecord alive": not any(isinstance(o, ConnectionRecord)
                                                 for o in gc.get_objects()),
            "no ServerConnection alive": not any(isinstance(o, ServerConnection)
                                                 for o in gc.get_objects()),
        }
        print(f"{count} cycles, concurrency {concurrency}: {elapsed:.1f} s, "
              f"{count / elapsed:.0f} cycles/s, {failures} failed")
        print(f"RSS {rss_before:.1f} MB before, {rss_mb():.1f} MB after")
        print("closed by code: " + ", ".join(f"{code}: {n}" for code, n in
                                             sorted(hub.closed_by_code.items())))
        for name, ok in checks.items():
            print(f"  {'ok  ' if ok else 'FAIL'} {name}")
        return 0 if all(checks.values()) and not failures else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="cycles (default: 2000)")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="cycles in flight at once (default: 20)")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.count, args.concurrency)))


if __name__ == "__main__":
    main()
