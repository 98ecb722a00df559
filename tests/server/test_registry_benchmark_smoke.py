"""The registry benchmark keeps working: a --quick run exits 0 and prints every section.

Timing is not asserted (figures on a shared machine are noise), only that the
old and the new implementation still answer every request the script sends.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_registry.py"

QUICK_TIMEOUT = 120
"""Seconds; --quick takes about ten on a two-core machine."""


@pytest.mark.timeout(QUICK_TIMEOUT + 30)
def test_quick_registry_benchmark_prints_every_section() -> None:
    """A --quick run exits 0 and prints requests, sampler, cold orders and membership lines."""
    completed = subprocess.run([sys.executable, str(SCRIPT), "--quick"],
                               capture_output=True, text=True, timeout=QUICK_TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for line in ("console: everyone, groups", "middle of sort=-msgs_in",
                 "topic=late (worst: follows the order)", "worst new p99 at 2,000",
                 "sampler, every connection active", "first page in an order nobody asked for",
                 "register + unregister", "flatness"):
        assert line in out, line
