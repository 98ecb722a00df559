"""A handshake flood: idle and half-open TCP connections, while a public echo canary measures.

Run it from the repository root (it starts ``wsconsole serve`` on loopback,
ports 0, with a 1,024-descriptor limit, and stops it at the end)::

    .venv/bin/python tests/stress/handshake_flood.py                  # off, on, per-address
    .venv/bin/python tests/stress/handshake_flood.py --only per-address --idle 2024 --half-open 5000
    .venv/bin/python tests/stress/handshake_flood.py --server-python ../main/.venv/bin/python \\
        --only unflagged                                              # a version from before

Two phases after a baseline, each held for ``--hold`` seconds and then
released: ``--idle`` connections that connect and send nothing, then
``--half-open`` connections that send the first lines of a request and never
finish it. They come from a separate, niced process; the canary is one
public client in the driver that echoes a small message every 5 ms. It
prints, per phase, the canary's p50/p99/max and how the flood's connections
were answered (503 and closed, reset or closed without a word, still open
when released, refused at connect), and at the end the server's own counts
from ``/metrics`` (handshakes shed by limit, accept failures) and its log
(lines, "Too many open files", tracebacks).

``--only off`` runs the server with ``--max-handshakes 0
--max-handshakes-per-address 0``; ``--only on`` with the defaults, under
which a loopback client (the flood) is taken for a local proxy and held to
the total cap only; ``--only per-address`` with the defaults and
``--cap-loopback-per-address``, as a flood from one remote host meets them;
``--only unflagged`` with no such flags (for ``--server-python``, a version
from before them). Without ``--only``: off, on, per-address. Counts and
times are bounded; loopback only. Exits 1 only if the server died.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.stress.flood_support import HOST, EchoCanary, FloodServer

__all__ = ["main", "run_flood"]

FLAGS = {
    "off": ["--max-handshakes", "0", "--max-handshakes-per-address", "0"],
    "on": [],
    "per-address": ["--cap-loopback-per-address"],
    "unflagged": [],
}
"""``wsconsole serve`` flags of each mode."""
LIMIT_NAMES = {"on": "on (defaults: loopback held to the total)", "off": "off",
               "per-address": "on (defaults, loopback held per address too)",
               "unflagged": "as the server has them"}

MAX_CONNECTIONS = 20_000
"""No phase opens more than this many connections."""
MAX_HOLD = 60.0
"""No phase is held longer than this many seconds."""
CONNECT_CONCURRENCY = 200
"""Connects in flight at once from the flood process."""
HALF_A_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"


# The flood, in its own process: told what to open on stdin, it opens it,
# says so on stdout, holds until told to release, then reports.


class Attempts:
    """Connect attempts made so far; ``done`` is set once all ``count`` were made."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.done = asyncio.Event()
        if not count:
            self.done.set()

    def made(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


async def _hold(port: int, first_bytes: bytes, outcomes: Counter[str],
                release: asyncio.Event, connects: asyncio.Semaphore,
                attempts: Attempts) -> None:
    async with connects:
        try:
            async with asyncio.timeout(15):
                reader, writer = await asyncio.open_connection(HOST, port)
        except (OSError, TimeoutError) as exc:
            outcomes[f"refused at connect ({type(exc).__name__})"] += 1
            return
        finally:
            attempts.made()
    try:
        if first_bytes:
            writer.write(first_bytes)
        read = asyncio.ensure_future(reader.read(4096))
        released = asyncio.ensure_future(release.wait())
        await asyncio.wait([read, released], return_when=asyncio.FIRST_COMPLETED)
        if read.done():
            data = read.result() if not read.exception() else b""
            if data.startswith(b"HTTP/1.1 503"):
                outcomes["503, closed"] += 1
            elif data.startswith(b"HTTP/1.1 "):
                outcomes[f"HTTP {data[9:12].decode(errors='replace')}"] += 1
            else:
                outcomes["closed without a word"] += 1
            released.cancel()
        else:
            outcomes["still open when released"] += 1
            read.cancel()
    except OSError:
        outcomes["reset"] += 1
    finally:
        writer.close()


async def _worker() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        order = json.loads(line)
        outcomes: Counter[str] = Counter()
        release = asyncio.Event()
        connects = asyncio.Semaphore(CONNECT_CONCURRENCY)
        attempts = Attempts(order["count"])
        first_bytes = HALF_A_REQUEST if order["half_open"] else b""
        tasks = [asyncio.create_task(_hold(order["port"], first_bytes, outcomes, release,
                                           connects, attempts))
                 for _ in range(order["count"])]
        await attempts.done.wait()
        print(json.dumps({"opened": True}), flush=True)
        await stdin.readline()  # release
        release.set()
        await asyncio.gather(*tasks)
        print(json.dumps({"outcomes": dict(outcomes)}), flush=True)


def _worker_setup() -> None:
    os.nice(19)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# The driver


class Flood:
    """The flood process, driven phase by phase."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Flood:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--flood-worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, preexec_fn=_worker_setup,
            limit=1 << 20)
        return self

    async def _say(self, message: dict[str, Any] | None) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) if message else "release").encode()
                                 + b"\n")
        await self.process.stdin.drain()

    async def _hear(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        async with asyncio.timeout(MAX_HOLD + 120):
            return json.loads(await self.process.stdout.readline())

    async def phase(self, port: int, count: int, half_open: bool, hold: float,
                    canary: EchoCanary, name: str) -> tuple[float, dict[str, int]]:
        canary.phase(name)
        started = time.perf_counter()
        await self._say({"port": port, "count": count, "half_open": half_open})
        await self._hear()
        opened = time.perf_counter() - started
        await asyncio.sleep(hold)
        await self._say(None)
        outcomes = (await self._hear())["outcomes"]
        canary.phase("between")
        await asyncio.sleep(1.0)  # let the server close what was released
        return opened, outcomes

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            async with asyncio.timeout(30):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def _metric(text: str, name: str) -> dict[str, float]:
    found = {}
    for match in re.finditer(rf"^{name}(?:\{{(\w+)=\"([^\"]*)\"\}})? (\S+)$", text, re.M):
        found[match.group(2) or ""] = float(match.group(3))
    return found


async def _scrape(control_url: str) -> str:
    host, _, port = control_url.removeprefix("ws://").rpartition(":")
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                         .encode())
            data = await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        return ""
    return data.partition(b"\r\n\r\n")[2].decode(errors="replace")


async def run_flood(*, idle: int, half_open: int, hold: float, limits: str, nofile: int,
                    python: str = sys.executable, baseline: float = 2.0) -> dict[str, Any]:
    """One run: a server, a canary, a baseline, the idle phase, the half-open phase."""
    idle, half_open = min(idle, MAX_CONNECTIONS), min(half_open, MAX_CONNECTIONS)
    hold = min(hold, MAX_HOLD)

    def limit_descriptors() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))

    with tempfile.TemporaryDirectory(prefix="wsconsole-flood-") as folder:
        async with FloodServer(Path(folder), FLAGS[limits],
                               python=python, preexec_fn=limit_descriptors) as server:
            phases = []
            async with EchoCanary(server.url) as canary, Flood() as flood:
                await asyncio.sleep(baseline)
                for name, count, half in (("idle", idle, False), ("half-open", half_open, True)):
                    if count:
                        opened, outcomes = await flood.phase(server.port, count, half, hold,
                                                             canary, name)
                        phases.append((name, count, opened, outcomes))
                canary.phase("after")
                await asyncio.sleep(1.0)
            metrics = await _scrape(server.control_url)
            return {
                "limits": limits,
                "canary": {name: canary.figures(name)
                           for name in ("before", "idle", "half-open", "after")},
                "phases": phases,
                "shed": _metric(metrics, "wsconsole_handshakes_shed_total"),
                "accept_errors": _metric(metrics, "wsconsole_accept_errors_total"),
                "log_lines": len(server.log),
                "too_many_open_files": server.count("Too many open files"),
                "tracebacks": server.count("Traceback"),
                "accept_lines": server.count("cannot accept connections"),
                "alive": server.alive,
            }


def _report(figures: dict[str, Any], nofile: int, hold: float) -> str:
    lines = [f"== handshake flood, limits {LIMIT_NAMES[figures['limits']]}, server open-file "
             f"limit {nofile}, each phase held {hold:g} s"]
    lines.append(figures["canary"]["before"].line())
    for name, count, opened, outcomes in figures["phases"]:
        said = ", ".join(f"{what} {n}" for what, n in
                         sorted(outcomes.items(), key=lambda item: -item[1]))
        lines.append(figures["canary"][name].line())
        lines.append(f"{'':<9}{count} connections opened in {opened:.1f} s: {said}")
    lines.append(figures["canary"]["after"].line())
    shed = figures["shed"]
    errors = {name: int(n) for name, n in figures["accept_errors"].items() if n}
    lines.append(
        "server   " + ("shed " + ", ".join(f"{limit} {int(n)}" for limit, n in shed.items())
                       if shed else "no shed metric")
        + f"; accept failures {errors or 0}; log: {figures['log_lines']} lines, "
        f"{figures['too_many_open_files']} 'Too many open files', "
        f"{figures['tracebacks']} tracebacks, {figures['accept_lines']} accept-failure lines; "
        + ("alive" if figures["alive"] else "DEAD"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--idle", type=int, default=2024, metavar="N",
                        help="idle connections of the first phase (default: 2024)")
    parser.add_argument("--half-open", type=int, default=5000, metavar="N",
                        help="half-open connections of the second phase (default: 5000)")
    parser.add_argument("--hold", type=float, default=5.0, metavar="S",
                        help="seconds each phase is held (default: 5, at most 60)")
    parser.add_argument("--nofile", type=int, default=1024, metavar="N",
                        help="the server's open-file limit (default: 1024)")
    parser.add_argument("--only", choices=list(FLAGS),
                        help="run one mode: off, on (the defaults), per-address (the "
                        "defaults, loopback held per address too), unflagged (no flags: "
                        "for a version from before them)")
    parser.add_argument("--server-python", default=sys.executable, metavar="PYTHON",
                        help="interpreter that runs wsconsole serve (default: this one)")
    parser.add_argument("--flood-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.flood_worker:
        asyncio.run(_worker())
        return 0
    died = False
    for limits in [args.only] if args.only else ["off", "on", "per-address"]:
        figures = asyncio.run(run_flood(idle=args.idle, half_open=args.half_open,
                                        hold=args.hold, limits=limits, nofile=args.nofile,
                                        python=args.server_python))
        print(_report(figures, args.nofile, min(args.hold, MAX_HOLD)), flush=True)
        died = died or not figures["alive"]
    return 1 if died else 0


if __name__ == "__main__":
    sys.exit(main())
