"""``wsconsole demo --nodes N``: the demo of cluster mode, on this machine alone.

A private ``redis-server`` on a Unix socket in a temporary folder
(:class:`~wsconsole.server.cluster.redis_server.PrivateRedis`, the helper the
cluster tests use), N ``wsconsole serve`` node processes (``demo-1`` ..
``demo-N``) of one cluster, simulated clients spread over them (the guests
split between the nodes, the slow reader on the first), and the console
attached to ``demo-1``: it sees every node. When the console quits, the
simulators, the nodes and Redis stop, and the folder (token, secret, Redis'
socket) is removed. The token and the secret are random, written only in
that folder (mode 0700), never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .client import ControlClient
from .simulator import Simulator
from .workers import spawn_in_own_group

if TYPE_CHECKING:  # pragma: no cover
    from .app import ConsoleApp

__all__ = ["run_cluster_demo", "demo_node_names", "DEMO_CLUSTER"]

DEMO_CLUSTER = "demo"
"""The demo's cluster name."""
START_TIMEOUT = 30.0
"""Seconds for a node to start and join (a busy machine starts Python slowly)."""
_HEARTBEAT = "0.5"
"""The nodes' heartbeat interval: a node stopped in the demo turns suspect in about a second."""


def demo_node_names(count: int) -> list[str]:
    """``demo-1`` .. ``demo-N``."""
    return [f"demo-{index}" for index in range(1, count + 1)]


class _DemoNode:
    """One ``wsconsole serve`` process of the demo, and what it printed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: asyncio.subprocess.Process | None = None
        self.public_url: str | None = None
        self.control_url: str | None = None
        self.lines: list[str] = []
        self._drain_task: asyncio.Task[None] | None = None

    async def start(self, folder: Path, redis_url: str) -> None:
        # Not the terminal's process group: the console's ctrl+c is the
        # console's, and the nodes are stopped by us, in order.
        self.process = await spawn_in_own_group(
            sys.executable, "-m", "wsconsole.console.cli", "serve", "--node", self.name,
            "--port", "0", "--control-port", "0", "--token-file", str(folder / "token"),
            "--redis", redis_url, "--cluster", DEMO_CLUSTER,
            "--cluster-secret-file", str(folder / "secret"),
            "--heartbeat-interval", _HEARTBEAT, "--allow-tap",
            "--slow-consumer-limit", str(1024 * 1024),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            while line := (await self.process.stdout.readline()).decode(errors="replace"):
                self.lines.append(line)
                if match := re.search(r"serving .* on (ws://\S+)", line):
                    self.public_url = match.group(1)
                if match := re.search(r"control plane on (ws://\S+)", line):
                    self.control_url = match.group(1)
                if re.match(r"wsconsole: node \S+ joined cluster", line):
                    break
            else:
                from wsconsole.server.errors import ConfigError

                raise ConfigError(f"demo node {self.name} did not start: "
                                  + "".join(self.lines[-5:]).strip())
        # Keep reading, so that a full pipe never blocks the node; lines are dropped.
        self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while await self.process.stdout.readline():
            pass

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:  # pragma: no cover - a node that does not stop
            process.kill()
            await process.wait()


def run_cluster_demo(
    args: argparse.Namespace, run: Callable[[ConsoleApp], Awaitable[Any]] | None
) -> Awaitable[int]:
    """The coroutine of ``demo --nodes N`` (run by ``run_demo`` on its loop)."""
    return _cluster_demo(args, run)


async def _cluster_demo(
    args: argparse.Namespace, run: Callable[[ConsoleApp], Awaitable[Any]] | None
) -> int:
    from wsconsole.server.cluster.redis_server import PrivateRedis, find_redis_server

    from .app import ConsoleApp

    find_redis_server()  # RedisServerMissing: one line saying how to install it
    names = demo_node_names(args.nodes)
    with tempfile.TemporaryDirectory(prefix="wsconsole-demo-") as folder_name:
        folder = Path(folder_name)  # mode 0700: mkdtemp's
        token = secrets.token_urlsafe(32)
        for name, value in (("token", token), ("secret", secrets.token_hex(32))):
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(value + "\n")
        redis = PrivateRedis(folder / "redis")
        await asyncio.to_thread(redis.start)
        nodes = [_DemoNode(name) for name in names]
        simulators: list[Simulator] = []
        try:
            # At once: most of a node's start is Python importing, which
            # overlaps well on several cores.
            await asyncio.gather(*(node.start(folder, redis.url) for node in nodes))
            guests = [args.guests // len(nodes) + (1 if index < args.guests % len(nodes) else 0)
                      for index in range(len(nodes))]
            for index, node in enumerate(nodes):
                assert node.public_url is not None
                simulator = Simulator(node.public_url, seed=args.seed + index,
                                      guests=guests[index],
                                      slow_reader=index == 0 and not args.no_slow_reader)
                simulator.start()
                simulators.append(simulator)
            url = nodes[0].control_url
            assert url is not None
            app = ConsoleApp(lambda: ControlClient(url, token), url=url)

            async def watch_attached() -> None:
                # The node the console is attached to has exited (shut down from
                # the console): nothing to reconnect to, as in the one-node demo.
                assert nodes[0].process is not None
                await nodes[0].process.wait()
                if app.is_running:
                    app.call_later(app.server_stopped,
                                   f"The demo's node {nodes[0].name}, the one this console "
                                   "is attached to, has stopped (it was shut down). Quit, "
                                   "or stay to read the last data.")

            watcher = asyncio.get_running_loop().create_task(watch_attached())
            try:
                await (app.run_async() if run is None else run(app))
            finally:
                watcher.cancel()
        finally:
            for simulator in simulators:
                await simulator.stop()
            # The attached node last, as a cluster shutdown does.
            for node in reversed(nodes):
                await node.stop()
            await asyncio.to_thread(redis.stop)
    return 0
