"""One message to every connection: ``hub.send`` against websockets' ``broadcast``
and the floor, ``transport.write`` of one pre-encoded frame to each connection.

Run it from the repository root (it is not collected by pytest)::

    python tests/benchmarks/bench_broadcast.py                        # 1k and 10k, 3-8 minutes
    python tests/benchmarks/bench_broadcast.py --sizes 1000 --rounds 5
    python tests/benchmarks/bench_broadcast.py --deflate context      # every client offers deflate
    python tests/benchmarks/bench_broadcast.py --deflate no-context   # ...and the server asks for
                                                                      # server_no_context_takeover
    python tests/benchmarks/bench_broadcast.py --deflate mixed        # half the clients offer it
    python tests/benchmarks/bench_broadcast.py --quick                # smoke run, seconds
    python tests/benchmarks/bench_broadcast.py --no-sockets           # the Python alone (asyncio)
    python tests/benchmarks/bench_broadcast.py --paused-readers       # clients read after each send
    python tests/benchmarks/bench_broadcast.py --parts --loop uvloop  # what a send reads per
                                                                      # recipient, part by part

The servers (bare ``websockets.asyncio.server.serve`` and
``wsconsole.server.serve``, the same settings) run in this process; the
clients run in a second process (``bench_server.py``'s lean clients: a real
opening handshake, then a frame counter), so 10,000 connections need 10,000
descriptors here, not 20,000, and the clients do not share this core.

The open-file limit does not let both servers hold 10,000 connections at once,
so each server holds its N connections in turn, in phases ordered bare, ours,
ours, bare (``--phases``, default 2 pairs: ABBA, so a drift of the machine
weighs on both alike). Within a phase the figures alternate round by round
(the order rotates every round; with the default 10 rounds each figure takes
each place in a round equally often, in both kinds of phase), after one
unmeasured round (``--warm-up``: what a first send pays once, such as
hub.send's plan, is not charged to one figure), and each one is compared with
the floor measured on the same connections in the same rounds:

* bare phase: the floor, and ``broadcast(connections, message)``;
* ours phase: the floor, ``hub.send(Selector(everyone=True), message)``,
  the group sends ``hub.send(Selector(topic=...))`` and
  ``hub.send(Selector(path=...))`` to groups that hold every connection (a
  group send should cost per recipient what a broadcast costs), and
  websockets' ``broadcast`` on our connections: what ``hub.send`` did
  before it shared one frame (each protocol serializes, our ``send_data``
  counts), the "before" of the same run.

Each figure is the CPU time of this process's main thread during the call
(``time.thread_time``: the kernel's loopback TCP path, run in the sending
thread, included; another process's time slice not), median over every round
of every phase, printed with its spread (min-max). Between rounds every
client must have received the message (else a WARNING names the missing
frames), and ``gc.collect()`` runs, so that no round pays for another's
garbage.

``--no-sockets`` replaces the transports' ``write`` by a function that does
nothing while the figures are measured (asyncio's loop only: uvloop's
transport is a C type): what is left is the Python around each write, per
recipient, with no kernel in it; nothing reaches the clients.

``--paused-readers``: the clients stop reading (their sockets leave the
client process's epoll set) before each timed send, and read it after. On
loopback the sending thread also does the receiving side's kernel work, and
with readers waiting a write may wake the client process on the other core,
which then reads while the server writes (the more time between two writes,
the more wake-ups). A server's clients are on other machines: with paused
readers what is timed is closer to the server's own work, and it varies less.

``--parts`` adds to ours phases, timed like the sends (after ``gc.collect()``,
on the same live connections) but writing nothing, each read a send makes per
recipient besides its write, alone: the floor's ``connection.transport``,
the ``protocol._state`` that hub.send read until session 6, and the counts
on the record (its last pass). Any loop: this is how the Python around the
writes is seen on uvloop, whose transport cannot be stubbed. With them a
round of ours holds eight figures, so the default order is no longer
balanced: read the goals from a run without ``--parts``.

The script exits 0 (unless it breaks); a ratio off its goal (hub.send within
1.15x of the floor, at least 1.3x faster than websockets' broadcast, without
compression) is printed with OVER BUDGET.

Must never reach beyond loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import websockets
from websockets.asyncio.server import broadcast
from websockets.asyncio.server import serve as websockets_serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import TEXT, Frame
from websockets.protocol import OPEN

from wsconsole.server import Selector
from wsconsole.server import serve as wsconsole_serve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import (  # noqa: E402  (a sibling script, not a package)
    HOST,
    ClientHandle,
    _raise_file_limit,
    _wait_for,
)

__all__ = ["BroadcastConfig", "main", "run_benchmark"]

MESSAGE = '{"type":"tick","seq":12345678,"px":101.25}'
"""The message: 42 bytes of JSON, the size of issue 10's measurements."""

