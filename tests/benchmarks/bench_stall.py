"""The event loop's longest stall at 10,000 connections under traffic, on asyncio
and on uvloop, with Python's garbage collector and with ``--gc-freeze``.

Run it from the repository root (it is not collected by pytest)::

    python tests/benchmarks/bench_stall.py                       # 10,000 connections, ~5 min
    python tests/benchmarks/bench_stall.py --quick               # 500 connections, ~40 s
    python tests/benchmarks/bench_stall.py --loops asyncio --gc default freeze

For each configuration (event loop x collector policy, interleaved, ``--rounds``
times) this starts two processes, because one process may hold at most 20,000
descriptors on this machine and the clients cost CPU of their own:

- a server: ``wsconsole.server.serve`` with the demo's echo handler and the
  control listener (its sampler runs every second), the loop and the policy
  given (``run_on_loop``, ``apply_gc_policy``: what ``wsconsole serve --loop
  L [--gc-freeze]`` does). A probe task sleeps 5 ms again and again and
  records how late it wakes up: the loop's stalls. ``gc.callbacks`` time
  every collection by generation.
- the clients: ``--connections`` lean clients (a real handshake with
  websockets' sans-I/O ``ClientProtocol``, then pre-serialized frames), each
  its own user, on four paths; then for ``--seconds``, ``--rate`` echo messages a second to
  random connections and ``--churn`` connections closed and as many opened a
  second (the issue's 180 + 180).

Figures are of the measured window only (after every connection is open):
longest stall, p99 of the probe's lateness, stalls over 50 and 100 ms, the
longest full (generation 2) collection and how many ran, the longest young
one, the server's CPU seconds, and how its RSS moved (``--gc-freeze`` keeps
the cycles of frozen objects that later die: what it costs in memory). Then
ratios within the run: freeze/default on each loop, uvloop/asyncio for each
policy. The machine is shared: compare the ratios of one run, not figures
across runs.

Must never reach beyond loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

HOST = "127.0.0.1"
"""Loopback only."""

PROBE_INTERVAL = 0.005
"""Seconds the probe sleeps; its lateness is the loop's stall."""

CONNECT_CONCURRENCY = 100
"""Handshakes in flight at once from the client process."""

PATHS = ("chat", "feed", "api/stream", "notifications")
"""Request paths of the clients, in turn."""

TIMEOUT = 300.0
"""Upper bound on one step (opening 10,000 connections on a busy machine)."""


def _raise_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# The server process.


class GcTimer:
    """``gc.callbacks`` entry: the duration of each collection, by generation."""

    def __init__(self) -> None:
        self.started = self.started_cpu = 0.0
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.full_cpu: list[float] = []

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            self.started_cpu = time.process_time()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self.started)
            if info["generation"] == 2:
                # CPU time too: on a shared machine the wall time includes waiting
                # for a core.
                self.full_cpu.append(time.process_time() - self.started_cpu)

    def reset(self) -> None:
        self.pauses = {0: [], 1: [], 2: []}
        self.full_cpu = []


class StallProbe:
    """Sleeps PROBE_INTERVAL again and again; records how late each wake-up is."""

    def __init__(self) -> None:
        self.lateness: list[float] = []

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(PROBE_INTERVAL)
            self.lateness.append(time.perf_counter() - before - PROBE_INTERVAL)


