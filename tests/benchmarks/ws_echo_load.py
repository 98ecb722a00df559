"""Build and drive ``ws_echo_load.c``, the C echo load client of the benchmarks.

The C source beside this module is compiled at run time (``cc -O2``) into a
folder the caller owns; no binary is committed. :func:`build` returns None,
with the compiler's reason, when there is no C compiler or it fails: the
caller falls back to the Python client and says so.

:class:`EchoLoad` runs the client in ``--control`` mode: it opens its
connections at start and holds them; each :meth:`EchoLoad.echo` is one round
of a fixed duration, returned as the client's JSON figures (``rate``,
``messages``, ``echoed`` with the ones drained after the round,
``cpu_seconds`` of the client itself from ``getrusage``). Loopback only.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["SOURCE", "build", "EchoLoad"]

SOURCE = Path(__file__).resolve().with_name("ws_echo_load.c")


def build(folder: Path) -> tuple[Path | None, str]:
    """Compile the client into ``folder``: (its path, "") or (None, why not)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler (cc or gcc) on PATH"
    binary = folder / "ws_echo_load"
    done = subprocess.run([compiler, "-O2", "-o", str(binary), str(SOURCE)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"{compiler} failed: {done.stderr.strip()[-500:]}"
    return binary, ""


class EchoLoad:
    """One ``ws_echo_load --control`` process holding ``connections`` to ``port``."""

    def __init__(self, binary: Path, port: int, connections: int, window: int, size: int,
                 burst: bool = False, pace_us: int = 0, path: str = "/load?user=load") -> None:
        command = [str(binary), "--control", "--host", "127.0.0.1", "--port", str(port),
                   "--connections", str(connections), "--window", str(window),
                   "--size", str(size), "--pace-us", str(pace_us), "--path", path]
        if burst:
            command.append("--burst")
        # A session of its own: with autogroup scheduling its CPU comes out of its
        # own share, not the server's.
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1, start_new_session=True)
        self.opened: dict[str, Any] = {}

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        line = await asyncio.wait_for(loop.run_in_executor(None, self.process.stdout.readline),
                                      timeout)
        if not line:
            raise RuntimeError(f"ws_echo_load exited with status {self.process.wait()}")
        return json.loads(line)

    async def open(self, timeout: float = 180.0) -> dict[str, Any]:
        """Until every connection is open or failed: the client's ``opened`` figures."""
        self.opened = await self._line(timeout)
        return self.opened

    async def echo(self, seconds: float) -> dict[str, Any]:
        """One round of ``seconds``: the client's figures."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"echo {seconds}\n")
        self.process.stdin.flush()
        return await self._line(seconds + 60)

    def stop(self) -> None:
        """Close the connections (close frames) and end the process; kill it if it hangs."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
