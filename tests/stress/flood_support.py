"""What the flood runs share: a ``wsconsole serve`` process, an echo canary, percentiles.

The server runs in its own process, the flood in another and the canary in
the driver's, so that the canary measures what a public client of a busy
server sees, not the CPU of the flood's own clients. Loopback only.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

__all__ = [
    "HOST",
    "FLOOD_OPERATOR_TOKEN",
    "FLOOD_READ_ONLY_TOKEN",
    "FloodServer",
    "EchoCanary",
    "LatencyFigures",
]

HOST = "127.0.0.1"
"""A flood must never reach beyond this machine."""

FLOOD_OPERATOR_TOKEN = "flood-operator-token-0123456789abcdef"
FLOOD_READ_ONLY_TOKEN = "flood-read-only-token-0123456789abcdef"


class FloodServer:
    """``wsconsole serve`` (the demo application: echo) on loopback, ports 0.

    ``async with FloodServer(folder, args) as server`` starts it and reads its
    URLs; the exit sends SIGTERM and waits. stdout and stderr are drained into
    :attr:`log` all along (a full pipe would stall the server).
    """

    def __init__(self, folder: Path, args: Sequence[str] = (), *,
                 python: str = sys.executable,
                 preexec_fn: Callable[[], Any] | None = None,
                 log_level: str = "warning") -> None:
        self.folder = folder
        self.args = list(args)
        self.python = python
        self.preexec_fn = preexec_fn
        self.log_level = log_level
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        """The public server's ``ws://`` URL."""
        self.control_url = ""
        """The control listener's ``ws://`` URL."""
        self.log: list[str] = []
        """Every line the process printed, stdout and stderr."""
        self._drains: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> FloodServer:
        files = []
        for name, token in (("token", FLOOD_OPERATOR_TOKEN),
                            ("read-only-token", FLOOD_READ_ONLY_TOKEN)):
            path = self.folder / name
            path.write_text(token + "\n")
            os.chmod(path, 0o600)
            files.append(str(path))
        command = [self.python, "-m", "wsconsole.console.cli", "serve",
                   "--host", HOST, "--port", "0", "--control-host", HOST,
                   "--control-port", "0", "--token-file", files[0],
                   "--read-only-token-file", files[1], "--log-level", self.log_level,
                   *self.args]
        self.process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            preexec_fn=self.preexec_fn)
        assert self.process.stdout is not None and self.process.stderr is not None
        self._drains = [asyncio.create_task(self._drain(self.process.stderr))]
        async with asyncio.timeout(60):
            while not (self.url and self.control_url):
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    await asyncio.sleep(0.1)  # let stderr's drain catch the reason
                    raise RuntimeError("wsconsole serve did not start:\n" + "".join(self.log))
                self.log.append(line)
                if match := re.search(r"serving .* on (ws://\S+)", line):
                    self.url = match.group(1)
                if match := re.search(r"control plane on (ws://\S+)", line):
                    self.control_url = match.group(1)
        self._drains.append(asyncio.create_task(self._drain(self.process.stdout)))
        return self

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.log.append(raw.decode(errors="replace"))

    @property
    def port(self) -> int:
        return int(self.url.rpartition(":")[2])

    def cpu_seconds(self) -> float:
        """User and system CPU time the server process has used so far (Linux)."""
        assert self.process is not None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def count(self, text: str) -> int:
        """Lines of the server's output that contain ``text``."""
        return sum(text in line for line in self.log)

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        await asyncio.gather(*self._drains, return_exceptions=True)


class LatencyFigures:
    """Round-trip times of one phase, in seconds."""

    def __init__(self, name: str, samples: list[float], failures: int = 0) -> None:
        self.name = name
        self.samples = sorted(samples)
        self.failures = failures

    def quantile(self, q: float) -> float:
        if not self.samples:
            return float("nan")
        index = min(len(self.samples) - 1, max(0, round(q * (len(self.samples) - 1))))
        return self.samples[index]

    @property
    def p50(self) -> float:
        return self.quantile(0.50)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    @property
    def max(self) -> float:
        return self.samples[-1] if self.samples else float("nan")

    def line(self) -> str:
        return (f"{self.name:<8} echo p50 {self.p50 * 1000:7.2f} ms   p99 {self.p99 * 1000:7.2f} ms"
                f"   max {self.max * 1000:7.2f} ms   ({len(self.samples)} echoes"
                + (f", {self.failures} failed" if self.failures else "") + ")")


class EchoCanary:
    """One public client that echoes a small message every ``interval`` seconds
    and keeps the round-trip times, phase by phase (:meth:`phase`)."""

    def __init__(self, url: str, interval: float = 0.005) -> None:
        self.url = url
        self.interval = interval
        self._phase = "before"
        self._samples: dict[str, list[float]] = {}
        self._failures: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.slow = 0.1
        self.slow_echoes: list[tuple[float, float]] = []
        """(wall-clock end, seconds) of every echo slower than ``slow``."""

    async def __aenter__(self) -> EchoCanary:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(30):
            await self._connected.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def phase(self, name: str) -> None:
        """Samples from now on belong to phase ``name``."""
        self._phase = name

    def figures(self, name: str) -> LatencyFigures:
        return LatencyFigures(name, self._samples.get(name, []), self._failures.get(name, 0))

    async def _run(self) -> None:
        payload = "canary-0123456789"
        while True:
            try:
                async with connect(self.url, open_timeout=30, ping_interval=None) as ws:
                    self._connected.set()
                    while True:
                        phase = self._phase
                        started = time.perf_counter()
                        await ws.send(payload)
                        await ws.recv()
                        elapsed = time.perf_counter() - started
                        self._samples.setdefault(phase, []).append(elapsed)
                        if elapsed > self.slow:
                            self.slow_echoes.append((time.time(), elapsed))
                        await asyncio.sleep(self.interval)
            except (OSError, ConnectionClosed, TimeoutError):
                # A canary that cannot echo is a figure too; then it reconnects.
                self._failures[self._phase] = self._failures.get(self._phase, 0) + 1
                await asyncio.sleep(0.05)
