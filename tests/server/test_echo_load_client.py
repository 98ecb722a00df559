"""The C load client of the workers benchmark (tests/benchmarks/ws_echo_load.c)
compiles and echoes through a real server: handshake, masked frames, long
frames split across reads, and pings answered so keepalive keeps it open.

Skipped when there is no C compiler (the benchmark then falls back to the
Python client and says so).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import TIMEOUT
from wsconsole.server import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import ws_echo_load  # noqa: E402  (tests/benchmarks/)

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler")


async def echo(connection):
    async for message in connection:
        await connection.send(message)


async def run_client(binary: Path, port: int, *args: str) -> list[dict]:
    process = await asyncio.create_subprocess_exec(
        str(binary), "--port", str(port), *args, stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(TIMEOUT):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_the_c_load_client_echoes_through_a_real_server(tmp_path: Path) -> None:
    """100 short messages on 10 connections, 4 frames of 70,000 bytes (a 64-bit
    length, split across reads), then a round during which the server pings
    every 50 ms: every message comes back whole, every ping gets its pong."""
    binary, why_not = ws_echo_load.build(tmp_path)
    assert binary is not None, why_not
    async with serve(echo, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=0.5) as server:
        opened, short = await run_client(binary, server.port, "--connections", "10",
                                         "--window", "2", "--messages", "100")
        assert (opened["opened"], opened["failed"]) == (10, 0)
        assert short["echoed"] >= 100 and short["bad_frames"] == 0
        _, long = await run_client(binary, server.port, "--connections", "2", "--size",
                                   "70000", "--messages", "4")
        assert long["echoed"] >= 4 and long["bad_frames"] == 0
        _, pinged = await run_client(binary, server.port, "--connections", "2",
                                     "--duration", "0.3")
        assert pinged["pings"] > 0 and pinged["closed_by_server"] == 0
        assert pinged["open"] == 2 and pinged["messages"] > 0