async def _server_main(gc_mode: str) -> None:
    from wsconsole.server import serve
    from wsconsole.server.config import ControlConfig
    from wsconsole.server.demo_app import demo_handler
    from wsconsole.server.loop_policy import GcPolicy, apply_gc_policy, describe_loop

    server = await serve(
        demo_handler, HOST, 0, compression=None, backlog=1024,
        control=ControlConfig(host=HOST, port=0, token="bench-stall-token"),
    )
    timer = GcTimer()
    gc.callbacks.append(timer)
    freezer = apply_gc_policy(GcPolicy(freeze=gc_mode == "freeze"), server.hub)
    probe = StallProbe()
    probe_task = asyncio.get_running_loop().create_task(probe.run())
    print(json.dumps({"port": server.port, "loop": describe_loop()}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    window: dict[str, Any] = {}
    while line := (await reader.readline()).decode().strip():
        if line == "start":
            probe.lateness.clear()
            timer.reset()
            window = {"cpu": time.process_time(), "rss": _rss_bytes(),
                      "connections": len(server.hub.registry)}
            print(json.dumps({"started": True}), flush=True)
        elif line == "report":
            lateness = sorted(probe.lateness)
            young = timer.pauses[0] + timer.pauses[1]
            full = list(timer.pauses[2])
            frozen, tracked = gc.get_freeze_count(), len(gc.get_objects())
            max_full_cpu = max(timer.full_cpu, default=0.0)
            gc.callbacks.remove(timer)
            # What a full collection costs now, with every connection open, in
            # CPU time, whether or not one ran in the window. Only the first:
            # with freeze, it freezes what it walked.
            before = time.process_time()
            gc.collect()
            forced = time.process_time() - before
            # With --gc-freeze, what a thaw costs (its collection walks the whole
            # fleet again) and what it gives back.
            thaw = float("nan")
            rss_before_thaw = _rss_bytes()
            if freezer is not None:
                freezer.thaw()
                thaw = freezer.last_thaw_seconds
            print(json.dumps({
                "connections_at_start": window["connections"],
                "connections_at_end": len(server.hub.registry),
                "max_stall": lateness[-1] if lateness else float("nan"),
                "p99_stall": lateness[int(len(lateness) * 0.99)] if lateness else float("nan"),
                "stalls_over_50ms": sum(1 for x in lateness if x > 0.050),
                "stalls_over_100ms": sum(1 for x in lateness if x > 0.100),
                "full_collections": len(full),
                "max_full_collection": max(full, default=0.0),
                "max_full_collection_cpu": max_full_cpu,
                "forced_full_collection_cpu": forced,
                "max_young_collection": max(young, default=0.0),
                "young_collections": len(young),
                "cpu": time.process_time() - window["cpu"],
                "rss_growth": _rss_bytes() - window["rss"],
                "rss": rss_before_thaw,
                "thaw_cpu": thaw,
                "rss_after_thaw": _rss_bytes(),
                "frozen": frozen,
                "thaws": freezer.thaws if freezer is not None else 0,
                "closed": server.hub.opened_total - len(server.hub.registry),
                "tracked": tracked,
            }), flush=True)
            break
    probe_task.cancel()
    server.close()


def server_process(loop_choice: str, gc_mode: str) -> None:
    from wsconsole.server.loop_policy import resolve_loop, run_on_loop

    _raise_file_limit()
    run_on_loop(_server_main(gc_mode), resolve_loop(loop_choice))


# The client process (asyncio's loop: the same clients for every server).


class LeanClient(asyncio.Protocol):
    """A real handshake, then pre-serialized frames; server frames are counted,
    pings answered (so keepalive never closes an idle client)."""

    def __init__(self, uri: str, stats: dict[str, int]) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.protocol = ClientProtocol(parse_uri(uri))
        self.stats = stats
        self.handshake = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.is_open = False
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        transport.write(b"".join(self.protocol.data_to_send()))

    def data_received(self, data: bytes) -> None:
        from websockets.frames import CLOSE, PING, PONG, Frame
        from websockets.protocol import OPEN

        if not self.is_open:
            self.protocol.receive_data(data)
            if self.protocol.handshake_exc is not None and not self.handshake.done():
                self.handshake.set_exception(self.protocol.handshake_exc)
            elif self.protocol.state is OPEN:
                self.is_open = True
                if not self.handshake.done():
                    self.handshake.set_result(None)
            return
        buffer = self.buffer + data
        position = 0
        while len(buffer) - position >= 2:
            length = buffer[position + 1] & 0x7F
            header = 2
            if length == 126:
                header = 4
                if len(buffer) - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2:position + 4], "big")
            elif length == 127:
                header = 10
                if len(buffer) - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2:position + 10], "big")
            if len(buffer) - position < header + length:
                break
            opcode = buffer[position] & 0x0F
            if opcode < CLOSE:
                self.stats["received"] += 1
            elif opcode == PING:
                payload = buffer[position + header:position + header + length]
                self.transport.write(Frame(PONG, payload).serialize(mask=True))
            position += header + length
        self.buffer = buffer[position:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.is_open:
            self.stats["lost"] += 1  # closed by us (churn) or by the server
        self.is_open = False
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("lost"))


