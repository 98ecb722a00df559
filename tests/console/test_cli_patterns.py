"""Patterns and empty answers on the command line: `ls --user 'bulk-*'`, send and kick
to a pattern, a bad pattern in one line, "no connection matches ..." on stderr, and
a tap of an id prefix (against a live server, each command through ``cli.main`` in
a thread)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.helpers import TIMEOUT, wait_for
from wsconsole.console.cli import main
from wsconsole.server import serve
from wsconsole.server.config import ControlConfig

from .live_server import OPERATOR_TOKEN, READ_ONLY_TOKEN, Live, app


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("WSCONSOLE_URL", raising=False)
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
async def live():
    config = ControlConfig(port=0, token=OPERATOR_TOKEN, read_only_token=READ_ONLY_TOKEN)
    async with serve(app, "127.0.0.1", 0, control=config, allow_tap=True) as server:
        live = Live(server)
        try:
            yield live
        finally:
            for ws in live.clients:
                await ws.close()


async def run(live: Live, *argv: str) -> int:
    async with asyncio.timeout(TIMEOUT * 2):
        return await asyncio.to_thread(main, live.cli(*argv))


async def test_ls_send_and_kick_take_patterns(live: Live, capsys):
    """`ls --user 'bulk-*'` lists the bulk users and nobody else; `--path '/api/*'`
    too; send and kick reach what the same pattern selects."""
    bulk = [await live.client("/api/v1", user=f"bulk-{n}") for n in range(1, 3)]
    ann = await live.client("/chat", user="ann")
    assert await run(live, "ls", "--user", "bulk-*", "--json") == 0
    assert sorted(c["user"] for c in json.loads(capsys.readouterr().out)) == ["bulk-1", "bulk-2"]
    assert await run(live, "ls", "--path", "/api/*") == 0
    out = capsys.readouterr().out
    assert "bulk-1" in out and "ann" not in out and out.rstrip().endswith("2 connections")
    assert await run(live, "send", "--user", "bulk-?", "ping") == 0
    assert capsys.readouterr().out.startswith("sent to 2 of 2")
    for ws in bulk:
        async with asyncio.timeout(TIMEOUT):
            assert await ws.recv() == "ping"
    assert await run(live, "kick", "--user", "*-2", "--dry-run") == 0
    assert capsys.readouterr().out.startswith("would disconnect 1 connection (code 1000")
    assert await run(live, "ls", "--user", "ann") == 0
    assert capsys.readouterr().out.rstrip().endswith("\n1 connection")
    assert ann.state.name == "OPEN"


async def test_an_empty_answer_says_so_on_stderr(live: Live, capsys):
    """Nothing matches: stdout holds the (empty) answer, stderr one line naming the
    filter, and the exit status is 0; the same for --json, send and kick."""
    await live.client("/chat", user="ann")
    assert await run(live, "ls", "--user", "bulk-*") == 0
    out, err = capsys.readouterr()
    assert out == "" and err == "wsconsole: no connection matches user=bulk-*\n"
    assert await run(live, "ls", "--user", "bulk-*", "--path", "/x", "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and err == (
        "wsconsole: no connection matches user=bulk-* path=/x\n")
    assert await run(live, "send", "--topic", "none*", "hi") == 0
    out, err = capsys.readouterr()
    assert out.startswith("sent to 0 of 0") and "no connection matches topic=none*" in err
    assert await run(live, "kick", "--id", "ffffffffff") == 0
    assert "no connection matches id=ffffffffff" in capsys.readouterr().err


async def test_a_bad_pattern_is_one_error_line(live: Live, capsys):
    assert await run(live, "ls", "--user", "DOMAIN\\ann") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("wsconsole: error: bad pattern user=DOMAIN")
    assert "\\\\ is a backslash" in err


async def test_tap_takes_an_id_prefix(live: Live, capsys):
    """`wsconsole tap id=PREFIX` taps that connection, keeps tapping it when it
    joins a topic (the prefix was resolved when the tap started), and ends when it
    closes."""
    ann = await live.client("/chat", user="ann")
    await live.client("/chat", user="bob")
    ann_id = live.id_of(ann)
    command = asyncio.create_task(asyncio.to_thread(
        main, live.cli("tap", f"id={ann_id[:6]}", "--in", "--json")))
    hub = live.server.hub
    await wait_for(lambda: ann_id in hub.taps.tapped)
    record = hub.registry.get(ann_id)
    hub.subscribe(record.handle, "lobby")
    await ann.send("hello")
    tap = next(iter(hub.taps.taps.values()))
    await wait_for(lambda: tap.shown == 1)
    await ann.close()  # the tap of given ids ends with them
    async with asyncio.timeout(TIMEOUT * 2):
        assert await command == 0
    out, err = capsys.readouterr()
    tapped, closed = [json.loads(text) for text in out.splitlines()]
    assert (tapped["id"], tapped["data"]) == (ann_id, "hello")
    assert (closed["id"], closed["kind"]) == (ann_id, "closed")
    assert f"tapping id={ann_id[:6]}" in err
