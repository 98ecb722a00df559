"""The command line's smaller options: ``--version``, ``ls --wide``, ``--sort -KEY``,
``kick --dry-run``, ``send --check-json``, where a refused token came from, and
the operator's ``--help`` listing.

Parsing and rendering are tested with plain values; the few commands that need
a server share one, module-wide, whose clients no test closes.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import pytest_asyncio

from tests.helpers import TIMEOUT
from wsconsole.console import output
from wsconsole.console.cli import build_parser, installed_version, main
from wsconsole.console.commands import joined_sort_values, json_problem

from .live_server import Live, live_server

on_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The loop of the shared server, for the tests that talk to it."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No operator's own URL, token or token file leaks into a test."""
    monkeypatch.delenv("WSCONSOLE_URL", raising=False)
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live():
    """ann (twice, on /chat and /feed) and bob; ann's /chat client has said two things."""
    async with live_server() as live:
        ann = await live.client("/chat", user="ann")
        await live.client("/chat", user="bob")
        await live.client("/feed", user="ann")
        await ann.send("one")
        await ann.send("two")
        yield live


async def run(*argv: str) -> int:
    async with asyncio.timeout(TIMEOUT * 2):
        return await asyncio.to_thread(main, list(argv))


# Parsing and rendering


@pytest.mark.parametrize("argv, expected", [
    (["ls", "--sort", "-msgs_in"], ["ls", "--sort=-msgs_in"]),
    (["ls", "--sort", "msgs_in"], ["ls", "--sort", "msgs_in"]),
    (["ls", "--sort=-latency", "--json"], ["ls", "--sort=-latency", "--json"]),
    # Not a sort key: left for argparse to say the value is missing.
    (["ls", "--sort", "--json"], ["ls", "--sort", "--json"]),
    (["send", "--all", "--", "--sort", "-id"], ["send", "--all", "--", "--sort", "-id"]),
])
def test_a_descending_sort_key_may_follow_sort_as_its_own_word(argv, expected):
    """``--sort -KEY`` is read as ``--sort=-KEY``; anything else is left alone."""
    assert joined_sort_values(argv) == expected


def test_sort_with_a_separate_descending_key_parses():
    """argparse alone refuses ``--sort -msgs_in``; through the entry point it parses."""
    args = build_parser().parse_args(joined_sort_values(["ls", "--sort", "-msgs_in"]))
    assert args.sort == "-msgs_in"


def test_version_prints_the_installed_version(capsys):
    """``wsconsole --version`` prints ``wsconsole VERSION`` and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"wsconsole {installed_version()}\n"
    assert installed_version()[0].isdigit()


def test_screenshots_is_kept_out_of_the_operators_listing(capsys):
    """``--help`` lists the operator's commands; ``screenshots`` is named only
    in the maintainers' line, and still runs its own ``--help``."""
    with pytest.raises(SystemExit):
        main(["--help"])
    listing, _, epilog = capsys.readouterr().out.partition("For maintainers")
    assert "  ls " in listing and "  console " in listing
    assert "screenshots" not in listing
    assert "screenshots" in epilog
    with pytest.raises(SystemExit):
        main(["screenshots", "--help"])
    assert "For maintainers" in capsys.readouterr().out


def test_latency_is_a_dash_before_the_first_ping():
    """The server reports 0 until a ping came back: shown as ``-``, as the TUI does."""
    assert output.latency(0.0) == output.latency(None) == "-"
    assert output.latency(0.0004) == "0.4 ms"
    assert "latency        -" in output.connection_detail({"latency": 0.0}, 0.0)


def test_wide_table_adds_idle_bytes_buffered_and_latency():
    """``ls --wide``'s columns, idle counted from the last message in."""
    row = {"id": "abc", "node": "n", "user": "ann", "path": "/chat", "remote": "1.2.3.4:5",
           "connected_at": 1000.0, "last_activity": 1090.0, "msgs_in": 3, "msgs_out": 4,
           "bytes_in": 2048, "bytes_out": 10, "buffered": 0, "latency": 0.0, "topics": []}
    header, line = output.connections_table([row], 1100.0, wide=True).splitlines()
    cells = re.compile(r"\S+(?: \S+)*")
    assert cells.findall(header)[5:] == ["AGE", "IDLE", "IN", "OUT", "BYTES IN", "BYTES OUT",
                                         "BUFFERED", "LATENCY", "TOPICS"]
    assert cells.findall(line)[5:] == ["1m40s", "10s", "3", "4", "2.0 KiB", "10 B", "0 B",
                                       "-", "-"]


