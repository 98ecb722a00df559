"""The operator commands (``wsconsole ls``, ``send``, ...) against a live server.

Each command runs through ``wsconsole.console.cli.main`` in a worker thread
(it runs its own event loop there) while the server runs in the test's loop;
a few run the installed ``wsconsole`` script in a subprocess.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.helpers import TIMEOUT, wait_for
from wsconsole.console.cli import main
from wsconsole.console.commands import read_message

from .live_server import OPERATOR_TOKEN, READ_ONLY_TOKEN, Live, live_server

WSCONSOLE = Path(sys.executable).parent / "wsconsole"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No operator's own URL, token or token file leaks into a test."""
    monkeypatch.delenv("WSCONSOLE_URL", raising=False)
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
async def live():
    async with live_server() as live:
        yield live


async def run(*argv: str) -> int:
    """``wsconsole ARGV`` in a thread; its exit status."""
    async with asyncio.timeout(TIMEOUT * 2):
        return await asyncio.to_thread(main, list(argv))


def stdin_with(monkeypatch, data: bytes) -> None:
    """Make ``data`` the process's stdin, as a pipe would."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def closed_port() -> int:
    """A local TCP port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_error_line(err: str, *fragments: str) -> None:
    """stderr is exactly one ``wsconsole: error:`` line containing each fragment."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("wsconsole: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


async def expect_next(ws, expected) -> None:
    """The client's next message is ``expected``."""
    async with asyncio.timeout(TIMEOUT):
        assert await ws.recv() == expected


async def three_clients(live: Live):
    """ann on /chat in lobby, bob on /chat, ann on /feed."""
    ann_chat = await live.client("/chat", user="ann", topics=("lobby",))
    bob_chat = await live.client("/chat", user="bob")
    ann_feed = await live.client("/feed", user="ann")
    return ann_chat, bob_chat, ann_feed


# ls


async def test_ls_prints_an_aligned_table(live: Live, capsys):
    """ls prints one row per connection under ID NODE USER PATH REMOTE AGE IN OUT TOPICS,
    the node being the server's own name."""
    ann_chat, bob_chat, ann_feed = await three_clients(live)
    assert await run(*live.cli("ls")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "NODE", "USER", "PATH", "REMOTE", "AGE", "IN", "OUT",
                              "TOPICS"]
    rows = {line.split()[0]: line.split() for line in out[1:4]}
    node = live.server.hub.node
    assert rows[live.id_of(ann_chat)][1:4] == [node, "ann", "/chat"]
    assert rows[live.id_of(ann_chat)][-1] == "lobby"
    assert rows[live.id_of(bob_chat)][1:4] == [node, "bob", "/chat"]
    assert rows[live.id_of(ann_feed)][1:4] == [node, "ann", "/feed"]
    # Columns are aligned: every row's PATH starts where the header's does.
    column = out[0].index("PATH")
    assert all(line[column] == "/" for line in out[1:4])
    assert out[4] == "3 connections"


async def test_ls_json_lists_connection_objects(live: Live, capsys):
    """ls --json prints a JSON list of objects with id, node, user, path, remote, topics, connected_at."""
    ann_chat, _, _ = await three_clients(live)
    assert await run(*live.cli("ls", "--json")) == 0
    connections = json.loads(capsys.readouterr().out)
    assert isinstance(connections, list) and len(connections) == 3
    for connection in connections:
        assert {"id", "node", "user", "path", "remote", "topics", "connected_at"} <= set(connection)
        assert connection["node"] == live.server.hub.node
    by_id = {c["id"]: c for c in connections}
    assert by_id[live.id_of(ann_chat)]["topics"] == ["lobby"]
    assert by_id[live.id_of(ann_chat)]["remote"].endswith(f":{ann_chat.local_address[1]}")


async def test_ls_filters_and_pages(live: Live, capsys):
    """ls filters by user and topic, pages with --limit, and follows --all-pages."""
    ann_chat, _, ann_feed = await three_clients(live)
    assert await run(*live.cli("ls", "--json", "--user", "ann")) == 0
    ids = {c["id"] for c in json.loads(capsys.readouterr().out)}
    assert ids == {live.id_of(ann_chat), live.id_of(ann_feed)}

    assert await run(*live.cli("ls", "--json", "--topic", "lobby")) == 0
    assert [c["id"] for c in json.loads(capsys.readouterr().out)] == [live.id_of(ann_chat)]

    assert await run(*live.cli("ls", "--limit", "1")) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[2] == "1 of 3 connections (--all-pages for the rest)"

    assert await run(*live.cli("ls", "--json", "--limit", "1", "--all-pages", "--sort=-id")) == 0
    ids = [c["id"] for c in json.loads(capsys.readouterr().out)]
    assert ids == sorted((record.id for record in live.server.hub.registry), reverse=True)


