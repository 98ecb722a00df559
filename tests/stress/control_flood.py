"""An operators' flood on the control plane, while a public echo canary measures.

Run it from the repository root (it starts ``wsconsole serve`` on loopback,
ports 0, and stops it at the end)::

    .venv/bin/python tests/stress/control_flood.py                 # limits off, then on
    .venv/bin/python tests/stress/control_flood.py --connections 20 --requests 1000 --only on
    .venv/bin/python tests/stress/control_flood.py --server-python ../main/.venv/bin/python \
        --only unflagged                                           # a version from before

K control connections (``--connections``, half with the operator token and
half with the read-only one) each pipeline M ``stats`` requests
(``--requests``) from a separate, niced process of lean clients, while one
public client echoes a small message every 5 ms. It prints the canary's p50,
p99 and max before and during the flood, the echoes over 100 ms, the
server's CPU, and how the flood's requests were answered (served,
``rate_limited``, connections refused).

``--only off`` runs the server with the control plane's shared limits off
(``--control-max-connections 0 --control-token-rate 0 --control-total-rate 0
--control-loop-share 0``; the turns and the small receive buffer stay);
``--only on`` with the defaults; ``--only unflagged`` with no such flags (for
``--server-python``, another checkout's interpreter, from before them);
without ``--only``, off then on. Exits 1 only if the server died.

Must never reach beyond loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from websockets.protocol import OPEN, Protocol, Side

from tests.stress.flood_support import (
    FLOOD_OPERATOR_TOKEN,
    FLOOD_READ_ONLY_TOKEN,
    EchoCanary,
    FloodServer,
)
from wsconsole.server import wire

__all__ = ["main", "run_flood"]

LIMITS_OFF = ["--control-max-connections", "0", "--control-token-rate", "0",
              "--control-total-rate", "0", "--control-loop-share", "0"]
"""``wsconsole serve`` flags that turn the control plane's shared limits off."""

LIMIT_NAMES = {"on": "on (defaults)", "off": "off", "unflagged": "as the server has them"}

FLOOD_TIMEOUT = 120.0
"""Seconds the flood process may take before the run gives up on it."""


# The flood, in its own process: lean clients, so that the server is what
# is measured. Each connection's requests are serialized once (masked frames,
# by websockets' own sans-I/O protocol) and written in one go; replies are
# counted in the byte stream, never parsed: a full websockets client and
# json.loads per reply would cost more CPU than the server's answers.

_OK = b'"ok":true'
_LIMITED = b'"code":"rate_limited"'
_REPLY = b'"ok":'


def _request_stream(requests: int) -> bytes:
    protocol = Protocol(Side.CLIENT, state=OPEN)
    for request_id in range(requests):
        protocol.send_text(wire.encode_request(request_id, "stats", {}).encode())
    return b"".join(protocol.data_to_send())


async def _flood_connection(host: str, port: int, token: str, stream: bytes,
                            requests: int, outcomes: Counter[str]) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        outcomes[f"connect failed ({exc.strerror})"] += 1
        return
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n"
                      "\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            outcomes[f"connection refused (HTTP {status})"] += 1
            return
        writer.write(stream)
        replies = 0
        tail = b""
        while replies < requests:
            chunk = await reader.read(65536)
            if not chunk:
                outcomes["connection lost"] += 1
                return
            # The markers are short: keep enough of the last chunk to find one
            # split between two reads, and count each once.
            data = tail + chunk
            replies += data.count(_REPLY) - tail.count(_REPLY)
            outcomes["ok"] += data.count(_OK) - tail.count(_OK)
            outcomes["rate_limited"] += data.count(_LIMITED) - tail.count(_LIMITED)
            tail = data[-len(_LIMITED):]
        other = replies - outcomes["ok"] - outcomes["rate_limited"]
        if other > 0:
            outcomes["other errors"] += other
    except (OSError, asyncio.IncompleteReadError, ValueError):
        outcomes["connection lost"] += 1
    finally:
        writer.close()


async def _flood(url: str, connections: int, requests: int) -> dict[str, Any]:
    host, _, port = url.removeprefix("ws://").rpartition(":")
    outcomes: Counter[str] = Counter()
    tokens = [FLOOD_OPERATOR_TOKEN, FLOOD_READ_ONLY_TOKEN]
    stream = _request_stream(requests)
    started = time.perf_counter()
    await asyncio.gather(*(
        _flood_connection(host, int(port), tokens[index % 2], stream, requests, outcomes)
        for index in range(connections)))
    return {"seconds": time.perf_counter() - started,
            "outcomes": {name: count for name, count in outcomes.items() if count}}


