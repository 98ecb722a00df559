"""Where a cluster ``list`` page spends its time, process by process.

Starts a private Redis, nodes c0, c1 and c2 (``cluster_trace_app``: the
benchmark's application with the cluster methods stamped) with
``--records`` synthetic records in all, and one node alone with as many;
sets every cluster node to ``--mode`` (``now``, ``anew`` or ``before``: see
``bench_cluster.py --part list``), then asks ``--pages`` pages of 100 by
``-msgs_in`` of c0, each paired with one of the single node. Printed: the
median (and p99) time of every stamp from the operator's send, for each
stamp seen in most pages, in order: which process did what, when. The
operator's own times are the last line (one node's beside them).

    .venv/bin/python tests/benchmarks/bench_trace_cluster.py --mode anew

Every process it starts is stopped before it exits; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_cluster  # noqa: E402  (beside this script)
from websockets.asyncio.client import connect  # noqa: E402

ARGS = {"limit": 100, "sort": "-msgs_in", "groups": False}


async def run(args: argparse.Namespace, folder: Path) -> None:
    stamps = folder / "stamps"
    stamps.mkdir()
    os.environ["WSCONSOLE_TRACE_DIR"] = str(stamps)
    bench_cluster.APP = "tests.benchmarks.cluster_trace_app:handler"
    per_node = args.records // 3
    marks: list[tuple[float, float]] = []
    cluster_times: list[float] = []
    local_times: list[float] = []
    async with AsyncExitStack() as stack:
        redis = bench_cluster.PrivateRedis(folder / "redis").start()
        stack.callback(redis.stop)
        nodes = await bench_cluster.start_nodes(stack, ["c0", "c1", "c2"], folder, redis.url)
        (solo,) = await bench_cluster.start_nodes(stack, ["solo"], folder, None)
        cluster = await stack.enter_async_context(bench_cluster.operator(nodes[0]))
        local = await stack.enter_async_context(bench_cluster.operator(solo))
        await bench_cluster.wait_live(cluster, 3)
        for index, node in enumerate(nodes):
            await node.fill(per_node, seed=index)
        await solo.fill(3 * per_node, seed=99)
        await bench_cluster._wait_total(cluster, 3 * per_node)
        await bench_cluster._wait_total(local, 3 * per_node)
        for node in nodes:
            async with connect(f"{node.public_url}/bench?user=bench") as ws:
                await ws.send(f"cluster_mode:{args.mode}")
                await ws.recv()
        for _ in range(20):  # warm-up
            await bench_cluster._list(cluster, ARGS)
            await bench_cluster._list(local, ARGS)
        pids = {node.name: node.process.pid for node in nodes}
        for _ in range(args.pages):
            started = time.monotonic()
            await bench_cluster._list(cluster, ARGS)
            ended = time.monotonic()
            marks.append((started, ended))
            cluster_times.append(ended - started)
            started = time.monotonic()
            await bench_cluster._list(local, ARGS)
            local_times.append(time.monotonic() - started)
    # The nodes have exited: their stamps are written.
    events = {name: json.loads((stamps / f"{pid}.json").read_text())
              for name, pid in pids.items()}
    moments = {name: [moment for moment, _ in stamped] for name, stamped in events.items()}
    seen: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for started, ended in marks:
        for name, stamped in events.items():
            first = bisect.bisect_left(moments[name], started)
            last = bisect.bisect_right(moments[name], ended)
            count: collections.Counter[str] = collections.Counter()
            for moment, label in stamped[first:last]:
                count[label] += 1
                seen[(name, f"{label}#{count[label]}")].append((moment - started) * 1000)
    p = bench_cluster.percentile
    print(f"bench_trace_cluster.py --mode {args.mode}: {args.pages} pages of 100 by -msgs_in, "
          f"3 x {per_node:,} against {3 * per_node:,} [{bench_cluster.load()}]")
    print("  ms from the operator's send: median (p99), process, stamp")
    rows = sorted((statistics.median(values), p(values, 0.99), name, label)
                  for (name, label), values in seen.items() if len(values) > 0.8 * args.pages)
    for median, p99, name, label in rows:
        print(f"  {median:7.3f} ({p99:6.3f})  {name:<4} {label}")
    print(f"  the operator has the page: {p(cluster_times, 0.5) * 1000:.3f} "
          f"({p(cluster_times, 0.99) * 1000:.3f}); one node's: "
          f"{p(local_times, 0.5) * 1000:.3f} ({p(local_times, 0.99) * 1000:.3f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["now", "anew", "before"], default="anew")
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--records", type=int, default=30_000)
    parsed = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wsconsole-trace-"))
    try:
        asyncio.run(run(parsed, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