async def test_ls_groups_prints_counts(live: Live, capsys):
    """ls --groups prints connection counts by user, path and topic."""
    await three_clients(live)
    assert await run(*live.cli("ls", "--groups")) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["KIND", "NAME", "CONNECTIONS"]
    assert ["user", "ann", "2"] in rows and ["user", "bob", "1"] in rows
    assert ["path", "/chat", "2"] in rows and ["topic", "lobby", "1"] in rows

    assert await run(*live.cli("ls", "--groups", "--json")) == 0
    groups = json.loads(capsys.readouterr().out)
    assert groups["users"] == {"ann": 2, "bob": 1}


# show


async def test_client_chosen_names_cannot_drive_the_operators_terminal(live: Live, capsys):
    """A user name or topic with escape sequences (chosen by a client) prints
    escaped in tables, details and event lines, and stays exact in JSON."""
    evil = "\x1b]0;pwned\x07\x1b[2J\u009b31m\u202eevil\nfake row"
    ws = await live.client("/chat", user=evil, topics=(evil,))
    connection_id = live.id_of(ws)
    for argv in (("ls",), ("ls", "--groups"), ("show", connection_id)):
        assert await run(*live.cli(*argv)) == 0
        out = capsys.readouterr().out
        for raw in ("\x1b", "\x07", "\u009b", "\u202e", "\nfake row"):
            assert raw not in out, (argv, out)
        assert "\\x1b]0;pwned" in out
    assert await run(*live.cli("ls", "--json")) == 0
    out = capsys.readouterr().out
    assert "\u009b" not in out and "\u202e" not in out
    assert json.loads(out)[0]["user"] == evil

    events = asyncio.create_task(run(*live.cli(
        "events", "--count", "1", "--kind", "connection_opened", "--stats-interval", "60")))
    # As in the events tests: connect until the command has seen one.
    async with asyncio.timeout(TIMEOUT * 2):
        while not events.done():
            await live.client("/chat", user=evil)
            await asyncio.wait([events], timeout=0.05)
    assert events.result() == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\nfake row" not in out and "connection_opened" in out


async def test_show_redacts_secrets(live: Live, capsys):
    """show prints the connection and its headers, Authorization and Cookie redacted."""
    ws = await live.client("/chat", user="ann", topics=("lobby",), headers={
        "Authorization": "Basic c2VjcmV0LXVzZXI6c2VjcmV0LXB3", "Cookie": "session=s3cr3t",
        "X-Trace": "visible-value"})
    connection_id = live.id_of(ws)
    assert await run(*live.cli("show", connection_id)) == 0
    out = capsys.readouterr().out
    assert "c2VjcmV0" not in out and "s3cr3t" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["id", connection_id]
    assert ["user", "ann"] in [line.split() for line in lines]
    assert "  Authorization: [redacted]" in lines
    assert "  Cookie: [redacted]" in lines
    assert "  X-Trace: visible-value" in lines
    assert lines.index("request headers") < lines.index("response headers")

    assert await run(*live.cli("show", connection_id, "--json")) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["id"] == connection_id and detail["topics"] == ["lobby"]
    assert ["Cookie", "[redacted]"] in detail["request_headers"]


# send


@pytest.mark.parametrize(
    "flags, reached",
    [
        (["--user", "ann"], {"ann_chat", "ann_feed"}),
        (["--path", "/chat"], {"ann_chat", "bob_chat"}),
        (["--topic", "lobby"], {"ann_chat"}),
        (["--all"], {"ann_chat", "bob_chat", "ann_feed"}),
        (["--user", "ann", "--path", "/chat"], {"ann_chat"}),
        (["--id", "bob_chat", "--id", "ann_feed"], {"bob_chat", "ann_feed"}),
    ],
)
async def test_send_reaches_exactly_the_selected_clients(live: Live, capsys, flags, reached):
    """send reaches the selected clients and no others, and says how many."""
    clients = dict(zip(("ann_chat", "bob_chat", "ann_feed"), await three_clients(live)))
    flags = [live.id_of(clients[f]) if f in clients else f for f in flags]
    assert await run(*live.cli("send", "hello", *flags)) == 0
    n = len(reached)
    assert capsys.readouterr().out == f"sent to {n} of {n} (skipped 0)\n"
    # Then everyone gets a marker: a client that was not selected sees it first.
    assert await run(*live.cli("send", "marker", "--all")) == 0
    for name, ws in clients.items():
        if name in reached:
            await expect_next(ws, "hello")
        await expect_next(ws, "marker")


