"""Regenerate the README's section on the live message tap, with real output.

    python docs/tap_samples.py    # rewrites README.md between the tap:begin/end markers

Starts ``wsconsole serve --allow-tap`` (the demo application: it echoes) on
free loopback ports, connects a few real clients, and runs ``wsconsole tap``
through the installed script while the clients talk, as an operator would
(Ctrl+C included). Nothing in the samples is typed by hand.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_samples import NODE, WSCONSOLE, Session, drain  # noqa: E402

from wsconsole.server import tap  # noqa: E402
from wsconsole.server.errors import TapDisabled  # noqa: E402

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- tap:begin -->", "<!-- tap:end -->"


class TapSession(Session):
    async def start(self) -> None:
        argv = [WSCONSOLE, "serve", "--allow-tap", "--port", str(self.public),
                "--control-port", str(self.control), "--node", NODE,
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
            if line.startswith("wsconsole: live message tap"):
                break
        self.env["WSCONSOLE_URL"] = f"ws://127.0.0.1:{self.control}"

    async def tap(self, command: str, during, *, interrupt: bool = False,
                  token: str = "token") -> None:
        """Run ``wsconsole tap ...``; ``during()`` once it taps; Ctrl+C if asked."""
        argv = shlex.split(command)
        env = dict(self.env)
        env["WSCONSOLE_TOKEN"] = (self.tmp / "state" / "wsconsole" / token).read_text().strip()
        process = await asyncio.create_subprocess_exec(
            WSCONSOLE, *argv[1:], env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        assert process.stdout is not None and process.stderr is not None
        lines: list[str] = []
        first = (await process.stderr.readline()).decode().rstrip("\n")
        if first:
            lines.append(first)
        if "tapping" in first:
            await asyncio.sleep(0.3)
            await during()
            await asyncio.sleep(0.5)
            if interrupt:
                process.send_signal(signal.SIGINT)
        out, err = await process.communicate()
        lines += out.decode().splitlines()
        if interrupt:
            lines.append("^C")
        lines += err.decode().splitlines()
        block = [f"$ {command}"] + lines
        if process.returncode:
            block.append(f"$ echo $?\n{process.returncode}")
        self.page.append("```console\n" + "\n".join(block) + "\n```")


async def generate(s: TapSession) -> None:
    await s.start()
    s.say(INTRO)
    s.page.append("```console\n$ wsconsole serve --allow-tap\n"
                  + "".join(line for line in s.serve_output
                            if "tap" in line or "serving" in line).rstrip("\n") + "\n```")
    ann = await s.client("/chat?user=ann&room=lobby")
    bob = await s.client("/feed?user=bob")
    for ws in (ann, bob):
        asyncio.get_running_loop().create_task(drain(ws))
    await asyncio.sleep(0.3)
    s.say(ONE_USER)

    async def ann_talks() -> None:
        await ann.send('{"type": "chat", "text": "hello lobby"}')
        await ann.send(b"\x00\x01\x02\xff")
        await ann.send("\x1b]0;owned\x07 a title change, escaped")
        await asyncio.sleep(0.2)
        operator = await asyncio.create_subprocess_exec(
            WSCONSOLE, "send", "--user", "ann", "server restarts at 18:00",
            env={**s.env, "WSCONSOLE_TOKEN": (s.tmp / "state" / "wsconsole" / "token")
                 .read_text().strip()},
            stdout=asyncio.subprocess.DEVNULL)
        await operator.wait()

    await s.tap("wsconsole tap @ann --max-bytes 32", ann_talks, interrupt=True)
    s.say(JSON)

    async def bob_talks() -> None:
        await bob.send('{"type": "subscribe", "feed": "prices"}')

    await s.tap("wsconsole tap path=/feed --in --json --duration 2", bob_talks)
    s.say(FLOOD)

    async def bob_floods() -> None:
        for index in range(500):
            await bob.send(f"tick {index}")

    await s.tap("wsconsole tap @bob --in --rate 5 --max-bytes 0 --duration 2", bob_floods)
    s.say(REFUSED)

    async def nothing() -> None:
        return None

    await s.tap("wsconsole tap all", nothing, token="read-only-token")
    s.say(REFERENCE)


INTRO = """\
## The live message tap

