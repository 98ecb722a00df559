"""``wsconsole tap`` against a live server: lines, JSON lines, Ctrl+C, and refusals.

The command runs as the installed script in a subprocess where a signal is
involved, and through ``cli.main`` in a thread otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from websockets.asyncio.client import connect

from tests.helpers import TIMEOUT, wait_for
from wsconsole.console.cli import main
from wsconsole.console.tap_output import parse_tap_selector, tap_line
from wsconsole.server import Selector, serve
from wsconsole.server.config import ControlConfig

from .live_server import OPERATOR_TOKEN, READ_ONLY_TOKEN, app

WSCONSOLE = Path(sys.executable).parent / "wsconsole"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("WSCONSOLE_URL", raising=False)
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@contextlib.asynccontextmanager
async def server(allow_tap: bool = True) -> AsyncIterator[Any]:
    config = ControlConfig(port=0, token=OPERATOR_TOKEN, read_only_token=READ_ONLY_TOKEN)
    async with serve(app, "127.0.0.1", 0, control=config, allow_tap=allow_tap) as running:
        yield running


def url(running: Any) -> str:
    return f"ws://127.0.0.1:{running.control.port}"


async def spawn(*argv: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSCONSOLE_")}
    return await asyncio.create_subprocess_exec(
        str(WSCONSOLE), *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)


async def line(stream: asyncio.StreamReader) -> str:
    async with asyncio.timeout(TIMEOUT * 2):
        return (await stream.readline()).decode().rstrip("\n")


def test_selector_words():
    """Ids, kind=value, the @ / # shorthands and all; nothing or an unknown kind is refused."""
    assert parse_tap_selector(["3f2a", "id=9b"]) == {"ids": ["3f2a", "9b"]}
    assert parse_tap_selector(["@ann", "/chat", "#lobby"]) == {
        "user": "ann", "path": "/chat", "topic": "lobby"}
    assert parse_tap_selector(["all"]) == {"everyone": True}
    for words in ([], ["shoe=9"], ["user="]):
        with pytest.raises(ValueError):
            parse_tap_selector(words)


def test_a_line_escapes_what_the_client_chose():
    """Control and bidi characters in a payload or a user name are escaped, never
    sent to the terminal; binary is hex; a cut payload ends with …"""
    text = tap_line({"time": 0, "id": "c1", "user": "\x1b[31mann", "kind": "in",
                     "opcode": "text", "size": 20, "data": "a\"b\x1b]0;x\x07\u202e",
                     "truncated": True}, clock=False)
    assert text == 'c1 \\x1b[31mann in  text   20 B "a\\"b\\x1b]0;x\\x07\\u202e"…'
    assert "\x1b" not in text and "\u202e" not in text
    assert tap_line({"id": "c1", "user": "ann", "kind": "out", "opcode": "binary",
                     "size": 3, "data": "00ff1b", "truncated": False},
                    clock=False) == "c1 ann out binary 3 B 00ff1b"


async def test_tap_prints_lines_and_ctrl_c_says_how_many_were_shown_and_dropped():
    """The installed script prints one line per message, escaped; Ctrl+C stops the
    tap, says how many were shown and dropped, and exits 0."""
    async with server() as running, connect(
            f"ws://127.0.0.1:{running.port}/?user=ann") as ann:
        assert await ann.recv() == "ready"
        process = await spawn("tap", "@ann", "--url", url(running), "--token", OPERATOR_TOKEN)
        try:
            assert "tapping user=ann (in and out, 256 B each" in await line(process.stderr)
            await wait_for(lambda: bool(running.hub.taps.tapped))
            await ann.send("hi\x1b[2J")
            assert (await line(process.stdout)).endswith(' ann in  text   6 B "hi\\x1b[2J"')
            running.hub.send(Selector(user="ann"), b"\x00\x01")
            assert (await line(process.stdout)).endswith(" ann out binary 2 B 0001")
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(TIMEOUT * 2):
                _, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, err
        assert "ended (stopped): 2 shown, 0 dropped" in err.decode()
        await wait_for(lambda: not running.hub.taps.taps)


async def test_tap_json_lines_until_its_duration(capsys):
    """--json prints one JSON object per record, and the tap ends after --duration."""
    async with server() as running, connect(
            f"ws://127.0.0.1:{running.port}/?user=ann") as ann:
        assert await ann.recv() == "ready"
        command = asyncio.create_task(asyncio.to_thread(
            main, ["tap", "all", "--in", "--duration", "0.5", "--json", "--url", url(running),
                   "--token", OPERATOR_TOKEN]))
        await wait_for(lambda: bool(running.hub.taps.tapped))
        await ann.send("hello")
        async with asyncio.timeout(TIMEOUT * 2):
            assert await command == 0
    out, err = capsys.readouterr()
    [record] = [json.loads(text) for text in out.splitlines()]
    assert (record["kind"], record["data"], record["user"]) == ("in", "hello", "ann")
    assert "ended (duration): 1 shown, 0 dropped" in err


async def test_tap_refusals_are_one_line(capsys):
    """Off on the server, or a read-only token: exit 1 and one line saying why;
    limits out of range are a usage error before connecting."""
    async with server(allow_tap=False) as running:
        assert await asyncio.to_thread(main, ["tap", "all", "--url", url(running), "--token",
                                              OPERATOR_TOKEN]) == 1
        assert "--allow-tap" in capsys.readouterr().err
    async with server() as running:
        assert await asyncio.to_thread(main, ["tap", "all", "--url", url(running), "--token",
                                              READ_ONLY_TOKEN]) == 1
        assert "read_only role may not run tap_start" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["tap", "all", "--rate", "0"]) == 2
    assert "--rate must be a whole number from 1 to 1000" in capsys.readouterr().err