FLOOR_GOAL = 1.15
"""hub.send may take at most this many times the floor's CPU (no compression)."""

BROADCAST_GOAL = 1.3
"""websockets' broadcast must take at least this many times hub.send's CPU."""

TOPIC = "room"
PATH = "/bench"

DEFLATE_MODES = ("none", "context", "no-context", "mixed")


@dataclass
class BroadcastConfig:
    """Sizes of one run."""

    sizes: list[int] = field(default_factory=lambda: [1000, 10000])
    """N: connections each server holds in its phases."""
    rounds: int = 10
    """Rounds per phase; every figure is measured once per round. The order
    rotates every round: with 10, each figure of a phase (two in the bare
    one, five in ours) takes each place in the round equally often."""
    warm_up: int = 1
    """Unmeasured rounds at the start of each phase: what a first send pays
    once (hub.send's plan, the first touch of N new connections) is not
    charged to one figure's first round."""
    phases: int = 2
    """Pairs of phases per size: bare then ours, then ours then bare, ..."""
    deflate: str = "none"
    """none: compression off on both servers; context: websockets' default
    permessage-deflate, offered by every client; no-context: the server also
    asks for server_no_context_takeover; mixed: half the clients offer it."""
    no_sockets: bool = False
    """Writes replaced by a function that does nothing: the Python alone."""
    paused_readers: bool = False
    """The clients stop reading during each timed send (and read it after):
    no write of the server wakes the client process up on the other core."""
    parts: bool = False
    """Also time, in ours phases, the reads and counts a send makes around
    its writes, each alone and without writing (any loop)."""


def server_settings(deflate: str) -> dict[str, Any]:
    """What both servers are given."""
    settings: dict[str, Any] = {"backlog": 1024}
    if deflate == "none":
        settings["compression"] = None
    elif deflate == "no-context":
        settings["compression"] = None
        settings["extensions"] = [ServerPerMessageDeflateFactory(
            server_max_window_bits=12, client_max_window_bits=12,
            server_no_context_takeover=True, compress_settings={"memLevel": 5})]
    return settings  # context, mixed: websockets' default deflate


def _no_write(transport: Any, data: Any) -> None:
    """``transport.write`` for ``--no-sockets``: nothing."""


def floor_send(connections: list[Any], frame: bytes) -> None:
    """The floor: the same frame, encoded once, written to each transport."""
    for connection in connections:
        connection.transport.write(frame)


# --parts: what a send does per recipient besides the write, each part alone,
# on the live connections (nothing is written). Their cost is mostly where
# the objects are: out of the CPU's caches, one miss per cache line read.

def part_transports(connections: list[Any]) -> None:
    """The floor's reads without the write: each connection's transport."""
    for connection in connections:
        connection.transport  # noqa: B018


def part_states(protocols: list[Any]) -> None:
    """What hub.send read per recipient until session 6: the protocol's state."""
    for protocol in protocols:
        if protocol._state is not OPEN:
            break


def part_counts(records: list[Any], limit: int | None) -> None:
    """hub.send's last pass, counting nothing: the same reads and writes of
    each record's counters and the slow-consumer test."""
    measure_every = (limit or 0) >> 3
    for record in records:
        bytes_out = record.bytes_out = record.bytes_out + 0
        record.msgs_out += 0
        if bytes_out - record.bytes_out_measured > measure_every:
            break


