"""Cluster mode under churn and failures: real redis-server, real nodes, real clients.

Run it::

    .venv/bin/python tests/stress/cluster_churn.py                     # 3 nodes, about 40 s
    .venv/bin/python tests/stress/cluster_churn.py --nodes 4 --clients 400 --seconds 20

What it does, printing its figures:

1. ``--clients`` stay connected, spread over the nodes, while churners keep
   connecting and leaving on every node; an operator attached to the first
   node pages through the cluster's ``list`` (``--page`` rows a page) over and
   over. Each listing must show every connection that stayed open during it
   exactly once, in (connected_at, id) order. Figures: listings, pages, page
   latency p50/p99, violations (must be 0).
2. One node is stopped (SIGSTOP) for a few seconds: each ``list`` with a 1 s
   timeout must come back within 1.5 s, naming that node missing. Figures:
   the slowest reply (must be under 1.5 s).
3. Redis is killed for a few seconds, then started again: every client keeps
   being echoed meanwhile, replies name every other node ``broker
   unavailable``, and the full view comes back. Figures: echo failures (must
   be 0), seconds until the view was full again.

Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wsconsole.server.cluster.redis_server import PrivateRedis  # noqa: E402

from tests.cluster.cluster_helpers import Node, operator, start_nodes, user  # noqa: E402


async def churn(nodes: list[Node], stop: asyncio.Event) -> int:
    """Connect and leave on random nodes until ``stop``; return how many came and went."""
    count = 0
    while not stop.is_set():
        async with user(random.choice(nodes), f"churn{count % 50}"):
            await asyncio.sleep(random.uniform(0, 0.05))
        count += 1
    return count


async def listings(nodes: list[Node], page: int, seconds: float
                   ) -> tuple[int, list[float], int]:
    """Page through the cluster's list for ``seconds``; check each listing."""
    violations = rounds = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    async with operator(nodes[0]) as ctl:
        while time.monotonic() < deadline:
            before = {row["id"] for row in await _all(ctl, page, latencies)}
            rows = await _all(ctl, page, latencies)
            after = {row["id"] for row in await _all(ctl, page, latencies)}
            stayed = before & after
            ids = [row["id"] for row in rows]
            keys = [(row["connected_at"], row["id"]) for row in rows]
            if len(ids) != len(set(ids)) or not stayed <= set(ids) or keys != sorted(keys):
                violations += 1
            rounds += 1
    return rounds, latencies, violations


async def _all(ctl, page: int, latencies: list[float]) -> list[dict]:
    rows: list[dict] = []
    cursor = None
    while True:
        started = time.perf_counter()
        result = await ctl.ok("list", limit=page, cursor=cursor, groups=False)
        latencies.append(time.perf_counter() - started)
        rows += result["connections"]
        cursor = result["next_cursor"]
        if cursor is None:
            return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> int:
    failed = False
    folder = Path(tempfile.mkdtemp(prefix="wsconsole-cluster-"))
    redis = PrivateRedis(folder / "redis").start()
    names = [f"n{i}" for i in range(args.nodes)]
    nodes = start_nodes(names, redis.url, folder)
    try:
        async with operator(nodes[0]) as ctl:
            while len([e for e in (await ctl.ok("nodes"))["nodes"]
                       if e["health"] == "live"]) < args.nodes:
                await asyncio.sleep(0.1)
        clients = [user(nodes[i % len(nodes)], f"u{i}") for i in range(args.clients)]
        opened = [await client.__aenter__() for client in clients]
        print(f"{args.nodes} nodes, {len(opened)} clients staying, churn on every node")

        # 1. Paging while connections come and go.
        stop = asyncio.Event()
        churners = [asyncio.create_task(churn(nodes, stop)) for _ in range(4)]
        rounds, latencies, violations = await listings(nodes, args.page, args.seconds)
        stop.set()
        came = sum(await asyncio.gather(*churners))
        print(f"paging: {rounds} listings, {len(latencies)} pages of {args.page}, "
              f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms; {came} churned connections; "
              f"violations {violations}")
        failed |= violations > 0

        # 2. A node under SIGSTOP.
        paused = nodes[-1]
        paused.pause()
        slowest = 0.0
        named = 0
        async with operator(nodes[0]) as ctl:
            for _ in range(4):
                started = time.monotonic()
                result = await ctl.ok("list", timeout=1, groups=False)
                slowest = max(slowest, time.monotonic() - started)
                # Missing while it is suspect; once gone (no heartbeat for the
                # gone interval) it is no longer waited for, and listed gone.
                health = {e["node"]: e["health"] for e in (await ctl.ok("nodes"))["nodes"]}
                named += paused.name in result.get("missing", {}) or health[paused.name] == "gone"
        paused.resume()
        print(f"SIGSTOP {paused.name}: slowest reply {slowest:.2f} s with a 1 s timeout, "
              f"named missing (or gone) in {named}/4")
        failed |= slowest >= 1.5 or named < 4

        # 3. Redis killed, then back.
        redis.kill()
        echo_failures = 0
        degraded = 0
        async with operator(nodes[0]) as ctl:
            down_until = time.monotonic() + args.outage
            while time.monotonic() < down_until:
                for client in random.sample(opened, min(20, len(opened))):
                    await client.send("ping")
                    try:
                        if await asyncio.wait_for(client.recv(), 2) != "ping":
                            echo_failures += 1
                    except TimeoutError:
                        echo_failures += 1
                result = await ctl.ok("list", groups=False)
                missing = result.get("missing", {})
                degraded += bool(missing) and set(missing.values()) == {"broker unavailable"}
                await asyncio.sleep(0.2)
            redis = PrivateRedis(folder / "redis").start()
            back = time.monotonic()
            while True:
                result = await ctl.ok("list", groups=False)
                if "missing" not in result and result["total"] == len(opened):
                    break
                if time.monotonic() - back > 30:
                    failed = True
                    break
                await asyncio.sleep(0.1)
            recovery = time.monotonic() - back
        print(f"Redis down {args.outage:g} s: echo failures {echo_failures}, replies naming "
              f"every other node missing: {degraded}; full view again {recovery:.1f} s after "
              "Redis came back")
        failed |= echo_failures > 0 or degraded == 0
        for client in clients:
            await client.__aexit__(None, None, None)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
    print("FAILED" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--page", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--outage", type=float, default=4.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
