"""The benchmark scripts keep working: a tiny --quick run exits 0 and prints its ratios.

It asserts nothing about timing or budgets: figures on a shared CI machine are
noise; only that every section still runs is checked here, so the sizes are
the smallest that run every section (about a second each of CPU, where
``--quick`` alone takes three or four).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_server.py"

SMOKE_ARGS = ["--quick", "--connections", "20", "--clients", "2", "--messages", "50",
              "--rounds", "1"]
"""--quick with its sizes cut down further: every section still runs once."""

QUICK_TIMEOUT = 90
"""Seconds; a smoke run takes a few on a two-core machine, so this is generous."""


@pytest.mark.timeout(QUICK_TIMEOUT + 30)
def test_quick_benchmark_exits_zero_and_prints_ratios() -> None:
    """A tiny run exits 0 and prints the throughput, CPU and memory ratio lines."""
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *SMOKE_ARGS],
        capture_output=True,
        text=True,
        timeout=QUICK_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "ratio echo throughput ours/bare:" in out
    assert "ratio server CPU per message ours/bare:" in out
    assert "ratio memory per connection ours-bare:" in out
    assert "ratio memory per connection ours-bare once a send was made:" in out
    assert "ratio send call to everyone ours/bare:" in out
    # prometheus_client is a dependency: the metrics section always runs.
    assert "ratio metrics render at" in out


BROADCAST_SCRIPT = SCRIPT.parent / "bench_broadcast.py"
BROADCAST_SMOKE_ARGS = ["--quick", "--deflate", "mixed", "--sizes", "20", "--rounds", "1",
                        "--warm-up", "1", "--paused-readers", "--parts"]
"""--quick at 20 connections and one round a phase (after one unmeasured), the
clients paused during each send, the parts timed too: every figure printed."""


@pytest.mark.timeout(QUICK_TIMEOUT + 30)
def test_quick_broadcast_benchmark_with_mixed_deflate_exits_zero_and_prints_ratios() -> None:
    """A tiny --quick --deflate mixed run (half the clients negotiate
    permessage-deflate, which the script checks) exits 0 and prints every
    figure and its ratios to the floor."""
    completed = subprocess.run(
        [sys.executable, str(BROADCAST_SCRIPT), *BROADCAST_SMOKE_ARGS],
        capture_output=True,
        text=True,
        timeout=QUICK_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for figure in ("bare: transport.write floor", "bare: websockets broadcast",
                   "ours: hub.send everyone", "ours: hub.send topic=room",
                   "part: protocol._state", "part: counts on the record"):
        assert figure in out
    assert "ratio hub.send / floor at 20:" in out
    assert "ratio broadcast / hub.send at 20:" in out
    assert "frames never arrived" not in out
