"""``cluster_bench_app`` with a timeline: ``bench_trace_cluster.py``'s nodes.

Loaded by ``wsconsole serve tests.benchmarks.cluster_trace_app:handler``.
With ``WSCONSOLE_TRACE_DIR`` set, the cluster methods a ``list`` goes
through are wrapped to stamp ``time.monotonic()`` (one clock for every
process of the machine) on entry (``name>``) and exit (``name<``), and the
stamps are written to ``WSCONSOLE_TRACE_DIR/PID.json`` when the process
exits. The wrappers cost about 1 us a call: a traced page is 10-20 % slower.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cluster_bench_app import handler  # noqa: E402,F401  (the nodes' application)

from wsconsole.server.cluster import broker, fleet  # noqa: E402

__all__ = ["handler"]

STAMPS: list[tuple[float, str]] = []
SYNC = ("_on_payload", "_local_page", "_own_page", "_merged", "_seal", "_unseal",
        "_local_op")
ASYNC = ("_act_now", "list", "_scatter", "_complete_pages")


def _wrap(owner: Any, name: str, coroutine: bool) -> None:
    original = getattr(owner, name)
    stamp, now = STAMPS.append, time.monotonic

    if coroutine:
        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            stamp((now(), name + ">"))
            try:
                return await original(*args, **kwargs)
            finally:
                stamp((now(), name + "<"))
    else:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            stamp((now(), name + ">"))
            try:
                return original(*args, **kwargs)
            finally:
                stamp((now(), name + "<"))
    setattr(owner, name, timed)


if folder := os.environ.get("WSCONSOLE_TRACE_DIR"):
    for method in SYNC:
        _wrap(fleet.ClusterFleet, method, False)
    for method in ASYNC:
        _wrap(fleet.ClusterFleet, method, True)
    _wrap(broker.Broker, "publish", True)

    @atexit.register
    def _write() -> None:
        Path(folder, f"{os.getpid()}.json").write_text(json.dumps(STAMPS))
