"""The registry benchmark keeps working: a tiny run exits 0 and prints every section.

Timing is not asserted (figures on a shared machine are noise), only that the
old and the new implementation still answer every request the script sends.
Two sizes of a few hundred records and three requests of each kind run every
section (the flatness line needs two sizes) in under a second; ``--quick``
(1,000 and 2,000 records) would spend five seconds of the suite on figures
nobody reads.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_registry.py"

SMOKE_ARGS = ["--sizes", "100,200", "--reps", "3", "--seconds", "0", "--passes", "1"]
"""The smallest run that reaches every section: 100 records is the script's minimum."""

QUICK_TIMEOUT = 120
"""Seconds; the run takes about one on a two-core machine, so this is generous."""


@pytest.mark.timeout(QUICK_TIMEOUT + 30)
def test_quick_registry_benchmark_prints_every_section() -> None:
    """A tiny run exits 0 and prints requests, sampler, cold orders and membership lines."""
    completed = subprocess.run([sys.executable, str(SCRIPT), *SMOKE_ARGS],
                               capture_output=True, text=True, timeout=QUICK_TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for line in ("console: everyone, groups", "middle of sort=-msgs_in",
                 "topic=late (worst: follows the order)", "worst new p99 at 200:",
                 "sampler, every connection active", "first page in an order nobody asked for",
                 "register + unregister", "flatness"):
        assert line in out, line
