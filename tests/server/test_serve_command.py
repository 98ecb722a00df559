"""`wsconsole serve` as a user runs it: a real process, real clients, signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest
from websockets.asyncio.client import connect

from tests.helpers import TIMEOUT

WSCONSOLE = [sys.executable, "-m", "wsconsole.console.cli"]


async def start(args: list[str], cwd: str | None = None) -> tuple[asyncio.subprocess.Process, str]:
    """Start `wsconsole serve ARGS` and return it with the URL it printed."""
    process = await asyncio.create_subprocess_exec(
        *WSCONSOLE, "serve", *args, "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd,
    )
    async with asyncio.timeout(TIMEOUT * 2):
        line = (await process.stdout.readline()).decode()
    match = re.search(r"on (ws://\S+)", line)
    assert match, line
    return process, match.group(1)


async def stop(process: asyncio.subprocess.Process, signum: int) -> tuple[int, str]:
    process.send_signal(signum)
    async with asyncio.timeout(TIMEOUT * 2):
        out, _ = await process.communicate()
    return process.returncode, out.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_demo_app_echoes_and_signals_stop_gracefully(signum):
    """Without APP the demo echoes; SIGTERM/SIGINT close clients with 1001 and exit 0."""
    process, url = await start(["--no-control"])
    try:
        async with connect(url + "/chat?room=lobby") as a, connect(url + "/chat?room=lobby") as b:
            await a.send("hello")
            assert await a.recv() == "hello"  # echo
            assert await b.recv() == "hello"  # the room relays it
            code, out = await stop(process, signum)
            await a.wait_closed()
            assert a.close_code == 1001
    finally:
        if process.returncode is None:
            process.kill()
    assert code == 0
    assert "stopped" in out


async def test_serve_runs_an_app_given_as_module_attribute(tmp_path):
    """`wsconsole serve mymodule:handler` runs the user's handler unchanged."""
    (tmp_path / "shouty.py").write_text(textwrap.dedent("""
        async def handler(websocket):
            async for message in websocket:
                await websocket.send(message.upper())
    """))
    process, url = await start(["shouty:handler", "--no-control"], cwd=str(tmp_path))
    try:
        async with connect(url) as client:
            await client.send("quiet")
            assert await client.recv() == "QUIET"
    finally:
        code, _ = await stop(process, signal.SIGTERM)
    assert code == 0


def test_bad_app_is_one_line_on_stderr():
    """An APP that cannot be imported is one error line and exit status 1."""
    result = subprocess.run(
        [*WSCONSOLE, "serve", "no_such_module:handler", "--no-control", "--port", "0"],
        capture_output=True, text=True, timeout=TIMEOUT * 4,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("wsconsole: error: cannot import 'no_such_module'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_during_a_keep_alive_drain_closes_the_rest_and_exits(signum):
    """SIGTERM/SIGINT while a keep-alive shutdown drains closes the open clients
    with 1001 and exits 0, rather than waiting for them forever."""
    import json

    token = "signal-test-token-0123456789"
    process = await asyncio.create_subprocess_exec(
        *WSCONSOLE, "serve", "--port", "0", "--control-port", "0", "--token", token,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = control_url = None
        async with asyncio.timeout(TIMEOUT * 2):
            while control_url is None:
                line = (await process.stdout.readline()).decode()
                assert line, "wsconsole serve exited early"
                if match := re.search(r"serving .* on (ws://\S+)", line):
                    url = match.group(1)
                if match := re.search(r"control plane on (ws://\S+)", line):
                    control_url = match.group(1)
        async with connect(url + "/?user=stays") as client:
            async with connect(control_url, additional_headers={
                    "Authorization": f"Bearer {token}"}) as control:
                await control.send(json.dumps(
                    {"id": 1, "op": "shutdown", "args": {"mode": "keep_alive"}}))
                async with asyncio.timeout(TIMEOUT):
                    assert json.loads(await control.recv())["ok"] is True
            await client.send("still here")
            async with asyncio.timeout(TIMEOUT):
                assert await client.recv() == "still here"
            code, out = await stop(process, signum)
            async with asyncio.timeout(TIMEOUT):
                await client.wait_closed()
            assert client.close_code == 1001
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0
    assert "stopped" in out


async def test_log_level_debug_logs_connections_without_their_secrets():
    """`--log-level debug` logs to stderr, request lines included, with no token
    from the query string in it."""
    process, url = await start(["--no-control", "--log-level", "debug"])
    try:
        async with connect(url + "/x?user=ann&token=hunter2") as client:
            await client.send("hi")
            assert await client.recv() == "hi"
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT * 2):
            _, err = await process.communicate()
    log = err.decode()
    assert "connection open" in log and "token=[redacted]" in log
    assert "hunter2" not in log


async def test_sigterm_stops_the_server_when_its_output_reader_is_gone():
    """`wsconsole serve | tee log`, and tee dies: SIGTERM still stops the server
    (the goodbye lines cannot be written; they no longer keep it from stopping)."""
    read_end, write_end = os.pipe()
    process = await asyncio.create_subprocess_exec(
        *WSCONSOLE, "serve", "--no-control", "--port", "0",
        stdout=write_end, stderr=write_end)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as output:
            async with asyncio.timeout(TIMEOUT * 2):
                while b"event loop" not in (line := await asyncio.to_thread(output.readline)):
                    assert line, "the server exited before saying it is up"
        # The reader is gone: every write from now on is a broken pipe.
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
