"""The soak script keeps working: a few seconds of it exits 0 and prints its figures.

Nothing about memory is asserted here (seconds say nothing about growth);
``tests/console/test_memory_bounds.py`` and ``tests/server/test_memory_bounds.py``
hold the bounds. This only proves that the long run an operator relies on
still runs against today's server and console.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"

SMOKE_TIMEOUT = 90
"""Seconds; the run itself is under 1 s, starting the console takes a few on a busy machine."""


@pytest.mark.timeout(SMOKE_TIMEOUT + 30)
def test_short_soak_exits_zero_and_prints_growth_and_what_is_left() -> None:
    """A soak of under a second with the console prints samples (the baseline among
    them), the growth line and an empty server."""
    # 0.9 s, a sample every 0.3 s, the first of them the baseline: every line
    # of a long run is printed at least once.
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--minutes", "0.015", "--interval", "0.3",
         "--warmup", "0.005", "--churn", "10"],
        capture_output=True, text=True, timeout=SMOKE_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "RSS MB" in out and "(baseline)" in out
    assert "growth after warm-up:" in out
    assert "loop stalls after warm-up: longest" in out and "load average" in out
    assert "gone after one full collection" in out
    assert "after every client left, the server holds: records 0, user buckets 0, " \
           "path buckets 0, topic buckets 0, hub tasks 0, event listeners 0" in out
