"""What one page costs the console when most of its cells change: CPU per page, before and after.

Run it from the repository root (it is not collected by pytest)::

    python tests/benchmarks/bench_console_page.py                      # 10,000 records, 40 pages a round
    python tests/benchmarks/bench_console_page.py --baseline 1a8c3a2   # that revision's console beside today's
    python tests/benchmarks/bench_console_page.py --quick              # smoke run, a few seconds

``bench_console.py`` measures the console under real churn, where how many
pages get through depends on the machine and the server. This script
measures a page alone: in one process per round, an embedded server
(``wsconsole.server.serve`` with its control listener on loopback) whose
registry holds ``--records`` synthetic connection records (no sockets:
``cluster_bench_app.fill``), and the real ``ConsoleApp`` headless
(``run_test``, 120x40) attached to it, with a clock of its own. Before each
page the clock moves one second (so every row's age and idle time change, as
under churn) and a tenth of the first page's records get traffic (their
counters and idle times change); the console then asks for its page, and the
figure is the process's CPU time from the request to the screen settled
(the server's share, one ``list`` of a page, is in it: about a millisecond).
Also counted: layouts of the whole screen (``Screen._refresh_layout``).

With ``--baseline REV`` the console of that git revision (its ``console/``,
against today's server) takes every other round, ABBA; the report is the
median over every page of a variant, and the ratio now/baseline. Loopback
only; bounded in pages and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[2]
TERMINAL_SIZE = (120, 40)
PAGE_TIMEOUT = 30.0
START = 1_700_000_000.0 + 600
"""The console's clock at the start: the synthetic records connected from
1_700_000_000 on, so the first page's ages are about ten minutes."""


async def console_round(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import textual.screen as textual_screen

    from cluster_bench_app import fill
    from wsconsole.console.app import ConsoleApp
    from wsconsole.console.client import ControlClient
    from wsconsole.server import serve
    from wsconsole.server.config import ControlConfig

    layouts = [0]
    refresh_layout = textual_screen.Screen._refresh_layout

    def counted_layout(self: Any, *a: Any, **k: Any) -> Any:
        layouts[0] += 1
        return refresh_layout(self, *a, **k)

    textual_screen.Screen._refresh_layout = counted_layout  # type: ignore[method-assign]

    async def echo(connection: Any) -> None:
        await connection.wait_closed()

    token = "bench-page-token"
    now = [START]
    control = ControlConfig(host="127.0.0.1", port=0, token=token)
    async with serve(echo, "127.0.0.1", 0, control=control) as server:
        fill(server.hub, args.records, args.seed)
        # The oldest first, as the console's default sort: its first page.
        oldest = sorted(server.hub.registry, key=lambda r: r.connected_at)[:300]
        url = server.control.url
        # No poll, no stats samples: the pages this script asks for, and nothing else.
        app = ConsoleApp(lambda: ControlClient(url, token), url=url, clock=lambda: now[0],
                         poll_interval=3600, stats_interval=3600, min_refresh_interval=0.0)
        rng = random.Random(args.seed)
        cost: list[float] = []
        page_layouts: list[int] = []
        async with app.run_test(size=TERMINAL_SIZE) as pilot:
            main = app.main_screen
            async with asyncio.timeout(60):
                while main.view.page is None or not main.table.row_count:
                    await asyncio.sleep(0.05)
            await pilot.pause(args.warmup)
            for _ in range(args.pages):
                now[0] += 1.0
                for record in rng.sample(oldest, len(oldest) // 10):
                    record.msgs_in += 1
                    record.bytes_in += 30
                    record.msgs_out += 1
                    record.bytes_out += 30
                    record.last_activity = now[0]
                await asyncio.sleep(0.05)
                page = main.view.page
                counted = layouts[0]
                before = time.process_time()
                main.refresh_connections()
                async with asyncio.timeout(PAGE_TIMEOUT):
                    while main.view.page is page:
                        await asyncio.sleep(0.001)
                    await pilot.pause()  # the frame that shows it, and what follows
                cost.append(time.process_time() - before)
                page_layouts.append(layouts[0] - counted)
    return {"cost": cost, "layouts": page_layouts}


def _baseline_tree(rev: str, into: Path) -> Path:
    """``console/`` of ``rev`` as ``wsconsole.console`` in a folder for PYTHONPATH."""
    package = into / "wsconsole"
    package.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "console"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(package)], input=archive, check=True)
    return into


def run(args: argparse.Namespace, out: Any = print) -> dict[str, list[dict[str, Any]]]:
    variants: list[tuple[str, dict[str, str]]] = [("now", dict(os.environ))]
    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp:
        if args.baseline:
            base = _baseline_tree(args.baseline, Path(tmp) / "baseline")
            variants.insert(0, (f"base {args.baseline[:7]}",
                                {**os.environ, "PYTHONPATH": str(base)}))
        out(f"bench_console_page: {args.records:,} records, {args.pages} pages a round, "
            f"{args.rounds} rounds; load average {os.getloadavg()[0]:.2f}")
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
        order = variants + variants[::-1]
        for index in range(args.rounds):
            name, env = order[index % len(order)]
            child = subprocess.run(
                [sys.executable, __file__, "--role", "console", "--records", str(args.records),
                 "--pages", str(args.pages), "--warmup", str(args.warmup),
                 "--seed", str(args.seed)],
                env=env, cwd=REPO, capture_output=True, text=True,
                timeout=120 + args.pages * PAGE_TIMEOUT)
            if child.returncode:
                raise RuntimeError(f"round {index + 1} ({name}) failed:\n{child.stderr}")
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            rounds[name].append(figures)
            out(f"round {index + 1} ({name}): CPU per page "
                f"{statistics.median(figures['cost']) * 1000:.1f} ms, "
                f"load average {os.getloadavg()[0]:.2f}")
    out("")
    medians = {}
    for name in rounds:
        costs = sorted(c for r in rounds[name] for c in r["cost"])
        layouts = statistics.mean(n for r in rounds[name] for n in r["layouts"])
        medians[name] = statistics.median(costs) * 1000
        out(f"{name:>14}: CPU per page p50 {medians[name]:.1f} ms, "
            f"p90 {costs[int(0.9 * len(costs))] * 1000:.1f} ms, layouts per page {layouts:.2f}")
    if len(medians) == 2:
        base, now = medians.values()
        out(f"{'now/base':>14}: {now / base:.2f}")
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("parent", "console"), default="parent",
                        help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=40, help="pages a round")
    parser.add_argument("--rounds", type=int, help="rounds (2; with --baseline ABBA, 4)")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the console of this git revision")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1,000 records, 5 pages, one round")
    args = parser.parse_args(argv)
    if args.role == "console":
        from wsconsole.console.tui_command import logging_silenced

        with logging_silenced():
            print(json.dumps(asyncio.run(console_round(args))), flush=True)
        return 0
    if args.quick:
        args.records, args.pages = 1_000, 5
        args.rounds = args.rounds or 1
    args.rounds = args.rounds or (4 if args.baseline else 2)
    run(args, lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
