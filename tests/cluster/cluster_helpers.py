"""Real clusters for the tests: a private redis-server and `wsconsole serve` nodes.

Everything is a real process: Redis on a Unix socket in a temporary folder
(no persistence, :class:`~wsconsole.server.cluster.redis_server.PrivateRedis`),
each node a ``wsconsole serve --redis ...`` subprocess, with short heartbeat
intervals so that suspect and gone take a second, not ten. The helpers are
synchronous (module-scoped fixtures start them once per test file); the
tests talk to the nodes with real websockets clients.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from websockets.asyncio.client import connect

from tests.helpers import TIMEOUT
from tests.server.control_helpers import Control

__all__ = [
    "TOKEN",
    "READ_ONLY_TOKEN",
    "SECRET",
    "HEARTBEAT",
    "GONE",
    "Node",
    "start_nodes",
    "operator",
    "user",
]

TOKEN = "cluster-operator-token-0123456789"
READ_ONLY_TOKEN = "cluster-read-only-token-0123456789"
SECRET = "cluster-secret-for-the-tests-0123456789abcdef"
HEARTBEAT = 0.2
"""Seconds between heartbeats in the tests (2 s by default)."""
SUSPECT = 0.6
GONE = 1.2
"""Seconds of silence before a node is gone in the tests."""

WSCONSOLE = [sys.executable, "-m", "wsconsole.console.cli"]
REPO = Path(__file__).resolve().parents[2]
APP = "tests.cluster.cluster_app:handler"
"""The nodes' application: echo, and ``tell:USER:TEXT`` sends across the cluster."""


class Node:
    """One ``wsconsole serve`` node process of a test cluster."""

    def __init__(self, name: str, redis_url: str, folder: Path, *extra: str) -> None:
        self.name = name
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "secret").write_text(SECRET + "\n")
        (folder / "read-only-token").write_text(READ_ONLY_TOKEN + "\n")
        self.stderr_path = folder / f"{name}.stderr"
        self.audit_path = folder / f"{name}.audit"
        self.lines: list[str] = []
        self.public_url: str | None = None
        self.control_url: str | None = None
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [*WSCONSOLE, "serve", APP, "--port", "0", "--control-port", "0", "--token", TOKEN,
             "--read-only-token-file", str(folder / "read-only-token"),
             "--node", name, "--redis", redis_url, "--audit-log", str(self.audit_path),
             "--cluster-secret-file", str(folder / "secret"),
             "--heartbeat-interval", str(HEARTBEAT), "--suspect-after", str(SUSPECT),
             "--gone-after", str(GONE), "--reconnect-max", "0.3", "--log-level", "info",
             *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, cwd=REPO,
            stderr=open(self.stderr_path, "wb"), text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                if match := re.search(r"serving .* on (ws://\S+)", line):
                    self.public_url = match.group(1)
                if match := re.search(r"control plane on (ws://\S+)", line):
                    self.control_url = match.group(1)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_line(self, pattern: str, timeout: float = TIMEOUT * 2) -> str:
        """The first line of stdout matching ``pattern`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"{self.name} never printed {pattern!r}: "
                                         f"{''.join(self.lines)}{self.stderr()}")
                self._changed.wait(min(left, 0.1))

    def ready(self) -> Node:
        """Wait until it printed where it serves and that it joined (or not) the cluster."""
        # The cluster's line comes last: "node NAME joined cluster ..." or
        # "node NAME: Redis at ... unreachable".
        self.wait_line(r"^wsconsole: node \S+( joined cluster|: Redis at)")
        return self

    def audit(self) -> list[dict]:
        """The lines of its audit log."""
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = TIMEOUT * 2) -> int | None:
        """SIGTERM (after SIGCONT, in case it is paused), and wait; SIGKILL if need be."""
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_nodes(names: list[str], redis_url: str, folder: Path, *extra: str) -> list[Node]:
    """Start several nodes at once (in parallel) and wait until each is ready."""
    nodes = [Node(name, redis_url, folder, *extra) for name in names]
    try:
        for node in nodes:
            node.ready()
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


@asynccontextmanager
async def operator(node: Node, token: str = TOKEN) -> AsyncIterator[Control]:
    """A control connection to ``node``."""
    assert node.control_url is not None
    async with connect(node.control_url,
                       additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        yield Control(ws)


def user(node: Node, name: str, path: str = "/", **query: str) -> Any:
    """A client of ``node``'s public server as user ``name``."""
    assert node.public_url is not None
    extra = "".join(f"&{key}={value}" for key, value in query.items())
    return connect(f"{node.public_url}{path}?user={name}{extra}")

