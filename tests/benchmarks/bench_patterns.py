"""Filter patterns (``user=guest*``) against exact names, at 10,000 and 100,000 connections.

Run it from the repository root (it is not collected by pytest)::

    python tests/benchmarks/bench_patterns.py                 # 10k and 100k records
    python tests/benchmarks/bench_patterns.py --sizes 10000   # one size
    python tests/benchmarks/bench_patterns.py --quick         # smoke run, a second

Pure: synthetic records in a registry, no sockets. Every connection is its
own user (``u0`` ... ``uN``: the most names a pattern can have to look at)
and one of five paths. Each request is what ``list`` does with the registry
(the page of 100 and the rows' summaries), timed in CPU time with the
collector held off, and printed as p50 / p99 / max. Then what keeping the
names sorted costs: register and unregister of a connection whose user is
new (a name in, a name out) against one whose user is not.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any, Callable

from wsconsole.server.registry import ConnectionRecord, ConnectionRegistry

REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("user=u12345 (exact)", {"user": "u12345"}),
    ("user=u1* (prefix)", {"user": "u1*"}),
    ("user=u1* -msgs_in", {"user": "u1*", "sort": "-msgs_in"}),
    ("user=u12* -msgs_in", {"user": "u12*", "sort": "-msgs_in"}),
    ("user=*99 (every name)", {"user": "*99"}),
    ("user=u?2 (one range)", {"user": "u?2"}),
    ("path=/api/* -msgs_in", {"path": "/api/*", "sort": "-msgs_in"}),
    ("path=/chat (exact) -msgs_in", {"path": "/chat", "sort": "-msgs_in"}),
]
PATHS = ("/chat", "/feed", "/api/v1", "/api/v2", "/late")


def build(size: int) -> ConnectionRegistry:
    registry = ConnectionRegistry()
    for n in range(size):
        record = ConnectionRecord(f"{n:010x}", node="bench", user=f"u{n}",
                                  path=PATHS[n % len(PATHS)], connected_at=float(n))
        record.msgs_in = (n * 7919) % 1000
        registry.add(record)
    registry.sample_all(1.0)
    return registry


def timed(function: Callable[[], Any]) -> float:
    gc.disable()
    try:
        started = time.process_time()
        function()
        return time.process_time() - started
    finally:
        gc.enable()


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:7.3f} ms  p99 {p99 * 1000:7.3f} ms  "
            f"max {ordered[-1] * 1000:7.3f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="1,000 records, 20 reps")
    args = parser.parse_args(argv)
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    reps = 20 if args.quick else args.reps
    for size in sizes:
        registry = build(size)
        gc.freeze()
        print(f"\n{size:,} connections, {size:,} users, {len(PATHS)} paths; "
              f"a page of 100, {reps} requests each")
        for label, request in REQUESTS:
            registry.query(**request, limit=100)  # the order's runs sorted once

            def page(request: dict[str, Any] = request) -> None:
                result = registry.query(**request, limit=100)
                for record in result.records:
                    record.summary()

            samples = [timed(page) for _ in range(reps)]
            total = registry.query(**request, limit=1).total
            print(f"  {label:30} {summary(samples)}   ({total:,} match)")
        new_user = [0]

        def churn(user: str) -> None:
            record = ConnectionRecord("ffffffffff", node="bench", user=user, path="/chat",
                                      connected_at=float(size))
            registry.add(record)
            registry.remove(record.id)

        def churn_new() -> None:
            new_user[0] += 1
            churn(f"new-{new_user[0]}")

        print("  register + unregister, user new:      "
              + summary([timed(churn_new) for _ in range(reps * 5)]))
        print("  register + unregister, user existing: "
              + summary([timed(lambda: churn("u7")) for _ in range(reps * 5)]))
        gc.unfreeze()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
