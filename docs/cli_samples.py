"""Regenerate the README's operator-command section: run every operator command
against a real ``wsconsole serve``.

    python docs/cli_samples.py    # rewrites README.md between the cli:begin/end markers

Starts ``wsconsole serve`` (the demo application) on free loopback ports with
fresh token files, opens a few real websockets clients, runs each documented
command through the installed ``wsconsole`` script, and writes the command
lines and their real output into the page. Nothing in the samples is typed by
hand; ids, times and addresses change from run to run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import socket
import sys
import tempfile
from pathlib import Path
from typing import Callable

from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
WSCONSOLE = str(Path(sys.executable).parent / "wsconsole")
NODE = "demo-1"


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            # As asyncio's servers do: a port in TIME_WAIT from the last run is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


class Session:
    """A running ``wsconsole serve`` and the page being written."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        # The documented defaults when they are free, so the page shows them.
        self.public = free_port(8765)
        self.control = free_port(8766)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WSCONSOLE_")}
        self.env["XDG_STATE_HOME"] = str(tmp / "state")
        self.env["COLUMNS"] = "100"
        self.page: list[str] = []
        self.clients: list[ClientConnection] = []
        self.server: asyncio.subprocess.Process | None = None
        self.serve_output: list[str] = []

    async def start(self) -> None:
        argv = [WSCONSOLE, "serve", "--port", str(self.public), "--control-port",
                str(self.control), "--node", NODE,
                "--read-only-token-file",
                str(self.tmp / "state" / "wsconsole" / "read-only-token")]
        self.server = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self.env)
        assert self.server.stdout is not None
        while True:
            line = (await self.server.stdout.readline()).decode()
            if not line:
                raise RuntimeError("wsconsole serve exited:\n" + "".join(self.serve_output))
            self.serve_output.append(line.replace(str(self.tmp), "~/.local"))
            if line.startswith("wsconsole: control plane on"):
                break
        # The rest of the banner (token files, metrics) is already written.
        for _ in range(3):
            try:
                async with asyncio.timeout(0.5):
                    line = (await self.server.stdout.readline()).decode()
            except TimeoutError:
                break
            self.serve_output.append(line.replace(str(self.tmp), "~/.local"))
        # Operators export these once; the samples below rely on them.
        self.env["WSCONSOLE_URL"] = f"ws://127.0.0.1:{self.control}"

    async def client(self, path: str, **headers: str) -> ClientConnection:
        ws = await connect(f"ws://127.0.0.1:{self.public}{path}",
                           additional_headers=headers or None)
        self.clients.append(ws)
        return ws

    async def run(self, command: str, *, stdin: bytes | None = None,
                  shown: str | None = None, token: str = "token",
                  keep: Callable[[str], str] | None = None) -> tuple[int, str]:
        """Run ``command`` (a shell-like line), record it and its output."""
        argv = shlex.split(command)
        assert argv[0] == "wsconsole"
        env = dict(self.env)
        env["WSCONSOLE_TOKEN"] = (self.tmp / "state" / "wsconsole" / "token").read_text().strip() \
            if token == "token" else (self.tmp / "state" / "wsconsole" / token).read_text().strip()
        process = await asyncio.create_subprocess_exec(
            WSCONSOLE, *argv[1:], env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate(stdin)
        text = out.decode().rstrip("\n")
        status = process.returncode
        shown_text = keep(text) if keep is not None else text
        block = [f"$ {shown or command}"] + ([shown_text] if shown_text else [])
        if status:
            block.append(f"$ echo $?\n{status}")
        self.page.append("```console\n" + "\n".join(block) + "\n```")
        return status, text

    def say(self, text: str) -> None:
        self.page.append(text.strip("\n"))

    async def stop(self) -> None:
        for ws in self.clients:
            await ws.close()
        if self.server is not None and self.server.returncode is None:
            self.server.terminate()
            await self.server.wait()


async def drain(ws: ClientConnection) -> None:
    """Read (and forget) what the demo echoes, so clients never stall."""
    try:
        async for _ in ws:
            pass
    except Exception:
        pass


async def generate(s: Session) -> None:
    await s.start()
    s.say(INTRO)
    s.page.append("```console\n$ wsconsole serve --read-only-token-file ~/.local/state/wsconsole/read-only-token\n"
                  + "".join(s.serve_output).rstrip("\n") + "\n```")
    s.say(ENVIRONMENT)

    ann = await s.client("/chat?user=ann&room=lobby",
                         Authorization="Basic YW5uOmh1bnRlcjI=", Cookie="session=0123abcd")
    bob = await s.client("/chat?user=bob&room=lobby")
    carol = await s.client("/feed?user=carol")
    dave = await s.client("/feed?user=dave&room=ops")
    for ws in (ann, bob, carol, dave):
        await ws.send("hello")
    readers = [asyncio.create_task(drain(ws)) for ws in (ann, bob, carol, dave)]

    s.say(LS)
    await s.run("wsconsole ls")
    await s.run("wsconsole ls --user ann --sort -msgs_in")
    await s.run("wsconsole ls --path '/c*'")
    await s.run("wsconsole ls --user 'bulk-*'")
    await s.run("wsconsole ls --wide --path /chat")
    await s.run("wsconsole ls --json --limit 1")
    await s.run("wsconsole ls --groups")
    s.say(LS_AFTER)

    connections = json.loads((await _json(s, "ls --json --user ann")))
    ann_id = connections[0]["id"]
    s.say(SHOW)
    await s.run(f"wsconsole show {ann_id[:6]}")

    s.say(SEND)
    await s.run('wsconsole send --topic lobby "server restarts at 18:00"')
    await s.run('wsconsole send --path /feed --check-json \'{"type": "refresh"}\'')
    await s.run('wsconsole send --path /feed --check-json \'{"type": refresh}\'')
    await s.run('wsconsole send --path /feed --json "refresh"')
    await s.run("wsconsole send --user ann", stdin=b"from a pipe\n",
                shown="echo 'from a pipe' | wsconsole send --user ann")
    await s.run("wsconsole send --all --binary", stdin=b"\x00\x01\x02",
                shown="printf '\\000\\001\\002' | wsconsole send --all --binary")
    await s.run('wsconsole send --all --dry-run "test"')
    await s.run('wsconsole send --user nobody "hi"')
    await s.run('wsconsole send "forgot the selector"')
    s.say(SEND_AFTER)

    s.say(KICK)
    await s.run("wsconsole kick --path /chat --dry-run")
    await s.run('wsconsole kick --user carol --code 4000 --reason "account suspended"')
    await s.run(f"wsconsole kick --id {ann_id} --json")

    s.say(STATS)
    await s.run("wsconsole stats")

    s.say(NODES)
    await s.run("wsconsole nodes")
    s.say(NODE_OPTION)
    await s.run(f"wsconsole ls --node {NODE} --user dave")
    await s.run("wsconsole ls --node elsewhere")

    s.say(EVENTS)
    events = asyncio.create_task(s.run(
        "wsconsole events --count 4 --kind connection_opened --kind connection_closed "
        "--kind operator_action"))
    # Keep causing events until the command has printed four of them.
    while not events.done():
        await s.client("/chat?user=erin")
        await _json(s, 'kick --user erin --code 4000 --reason "demo over"')
        await asyncio.wait([events], timeout=0.2)
    await s.run("wsconsole events --count 1 --json --kind stats --stats-interval 0.2")

    s.say(SHUTDOWN)
    await s.run("wsconsole shutdown --keep-alive --deadline 600")
    await s.run("wsconsole stats --json",
                shown="wsconsole stats --json | grep -E '\"(state|connections|shutdown_mode)\"'",
                keep=lambda text: "\n".join(
                    line for line in text.splitlines()
                    if any(f'"{key}"' in line for key in ("state", "connections", "shutdown_mode"))))
    await s.run('wsconsole shutdown --graceful --code 1012 --reason "restarting"')

    s.say(ERRORS)
    await s.run("wsconsole ls", shown="wsconsole ls   # the server has stopped")
    await _restart(s)
    await s.run("wsconsole ls --token-file /nonexistent",
                shown="wsconsole ls --token-file /nonexistent")
    await s.run("wsconsole ls --token wrong")
    await s.run(f"wsconsole ls --url ws://127.0.0.1:{s.public}",
                shown=f"wsconsole ls --url ws://127.0.0.1:{s.public}   # the public port")
    (s.tmp / "state" / "wsconsole" / "stale-token").write_text("wrong\n")
    await s.run("wsconsole ls", token="stale-token", shown="WSCONSOLE_TOKEN=wrong wsconsole ls")

    await s.run('wsconsole send --all "hi"', token="read-only-token",
                shown='WSCONSOLE_TOKEN=$(cat ~/.local/state/wsconsole/read-only-token) wsconsole send --all "hi"')
    await s.run("wsconsole show 0000000000")
    await s.run("wsconsole ls --sort=shoe_size")
    s.say(USAGE_ERRORS)
    await s.run("wsconsole kick --all --code 1006")
    s.say(OUTRO)
    for task in readers:
        task.cancel()


async def _json(s: Session, args: str) -> str:
    env = dict(s.env)
    env["WSCONSOLE_TOKEN"] = (s.tmp / "state" / "wsconsole" / "token").read_text().strip()
    process = await asyncio.create_subprocess_exec(
        WSCONSOLE, *shlex.split(args), env=env, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    return out.decode()


async def _restart(s: Session) -> None:
    assert s.server is not None
    await s.server.wait()
    s.clients.clear()
    s.serve_output.clear()
    await s.start()


INTRO = """
# Operator commands

`wsconsole ls`, `show`, `send`, `kick`, `shutdown`, `stats`, `nodes` and `events`
talk to a running server's control plane: one node, or through any node, every
node of a cluster (`wsconsole serve --redis`); so does `wsconsole tap` ([The live
message tap](#the-live-message-tap)). Each prints a readable table by
default and JSON with `--json`; each failure is one line on stderr and exit
status 1 (a usage error, such as `send` without a selector, is exit status 2; a
partial answer of a cluster, exit status 3: [Partial
answers](#partial-answers-exit-status-3)).

Every sample in this section is real output: `python docs/cli_samples.py` starts
`wsconsole serve` (the demo application) with four clients (ann and bob on
`/chat` in room `lobby`, carol and dave on `/feed`, dave in room `ops`), runs
each command, and rewrites this section of the README.

`wsconsole --version` prints the installed version (`wsconsole 0.1.0`).
`wsconsole --help` lists the operator's commands; `wsconsole screenshots`, a
maintainer's command, is named only at its end.

## Connecting

Every command takes:

| option | default | meaning |
|---|---|---|
| `--url URL` | `$WSCONSOLE_URL`, else `ws://127.0.0.1:8766` | the control listener (`ws+unix:PATH` for `--control-unix`) |
| `--token TOKEN` | | the bearer token |
| `--token-file FILE` | | read the token from FILE |
| | `$WSCONSOLE_TOKEN` | when neither option is given |
| | `~/.local/state/wsconsole/token` | the file `wsconsole serve` creates (`$XDG_STATE_HOME/wsconsole/token`), when it exists |
| `--node NAME` | | only this node of a cluster (`wsconsole nodes` lists them); an unknown name is an error that lists the valid ones |
| `--timeout SECONDS` | the server's: 2 for reads, 5 for actions | how long the nodes of a cluster may take to answer (more than 0, at most 60); the command waits 5 s more for the reply |
| `--json` | | JSON instead of a table |

On the machine that runs `wsconsole serve` with its defaults, no option is
needed: the commands find the control plane on 127.0.0.1:8766 and the token in
the file the server created.
"""

ENVIRONMENT = """
The samples below run with `WSCONSOLE_URL` and `WSCONSOLE_TOKEN` exported.
"""

LS = """
## `wsconsole ls`: list connections

Columns: id, node, user, request path, client address, age, messages in and
out, topics; `--wide` adds idle (time since the last message in), bytes in and
out, buffered (bytes waiting to be written) and latency (`-` until the first
keepalive ping came back). Filters: `--user`, `--path`, `--topic`, `--id-prefix`
(they combine with AND); a user, path or topic may be a
[pattern](#patterns-guest-api): `ls --user 'bulk-*'`, `--path '/api/*'`
(quote it, or the shell expands it). When nothing matches, stdout holds the
empty answer (nothing, or `[]` with `--json`) and stderr says so in words,
`wsconsole: no connection matches user=bulk-*`; the exit status stays 0, as
for `send` and `kick` to a selector that reaches nobody. `--sort KEY` sorts by id, user, path, remote,
connected_at (the default), last_activity, msgs_in, bytes_in, msgs_out,
bytes_out, buffered or latency; `-KEY` is descending (`--sort -msgs_in` or
`--sort=-msgs_in`). `--limit N` (1 to 1000, default
100) is the page size; `--all-pages` follows the server's cursor to the end.
`--groups` prints connection counts by node, user, path and topic instead.
"""

LS_AFTER = """
`ls --json` prints a JSON list of connection objects (`id`, `node`, `user`,
`path`, `query`, `remote`, `connected_at`, `last_activity`, `msgs_in`,
`bytes_in`, `msgs_out`, `bytes_out`, `buffered`, `latency`, `topics`), so
`wsconsole ls --json --all-pages | jq -r '.[].id'` lists every id.
"""

SHOW = """
## `wsconsole show ID`: one connection in full

Identity, counters, topics, then the handshake's request and response
headers. The server redacts secret values (`Authorization`, `Cookie`,
`X-Api-Key`, ...: [What is redacted](#what-is-redacted)) before they leave it. `--json` prints the same as one object
(headers as `[name, value]` pairs in `request_headers` and `response_headers`).
ID may be a unique prefix of an id (as `--id` of `send` and `kick`); a prefix
that several open ids start with fails and lists them.
"""

SEND = """
## `wsconsole send [MESSAGE]`: send to selected connections

A selector is required: `--all`, `--user U`, `--path P`, `--topic T`, `--id ID`
(a unique prefix of an id will do; repeat `--id` for several). Kinds combine
with AND: `--user ann --path /chat` is ann's connections on `/chat`; a user,
path or topic may be a [pattern](#patterns-guest-api) (`--user 'guest*'`; try
it with `--dry-run`). A selector that reaches nobody sends nothing and says
`wsconsole: no connection matches user=guest*` on stderr (exit status 0; the
same for `kick`). MESSAGE is read from stdin when it is missing
or `-` (one trailing newline is dropped from text read from stdin); `--binary`
sends a binary message (stdin's bytes, or MESSAGE's UTF-8). `--dry-run` counts
the recipients and shows a sample of ids without sending. `--check-json`
refuses, before connecting, a MESSAGE that does not parse as JSON (exit status
2, saying where it stops being JSON); the message is still sent as it was
written. Not to be confused with `--json`, the output format. The output is
`sent to DELIVERED of RECIPIENTS (skipped N)`: skipped connections were closing.
When more than one node acted, a table of the same counts by node follows. The
JSON has `per_node` (`{NODE: {"recipients", "delivered", "skipped"}}`) and
`missing` (`{NODE: REASON}`, `{}` for a full answer).
"""

SEND_AFTER = """
A selector that matches nothing is not an error: it sends to 0. No selector at
all is a usage error, so a forgotten flag never broadcasts.
"""

KICK = """
## `wsconsole kick`: disconnect selected connections

The same selectors as `send`. `--code` (default 1000; 1000, 1001, 1008, 1011,
1012, 1013 or 3000-4999) and `--reason` (at most 123 bytes) go in the close
frame the clients receive. Its JSON has `count`, `per_node` (`{NODE:
{"count"}}`) and `missing`, as `send`'s. `--dry-run` counts the connections
the selector matches and shows a sample of ids, closing nothing (its JSON adds
`sample` and `"dry_run": true`).
"""

STATS = """
## `wsconsole stats`: the server at a glance

Node, state (`serving`, `draining`, `stopped`), listening addresses, uptime,
open connections, connections opened and closed since start, messages and
bytes in and out, and their rates over the last second. Of a cluster: its
totals, then a line per node (state, connections, rates, uptime); `--json` has
each node's own stats under `per_node`.
"""

NODES = """
## `wsconsole nodes`: the nodes of a cluster

One line per node, by name: state (`serving`, `draining`, `stopped`), health
(`live`, `suspect` after missed heartbeats, `gone`; a gone node stays listed
about 30 s), open connections, messages per second in and out, the age of its
last heartbeat, its wsconsole version and its control URL. Without `--redis`,
the one node. `--json` prints a list of node objects (`node`, `state`,
`health`, `connections`, `rates`, `started_at`, `uptime`, `version`, `listen`,
`control_url`, `last_seen`).
"""

NODE_OPTION = """
`--node NAME` on any command reads from or acts on that node only; a name the
cluster does not know fails and lists the names it knows:
"""

EVENTS = """
## `wsconsole events`: the live event stream

Prints events as they happen, one per line, flushed (so it works in a pipe):
`connection_opened`, `connection_closed` (with the close code), `burst` (counts
that replaced individual connection events during a flood), `operator_action`
(every send, kick and shutdown, by any operator), `state_changed`,
`drain_escalated` (a keep-alive drain's deadline fired, or a graceful shutdown
cut it short), `slow_consumer`, `node` (a node of the cluster joined, turned suspect, went,
came back or changed state), and `stats` every `--stats-interval` seconds
(default 5). Every event names the node it happened on; `--node NAME` keeps
that node's only.
`--kind K` (repeatable) keeps only some kinds; `--count N` exits after N
events; `--json` prints one JSON object per line. `--backlog N` first prints
up to N events of before it attached (the server's backlog, see
[subscribe](#subscribe-unsubscribe)), each marked `(backlog)` (`"backlog":
true` with `--json`). Without `--count` it runs
until interrupted (exit status 130) or until the link is lost: the server
stopped, was killed or went away. That is a failure, not an end: exit status 1
and one line on stderr that says how the connection ended (`wsconsole: error:
the event stream ended: the control connection to ws://127.0.0.1:8766 was lost
without a close frame (the server was killed, or the network failed)`), so
that a script reading the events knows they stopped.
"""

SHUTDOWN = """
## `wsconsole shutdown`: stop the server

`--graceful` (the default) stops accepting and closes every connection with
`--code` (default 1001) and `--reason`. `--keep-alive` stops accepting and
keeps serving the open connections until they close; with `--deadline
SECONDS`, the ones still open then are closed gracefully. A graceful shutdown
may follow a keep-alive one, to cut the drain short: it says so ("the
keep-alive drain is cut short: closing the 3 connections still open (code
1001)"), and every console watching gets a `drain_escalated` event with how
many closed on their own and how many the server closed (as when the deadline
fires). The reply comes before the
shutdown starts; the control plane keeps answering (`stats`, `ls`, `send`,
`events`) until the server has stopped. In a cluster, `shutdown` stops every
node, the one you are attached to last (so that you can follow the drain), and
`--node NAME` stops that node alone; with several nodes, the output ends with
a line per node.
"""

ERRORS = """
## When a command fails

One line on stderr, exit status 1, never a traceback. An endpoint that takes
the WebSocket handshake but does not answer `hello` as a control plane does
(`"server": "wsconsole"` in its result: see [hello](#hello)) is named as such,
typically the public port:
"""

USAGE_ERRORS = """
A usage error is caught before anything is sent, prints the usage and exits 2:
a command that needs a selector and has none, or a close code or reason that
the server would refuse (the command line checks them with the server's own
rules):
"""

OUTRO = """
## Partial answers (exit status 3)

In a cluster, a request goes to every live node and ends when all have
answered or at its deadline (`--timeout`). A node that did not answer never
throws away what the others said: the command prints what it got, in the
usual shape (`ls --json` is still a list), names the missing nodes and why in
one line on stderr, and exits with status 3. The line reads `wsconsole: partial
answer: 1 node did not answer: node-b (no reply before the deadline)`. The
reasons are "no reply before the deadline" and "broker unavailable" (Redis is
down: the node you are attached to answers for itself), or the node's own
words.

## Exit statuses

| status | meaning |
|---|---|
| 0 | a full answer |
| 1 | failure: one line on stderr says why (unreachable, refused token, not a control plane, unknown id or node, ...); also `events` and `tap` when the link is lost before they were done |
| 2 | usage error, caught before anything is sent |
| 3 | a partial answer: printed what was gathered; the nodes that did not answer are named on stderr |
| 130 | interrupted (Ctrl-C, e.g. to stop `events`) |
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(Path(tmp))
        try:
            await generate(session)
        finally:
            await session.stop()
        text = "\n\n".join(session.page) + "\n"
        text = text.replace(tmp, "~/.local")
        write_readme_section(text)


BEGIN, END = "<!-- cli:begin -->", "<!-- cli:end -->"


def write_readme_section(page: str) -> None:
    """Put the page into README.md between the markers, one heading level down."""
    readme = HERE.parent / "README.md"
    section = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", page.strip(), flags=re.M)
    text = readme.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:start] + "\n" + section + "\n" + text[end:])
    print(f"wrote the operator commands section of {readme}")


if __name__ == "__main__":
    asyncio.run(main())
