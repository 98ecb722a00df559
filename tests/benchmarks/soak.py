"""Soak: ``wsconsole demo`` under churn for a while, watching its memory.

Run it from the repository root (it is not collected by pytest)::

    python tests/benchmarks/soak.py                    # 3 minutes, console attached
    python tests/benchmarks/soak.py --minutes 30       # the figures in docs/benchmarks.md
    python tests/benchmarks/soak.py --console none     # the server side alone
    python tests/benchmarks/soak.py --tracemalloc      # and where the growth was allocated
    python tests/benchmarks/soak.py --console none --churn 50 --gc-freeze   # frozen, never thawed

In one process, as ``wsconsole demo`` puts it together: the embedded server
with the demo application and its control listener, the demo's simulated
clients (residents, guests who come and go, the market ticker and the slow
reader), and the console (``--console tui``: the real ``ConsoleApp``,
headless through ``App.run_test``; ``client``: a bare control client that
subscribes to events and lists a page a second, as a script would; ``none``).
On top, churn: ``--churn`` short-lived connections a second, each with a user,
path and room never seen before (the costliest case for the registry's
indexes and the metrics' label sets), sending a few messages, then closing
normally or dropping the TCP connection.

Every ``--interval`` seconds it prints the process's RSS, the number of
Python objects (the frozen ones apart) and of allocated memory blocks, the open connections, the event log's lines, the asyncio
tasks, the full collections and thaws so far, the loop's longest stall, the
load average, and the object types that grew most since the warm-up. At the end:
the growth in MB per minute after the warm-up (least squares over the
samples), the loop's longest stall and p99, the object types that grew per
minute, a census of the collector (frozen, tracked, and gone after one full
collection, by type), and, once every client has
gone, what the server still holds (it must be nothing per connection).

The script exits 0 (unless it breaks); growth over ``--budget`` MB a minute
is printed as OVER BUDGET. Must never reach beyond loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import logging
import os
import random
import resource
import secrets
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from wsconsole.console.app import ConsoleApp
from wsconsole.console.client import ControlClient
from wsconsole.console.simulator import Simulator
from wsconsole.console.tui_command import DEMO_NODE, DEMO_SLOW_CONSUMER_LIMIT, logging_silenced
from wsconsole.server import serve
from wsconsole.server.config import ControlConfig
from wsconsole.server.cycles import release_closed_connection
from wsconsole.server.demo_app import demo_handler

__all__ = ["SoakConfig", "Sample", "main", "run_soak", "growth_per_minute"]

HOST = "127.0.0.1"
"""Loopback only: a soak must never listen on or reach another address."""

TERMINAL_SIZE = (120, 40)
"""The headless console's size: what an operator's terminal typically shows."""

CHURN_IN_FLIGHT = 50
"""Churn connections open at once at most; more are skipped, and counted."""

PROBE_SLEEP = 0.005
"""Seconds the stall probe sleeps between two looks at the clock."""


@dataclass
class SoakConfig:
    """What one run does."""

    minutes: float = 3.0
    """How long to run, warm-up included."""
    interval: float = 20.0
    """Seconds between samples."""
    warmup: float = 1.0
    """Minutes before the growth is measured: caches fill, the log and sparklines
    reach their bounds, the slow reader's first cycle ends."""
    console: str = "tui"
    """``tui``, ``client`` or ``none``."""
    churn: float = 5.0
    """Short-lived connections opened per second, on top of the simulator's."""
    guests: int = 4
    """The simulator's guests who come and go."""
    seed: int = 7
    top: int = 8
    """Object types shown per sample."""
    tracemalloc: int = 0
    """Frames per traceback when tracing allocations (0: off; slows the run a lot)."""
    budget: float = 1.0
    """MB a minute of growth after the warm-up above which the run says OVER BUDGET."""
    gc_freeze: bool = False
    """Freeze the collector as ``wsconsole serve`` does (off: as the library call leaves it)."""
    gc_thaw_after: int = 0
    """With ``gc_freeze``: closed connections between thaws (0: never thaw, so that
    whatever a closed connection leaves frozen shows as growth)."""