@pytest.mark.parametrize("payload, problem", [
    ('{"type": "refresh"}', None),
    ("[1, 2]", None),
    ('{"type": refresh}', "Expecting value: line 1 column 10 (char 9)"),
    (b"\xff", "not UTF-8"),
])
def test_check_json_says_where_the_message_stops_being_json(payload, problem):
    result = json_problem(payload)
    assert result == problem if problem is None else problem in result


# Against a server


@on_module_loop
async def test_sort_descending_as_two_words_lists_top_talkers_first(live: Live, capsys):
    """``ls --sort -msgs_in`` lists the same as ``--sort=-msgs_in``: the busiest first."""
    live.server.hub.registry.sample_all(0.0)
    assert await run(*live.cli("ls", "--sort", "-msgs_in", "--json")) == 0
    first = json.loads(capsys.readouterr().out)
    assert await run(*live.cli("ls", "--sort=-msgs_in", "--json")) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert first[0]["msgs_in"] == 2 and first[0]["path"] == "/chat"


@on_module_loop
async def test_ls_wide_prints_the_extra_columns(live: Live, capsys):
    assert await run(*live.cli("ls", "--wide")) == 0
    out = capsys.readouterr().out.splitlines()
    assert "BUFFERED" in out[0] and "IDLE" in out[0]
    assert out[-1] == "3 connections"


@on_module_loop
async def test_kick_dry_run_counts_and_closes_nothing(live: Live, capsys):
    """``kick --dry-run`` says how many it would close, with a sample, and closes none."""
    assert await run(*live.cli("kick", "--user", "ann", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert out.startswith("would disconnect 2 connections (code 1000; dry run; nothing closed): ")
    assert len(out.split(": ", 1)[1].split()) == 2
    assert await run(*live.cli("kick", "--user", "ann", "--dry-run", "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["count"], result["dry_run"], result["missing"]) == (2, True, {})
    assert all(ws.close_code is None for ws in live.clients)
    assert len(live.server.hub.registry) == 3


@on_module_loop
async def test_check_json_refuses_a_message_that_is_not_json(live: Live, capsys):
    """``send --check-json`` with a broken payload is a usage error: nothing is sent."""
    assert await run(*live.cli("send", "--all", "--check-json", '{"type": refresh}')) == 2
    err = capsys.readouterr().err
    assert "--check-json: the message is not JSON: Expecting value" in err
    assert await run(*live.cli("send", "--user", "bob", "--check-json",
                               '{"type": "refresh"}')) == 0
    assert capsys.readouterr().out.startswith("sent to 1 of 1")
    bob = live.clients[1]
    async with asyncio.timeout(TIMEOUT):
        assert await bob.recv() == '{"type": "refresh"}'


@on_module_loop
@pytest.mark.parametrize("source", ["--token-file", "WSCONSOLE_TOKEN"])
async def test_a_refused_token_names_where_it_came_from(live: Live, capsys, monkeypatch,
                                                        tmp_path, source):
    """A token the server refuses is named by its source (the file's path, the
    variable), never quoted."""
    if source == "--token-file":
        token_file = tmp_path / "stale-token"
        token_file.write_text("stale-secret\n")
        argv = ["ls", "--url", live.url, "--token-file", str(token_file)]
        expected = f"token from token file {token_file} refused"
    else:
        monkeypatch.setenv("WSCONSOLE_TOKEN", "stale-secret")
        argv = ["ls", "--url", live.url]
        expected = "token from $WSCONSOLE_TOKEN refused"
    assert await run(*argv) == 1
    err = capsys.readouterr().err
    assert expected in err and "stale-secret" not in err


# Id prefixes


@on_module_loop
async def test_show_and_kick_accept_a_unique_id_prefix(live: Live, capsys):
    """``show fd2d`` and ``kick --id fd2d`` act on the one connection whose id
    starts with it, as ``ls --id-prefix`` lists it."""
    bob = live.clients[1]
    prefix = live.id_of(bob)[:7]
    assert await run(*live.cli("show", prefix)) == 0
    assert f"id             {live.id_of(bob)}\n" in capsys.readouterr().out
    assert await run(*live.cli("kick", "--id", prefix, "--dry-run")) == 0
    assert capsys.readouterr().out == (
        f"would disconnect 1 connection (code 1000; dry run; nothing closed): {live.id_of(bob)}\n")
