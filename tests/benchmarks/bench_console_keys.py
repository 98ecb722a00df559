"""What one key costs the console: CPU per key, layouts and footer rebuilds, before and after.

Run it from the repository root (it is not collected by pytest)::

    python tests/benchmarks/bench_console_keys.py                      # 10,000 records, 8 cycles a round
    python tests/benchmarks/bench_console_keys.py --baseline ca06bba   # that revision's console beside today's
    python tests/benchmarks/bench_console_keys.py --quick              # smoke run, a few seconds

``bench_console.py`` measures the console under churn, where a key waits for
a ``list`` round trip through a loaded server: on a busy machine how many
keys a round gets through depends on that wait more than on the console, and
so does the console's CPU share. This script measures the keys alone: in
one process per round, an embedded server (``wsconsole.server.serve`` with
its control listener on loopback) whose registry holds ``--records``
synthetic connection records (no sockets: ``cluster_bench_app.fill``), and
the real ``ConsoleApp`` headless (``run_test``, 120x40) attached to it.
Each cycle presses ``]``, ``[``, ``/``, types ``user=NAME``, presses Enter
and Esc, and waits after each for the screen to show what it asked for;
the figure of a step is the process's CPU time from the key to the screen
settled (the server's share, one ``list`` of a page, is in it: about a
millisecond). Also counted: layouts of the whole screen
(``Screen._refresh_layout``) and rebuilds of the footer (its recomposes:
Textual's ``Footer`` recomposed at each change of the keys; ``KeysFooter``
draws them in place since session 5, so today's console counts none), per step.

With ``--baseline REV`` the console of that git revision (its ``console/``,
against today's server) takes every other round, ABBA; the report is the
median of each step over every cycle of a variant, and the ratio
now/baseline. Loopback only; bounded in cycles and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[2]
STEPS = ("]", "[", "/", "type", "enter", "esc")
TERMINAL_SIZE = (120, 40)
STEP_TIMEOUT = 30.0


async def console_round(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from textual import events
    import textual.screen as textual_screen

    from cluster_bench_app import fill
    from wsconsole.console.app import ConsoleApp
    from wsconsole.console.client import ControlClient
    from wsconsole.console.widgets import KeysFooter
    from wsconsole.server import serve
    from wsconsole.server.config import ControlConfig

    counts = {"layouts": 0, "footer": 0}
    refresh_layout = textual_screen.Screen._refresh_layout

    def counted_layout(self: Any, *a: Any, **k: Any) -> Any:
        counts["layouts"] += 1
        return refresh_layout(self, *a, **k)

    textual_screen.Screen._refresh_layout = counted_layout  # type: ignore[method-assign]
    recompose = KeysFooter.recompose

    async def counted_recompose(self: Any) -> None:
        counts["footer"] += 1
        await recompose(self)

    KeysFooter.recompose = counted_recompose  # type: ignore[method-assign]

    async def echo(connection: Any) -> None:
        await connection.wait_closed()

    token = "bench-keys-token"
    control = ControlConfig(host="127.0.0.1", port=0, token=token)
    async with serve(echo, "127.0.0.1", 0, control=control) as server:
        fill(server.hub, args.records, args.seed)
        url = server.control.url
        app = ConsoleApp(lambda: ControlClient(url, token), url=url)
        names = sorted({r.user for r in list(server.hub.registry)[:500] if r.user})
        cost: dict[str, list[float]] = {step: [] for step in STEPS}
        layouts: dict[str, list[int]] = {step: [] for step in STEPS}
        footers: dict[str, list[int]] = {step: [] for step in STEPS}
        async with app.run_test(size=TERMINAL_SIZE) as pilot:
            main = app.main_screen

            def post(key: str, character: str | None) -> None:
                app.post_message(events.Key(key, character))

            async def step(name: str, keys: list[tuple[str, str | None]], done: Any) -> None:
                before = time.process_time()
                counted = dict(counts)
                for key, character in keys:
                    post(key, character)
                async with asyncio.timeout(STEP_TIMEOUT):
                    while not done():
                        await asyncio.sleep(0.002)
                    await pilot.pause()  # the frame that shows it, and what follows
                cost[name].append(time.process_time() - before)
                layouts[name].append(counts["layouts"] - counted["layouts"])
                footers[name].append(counts["footer"] - counted["footer"])

            async with asyncio.timeout(60):
                while main.view.page is None or not main.table.row_count:
                    await asyncio.sleep(0.05)
            await pilot.pause(args.warmup)
            settled = lambda: main.shown is main.view  # noqa: E731
            for cycle in range(args.cycles):
                page = main.view.page_number
                await step("]", [("right_square_bracket", "]")],
                           lambda: main.view.page_number == page + 1 and settled())
                await step("[", [("left_square_bracket", "[")],
                           lambda: main.view.page_number == page and settled())
                await step("/", [("slash", "/")], lambda: main.filter_box.has_focus)
                user = names[cycle % len(names)]
                text = f"user={user}"
                await step("type", [(c if c.isalnum() else _KEY_NAMES[c], c) for c in text],
                           lambda: main.filter_box.value == text)
                await step("enter", [("enter", "\r")],
                           lambda: main.view.filter.user == user and settled())
                await step("esc", [("escape", "\x1b")],
                           lambda: main.view.filter.empty and settled())
    return {"cost": cost, "layouts": layouts, "footer": footers}


_KEY_NAMES = {"=": "equals_sign", "-": "minus", "_": "underscore", ".": "full_stop"}


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
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as tmp:
        if args.baseline:
            base = _baseline_tree(args.baseline, Path(tmp) / "baseline")
            variants.insert(0, (f"base {args.baseline[:7]}",
                                {**os.environ, "PYTHONPATH": str(base)}))
        out(f"bench_console_keys: {args.records:,} records, {args.cycles} cycles a round, "
            f"{args.rounds} rounds; load average {os.getloadavg()[0]:.2f}")
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
        order = variants + variants[::-1]
        for index in range(args.rounds):
            name, env = order[index % len(order)]
            child = subprocess.run(
                [sys.executable, __file__, "--role", "console", "--records", str(args.records),
                 "--cycles", str(args.cycles), "--warmup", str(args.warmup),
                 "--seed", str(args.seed)],
                env=env, cwd=REPO, capture_output=True, text=True,
                timeout=120 + args.cycles * len(STEPS) * STEP_TIMEOUT)
            if child.returncode:
                raise RuntimeError(f"round {index + 1} ({name}) failed:\n{child.stderr}")
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            rounds[name].append(figures)
            out(f"round {index + 1} ({name}): CPU per cycle "
                f"{sum(statistics.median(v) for v in figures['cost'].values()) * 1000:.0f} ms, "
                f"load average {os.getloadavg()[0]:.2f}")
    names = list(rounds)
    header = f"{'step':<8}" + "".join(f"{n + ' CPU ms':>18}{'layouts':>9}{'footer':>8}"
                                      for n in names)
    if len(names) == 2:
        header += f"{'CPU now/base':>14}"
    out("")
    out(header)
    totals = {n: 0.0 for n in names}
    for step in STEPS:
        line = f"{step:<8}"
        medians = []
        for n in names:
            cost = statistics.median(c for r in rounds[n] for c in r["cost"][step]) * 1000
            layouts = statistics.mean(c for r in rounds[n] for c in r["layouts"][step])
            footer = statistics.mean(c for r in rounds[n] for c in r["footer"][step])
            totals[n] += cost
            medians.append(cost)
            line += f"{cost:>18.1f}{layouts:>9.1f}{footer:>8.1f}"
        if len(names) == 2:
            line += f"{medians[1] / medians[0]:>14.2f}"
        out(line)
    line = f"{'cycle':<8}" + "".join(f"{totals[n]:>18.1f}{'':>17}" for n in names)
    if len(names) == 2:
        line += f"{totals[names[1]] / totals[names[0]]:>14.2f}"
    out(line)
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("parent", "console"), default="parent",
                        help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=8, help="key cycles a round")
    parser.add_argument("--rounds", type=int, help="rounds (2; with --baseline ABBA, 4)")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the console of this git revision")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 300 records, 2 cycles, one round")
    args = parser.parse_args(argv)
    if args.role == "console":
        from wsconsole.console.tui_command import logging_silenced

        with logging_silenced():
            print(json.dumps(asyncio.run(console_round(args))), flush=True)
        return 0
    if args.quick:
        args.records, args.cycles = 300, 2
        args.rounds = args.rounds or 1
    args.rounds = args.rounds or (4 if args.baseline else 2)
    run(args, lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