def _flood_main(url: str, connections: int, requests: int) -> None:
    print(json.dumps(asyncio.run(_flood(url, connections, requests))))


# The driver


async def run_flood(*, connections: int, requests: int, limits: str,
                    python: str = sys.executable, baseline: float = 2.0) -> dict[str, Any]:
    """One run: a server, a canary, a baseline, then the flood; its figures."""
    with tempfile.TemporaryDirectory(prefix="wsconsole-flood-") as folder:
        async with FloodServer(Path(folder), LIMITS_OFF if limits == "off" else [],
                               python=python) as server:
            async with EchoCanary(server.url) as canary:
                await asyncio.sleep(baseline)
                canary.phase("during")
                flood_started = time.time()
                cpu_before = server.cpu_seconds()
                flood = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--flood-worker", server.control_url,
                    str(connections), str(requests), stdout=asyncio.subprocess.PIPE,
                    # The flood's own CPU must not be what slows the canary: on
                    # a small machine it competes with the server for the cores.
                    preexec_fn=lambda: os.nice(19))
                try:
                    async with asyncio.timeout(FLOOD_TIMEOUT):
                        out, _ = await flood.communicate()
                except TimeoutError:
                    flood.kill()
                    await flood.wait()
                    raise
                canary.phase("after")
                server_cpu = server.cpu_seconds() - cpu_before
                await asyncio.sleep(0.5)
            result = json.loads(out)

            return {
                "limits": limits,
                "before": canary.figures("before"),
                "during": canary.figures("during"),
                "flood": result,
                "server_cpu": server_cpu,
                "tracebacks": server.count("Traceback"),
                "alive": server.alive,
                "slow_echoes": [(end - flood_started, seconds)
                                for end, seconds in canary.slow_echoes if end >= flood_started],
                # With PYTHONASYNCIODEBUG=1, asyncio logs every callback over 100 ms.
                "slow_callbacks": [line.strip() for line in server.log
                                   if "Executing <" in line and " took " in line][:10],
            }


def _report(figures: dict[str, Any], connections: int, requests: int) -> str:
    flood = figures["flood"]
    outcomes = ", ".join(f"{name} {count}" for name, count in
                         sorted(flood["outcomes"].items(), key=lambda item: -item[1]))
    total = connections * requests
    return "\n".join([
        f"== control flood, limits {LIMIT_NAMES[figures['limits']]}: "
        f"{connections} connections x {requests} stats = {total} requests",
        figures["before"].line(),
        figures["during"].line(),
        f"flood    {flood['seconds']:.2f} s, server CPU {figures['server_cpu']:.2f} s "
        f"({figures['server_cpu'] / flood['seconds']:.0%}); {outcomes}",
        "slow     " + (", ".join(f"{seconds * 1000:.0f} ms at {at:+.1f} s"
                                 for at, seconds in figures["slow_echoes"][:8])
                       or "no echo") + " (echoes over 100 ms, from the flood's start)",
        *figures["slow_callbacks"],
        f"server   {'alive' if figures['alive'] else 'DEAD'}, "
        f"{figures['tracebacks']} tracebacks in its log",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--connections", type=int, default=20, metavar="K",
                        help="control connections (default: 20)")
    parser.add_argument("--requests", type=int, default=1000, metavar="M",
                        help="stats requests each connection pipelines (default: 1000)")
    parser.add_argument("--only", choices=["on", "off", "unflagged"],
                        help="run only with the limits on (defaults), or off, or with "
                        "no limit flags at all (for a version from before them)")
    parser.add_argument("--server-python", default=sys.executable, metavar="PYTHON",
                        help="interpreter that runs wsconsole serve (default: this one)")
    parser.add_argument("--flood-worker", nargs=3, metavar=("URL", "K", "M"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.flood_worker:
        url, connections, requests = args.flood_worker
        _flood_main(url, int(connections), int(requests))
        return 0
    runs = [args.only] if args.only else ["off", "on"]
    died = False
    for limits in runs:
        figures = asyncio.run(run_flood(connections=args.connections, requests=args.requests,
                                        limits=limits, python=args.server_python))
        print(_report(figures, args.connections, args.requests), flush=True)
        died = died or not figures["alive"]
    return 1 if died else 0


if __name__ == "__main__":
    sys.exit(main())
