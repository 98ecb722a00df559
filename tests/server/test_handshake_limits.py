"""Handshakes in progress are capped, the excess is shed at once and counted,
accept failures are logged once per interval, and the open-file limit is
checked at start. Real servers on port 0, real sockets, and a real
``wsconsole serve`` with a low open-file limit."""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import os
import re
import resource
import socket
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest
from websockets.asyncio.client import connect

from wsconsole.server import serve
from wsconsole.server.exhaustion import ACCEPT_FAILURE_MESSAGE, AcceptFailureLog
from wsconsole.server.hub import Hub
from wsconsole.server.limits import ShedLimit
from wsconsole.server.metrics import Metrics

from tests.helpers import TIMEOUT, wait_for


async def echo(connection: Any) -> None:
    async for message in connection:
        await connection.send(message)


class IdleClients:
    """TCP connections that connect and send nothing (or half a request)."""

    def __init__(self) -> None:
        self.streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open(self, port: int, count: int, first_bytes: bytes = b"") -> None:
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if first_bytes:
                writer.write(first_bytes)
            self.streams.append((reader, writer))

    async def answers(self) -> list[bytes]:
        """What each received until it was closed, for those the server closed."""
        got = []
        for reader, _ in self.streams:
            try:
                async with asyncio.timeout(0.01):
                    data = await reader.read()
            except TimeoutError:
                continue  # still open: its handshake is in progress
            got.append(data)
        return got

    def close(self) -> None:
        for _, writer in self.streams:
            writer.close()


@asynccontextmanager
async def idle_clients() -> AsyncIterator[IdleClients]:
    clients = IdleClients()
    try:
        yield clients
    finally:
        clients.close()


async def test_handshakes_past_the_per_address_cap_are_shed_while_a_client_echoes():
    """From one address, past max_handshakes_per_address idle connections are
    sent 503 and closed at once, and counted; an established client keeps
    echoing; when the idle ones leave, nothing is left in progress."""
    async with serve(echo, "127.0.0.1", 0, max_handshakes=100, max_handshakes_per_address=3,
                     cap_loopback_per_address=True) as server, \
            connect(f"ws://127.0.0.1:{server.port}") as client, idle_clients() as idle:
        limiter = server.hub.handshakes
        await idle.open(server.port, 10)
        await wait_for(lambda: limiter.shed[ShedLimit.PER_ADDRESS] == 7)
        assert limiter.in_progress == 3
        answers = await idle.answers()
        assert len(answers) == 7
        assert all(answer.startswith(b"HTTP/1.1 503 ") and b"from your address" in answer
                   for answer in answers)
        await client.send("still here")
        assert await client.recv() == "still here"
        idle.close()
        await wait_for(lambda: limiter.in_progress == 0)
        assert limiter.shed[ShedLimit.TOTAL] == 0


async def test_past_the_total_cap_every_address_is_shed_and_the_metrics_say_so():
    """Past max_handshakes in total, half-open connections (a partial request)
    are shed with limit=total; the metrics show the count and what is in progress."""
    async with serve(echo, "127.0.0.1", 0, max_handshakes=4,
                     max_handshakes_per_address=None) as server, idle_clients() as idle:
        await idle.open(server.port, 9, first_bytes=b"GET / HTTP/1.1\r\nHost: x\r\n")
        await wait_for(lambda: server.hub.handshakes.shed[ShedLimit.TOTAL] == 5)
        body, _ = Metrics(server.hub).render(None)
        text = body.decode() if isinstance(body, bytes) else body
        assert 'wsconsole_handshakes_shed_total{limit="total"} 5.0' in text
        assert 'wsconsole_handshakes_shed_total{limit="per_address"} 0.0' in text
        assert "wsconsole_handshakes_in_progress 4.0" in text
        # A finished handshake frees its place: a real client gets in once one leaves.
        idle.close()
        await wait_for(lambda: server.hub.handshakes.in_progress == 0)
        async with connect(f"ws://127.0.0.1:{server.port}") as client:
            await client.send("in")
            assert await client.recv() == "in"
        assert server.hub.handshakes.in_progress == 0


