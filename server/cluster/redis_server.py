"""A private ``redis-server`` on a Unix socket in a folder of its own.

For the tests of cluster mode and for demos (``wsconsole demo --nodes``):
no TCP port, no persistence (``--save "" --appendonly no``), stopped with the
process that started it. Plain ``subprocess``, no redis client: usable before
an event loop exists.

    with PrivateRedis(folder) as redis:
        serve(..., cluster=ClusterSettings(redis.url, secret=...))

Must never import asyncio, websockets or textual.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from ..errors import ConfigError

__all__ = ["PrivateRedis", "RedisServerMissing", "find_redis_server"]


class RedisServerMissing(ConfigError):
    """No ``redis-server`` binary to start (the message says how to install one)."""


def find_redis_server() -> str:
    """The path of ``redis-server``; RedisServerMissing if it is not installed."""
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None)
    if path is None:
        raise RedisServerMissing(
            "redis-server is not installed; install it (Debian, Ubuntu: apt-get install "
            "redis-server) or point --redis at a Redis you run")
    return path


class PrivateRedis:
    """One ``redis-server`` process listening on ``folder/redis.sock`` only."""

    def __init__(self, folder: str | os.PathLike[str], *, start_timeout: float = 10.0) -> None:
        self.folder = Path(folder)
        self.socket_path = self.folder / "redis.sock"
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``unix:///.../redis.sock``: what ``--redis`` takes."""
        return f"unix://{self.socket_path}"

    def start(self) -> PrivateRedis:
        """Start it and wait until it answers PING."""
        binary = find_redis_server()
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
        self.process = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(self.socket_path),
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.folder / "redis.log"
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise ConfigError(f"redis-server did not start: {tail.strip()}")
            time.sleep(0.01)
        return self

    def answers(self) -> bool:
        """True if it answers PING on its socket now."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after a few seconds) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