@dataclass
class Sample:
    """One measurement."""

    elapsed: float
    """Seconds since start."""
    rss: float
    """Resident set size, MB."""
    objects: int
    """Objects the garbage collector tracks."""
    blocks: int
    """Memory blocks Python's allocator has handed out (``sys.getallocatedblocks``):
    strings and bytes too, which the garbage collector does not track."""
    types: collections.Counter[str]
    """Tracked objects by type (``module.qualname``), the frozen ones left out
    (``gc.get_objects`` does not list the permanent generation)."""
    frozen: int = 0
    """Objects in the permanent generation (``gc.get_freeze_count``)."""
    thaws: int = 0
    """Thaws the freezer has made so far."""
    full_collections: int = 0
    """Full (generation 2) collections so far (``gc.get_stats``)."""
    stall: float = 0.0
    """Longest lateness of the stall probe since the sample before, seconds."""


def rss_mb() -> float:
    """The process's current resident set size in MB (its peak where /proc is absent)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def object_types() -> collections.Counter[str]:
    """Objects tracked by the garbage collector, by type."""
    counts: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return counts


def growth_per_minute(samples: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) pairs, per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in samples) / spread
    return slope * 60


class Churn:
    """Opens short-lived connections at a steady rate, each a user, path and room
    never seen before; each sends a few messages, reads the echoes and leaves."""

    def __init__(self, url: str, rate: float, seed: int) -> None:
        self.url = url
        self.rate = rate
        self.random = random.Random(seed)
        self.opened = 0
        """Connections whose handshake succeeded."""
        self.failed = 0
        """Connections that failed or broke (the server shedding them counts here)."""
        self.skipped = 0
        """Ticks skipped because CHURN_IN_FLIGHT connections were still open."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.rate > 0:
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        # The connections in flight leave now, each with its close handshake
        # (``async with connect`` closes on cancellation), instead of after
        # the rest of their random stay: up to two seconds of nothing at the
        # end of every run, most of a smoke run's time.
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        next_at = loop.time()
        while True:
            next_at += 1 / self.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if len(self._tasks) >= CHURN_IN_FLIGHT:
                self.skipped += 1
                continue
            n += 1
            task = loop.create_task(self._one(n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(self, n: int) -> None:
        rng = self.random
        # A new user, path and room each time: every index bucket and label
        # value they create must go when the connection does.
        url = f"{self.url}/churn/{n}?user=churn-{n}&room=churn-room-{n}"
        try:
            async with connect(url, user_agent_header="soak-churn/1.0",
                               open_timeout=10, close_timeout=2) as ws:
                self.opened += 1
                for _ in range(rng.randint(1, 3)):
                    await ws.send(f"churn {n}")
                    await ws.recv()
                await asyncio.sleep(rng.uniform(0.0, 2.0))
                if rng.random() < 0.2:
                    ws.transport.abort()  # gone without a close frame
            # The client's side is in this process too: break its cycles as the
            # server breaks its own, so that what a frozen run grows by is the
            # server's (the simulator's few guests are left as they are).
            await ws.wait_closed()
            release_closed_connection(ws)
        except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
            self.failed += 1


class StallProbe:
    """Sleeps ``PROBE_SLEEP`` again and again and records how late it wakes:
    the loop's stalls (the server's and, in this one process, the clients').

    The lateness is kept as a histogram of whole milliseconds, so that the
    probe itself does not grow with the run."""

    def __init__(self) -> None:
        self.window_max = 0.0
        """Longest lateness since :meth:`take_window`, seconds."""
        self.histogram: collections.Counter[int] = collections.Counter()
        """Wake-ups by lateness in whole ms, since :meth:`reset`."""
        self.longest = 0.0
        """Longest lateness since :meth:`reset`, seconds."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def take_window(self) -> float:
        longest, self.window_max = self.window_max, 0.0
        return longest

    def reset(self) -> None:
        self.histogram.clear()
        self.longest = 0.0

    def p99(self) -> float:
        """The 99th percentile of the lateness since :meth:`reset`, seconds."""
        total = sum(self.histogram.values())
        seen = 0
        for ms in sorted(self.histogram):
            seen += self.histogram[ms]
            if seen >= 0.99 * total:
                return ms / 1000
        return 0.0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(PROBE_SLEEP)
            late = max(0.0, loop.time() - before - PROBE_SLEEP)
            self.window_max = max(self.window_max, late)
            self.longest = max(self.longest, late)
            self.histogram[int(late * 1000)] += 1


def collector_census(frozen: bool) -> dict[str, Any]:
    """What the collector holds, by type: ``reachable`` (tracked, not frozen),
    ``frozen`` (the permanent generation), ``garbage`` (what one full
    collection, after a thaw when frozen, made disappear: freed, or a dict or
    tuple of atoms untracked) and ``blocks_freed`` (the memory blocks it gave
    back). Counted as what is gone, not as ``gc.collect()`` counts: a cycle
    freed by a generator's finalizer is not in that count, nor in
    ``gc.garbage`` with ``DEBUG_SAVEALL``.

    It thaws: call it once, at the end of a run."""
    reachable = object_types()
    everything = reachable
    if frozen:
        gc.unfreeze()
        everything = object_types()
    blocks = sys.getallocatedblocks()
    gc.collect()
    blocks_freed = blocks - sys.getallocatedblocks()
    gc.unfreeze()  # the freezer's callback froze what survived
    after = object_types()
    return {"reachable": reachable, "frozen": everything - reachable,
            "garbage": everything - after, "after": after, "blocks_freed": blocks_freed}


class BareConsole:
    """What a script does over the control plane: events, and a page a second."""

    def __init__(self, url: str, token: str) -> None:
        self.client = ControlClient(url, token)
        self.events = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.client.connect()
        await self.client.subscribe(stats_interval=1.0)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read()), loop.create_task(self._list())]

    async def _read(self) -> None:
        async for _ in self.client.events():
            self.events += 1

    async def _list(self) -> None:
        while True:
            await self.client.list_connections(limit=100, groups=True)
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()


def _event_log_lines(app: ConsoleApp | None) -> str:
    if app is None:
        return "-"
    try:
        log = app.main_screen.event_log
    except Exception:  # not mounted yet
        return "-"
    return str(log.line_count)


async def run_soak(config: SoakConfig, out: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run one soak; print as it goes; return the figures."""
    if config.tracemalloc:
        tracemalloc.start(config.tracemalloc)
    token = secrets.token_urlsafe(32)
    server = serve(
        demo_handler, HOST, 0, node=DEMO_NODE, slow_consumer_limit=DEMO_SLOW_CONSUMER_LIMIT,
        control=ControlConfig(host=HOST, port=0, token=token),
    )
    await server
    freezer = None
    if config.gc_freeze:
        from wsconsole.server.loop_policy import GcPolicy, apply_gc_policy

        freezer = apply_gc_policy(
            GcPolicy(freeze=True, thaw_after_closes=config.gc_thaw_after or None), server.hub)
        # Everything was just collected and frozen: thawing to count it, then
        # freezing again, leaves the collector as it was.
        gc.unfreeze()
        at_start = object_types()
        gc.freeze()
    else:
        at_start = object_types()
    public = f"ws://{server.hub.listen[0]}"
    simulator = Simulator(public, seed=config.seed, guests=config.guests)
    simulator.start()
    churn = Churn(public, config.churn, config.seed)
    churn.start()
    probe = StallProbe()
    probe.start()
    out(f"soak: {config.minutes:g} min, sample every {config.interval:g} s, warm-up "
        f"{config.warmup:g} min; console {config.console}; churn {config.churn:g}/s; "
        f"{len(simulator.residents)} residents, {config.guests} guests, ticker and slow reader")
    out(f"Python {sys.version.split()[0]}, pid {os.getpid()}; collector "
        + (f"frozen, thawed every {config.gc_thaw_after:,} closes" if config.gc_freeze
           and config.gc_thaw_after else "frozen, never thawed" if config.gc_freeze
           else "as Python has it"))

    app: ConsoleApp | None = None
    bare: BareConsole | None = None
    try:
        if config.console == "tui":
            app = ConsoleApp(lambda: ControlClient(server.control.url, token),
                             url=server.control.url)
            async with app.run_test(size=TERMINAL_SIZE):
                result = await _measure(config, server, churn, probe, freezer, app, out)
        else:
            if config.console == "client":
                bare = BareConsole(server.control.url, token)
                await bare.start()
            result = await _measure(config, server, churn, probe, freezer, None, out)
    finally:
        await probe.stop()
        await churn.stop()
        await simulator.stop()
        if bare is not None:
            await bare.stop()
    stats = gc.get_stats()
    out("collections (generation 0, 1, 2): "
        + ", ".join(f"{s['collections']:,} ({s['collected']:,} freed)" for s in stats))
    if config.gc_freeze:
        out(f"collector: {gc.get_freeze_count():,} objects frozen, "
            + (f"{freezer.thaws} thaws (the last freed {freezer.last_thaw_freed:,} objects "
               f"in {freezer.last_thaw_seconds * 1000:.0f} ms of CPU; next after "
               f"{freezer.next_thaw_after:,} closes)" if freezer else "never thawed"))
        if freezer is not None:
            freezer.stop()
    result["census"] = census = collector_census(config.gc_freeze)
    for name, what in (("frozen", "in the permanent generation"),
                       ("reachable", "tracked and not frozen"),
                       ("garbage", "gone after one full collection"
                        + (" after a thaw" if config.gc_freeze else "")
                        + f" ({census['blocks_freed']:,} memory blocks given back)")):
        counts = census[name]
        out(f"{what}: {sum(counts.values()):,} objects; most: "
            + (", ".join(f"{kind} {n:,}" for kind, n in counts.most_common(config.top))
               or "none"))
    alive = census["after"]
    grown = _deltas(at_start, alive, config.top)
    out(f"alive at the end ({sum(alive.values()):,} objects, frozen or not, garbage left out) "
        f"against the start ({sum(at_start.values()):,}), grown most: "
        + (", ".join(f"{kind} {n:+,}" for kind, n in grown) or "none"))
    if config.gc_freeze:
        from wsconsole.server.loop_policy import restore_gc_defaults

        restore_gc_defaults()
    result["left_behind"] = await _left_behind(server, out)
    server.close()
    async with asyncio.timeout(10):
        await server.wait_closed()
    if config.tracemalloc:
        tracemalloc.stop()
    return result


async def _measure(config: SoakConfig, server: Any, churn: Churn, probe: StallProbe,
                   freezer: Any, app: ConsoleApp | None,
                   out: Callable[[str], Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + config.minutes * 60
    warmup_end = started + min(config.warmup * 60, config.minutes * 60)
    hub = server.hub
    samples: list[Sample] = []
    baseline: Sample | None = None
    traced_baseline: Any = None
    out(f"{'time':>6} {'RSS MB':>7} {'objects':>8} {'frozen':>8} {'blocks':>8} {'open':>5} "
        f"{'opened':>7} {'log':>5} {'tasks':>5} {'full':>4} {'thaws':>5} {'stall':>6} "
        f"{'load':>5}  grown most since warm-up")
    next_at = started
    while True:
        next_at = min(next_at + config.interval, deadline)
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        now = loop.time()
        types = object_types()
        sample = Sample(now - started, rss_mb(), sum(types.values()), sys.getallocatedblocks(),
                        types, gc.get_freeze_count(), freezer.thaws if freezer else 0,
                        gc.get_stats()[2]["collections"], probe.take_window())
        samples.append(sample)
        if baseline is None and now >= warmup_end - 1e-6:
            baseline = sample
            probe.reset()
            if config.tracemalloc:
                traced_baseline = tracemalloc.take_snapshot()
        if baseline is None:
            grown = "(warming up)"
        elif baseline is sample:
            grown = "(baseline)"
        else:
            grown = ", ".join(f"{name} {delta:+d}"
                              for name, delta in _deltas(baseline.types, types, config.top))
        minutes, seconds = divmod(int(sample.elapsed), 60)
        out(f"{minutes:3d}:{seconds:02d} {sample.rss:7.1f} {sample.objects:8d} {sample.frozen:8d} "
            f"{sample.blocks:8d} {len(hub.registry):5d} {hub.opened_total:7d} "
            f"{_event_log_lines(app):>5} {len(asyncio.all_tasks()):5d} "
            f"{sample.full_collections:4d} {sample.thaws:5d} {sample.stall * 1000:6.0f} "
            f"{os.getloadavg()[0]:5.2f}  {grown}")
        if now >= deadline:
            break
    return _summary(config, samples, baseline, traced_baseline, churn, probe, hub, out)


def _deltas(before: collections.Counter[str], after: collections.Counter[str],
            top: int) -> list[tuple[str, int]]:
    changes = {name: after[name] - before[name] for name in set(before) | set(after)}
    grown = sorted((item for item in changes.items() if item[1] > 0),
                   key=lambda item: -item[1])
    return grown[:top]


def _summary(config: SoakConfig, samples: list[Sample], baseline: Sample | None,
             traced_baseline: Any, churn: Churn, probe: StallProbe, hub: Any,
             out: Callable[[str], Any]) -> dict[str, Any]:
    first, last = samples[0], samples[-1]
    after = [s for s in samples if baseline is not None and s.elapsed >= baseline.elapsed]
    rss_growth = growth_per_minute([(s.elapsed, s.rss) for s in after])
    objects_growth = growth_per_minute([(s.elapsed, s.objects) for s in after])
    blocks_growth = growth_per_minute([(s.elapsed, s.blocks) for s in after])
    frozen_growth = growth_per_minute([(s.elapsed, s.frozen) for s in after])
    out("")
    out(f"connections opened {hub.opened_total} (churn {churn.opened}, churn failures "
        f"{churn.failed}, churn ticks skipped {churn.skipped}); "
        f"slow consumers closed {hub.slow_consumer_disconnects}")
    out(f"RSS: {first.rss:.1f} MB at {first.elapsed:.0f} s, "
        f"{baseline.rss if baseline else float('nan'):.1f} MB after the warm-up, "
        f"{last.rss:.1f} MB at the end ({last.elapsed / 60:.1f} min)")
    verdict = " OVER BUDGET" if rss_growth > config.budget else ""
    out(f"growth after warm-up: {rss_growth:+.2f} MB/min RSS, {objects_growth:+.0f} objects/min, "
        f"{blocks_growth:+.0f} blocks/min, {frozen_growth:+.0f} frozen objects/min "
        f"(least squares over {len(after)} samples; budget {config.budget:g} MB/min){verdict}")
    load = os.getloadavg()
    out(f"loop stalls after warm-up: longest {probe.longest * 1000:.0f} ms, p99 "
        f"{probe.p99() * 1000:.0f} ms (a {PROBE_SLEEP * 1000:g} ms sleep's lateness; server "
        f"and clients share the loop); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if baseline is not None and len(after) > 1:
        span = max((last.elapsed - baseline.elapsed) / 60, 1e-9)
        per_minute = [(name, delta / span)
                      for name, delta in _deltas(baseline.types, last.types, config.top)]
        out("object types grown most after warm-up, per minute: " + (", ".join(
            f"{name} {rate:+.0f}" for name, rate in per_minute) or "none"))
    if traced_baseline is not None:
        out("allocations grown most after warm-up (tracemalloc):")
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        for stat in snapshot.compare_to(traced_baseline, "traceback")[:config.top]:
            out(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks")
            for line in stat.traceback.format()[-8:]:
                out(f"      {line}")
    return {"rss_growth_mb_per_min": rss_growth, "objects_growth_per_min": objects_growth,
            "blocks_growth_per_min": blocks_growth, "frozen_growth_per_min": frozen_growth,
            "longest_stall": probe.longest, "stall_p99": probe.p99(), "load": load,
            "rss_start": first.rss, "rss_end": last.rss,
            "rss_after_warmup": baseline.rss if baseline else None,
            "samples": [(s.elapsed, s.rss, s.objects, s.blocks) for s in samples]}


async def _left_behind(server: Any, out: Callable[[str], Any]) -> dict[str, int]:
    """Once every client has gone: what the server still holds for them."""
    hub = server.hub
    # The control listener's backlog listens as long as the server runs.
    always = 1 if server.control is not None else 0
    try:
        async with asyncio.timeout(15):
            while len(hub.registry) or hub._tasks or len(hub._listeners) > always:
                await asyncio.sleep(0.1)
    except TimeoutError:
        pass
    registry = hub.registry
    held = {
        "records": len(registry),
        "user buckets": len(registry.user_counts()),
        "path buckets": len(registry.path_counts()),
        "topic buckets": len(registry.topic_counts()),
        "hub tasks": len(hub._tasks),
        "event listeners": len(hub._listeners) - always,
        "public connections": len(server.connections),
    }
    out("after every client left, the server holds: "
        + ", ".join(f"{name} {count}" for name, count in held.items()))
    return held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = SoakConfig()
    parser.add_argument("--minutes", type=float, default=defaults.minutes,
                        help=f"how long to run (default: {defaults.minutes:g})")
    parser.add_argument("--interval", type=float, default=defaults.interval,
                        help=f"seconds between samples (default: {defaults.interval:g})")
    parser.add_argument("--warmup", type=float, default=defaults.warmup,
                        help=f"minutes before growth is measured (default: {defaults.warmup:g})")
    parser.add_argument("--console", choices=("tui", "client", "none"), default=defaults.console,
                        help="headless ConsoleApp, a bare control client, or none (default: tui)")
    parser.add_argument("--churn", type=float, default=defaults.churn,
                        help=f"short-lived connections a second (default: {defaults.churn:g})")
    parser.add_argument("--guests", type=int, default=defaults.guests,
                        help=f"simulated guests who come and go (default: {defaults.guests})")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--top", type=int, default=defaults.top,
                        help=f"object types shown per sample (default: {defaults.top})")
    parser.add_argument("--tracemalloc", type=int, nargs="?", const=10, default=0,
                        metavar="FRAMES", help="trace allocations (10 frames unless given)")
    parser.add_argument("--budget", type=float, default=defaults.budget,
                        help=f"MB/min after warm-up that is OVER BUDGET (default: {defaults.budget:g})")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="freeze the collector as `wsconsole serve` does")
    parser.add_argument("--gc-thaw-after", type=int, default=defaults.gc_thaw_after,
                        metavar="CLOSES", help="with --gc-freeze: thaw after this many closes "
                        "(default: 0, never)")
    args = parser.parse_args(argv)
    config = SoakConfig(**vars(args))

    def out(line: str) -> None:
        print(line, flush=True)

    # As in `wsconsole demo`: nothing logged over the (headless) console.
    with logging_silenced():
        asyncio.run(run_soak(config, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