async def _clients_main(port: int, connections: int, rate: int, churn: int,
                        seconds: float) -> None:
    from websockets.frames import BINARY, CLOSE, Close, Frame

    loop = asyncio.get_running_loop()
    stats = {"received": 0, "sent": 0, "opened": 0, "closed": 0, "failed": 0, "lost": 0}
    clients: list[LeanClient] = []
    semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)
    serial = 0

    async def open_one() -> None:
        nonlocal serial
        serial += 1
        # No ?room=: the demo relays a room member's message to the whole room,
        # which would make the traffic a hundred times the rate.
        uri = f"ws://{HOST}:{port}/{PATHS[serial % len(PATHS)]}?user=u{serial}"
        async with semaphore:
            try:
                _, client = await loop.create_connection(
                    lambda: LeanClient(uri, stats), HOST, port)
                await client.handshake
            except (OSError, Exception):
                stats["failed"] += 1
                return
        clients.append(client)
        stats["opened"] += 1

    start = time.perf_counter()
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(*(open_one() for _ in range(connections)))
    print(json.dumps({"open": len(clients), "seconds": time.perf_counter() - start}),
          flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the server's window started

    message = Frame(BINARY, b"m" * 64).serialize(mask=True)
    close = Frame(CLOSE, Close(1000, "").serialize()).serialize(mask=True)
    tick = 0.01
    sends_per_tick = rate * tick
    churn_per_tick = churn * tick
    owed_sends = owed_churn = 0.0
    randomness = random.Random(10)
    pending: set[asyncio.Task[None]] = set()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        owed_sends += sends_per_tick
        owed_churn += churn_per_tick
        while owed_sends >= 1 and clients:
            owed_sends -= 1
            client = clients[randomness.randrange(len(clients))]
            if client.is_open and not client.transport.is_closing():
                client.transport.write(message)
                stats["sent"] += 1
        while owed_churn >= 1 and clients:
            owed_churn -= 1
            index = randomness.randrange(len(clients))
            leaving = clients[index]
            clients[index] = clients[-1]
            clients.pop()
            if leaving.is_open and not leaving.transport.is_closing():
                leaving.transport.write(close)
                loop.call_later(1.0, leaving.transport.abort)
                stats["closed"] += 1
            task = loop.create_task(open_one())
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(tick)
    if pending:
        await asyncio.wait(pending, timeout=10)
    stats["open"] = len(clients)
    print(json.dumps(stats), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the server reported
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


def clients_process(port: int, connections: int, rate: int, churn: int,
                    seconds: float) -> None:
    _raise_file_limit()
    asyncio.run(_clients_main(port, connections, rate, churn, seconds))


# The parent: one configuration after another.


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, bufsize=1)


def _read_json(process: subprocess.Popen[str]) -> dict[str, Any]:
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"process {process.args[2:]} ended (status {process.wait()})")
    return json.loads(line)


