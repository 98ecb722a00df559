"""A real ``wsconsole serve`` process for the stress runs: tokens, URLs, its log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, Callable

__all__ = ["ServeProcess", "OPERATOR_TOKEN", "READ_ONLY_TOKEN"]

OPERATOR_TOKEN = "stress-operator-token-0123456789abcdef"
READ_ONLY_TOKEN = "stress-read-only-token-0123456789abcdef"


class ServeProcess:
    """``wsconsole serve`` on port 0 with a control listener on port 0.

    ``async with ServeProcess(folder, audit_log=...) as server`` starts it and
    reads where it listens; the exit sends SIGTERM and waits. Its stdout and
    stderr are drained into :attr:`log` all along (a full pipe would stall it).
    """

    def __init__(self, folder: Path, *, audit_log: str | None = None,
                 preexec_fn: Callable[[], Any] | None = None) -> None:
        self.folder = folder
        self.audit_log = audit_log
        self.preexec_fn = preexec_fn
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        """The public server's ``ws://`` URL."""
        self.control_url = ""
        """The control listener's ``ws://`` URL."""
        self.log: list[str] = []
        """Every line the process printed, stdout and stderr."""
        self._drains: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ServeProcess:
        tokens = []
        for name, token in (("token", OPERATOR_TOKEN), ("read-only-token", READ_ONLY_TOKEN)):
            path = self.folder / name
            path.write_text(token + "\n")
            os.chmod(path, 0o600)
            tokens.append(str(path))
        args = [sys.executable, "-m", "wsconsole.console.cli", "serve", "--port", "0",
                "--control-port", "0", "--token-file", tokens[0],
                "--read-only-token-file", tokens[1]]
        if self.audit_log is not None:
            args += ["--audit-log", self.audit_log]
        self.process = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            preexec_fn=self.preexec_fn)
        assert self.process.stdout is not None and self.process.stderr is not None
        async with asyncio.timeout(30):
            while not self.control_url:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("wsconsole serve did not start: "
                                       + (await self.process.stderr.read()).decode())
                self.log.append(line)
                if match := re.search(r"serving .* on (ws://\S+)", line):
                    self.url = match.group(1)
                if match := re.search(r"control plane on (ws://\S+)", line):
                    self.control_url = match.group(1)
        self._drains = [asyncio.create_task(self._drain(self.process.stdout)),
                        asyncio.create_task(self._drain(self.process.stderr))]
        return self

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.log.append(raw.decode(errors="replace"))

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def tracebacks(self) -> int:
        return sum("Traceback" in line for line in self.log)

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await self.process.wait()
        await asyncio.gather(*self._drains, return_exceptions=True)