@pytest.mark.parametrize("options", [
    {"trusted_proxies": ["127.0.0.1"], "cap_loopback_per_address": True},
    {},  # loopback: taken for a local proxy by default
], ids=["trusted proxy", "loopback"])
async def test_a_proxy_is_held_to_the_total_only(options):
    """Every client behind a proxy shares its address: the per-address cap does
    not apply to a trusted proxy, nor by default to a loopback peer."""
    async with serve(echo, "127.0.0.1", 0, max_handshakes=6, max_handshakes_per_address=2,
                     **options) as server, idle_clients() as idle:
        await idle.open(server.port, 8)
        await wait_for(lambda: server.hub.handshakes.shed[ShedLimit.TOTAL] == 2)
        assert server.hub.handshakes.shed[ShedLimit.PER_ADDRESS] == 0


async def test_handshakes_that_time_out_or_fail_are_no_longer_counted():
    """A handshake that ends in a timeout or a refusal releases its place."""
    async with serve(echo, "127.0.0.1", 0, open_timeout=0.2, max_handshakes=10) as server, \
            idle_clients() as idle:
        await idle.open(server.port, 3)
        await wait_for(lambda: server.hub.handshakes.in_progress == 3)
        await wait_for(lambda: server.hub.handshakes.in_progress == 0)  # timed out
        # Not a WebSocket request: refused with an HTTP error.
        await idle.open(server.port, 1, first_bytes=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reader, _ = idle.streams[-1]
        async with asyncio.timeout(TIMEOUT):
            assert (await reader.read()).startswith(b"HTTP/1.1 4")
        await wait_for(lambda: server.hub.handshakes.in_progress == 0)


# Accept failures


def test_the_accept_failure_message_is_asyncios_own():
    """AcceptFailureLog recognises asyncio's context by its message: pin it."""
    from asyncio import selector_events

    source = inspect.getsource(selector_events.BaseSelectorEventLoop._accept_connection)
    assert repr(ACCEPT_FAILURE_MESSAGE) in source
    assert "call_exception_handler" in source


async def test_accept_failures_are_one_line_then_one_per_interval_with_the_count(caplog):
    """Through the loop's own exception handler: the first failure on a watched
    socket is one line, the next ones a count at the end of the interval; other
    contexts still reach the handler that was there before."""
    loop = asyncio.get_running_loop()
    before: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: before.append(context))
    hub = Hub("test")
    failures = AcceptFailureLog(hub, interval=0.2)
    with socket.socket() as listening, socket.socket() as other:
        failures.install(loop, [listening])
        try:
            with caplog.at_level(logging.WARNING, logger="wsconsole.server"):
                for _ in range(50):
                    loop.call_exception_handler({
                        "message": ACCEPT_FAILURE_MESSAGE, "socket": listening,
                        "exception": OSError(errno.EMFILE, "Too many open files")})
                loop.call_exception_handler({
                    "message": ACCEPT_FAILURE_MESSAGE, "socket": other,
                    "exception": OSError(errno.EMFILE, "Too many open files")})
                loop.call_exception_handler({"message": "something else"})
                lines = [r.getMessage() for r in caplog.records]
                assert len(lines) == 1 and "Too many open files (EMFILE)" in lines[0]
                await wait_for(lambda: len(caplog.records) == 2)
                assert "49 more failures in the last 0.2 s" in caplog.records[1].getMessage()
        finally:
            failures.uninstall()
    assert hub.accept_errors["EMFILE"] == 50
    assert [context["message"] for context in before] == [ACCEPT_FAILURE_MESSAGE,
                                                          "something else"]
    assert loop.get_exception_handler() is not failures._handle


WSCONSOLE = [sys.executable, "-m", "wsconsole.console.cli"]
LOW_LIMIT = 48


def _low_open_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_LIMIT, hard))