def run_configuration(loop_choice: str, gc_mode: str, args: argparse.Namespace
                      ) -> dict[str, Any]:
    server = _spawn("--role", "server", "--loop-choice", loop_choice, "--gc-mode", gc_mode)
    clients = None
    try:
        hello = _read_json(server)
        clients = _spawn("--role", "clients", "--port", str(hello["port"]),
                         "--connections", str(args.connections), "--rate", str(args.rate),
                         "--churn", str(args.churn), "--seconds", str(args.seconds))
        opened = _read_json(clients)
        server.stdin.write("start\n")
        _read_json(server)
        clients.stdin.write("go\n")
        traffic = _read_json(clients)
        server.stdin.write("report\n")
        figures = _read_json(server)
        clients.stdin.write("done\n")
        figures.update(loop=hello["loop"], gc=gc_mode, open_seconds=opened["seconds"],
                       opened=opened["open"], traffic=traffic)
        return figures
    finally:
        for process in (server, clients):
            if process is None:
                continue
            try:
                process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    import platform

    lines = [
        "wsconsole loop-stall benchmark",
        f"python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (a shared machine: compare ratios within this run)",
        f"{args.connections} connections (each its own user, 4 paths), {args.rate} echo "
        f"messages/s, {args.churn} closes + {args.churn} opens/s, {args.seconds:g} s "
        f"measured per configuration, {args.rounds} round(s), medians",
        "",
    ]
    keys = sorted({(r["loop"].split()[0], r["gc"]) for r in results},
                  key=lambda k: (k[0] != "asyncio", k[1] != "default"))
    by_key = {key: [r for r in results if (r["loop"].split()[0], r["gc"]) == key]
              for key in keys}

    def median(key: tuple[str, str], name: str) -> float:
        return statistics.median(r[name] for r in by_key[key])

    rows = [
        ("longest stall (ms)", "max_stall", 1e3, ".0f"),
        ("p99 probe lateness (ms)", "p99_stall", 1e3, ".1f"),
        ("stalls > 50 ms", "stalls_over_50ms", 1, ".0f"),
        ("stalls > 100 ms", "stalls_over_100ms", 1, ".0f"),
        ("full collections", "full_collections", 1, ".0f"),
        ("longest full collection (ms)", "max_full_collection", 1e3, ".0f"),
        ("  the same in CPU time (ms)", "max_full_collection_cpu", 1e3, ".0f"),
        ("a full collection at the end, CPU ms", "forced_full_collection_cpu", 1e3, ".0f"),
        ("longest young collection (ms)", "max_young_collection", 1e3, ".1f"),
        ("server CPU in the window (s)", "cpu", 1, ".2f"),
        ("RSS growth in the window (MB)", "rss_growth", 1e-6, ".1f"),
        ("RSS at the end (MB)", "rss", 1e-6, ".0f"),
        ("a thaw at the end, CPU ms", "thaw_cpu", 1e3, ".0f"),
        ("RSS after it (MB)", "rss_after_thaw", 1e-6, ".0f"),
        ("objects tracked, not frozen", "tracked", 1, ",.0f"),
        ("objects frozen", "frozen", 1, ",.0f"),
        ("thaws (--gc-freeze, every 10,000 closes)", "thaws", 1, ".0f"),
        ("connections closed since start", "closed", 1, ",.0f"),
        ("open N connections (s)", "open_seconds", 1, ".1f"),
    ]
    labels = [f"{loop}/{mode}" for loop, mode in keys]
    lines.append(f"{'figure':<34}" + "".join(f"{label:>17}" for label in labels))
    lines.append("-" * (34 + 17 * len(labels)))
    for label, name, scale, fmt in rows:
        lines.append(f"{label:<34}" + "".join(
            f"{format(median(key, name) * scale, fmt):>17}" for key in keys))
    lines.append("")
    for loop in sorted({k[0] for k in keys}):
        if (loop, "default") in by_key and (loop, "freeze") in by_key:
            for label, name in (("longest stall", "max_stall"),
                                ("longest full collection", "max_full_collection"),
                                ("full collection at the end (CPU)",
                                 "forced_full_collection_cpu"),
                                ("server CPU", "cpu"),
                                ("RSS growth", "rss_growth")):
                default = median((loop, "default"), name)
                freeze = median((loop, "freeze"), name)
                ratio = freeze / default if default else float("nan")
                lines.append(f"ratio {label} freeze/default on {loop}: {ratio:.2f}")
    for mode in sorted({k[1] for k in keys}):
        if ("asyncio", mode) in by_key and ("uvloop", mode) in by_key:
            for label, name in (("longest stall", "max_stall"), ("server CPU", "cpu"),
                                ("p99 probe lateness", "p99_stall")):
                base = median(("asyncio", mode), name)
                fast = median(("uvloop", mode), name)
                ratio = fast / base if base else float("nan")
                lines.append(f"ratio {label} uvloop/asyncio with gc {mode}: {ratio:.2f}")
    for result in results:
        traffic = result["traffic"]
        if traffic["lost"] > traffic["closed"]:
            lines.append(f"WARNING: {result['loop']}/{result['gc']}: the server closed "
                         f"{traffic['lost'] - traffic['closed']} connections (a starved "
                         "client missing its pings?)")
        if traffic["failed"] or result["opened"] < args.connections:
            lines.append(f"WARNING: {result['loop']}/{result['gc']}: {result['opened']} of "
                         f"{args.connections} opened, {traffic['failed']} handshakes failed")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=2000, help="echo messages a second")
    parser.add_argument("--churn", type=int, default=180,
                        help="connections closed (and as many opened) a second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--loops", nargs="+", default=["asyncio", "uvloop"],
                        choices=["asyncio", "uvloop"])
    parser.add_argument("--gc", nargs="+", default=["default", "freeze"],
                        choices=["default", "freeze"])
    parser.add_argument("--quick", action="store_true", help="500 connections, 5 s")
    # The child processes' own arguments.
    parser.add_argument("--role", choices=["server", "clients"], help=argparse.SUPPRESS)
    parser.add_argument("--loop-choice", help=argparse.SUPPRESS)
    parser.add_argument("--gc-mode", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "server":
        server_process(args.loop_choice, args.gc_mode)
        return 0
    if args.role == "clients":
        clients_process(args.port, args.connections, args.rate, args.churn, args.seconds)
        return 0
    if args.quick:
        args.connections, args.seconds, args.rate, args.churn = 500, 5.0, 500, 50
    if "uvloop" in args.loops:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop is not installed (pip install -e '.[fast]'): asyncio only",
                  file=sys.stderr)
            args.loops = [loop for loop in args.loops if loop != "uvloop"]
    results = []
    for _ in range(args.rounds):
        for loop_choice in args.loops:
            for gc_mode in args.gc:
                result = run_configuration(loop_choice, gc_mode, args)
                print(f"# {result['loop']} gc {gc_mode}: longest stall "
                      f"{result['max_stall'] * 1e3:.0f} ms, longest full collection "
                      f"{result['max_full_collection'] * 1e3:.0f} ms", file=sys.stderr,
                      flush=True)
                results.append(result)
    for line in report(results, args):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