async def test_send_dry_run_sends_nothing(live: Live, capsys):
    """send --dry-run counts the recipients and sends nothing."""
    ann_chat, bob_chat, ann_feed = await three_clients(live)
    assert await run(*live.cli("send", "hello", "--user", "ann", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert out.startswith("would send to 2 connections (dry run; nothing sent): ")
    assert set(out.split(": ")[1].split()) == {live.id_of(ann_chat), live.id_of(ann_feed)}
    assert await run(*live.cli("send", "marker", "--all")) == 0
    for ws in (ann_chat, bob_chat, ann_feed):
        await expect_next(ws, "marker")


async def test_send_json_reports_counts(live: Live, capsys):
    """send --json prints recipients, delivered and skipped; a selector matching nothing counts zero."""
    await three_clients(live)
    assert await run(*live.cli("send", "hi", "--path", "/chat", "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["recipients"], result["delivered"], result["skipped"]) == (2, 2, 0)
    assert await run(*live.cli("send", "hi", "--user", "nobody", "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["recipients"], result["delivered"], result["skipped"]) == (0, 0, 0)


async def test_send_reads_the_message_from_stdin(live: Live, capsys, monkeypatch):
    """send without MESSAGE (or with -) sends stdin, minus one trailing newline."""
    ws = await live.client(user="ann")
    stdin_with(monkeypatch, "line one\nline two\n".encode())
    assert await run(*live.cli("send", "--user", "ann")) == 0
    await expect_next(ws, "line one\nline two")
    stdin_with(monkeypatch, "ünïcode\n".encode())
    assert await run(*live.cli("send", "-", "--user", "ann")) == 0
    await expect_next(ws, "ünïcode")
    assert capsys.readouterr().out.count("sent to 1 of 1") == 2


async def test_send_binary(live: Live, capsys, monkeypatch):
    """send --binary sends stdin's bytes, or the argument's UTF-8, as a binary message."""
    ws = await live.client(user="ann")
    stdin_with(monkeypatch, b"\x00\xff\n")
    assert await run(*live.cli("send", "--binary", "--user", "ann")) == 0
    await expect_next(ws, b"\x00\xff\n")
    assert await run(*live.cli("send", "é", "--binary", "--user", "ann")) == 0
    await expect_next(ws, "é".encode())


def test_read_message_keeps_arguments_exact():
    """A MESSAGE argument is sent as given, trailing newline included."""
    assert read_message("a\n", binary=False) == "a\n"
    assert read_message("a", binary=True) == b"a"


async def test_send_without_selector_is_a_usage_error(live: Live, capsys):
    """send and kick without a selector exit 2 with a usage message and send nothing."""
    ws = await live.client(user="ann")
    assert await run(*live.cli("send", "hello")) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: wsconsole send")
    assert "wsconsole send: error: send needs a selector" in err
    assert await run(*live.cli("kick")) == 2
    assert "kick needs a selector" in capsys.readouterr().err
    assert await run(*live.cli("send", "marker", "--all")) == 0
    await expect_next(ws, "marker")
    assert ws.close_code is None


# kick


async def test_kick_closes_with_code_and_reason(live: Live, capsys):
    """kick closes the selected clients with the given close code and reason."""
    ann_chat, bob_chat, ann_feed = await three_clients(live)
    assert await run(*live.cli("kick", "--user", "bob", "--code", "4001",
                               "--reason", "maintenance")) == 0
    assert capsys.readouterr().out == "disconnecting 1 connection (code 4001)\n"
    async with asyncio.timeout(TIMEOUT):
        await bob_chat.wait_closed()
    assert (bob_chat.close_code, bob_chat.close_reason) == (4001, "maintenance")

    assert await run(*live.cli("kick", "--id", live.id_of(ann_feed), "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    # missing is always there for a script to read; per_node names this one node.
    assert (result["count"], result["missing"]) == (1, {})
    assert result["per_node"] == {live.server.hub.node: {"count": 1}}
    async with asyncio.timeout(TIMEOUT):
        await ann_feed.wait_closed()
    assert ann_feed.close_code == 1000
    assert ann_chat.close_code is None


# shutdown


async def test_shutdown_keep_alive_keeps_open_connections(live: Live, capsys):
    """shutdown --keep-alive stops accepting; open clients still get messages until they leave."""
    ws = await live.client(user="ann")
    assert await run(*live.cli("shutdown", "--keep-alive")) == 0
    assert capsys.readouterr().out == (
        "stopped accepting; 1 open connection keeps being served\n")
    # New connections are refused once the listening socket is closed.
    await wait_for(lambda: not live.server.is_serving())
    with pytest.raises(OSError):
        await connect(f"{live.public_url}/?user=late")
    # The open client is still served, and the control plane still answers.
    assert await run(*live.cli("send", "still here", "--all")) == 0
    await expect_next(ws, "still here")
    assert capsys.readouterr().out == "sent to 1 of 1 (skipped 0)\n"
    assert await run(*live.cli("stats", "--json")) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["state"] == "draining" and stats["connections"] == 1
    assert ws.close_code is None
    await ws.close()
    async with asyncio.timeout(TIMEOUT):
        await live.server.wait_closed()


async def test_shutdown_graceful_closes_everyone(live: Live, capsys):
    """shutdown (graceful by default) closes every client with the code and reason given."""
    clients = await three_clients(live)
    assert await run(*live.cli("shutdown", "--code", "1012", "--reason", "restart", "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "graceful" and result["connections"] == 3
    async with asyncio.timeout(TIMEOUT):
        for ws in clients:
            await ws.wait_closed()
        await live.server.wait_closed()
    assert {(ws.close_code, ws.close_reason) for ws in clients} == {(1012, "restart")}


async def test_shutdown_twice_fails(live: Live, capsys):
    """A second shutdown of a draining server fails with one line and exit 1."""
    await live.client(user="ann")
    assert await run(*live.cli("shutdown", "--keep-alive", "--deadline", "30")) == 0
    assert "for at most 30 s" in capsys.readouterr().out
    assert await run(*live.cli("shutdown", "--keep-alive")) == 1
    assert_one_error_line(capsys.readouterr().err, "already draining")


# stats


async def test_stats_prints_key_values(live: Live, capsys):
    """stats prints node, state and connection counts; --json the whole object."""
    await three_clients(live)
    assert await run(*live.cli("stats")) == 0
    rows = {line.split("  ")[0]: line.split("  ", 1)[1].strip()
            for line in capsys.readouterr().out.splitlines()}
    assert rows["node"] == live.server.hub.node
    assert rows["state"] == "serving"
    assert rows["connections"] == "3"
    assert rows["messages out"].startswith("3 ")  # one "ready" each

    assert await run(*live.cli("stats", "--json")) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["connections"] == 3 and stats["totals"]["msgs_out"] == 3


# events


async def test_events_count_stops_after_n(live: Live, capsys):
    """events --count N --json prints N JSON lines and exits 0."""
    status = await run(*live.cli("events", "--count", "2", "--json", "--kind", "stats",
                                 "--stats-interval", "0.1"))
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        event = json.loads(line)
        assert event["event"] == "stats"
        assert event["data"]["node"] == live.server.hub.node


async def test_events_show_connections_and_operator_actions(live: Live, capsys):
    """events prints connection_opened and operator_action events as they happen."""
    events = asyncio.create_task(run(*live.cli(
        "events", "--count", "2", "--kind", "connection_opened", "--kind", "operator_action",
        "--stats-interval", "60")))
    # We cannot see when the subscription starts, so keep causing events
    # until the command has seen two: no sleep decides the outcome.
    opened = []
    async with asyncio.timeout(TIMEOUT * 2):
        while not events.done():
            opened.append(await live.client("/watched", user="eve"))
            await asyncio.wait([events], timeout=0.05)
    assert events.result() == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    ids = {live.id_of(ws) for ws in opened}
    for line in lines:
        clock, kind, *fields = line.split()
        assert kind == "connection_opened"
        [event_id] = [f[3:] for f in fields if f.startswith("id=")]
        assert event_id in ids
        assert "user=eve" in fields and "path=/watched" in fields


async def test_events_json_lines_include_operator_actions(live: Live, capsys):
    """events --json shows an operator's send as an operator_action object."""
    await live.client(user="ann")
    events = asyncio.create_task(run(*live.cli(
        "events", "--count", "1", "--json", "--kind", "operator_action")))
    async with asyncio.timeout(TIMEOUT * 2):
        while not events.done():
            await run(*live.cli("send", "ping", "--user", "ann"))
            await asyncio.wait([events], timeout=0.05)
    assert events.result() == 0
    out = capsys.readouterr().out
    action = json.loads([line for line in out.splitlines() if line.startswith("{")][0])
    assert action["event"] == "operator_action"
    assert action["data"]["op"] == "send" and action["data"]["role"] == "operator"


# Failures: one line on stderr, exit 1, never a traceback


async def test_unreachable_server_fails_with_one_line(capsys):
    """A command against a closed port exits 1 with one 'cannot reach' line."""
    url = f"ws://127.0.0.1:{closed_port()}"
    assert await run("ls", "--url", url, "--token", "t") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_error_line(captured.err, f"cannot reach {url}", "refused")


async def test_url_from_environment(live: Live, capsys, monkeypatch):
    """Without --url and --token, WSCONSOLE_URL and WSCONSOLE_TOKEN are used."""
    monkeypatch.setenv("WSCONSOLE_URL", live.url)
    monkeypatch.setenv("WSCONSOLE_TOKEN", OPERATOR_TOKEN)
    assert await run("stats", "--json") == 0
    assert json.loads(capsys.readouterr().out)["node"] == live.server.hub.node


async def test_token_file(live: Live, capsys, tmp_path):
    """--token-file reads the token from a file."""
    token_file = tmp_path / "token"
    token_file.write_text(OPERATOR_TOKEN + "\n")
    assert await run("stats", "--url", live.url, "--token-file", str(token_file)) == 0
    assert "serving" in capsys.readouterr().out


async def test_refused_token_fails_with_one_line(live: Live, capsys):
    """A wrong token exits 1 with one 'token refused' line that does not quote the token."""
    assert await run("ls", "--url", live.url, "--token", "wrong-secret") == 1
    err = capsys.readouterr().err
    assert_one_error_line(err, "token refused")
    assert "wrong-secret" not in err


async def test_no_token_fails_with_a_hint(live: Live, capsys):
    """No token anywhere exits 1 with a line saying where a token can come from."""
    assert await run("ls", "--url", live.url) == 1
    assert_one_error_line(capsys.readouterr().err, "no token", "--token-file")


async def test_unknown_id_fails_with_one_line(live: Live, capsys):
    """show of an id that is not open exits 1 with one line naming the id."""
    assert await run(*live.cli("show", "0123456789")) == 1
    assert_one_error_line(capsys.readouterr().err, "0123456789")


async def test_bad_selector_fails_with_one_line(live: Live, capsys):
    """An invalid sort key (a selector error on the server) exits 1 with one line."""
    assert await run(*live.cli("ls", "--sort", "shoe_size")) == 1
    assert_one_error_line(capsys.readouterr().err, "shoe_size")


async def test_a_close_the_server_would_refuse_is_a_usage_error(live: Live, capsys):
    """kick with a code that cannot be sent, or shutdown with a reason over 123
    bytes, exits 2 with the server's own words, before anything is sent."""
    await live.client(user="ann")
    assert await run(*live.cli("kick", "--all", "--code", "1006")) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: wsconsole kick")
    assert ("wsconsole kick: error: close code 1006 cannot be sent; use 1000, 1001, 1008, "
            "1011, 1012, 1013 or 3000-4999") in err
    assert await run(*live.cli("shutdown", "--reason", "é" * 62)) == 2
    assert "close reason must be at most 123 bytes of UTF-8" in capsys.readouterr().err
    # Neither request reached the control plane.
    requests = live.server.hub.control_requests
    assert not [key for key in requests if key[0] in ("disconnect", "shutdown")]
    assert live.server.hub.state == "serving"


async def test_read_only_token_is_forbidden_to_mutate(live: Live, capsys):
    """A read-only token may ls and stats, but send, kick and shutdown exit 1 'may not'."""
    ws = await live.client(user="ann")
    assert await run(*live.cli("ls", "--json", token=READ_ONLY_TOKEN)) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    for argv in (["send", "hi", "--all"], ["kick", "--all"], ["shutdown", "--graceful"]):
        assert await run(*live.cli(*argv, token=READ_ONLY_TOKEN)) == 1
        assert_one_error_line(capsys.readouterr().err, "read_only role may not")
    assert live.server.hub.state == "serving" and ws.close_code is None


# The installed script


async def test_installed_script_unreachable():
    """The installed wsconsole script exits 1 with one stderr line when the server is unreachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSCONSOLE_")}
    process = await asyncio.create_subprocess_exec(
        str(WSCONSOLE), "stats", "--url", f"ws://127.0.0.1:{closed_port()}", "--token", "t",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    async with asyncio.timeout(TIMEOUT * 4):
        out, err = await process.communicate()
    assert process.returncode == 1
    assert out == b""
    assert_one_error_line(err.decode(), "cannot reach")


async def test_installed_script_ls_json(live: Live):
    """The installed wsconsole script lists a live server's connections as JSON."""
    ws = await live.client("/chat", user="ann")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSCONSOLE_")}
    env["WSCONSOLE_TOKEN"] = OPERATOR_TOKEN
    process = await asyncio.create_subprocess_exec(
        str(WSCONSOLE), "ls", "--json", "--url", live.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    async with asyncio.timeout(TIMEOUT * 4):
        out, err = await process.communicate()
    assert process.returncode == 0, err
    [connection] = json.loads(out)
    assert connection["id"] == live.id_of(ws) and connection["user"] == "ann"


# nodes, --node and --timeout


async def test_nodes_lists_this_node(live: Live, capsys):
    """Without a cluster, `wsconsole nodes` lists the one node: its name, state,
    connections and control URL; --json is a list of node objects."""
    await three_clients(live)
    node = live.server.hub.node
    assert await run(*live.cli("nodes")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NODE", "STATE", "HEALTH", "CONNECTIONS", "IN/S", "OUT/S",
                              "LAST", "SEEN", "VERSION", "CONTROL", "URL"]
    assert len(out) == 2
    row = out[1].split()
    assert (row[0], row[1], row[3]) == (node, "serving", "3")
    assert row[-1] == live.url

    assert await run(*live.cli("nodes", "--json")) == 0
    nodes = json.loads(capsys.readouterr().out)
    assert isinstance(nodes, list) and [n["node"] for n in nodes] == [node]
    assert nodes[0]["connections"] == 3 and nodes[0]["control_url"] == live.url


async def test_timeout_out_of_range_is_a_usage_error(live: Live, capsys):
    """--timeout must be more than 0 and at most 60 seconds: said before connecting, exit 2."""
    for value in ("0", "-1", "61"):
        assert await run(*live.cli("ls", "--timeout", value)) == 2
        err = capsys.readouterr().err
        assert "--timeout must be more than 0 and at most 60 seconds" in err


async def test_node_selects_this_node_and_refuses_an_unknown_one(live: Live, capsys):
    """--node with this server's own name answers as without it; an unknown name
    fails with one line that names the valid nodes, exit 1, nothing done."""
    ann_chat, _, _ = await three_clients(live)
    node = live.server.hub.node
    assert await run(*live.cli("ls", "--json", "--node", node, "--timeout", "1")) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert await run(*live.cli("send", "--all", "--node", node, "--json", "hi")) == 0
    sent = json.loads(capsys.readouterr().out)
    assert sent["per_node"] == {node: {"recipients": 3, "delivered": 3, "skipped": 0}}

    for argv in (("ls",), ("kick", "--all"), ("stats",), ("nodes",),
                 ("shutdown", "--graceful")):
        assert await run(*live.cli(*argv, "--node", "elsewhere")) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert_one_error_line(captured.err, "elsewhere", node)
    assert live.server.hub.state == "serving" and len(live.server.hub.registry) == 3


async def test_events_lines_name_their_node_and_node_keeps_one(live: Live, capsys):
    """Each event line names the node it happened on; --node with this node's
    name keeps its events."""
    await live.client(user="ann")
    node = live.server.hub.node
    events = asyncio.create_task(run(*live.cli(
        "events", "--count", "1", "--kind", "operator_action", "--node", node)))
    async with asyncio.timeout(TIMEOUT * 2):
        while not events.done():
            await run(*live.cli("send", "ping", "--user", "ann"))
            await asyncio.wait([events], timeout=0.05)
    assert events.result() == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "operator_action" in line]
    assert lines and lines[0].split()[1:3] == ["operator_action", f"node={node}"]