async def test_wsconsole_serve_out_of_descriptors_logs_once_and_recovers(tmp_path):
    """`wsconsole serve` with a 48-descriptor limit warns at start; flooded with
    idle connections past its descriptors, it logs one line (no traceback) for
    dozens of failed accepts, counts them, and serves again once they leave.
    On asyncio's loop: uvloop never reports a failed accept (test_loop_policy)."""
    token = tmp_path / "token"
    token.write_text("handshake-limits-token-0123456789\n")
    token.chmod(0o600)
    process = await asyncio.create_subprocess_exec(
        *WSCONSOLE, "serve", "--loop", "asyncio", "--port", "0", "--control-port", "0",
        "--token-file", str(token),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_low_open_file_limit)
    assert process.stdout is not None and process.stderr is not None
    stderr: list[str] = []

    async def drain(stream: asyncio.StreamReader, into: list[str]) -> None:
        async for line in stream:
            into.append(line.decode())

    stdout: list[str] = []
    drains = [asyncio.create_task(drain(process.stdout, stdout)),
              asyncio.create_task(drain(process.stderr, stderr))]
    try:
        await wait_for(lambda: any("control plane on" in line for line in stdout),
                       timeout=TIMEOUT * 4)
        public_url = re.search(r"on (ws://\S+)", stdout[0]).group(1)
        port = int(public_url.rpartition(":")[2])
        control_url = re.search(r"control plane on (ws://\S+)",
                                "".join(stdout)).group(1)
        control_port = int(control_url.rpartition(":")[2])
        assert any(f"open-file limit ({LOW_LIMIT}) is below" in line for line in stderr)

        def failure_lines() -> list[str]:
            return [line for line in stderr if "cannot accept connections" in line]

        async with idle_clients() as idle:
            # More than its descriptors, by few enough that the ones still
            # queued when they leave are accepted in one round: it then serves
            # again at asyncio's next retry, a second after the first failure.
            await idle.open(port, LOW_LIMIT + 12)
            await wait_for(lambda: failure_lines(), timeout=TIMEOUT * 2)
            assert "Too many open files (EMFILE)" in failure_lines()[0]
        # The idle connections are gone: the server accepts again.

        async def serves() -> bool:
            try:
                async with connect(public_url, open_timeout=1) as client:
                    await client.send("back")
                    return await client.recv() == "back"
            except (OSError, TimeoutError):
                return False

        await wait_for(serves, timeout=TIMEOUT * 2, interval=0.2)
        from tests.server.control_helpers import http_request

        status, _, body = await http_request(control_port, "/metrics")
        assert status == 200
        failed = float(re.search(rb'wsconsole_accept_errors_total\{error="EMFILE"\} (\S+)',
                                 body).group(1))
        # A round of asyncio's accepts tries up to its backlog (100): the round
        # that runs out fails every try after the last free descriptor, fewer
        # than LOW_LIMIT of them. One line for all of them, retries included.
        assert failed > 100 - LOW_LIMIT
        assert len(failure_lines()) == 1
        assert not any("Traceback" in line for line in stderr)
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(TIMEOUT * 2):
            await process.wait()
        await asyncio.gather(*drains, return_exceptions=True)


@pytest.mark.parametrize("limit, warned", [(200, True), (4096, False)])
async def test_the_open_file_limit_is_checked_at_start(caplog, limit, warned):
    """serve() warns at start when the open-file limit is below its handshake cap
    plus what it needs besides, and not when it is above."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < limit:
        pytest.skip("the hard open-file limit is lower than this test needs")
    if len(os.listdir("/proc/self/fd")) > limit // 2:
        pytest.skip("this process has too many files open to lower its limit safely")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(limit, 0), hard))
    try:
        with caplog.at_level(logging.WARNING, logger="wsconsole.server"):
            async with serve(echo, "127.0.0.1", 0, max_handshakes=500):
                pass
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    said = [r.getMessage() for r in caplog.records if "open-file limit" in r.getMessage()]
    assert bool(said) is warned
    if warned:
        assert f"open-file limit ({limit})" in said[0] and "500 handshakes" in said[0]


async def test_the_accept_failure_handler_is_the_servers_while_it_runs_and_can_be_declined():
    """serve() sets its accept-failure handler on the loop while it serves and
    gives the previous one back when it stops; accept_failure_log_interval=None
    leaves the loop's handler alone."""
    loop = asyncio.get_running_loop()

    def mine(loop: Any, context: dict[str, Any]) -> None:
        pass

    loop.set_exception_handler(mine)
    try:
        async with serve(echo, "127.0.0.1", 0) as server:
            assert loop.get_exception_handler() is not mine
        await server.wait_closed()
        assert loop.get_exception_handler() is mine
        async with serve(echo, "127.0.0.1", 0, accept_failure_log_interval=None):
            assert loop.get_exception_handler() is mine
    finally:
        loop.set_exception_handler(None)
