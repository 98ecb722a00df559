"""What the live message tap costs the echo path: nothing with no tap, and how much with one.

Run it from the repository root (it is not collected by pytest)::

    python tests/benchmarks/bench_tap.py            # about a minute
    python tests/benchmarks/bench_tap.py --quick    # smoke run, seconds

The servers run in this process, the lean clients of ``bench_server.py`` in a
second one. Rounds alternate between four servers, the same echo handler and
settings (compression off, the stricter case), and the median is reported:

* ``bare``: websockets' own ``serve``;
* ``taps off``: ``wsconsole.server.serve(allow_tap=True)`` with no tap running
  (what every server pays for being able to tap: the budget is issue 2's,
  within 5% of bare);
* ``one tap``: the same, with a tap on one of the echo connections (both
  directions, 256 bytes shown, its default rates);
* ``tap on everyone``: a tap on every echo connection at its default rate
  limit (50 messages a second): almost every message is counted and dropped.

A consumer drains each tap every 100 ms and encodes its records as the control
plane does, in this process. ``TAP_BENCH_VARIANTS="bare,taps off"`` runs only
some of the four (comma-separated names). The script exits 0 (unless it breaks); a ratio
off the budget is printed with OVER BUDGET.

Must never reach beyond loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server  # noqa: E402  (beside this script)
import websockets  # noqa: E402
from websockets.asyncio.server import serve as websockets_serve  # noqa: E402

from wsconsole.server import Selector, serve  # noqa: E402
from wsconsole.server import wire  # noqa: E402
from wsconsole.server.tap import TapEnd, TapLimits  # noqa: E402

THROUGHPUT_BUDGET = bench_server.THROUGHPUT_BUDGET


async def _drain(tap: Any) -> None:
    """What the control plane's pump does to a tap, minus the socket."""
    while tap.ended is None:
        await asyncio.sleep(0.1)
        records = tap.take()
        if records:
            wire.encode_event("tap", {"tap": tap.id, "records": records,
                                      "shown": tap.shown, "dropped": tap.dropped}, time.time())


async def main_async(config: bench_server.BenchConfig) -> list[str]:
    settings = dict(bench_server.SERVER_SETTINGS)
    bare = await websockets_serve(bench_server.echo, bench_server.HOST, 0, **settings)
    ours = await serve(bench_server.echo, bench_server.HOST, 0, allow_tap=True, **settings)
    variants = os.environ.get("TAP_BENCH_VARIANTS", "bare,taps off,one tap,tap on everyone").split(",")
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    rate: dict[str, list[float]] = {name: [] for name in variants}
    shown_dropped: dict[str, list[tuple[int, int]]] = {name: [] for name in variants}
    client = bench_server.ClientHandle()
    total = config.clients * config.messages
    try:
        await client.call("arm", 0)
        for server_count, port in ((lambda: len(bare.connections), bare.sockets[0].getsockname()[1]),
                                   (lambda: len(ours.hub.registry), ours.port)):
            await client.call("open", port, 1, "prime")
            await bench_server._wait_for(lambda: server_count() == 1, "priming")
            await client.call("close", "prime")
            await bench_server._wait_for(lambda: server_count() == 0, "priming to leave")
        for round_index in range(config.rounds):
            order = variants if round_index % 2 == 0 else variants[::-1]
            for name in order:
                is_bare = name == "bare"
                port = bare.sockets[0].getsockname()[1] if is_bare else ours.port
                count = (lambda: len(bare.connections)) if is_bare else (
                    lambda: len(ours.hub.registry))
                await client.call("open", port, config.clients, "echo")
                await bench_server._wait_for(lambda: count() >= config.clients, "echo clients")
                tap = drain = None
                if name in ("one tap", "tap on everyone"):
                    selector = (Selector(ids=(next(iter(ours.hub.registry)).id,))
                                if name == "one tap" else Selector(everyone=True))
                    tap = ours.hub.taps.start(selector, TapLimits(), owner={"role": "bench"})
                    drain = asyncio.get_running_loop().create_task(_drain(tap))
                gc.collect()
                started = time.process_time()
                elapsed = await client.call("echo", "echo", config.messages, config.window,
                                            config.size)
                spent = time.process_time() - started
                if tap is not None:
                    ours.hub.taps.stop(tap, TapEnd.STOPPED)
                    await drain
                    shown_dropped[name].append((tap.shown, tap.dropped))
                await client.call("close", "echo")
                await bench_server._wait_for(lambda: count() == 0, "echo clients to leave")
                rate[name].append(total / elapsed)
                cpu[name].append(spent / total)
    finally:
        client.stop()
        bare.close()
        ours.close()
        await bare.wait_closed()
        await ours.wait_closed()

    median = bench_server._median
    lines = [
        "wsconsole tap benchmark: the echo path with taps off, one tap, a tap on everyone",
        f"python {platform.python_version()}, websockets {websockets.__version__}, "
        f"{os.cpu_count()} cores; settings {settings}; loopback",
        f"echo: {config.clients} clients x {config.messages} messages of {config.size} B, "
        f"window {config.window}, {config.rounds} alternating rounds (median)",
        "",
        f"{'server':<18}{'msgs/s':>10}{'vs bare':>9}{'CPU us/msg':>12}{'vs bare':>9}"
        f"{'extra us/msg':>14}",
    ]
    bare_rate, bare_cpu = median(rate["bare"]), median(cpu["bare"])
    off_cpu = median(cpu["taps off"])
    for name in variants:
        r, c = median(rate[name]), median(cpu[name])
        verdict = ""
        if name == "taps off":
            verdict = "  ok" if r / bare_rate >= THROUGHPUT_BUDGET else "  OVER BUDGET"
        lines.append(f"{name:<18}{r:>10,.0f}{r / bare_rate:>9.3f}{c * 1e6:>12.2f}"
                     f"{c / bare_cpu:>9.3f}{(c - off_cpu) * 1e6:>14.2f}"
                     f"{verdict}")
    for name in ("one tap", "tap on everyone"):
        if shown_dropped.get(name):
            shown = median([float(s) for s, _ in shown_dropped[name]])
            dropped = median([float(d) for _, d in shown_dropped[name]])
            lines.append(f"{name}: shown {shown:,.0f}, dropped {dropped:,.0f} per round (median)")
    lines.append("extra us/msg: CPU per echoed message (in and out) over 'taps off'; "
                 f"budget for 'taps off': >= {THROUGHPUT_BUDGET} of bare's msgs/s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--messages", type=int, help="messages per echo client per round (3000)")
    parser.add_argument("--clients", type=int, help="concurrent echo clients (20)")
    parser.add_argument("--rounds", type=int, help="rounds per server (7)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args(argv)
    config = bench_server.BenchConfig(rounds=7)
    if args.quick:
        config = bench_server.BenchConfig(clients=4, messages=300, rounds=2)
    for name in ("messages", "clients", "rounds"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    for line in asyncio.run(main_async(config)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