"What is this client actually sending, and what are we sending it?" A tap
answers it live, with no redeploy: the data messages that the selected
connections receive (`in`) and send (`out`), one record each, with the time,
connection id, user, direction, opcode (text or binary), size, and the first
bytes of the payload. It is off unless the server allows it:
`wsconsole serve --allow-tap`, or `serve(..., allow_tap=True)`."""

ONE_USER = """\
### `wsconsole tap SELECTOR`: watch connections

SELECTOR is a connection id (`id=ID` too), `user=NAME` (`@NAME`), `path=/P`
(`/P`), `topic=T` (`#T`), or `all`; several words combine with AND. One line
per message: text is quoted and escaped as every client string is (an escape
sequence cannot reach your terminal), binary is hex, and `…` says the payload
was cut at `--max-bytes` (default 256). A message an operator sends (`wsconsole
send`, the console's compose dialog) is an `out` line like any other. Ctrl+C
stops the tap and says how many records were shown and how many dropped; the
exit status is 0. The first and last lines go to stderr, the records to stdout."""

JSON = """\
`--in` or `--out` keeps one direction; `--json` prints one JSON object per
record (`time`, `id`, `node`, `user`, `kind`, `opcode`, `size`, `data`,
`truncated`, and `filtered` when the server's `tap_filter` withheld the
payload); `--duration SECONDS` ends the tap by itself (default 300)."""

FLOOD = """\
A tap shows at most `--rate` messages a second (default 50, bursts of one
second's worth) and `--byte-rate` payload bytes a second (default 32 KiB);
the rest are dropped and counted, and the client is not slowed down.
`--max-bytes 0` shows sizes only:"""

REFUSED = """\
A tap shows the users' data: the read-only token may not start one."""

def _indented(code: str) -> str:
    return "\n".join(f"  {line}" if line else "" for line in code.splitlines())


# The example file without its docstring, as it is on disk.
_EXAMPLE = _indented((HERE / "examples" / "tap_filter.py").read_text()
                     .split(chr(34) * 3, 2)[2].strip())

REFERENCE = f"""\
### Safe by construction

- **Off by default.** `tap_start` on a server without `--allow-tap` is refused
  with `tap_disabled`: "{TapDisabled.__doc__.split(':')[0].strip()}".
- **Operator role only.** `tap_start` is refused to the read-only role
  (`forbidden`), like `send`.
- **Audited.** A start is an `accepted` `tap_start` line of the audit log
  (who, selector, limits); every end, however it came, is a `tap_end` line
  with why it ended, how long it ran, and how many records were shown and
  dropped. Both are published as `operator_action` events, so every operator
  sees them, and `stats` lists the running taps (`taps`: id, selector, limits,
  who, since when, until when, shown, dropped): the console's status bar says
  `TAP` while one runs, on every console attached.
- **Bounded.** At most `--max-taps` taps at once (default {tap.DEFAULT_MAX_TAPS};
  then `too_many_taps`). Each shows at most its `rate` and `byte_rate`; what
  passes them is dropped and counted, never queued: a tap's queue holds two
  seconds' worth at its rate, so an operator who cannot keep up loses records,
  not server memory. A tap ends after its `duration` (default
  {tap.DEFAULT_DURATION:g} s, at most {tap.MAX_DURATION:g}), when its control
  connection goes away, when the server stops, and, for a tap of given ids,
  when all of them have closed (a tap of a user, path, topic or everyone goes
  on: new members are tapped as they come).
- **Redactable.** `serve(..., tap_filter=f)` calls `f(connection, message)`
  for each message a tap is about to show (str for text, bytes for binary,
  the whole message, up to {tap.FILTER_MESSAGE_LIMIT // 1048576} MiB) and shows what it returns (str or
  bytes), or no payload for `None`; a filter that raises hides that payload.
  A field-masking filter for JSON messages, from
  [docs/examples/tap_filter.py](docs/examples/tap_filter.py):

  ```python
{_EXAMPLE}
  ```
- **Never in a log.** wsconsole writes no payload to any log or audit line (a
  failing filter is logged by its exception's type only), and at DEBUG the
  control listener logs its frames, tap records included, by opcode and size
  (`> TEXT [2410 bytes]`), never their contents. The public server's DEBUG
  lines are websockets' own and show the first bytes of the clients' frames,
  tap or no tap: keep DEBUG for debugging.
- **No cost when nobody taps.** A connection is hooked only while a tap
  covers it: it and its protocol are switched to subclasses of their own
  classes that see every frame, and switched back after; nothing is added to
  the objects or their classes. With no tap, the hot path is exactly the code
  it is without the feature: `tests/benchmarks/bench_tap.py` measures the echo
  path with taps off at 1.00-1.02 of bare websockets' CPU per message, also
  right after taps ran; a tapped connection pays a few microseconds per
  message. Figures in [docs/benchmarks.md](docs/benchmarks.md#the-live-message-tap).

- **In cluster mode**, a tap covers the connections of the node it is started
  on (the console's control connection's node); `--node` naming another node
  says so, and an unknown one is `unknown_node`. Its records name their node,
  and `stats` on every node lists every node's running taps, so every
  console shows them.

### In the console

`T` on the main screen taps the current group or filter (everyone when there
is none), and `T` in the detail view taps that connection. The tap screen has
a control connection of its own, so closing it ends the tap: the records
scroll live (in green, out in cyan, closes in yellow, every payload escaped),
`space` pauses and resumes (what arrives meanwhile is held, up to the
screen's 2,000 lines, and shown on resume), `c` clears, and the header counts
what the server showed and dropped and when the tap ends; `esc` stops the tap
and goes back. The read-only token cannot open one.

![The tap screen](screenshots/tap.svg)

### On the control plane

`tap_start` (operator): `selector` (required), `direction` (`in`, `out`, or
null for both), `max_bytes` (0 to {tap.MAX_MAX_BYTES}, default {tap.DEFAULT_MAX_BYTES}),
`rate` (1 to {tap.MAX_RATE}, default {tap.DEFAULT_RATE}), `byte_rate` (1 to
{tap.MAX_BYTE_RATE}, default {tap.DEFAULT_BYTE_RATE}), `duration` (seconds, more
than 0, at most {tap.MAX_DURATION:g}, default {tap.DEFAULT_DURATION:g}). Result: the tap
as `stats` lists it (`tap`, its id, and `node`, `selector`, the limits,
`role`, `client`, `started_at`, `ends_at`, `shown`, `dropped`). Then, on the
same control connection and with no `subscribe`, `tap` events carry its
records at most every 100 ms (`{{"tap", "records", "shown", "dropped"}}`;
sent when there are new records or new drops), and one `tap_ended` event its
end (`tap`, `reason`: `stopped`, `duration`, `no_connections`,
`disconnected`, `server_stopped`; `shown`, `dropped`). A record's `kind` is
`in`, `out`, or `closed` (a tapped connection closed: `code`, `reason`).
`tap_stop` (`tap`: an id this connection started) stops it now: `stopped`,
`reason`, `shown`, `dropped` (`stopped: false` if it had ended already or is
another connection's). Errors: `tap_disabled`, `too_many_taps`, `forbidden`,
`bad_selector`, `bad_request` (a limit out of range)."""


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        session = TapSession(Path(tmp))
        try:
            await generate(session)
        finally:
            await session.stop()
        text = "\n\n".join(session.page) + "\n"
        text = text.replace(tmp, "~/.local")
        readme = HERE.parent / "README.md"
        page = readme.read_text()
        start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
        readme.write_text(page[:start] + "\n" + text + page[end:])
        print(f"wrote the tap section of {readme}")


if __name__ == "__main__":
    asyncio.run(main())