@dataclass
class Figure:
    """One line of the report: CPU seconds per round."""

    name: str
    phase: str
    cpu: list[float] = field(default_factory=list)
    missing: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")


async def _phase(
    config: BroadcastConfig,
    client: ClientHandle,
    kind: str,
    server: Any,
    port: int,
    n: int,
    figures: dict[str, Figure],
) -> None:
    """Open N connections to one server, measure its figures round by round, close."""
    if kind == "ours":
        count: Callable[[], int] = lambda: len(server.hub.registry)  # noqa: E731
    else:
        count = lambda: len(server.connections)  # noqa: E731
    deflated = {"none": 0, "mixed": n // 2}.get(config.deflate, n)
    if deflated:
        await client.call("open", port, deflated, "mass", True)
    if n - deflated:
        await client.call("open", port, n - deflated, "mass", False)
    await _wait_for(lambda: count() == n, f"{n} connections")

    if kind == "ours":
        connections = [record.handle for record in server.hub.registry]
        for record in server.hub.registry:
            server.hub.registry.subscribe(record.id, TOPIC)
    else:
        # In the order they were accepted, as ours are (the registry's order):
        # the kernel's socket structures are then walked in the order they
        # were allocated, on both servers alike (a set's order costs more).
        connections = sorted(server.connections,
                             key=lambda c: c.transport.get_extra_info("socket").fileno())
    with_extensions = sum(1 for c in connections if c.protocol.extensions)
    if with_extensions != deflated:
        raise RuntimeError(f"{kind}: {with_extensions} connections negotiated an "
                           f"extension, {deflated} expected (--deflate {config.deflate})")

    frame = Frame(TEXT, MESSAGE.encode()).serialize(mask=False, extensions=[])
    sends: list[tuple[str, Callable[[], Any]]] = [
        (f"{kind}: transport.write floor", lambda: floor_send(connections, frame)),
    ]
    if kind == "ours":
        hub = server.hub
        everyone, topic, path = (Selector(everyone=True), Selector(topic=TOPIC),
                                 Selector(path=PATH))
        sends += [
            ("ours: hub.send everyone", lambda: hub.send(everyone, MESSAGE)),
            (f"ours: hub.send topic={TOPIC}", lambda: hub.send(topic, MESSAGE)),
            (f"ours: hub.send path={PATH}", lambda: hub.send(path, MESSAGE)),
            # What hub.send did before it shared the frame: each connection's
            # protocol serializes it, our send_data counts it.
            ("ours: websockets broadcast", lambda: broadcast(connections, MESSAGE)),
        ]
        if config.parts:
            records = list(hub.registry)
            protocols = [connection.protocol for connection in connections]
            limit = hub.slow_consumer_limit
            sends += [
                ("part: connection.transport", lambda: part_transports(connections)),
                ("part: protocol._state", lambda: part_states(protocols)),
                ("part: counts on the record", lambda: part_counts(records, limit)),
            ]
    else:
        sends.append(("bare: websockets broadcast", lambda: broadcast(connections, MESSAGE)))

    transport_class = type(connections[0].transport)
    real_write = transport_class.write
    if config.no_sockets:
        transport_class.write = _no_write  # asyncio's: a Python class
    try:
        for round_index in range(-config.warm_up, config.rounds):
            shift = round_index % len(sends)
            for name, send in sends[shift:] + sends[:shift]:
                figure = figures.setdefault(name, Figure(name, kind))
                writes = not (config.no_sockets or name.startswith("part: "))
                if writes:
                    await client.call("arm", n)
                    if config.paused_readers:
                        await client.call("pause", "mass")
                gc.collect()
                start = time.thread_time()
                send()
                cpu = time.thread_time() - start
                if round_index >= 0:
                    figure.cpu.append(cpu)
                if writes:
                    if config.paused_readers:
                        await client.call("resume", "mass")
                    received, _ = await client.call("wait_broadcast")
                    figure.missing += n - received
    finally:
        if config.no_sockets:
            transport_class.write = real_write

    await client.call("close", "mass")
    await _wait_for(lambda: count() == 0, "connections to leave")


async def _warm_up(client: ClientHandle, port: int, count: Callable[[], int], n: int) -> None:
    """Open and close N connections once, unmeasured: process-wide tables (the
    selector's map of descriptors) grow to N once, and are not charged to
    whichever server comes first."""
    await client.call("open", port, n, "warm", False)
    await _wait_for(lambda: count() == n, "warm-up")
    await client.call("close", "warm")
    await _wait_for(lambda: count() == 0, "warm-up to leave")


async def run_benchmark(config: BroadcastConfig) -> list[str]:
    """Run every size; return the report's lines."""
    settings = server_settings(config.deflate)
    bare = await websockets_serve(_idle, HOST, 0, **settings)
    ours = await wsconsole_serve(_idle, HOST, 0, **settings)
    bare_port = bare.sockets[0].getsockname()[1]
    results: dict[int, dict[str, Figure]] = {}
    loads: dict[int, list[float]] = {}
    client = ClientHandle()
    try:
        await client.call("arm", 0)  # the client process is up and answering
        for n in config.sizes:
            await _warm_up(client, ours.port, lambda: len(ours.hub.registry), n)
            figures: dict[str, Figure] = {}
            loads[n] = [os.getloadavg()[0]]
            for pair in range(config.phases):
                order = ["bare", "ours"] if pair % 2 == 0 else ["ours", "bare"]
                for kind in order:
                    if kind == "bare":
                        await _phase(config, client, kind, bare, bare_port, n, figures)
                    else:
                        await _phase(config, client, kind, ours, ours.port, n, figures)
            results[n] = figures
            loads[n].append(os.getloadavg()[0])
    finally:
        client.stop()
        bare.close()
        ours.close()
        await bare.wait_closed()
        await ours.wait_closed()
    return _report(config, settings, results, loads)


async def _idle(connection: Any) -> None:
    """Both servers' handler: the clients only listen."""
    await connection.wait_closed()


def _report(
    config: BroadcastConfig, settings: dict[str, Any], results: dict[int, dict[str, Figure]],
    loads: dict[int, list[float]],
) -> list[str]:
    lines = [
        "wsconsole broadcast benchmark: hub.send vs websockets broadcast vs transport.write",
        f"python {platform.python_version()}, websockets {websockets.__version__}, "
        f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} "
        f"{platform.release()}",
        f"deflate: {config.deflate}; settings (both servers): "
        f"{ {k: v for k, v in settings.items() if k != 'extensions'} }"
        + (" + server_no_context_takeover" if config.deflate == "no-context" else ""),
        f"message: {len(MESSAGE)} B text; {config.rounds} rounds x {config.phases * 2} "
        f"phases (ABBA), after {config.warm_up} unmeasured per phase; CPU time of the "
        "sending thread, median (min-max)",
    ]
    if config.no_sockets:
        lines.append("--no-sockets: transport.write does nothing; the Python around the "
                     "writes alone (us/recipient), nothing sent")
    if config.paused_readers:
        lines.append("--paused-readers: the clients read nothing during each timed send "
                     "(they read it after)")

    def verdict(ok: bool) -> str:
        return "within goal" if ok else "OVER BUDGET"

    for n, figures in results.items():
        load = loads.get(n, [])
        lines += ["", f"load average (1 min) at N = {n:,}: "
                  + " -> ".join(f"{value:.2f}" for value in load),
                  f"{'N = ' + format(n, ','):<34}{'median ms':>11}{'min-max ms':>19}"
                  f"{'us/recipient':>14}{'x floor':>9}{'min-max':>15}",
                  "-" * 102]
        floors = {kind: figures[f"{kind}: transport.write floor"] for kind in ("bare", "ours")}
        ratios: dict[str, list[float]] = {}
        for figure in figures.values():
            # Each round measured every figure of its phase once, the floor
            # included: the ratio of the same round cancels the machine's drift.
            ratios[figure.name] = [cpu / floor for cpu, floor
                                   in zip(figure.cpu, floors[figure.phase].cpu)]
            low, high = min(figure.cpu), max(figure.cpu)
            ratio = ratios[figure.name]
            lines.append(
                f"{figure.name:<34}{figure.median * 1e3:>11.2f}"
                f"{f'{low * 1e3:.2f}-{high * 1e3:.2f}':>19}"
                f"{figure.median / n * 1e6:>14.2f}{statistics.median(ratio):>9.3f}"
                f"{f'{min(ratio):.2f}-{max(ratio):.2f}':>15}")
        for figure in figures.values():
            if figure.missing:
                lines.append(f"WARNING: {figure.name}: {figure.missing} frames never arrived")
        to_floor = statistics.median(ratios["ours: hub.send everyone"])
        bcast_to_floor = statistics.median(ratios["bare: websockets broadcast"])
        speedup = bcast_to_floor / to_floor
        direct = figures["bare: websockets broadcast"].median / figures[
            "ours: hub.send everyone"].median
        strict = config.deflate == "none" and not config.no_sockets
        lines += [
            f"ratio hub.send / floor at {n}: {to_floor:.3f} (median of the rounds' ratios, "
            f"same connections; goal <= {FLOOR_GOAL}) "
            + (verdict(to_floor <= FLOOR_GOAL) if strict else "(no goal)"),
            f"ratio broadcast / hub.send at {n}: {speedup:.3f} (each over its own floor; "
            f"goal >= {BROADCAST_GOAL}) "
            + (verdict(speedup >= BROADCAST_GOAL) if strict else "(no goal)"),
            f"ratio broadcast / hub.send at {n}, medians of CPU: {direct:.3f}",
            f"ratio floor ours / floor bare at {n}: "
            f"{floors['ours'].median / floors['bare'].median:.3f} "
            "(the two servers' connections alike: about 1)",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run, print the report; 0 even when over budget."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="connection counts (1000 10000)")
    parser.add_argument("--rounds", type=int, help="rounds per phase (10)")
    parser.add_argument("--warm-up", type=int, help="unmeasured rounds per phase (1)")
    parser.add_argument("--phases", type=int, help="pairs of phases, ABBA (2)")
    parser.add_argument("--deflate", choices=DEFLATE_MODES, default="none",
                        help="compression (none)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--no-sockets", action="store_true",
                        help="writes do nothing: the Python alone (asyncio's loop only)")
    parser.add_argument("--paused-readers", action="store_true",
                        help="the clients do not read during a timed send (they read it "
                        "after): no wake-up of the client process in the send's time")
    parser.add_argument("--parts", action="store_true",
                        help="also time the reads and counts a send makes around its "
                        "writes, each alone (any loop)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="the server's event loop (the clients stay on asyncio's)")
    args = parser.parse_args(argv)
    config = BroadcastConfig(deflate=args.deflate)
    if args.quick:
        config = BroadcastConfig(sizes=[100], rounds=2, phases=1, warm_up=0,
                                 deflate=args.deflate)
    if args.sizes is not None:
        config.sizes = args.sizes
    for name in ("rounds", "phases", "warm_up"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    if min(config.sizes) < 2 or config.rounds < 1 or config.phases < 1 or config.warm_up < 0:
        parser.error("sizes must be at least 2, rounds and phases at least 1, "
                     "warm-up at least 0")
    config.no_sockets = args.no_sockets
    config.parts = args.parts
    config.paused_readers = args.paused_readers
    if args.no_sockets and args.loop == "uvloop":
        parser.error("--no-sockets replaces asyncio's transport.write: not on uvloop")
    needed = max(config.sizes) + 64
    limit = _raise_file_limit()
    if limit < needed:
        print(f"RLIMIT_NOFILE is {limit}, {needed} needed: raise the hard limit "
              "(ulimit -Hn) or lower --sizes", file=sys.stderr)
        return 2
    from wsconsole.server.loop_policy import resolve_loop, run_on_loop

    loop_kind = resolve_loop(args.loop)
    print(f"event loop of the server: {loop_kind.describe()}")
    for line in run_on_loop(run_benchmark(config), loop_kind):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
