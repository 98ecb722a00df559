"""A seeded fuzzer for the control plane: hostile requests from both tokens.

Run it (it starts ``wsconsole serve`` with an audit log in a temporary
directory, and stops it at the end)::

    .venv/bin/python tests/stress/fuzz_control.py --cases 40000 --seed 1

It sends mutated requests (wrong types, lone surrogates, 1e999, NaN, huge
integers, deep nesting, long strings, unknown fields, binary frames, broken
JSON, now and then a frame over the size limit) over several control
connections, half with the operator token and half with the read-only one,
and checks that:

- the server never dies: it is still running, ``/healthz`` answers, a new
  connection's ``hello`` works, and its log has no traceback;
- every reply is strict JSON (no NaN, no duplicate key, no lone surrogate),
  one per request, carrying the request's id whenever it had a readable one;
  only an oversized frame closes a connection (1009);
- two other operators, subscribed to events and sending nothing, keep their
  stream from start to end, and see the final marker ``send``;
- the audit file parses strictly (tests/stress/strict.py), and each fuzzing
  connection has exactly one line per request that named a mutating
  operation, except those the rate limiter refused.

It prints its figures and exits 1 if any check failed. The default test run
uses :func:`run_fuzz` with a few hundred cases (tests/server/test_audit.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.stress.serve_process import OPERATOR_TOKEN, READ_ONLY_TOKEN, ServeProcess
from tests.stress.strict import StrictJSONError, read_audit_file, strict_loads
from wsconsole.server import wire
from wsconsole.server.errors import ERROR_CLASSES, ProtocolViolation

__all__ = ["CaseGenerator", "Case", "FuzzFigures", "run_fuzz", "main"]

MUTATING = frozenset(wire.MUTATING_OPERATIONS)
REPLY_TIMEOUT = 20.0
"""Seconds a reply may take on a busy machine before the run calls it lost."""
OVERSIZED = 1 << 20
"""The server's default request limit: a frame above it closes with 1009."""


# The cases


@dataclass
class Case:
    """One frame to send, and what the fuzzer itself reads in it."""

    frame: str | bytes
    kind: str
    """The mutation that made it (for the figures)."""


_RAW_NUMBERS = {  # spelled in the text, where json.dumps could not write them
    '"@@inf@@"': "1e999",
    '"@@-inf@@"': "-1e999",
    '"@@nan@@"': "NaN",
    '"@@infinity@@"': "Infinity",
    '"@@bigint@@"': "1" + "0" * 400,
}


class CaseGenerator:
    """Mutated requests, reproducible from a seed (any int or str)."""

    def __init__(self, seed: int | str) -> None:
        self.random = random.Random(seed)

    # Hostile values

    def size(self) -> int:
        """A length: mostly around the audit log's limits, rarely huge."""
        r = self.random
        if r.random() < 0.01:
            return r.choice([50_000, 300_000])
        return r.choice([1, 10, 123, 124, 199, 200, 201, 1000])

    def string(self, short: bool = False) -> str:
        r = self.random
        n = r.randint(1, 30) if short else self.size()
        choices = [
            lambda: "",
            lambda: "ann",
            lambda: "\ud800",
            lambda: "a\udc00b",
            lambda: "\udbff" * min(n, 50),
            lambda: "😀" * n,
            lambda: "".join(chr(r.randint(0, 31)) for _ in range(min(n, 200))),
            lambda: "\u2028\u2029\ufeff\u200b",
            lambda: "\x1b[31mred\x1b[0m",
            lambda: "é" * n,
            lambda: "x" * n,
            lambda: "token=secret&key=1",
            lambda: "/" + "a/" * min(n, 300),
            lambda: r.choice(["graceful", "keep_alive", "everyone", "-sent", "connected_at"]),
            lambda: "".join(chr(r.randint(32, 0x10FFFF)) for _ in range(min(n, 50))
                            ).encode("utf-8", "replace").decode("utf-8", "replace"),
        ]
        return r.choice(choices)()

    def number(self) -> Any:
        r = self.random
        return r.choice([0, -1, 1, 1000, 1001, 4000, 1005, 65536, 2**53 + 1, 2**63, -2**63,
                         1.5, -0.0, 1e308, 0.1, 86_400, 86_401,
                         "@@inf@@", "@@-inf@@", "@@nan@@", "@@infinity@@", "@@bigint@@"])

    def nested(self) -> Any:
        r = self.random
        value: Any = r.choice([1, "x", None, self.string()])
        for _ in range(r.choice([2, 10, 50, 300]) if r.random() > 0.01 else 900):
            value = [value] if r.random() < 0.7 else {"k": value}
        return value

    def value(self) -> Any:
        r = self.random
        roll = r.random()
        if roll < 0.35:
            return self.string()
        if roll < 0.6:
            return self.number()
        if roll < 0.7:
            return r.choice([True, False, None])
        if roll < 0.8:
            return self.nested()
        if roll < 0.9:
            return [self.value() for _ in range(r.randint(0, 5))]
        return {self.string(short=True): self.value() for _ in range(r.randint(0, 4))}

    def selector(self) -> Any:
        r = self.random
        roll = r.random()
        if roll < 0.3:
            return r.choice([{"everyone": True}, {"user": "fuzz-nobody"},
                             {"ids": ["nope"]}, {"topic": "fuzz"}])
        if roll < 0.5:
            return {r.choice(["everyone", "user", "path", "topic", "ids"]): self.value()}
        if roll < 0.6:
            count = r.choice([1, 20, 21, 500]) if r.random() > 0.02 else 20_000
            return {"ids": [self.string(short=True) if r.random() < 0.8 else self.value()
                            for _ in range(count)]}
        if roll < 0.7:
            return {self.string(short=True): True}
        if roll < 0.8:
            return {}
        return self.value()

    # Requests

    def template(self) -> dict[str, Any]:
        r = self.random
        op = r.choice(["send"] * 4 + ["disconnect"] * 3 + ["shutdown"] * 2
                      + ["hello", "list", "get", "stats", "nodes", "subscribe", "unsubscribe"])
        args: dict[str, Any]
        if op == "send":
            args = {"selector": {"user": "fuzz-nobody"},
                    r.choice(["text", "binary"]): r.choice(["hi", "aGk="])}
            if r.random() < 0.3:
                args["dry_run"] = r.choice([True, False])
        elif op == "disconnect":
            args = {"selector": {"user": "fuzz-nobody"}, "code": 4000, "reason": "fuzz"}
        elif op == "shutdown":
            args = {"mode": r.choice(["graceful", "keep_alive"]), "deadline": 5}
        elif op == "list":
            args = {"limit": 10, "sort": "-idle"}
        elif op == "get":
            args = {"id": "nope"}
        elif op == "subscribe":
            args = {"stats_interval": 60}
        else:
            args = {}
        return {"id": r.randint(1, 10**9), "op": op, "args": args}

    def mutate(self, request: dict[str, Any]) -> str:
        r = self.random
        kind = r.choice(["id", "op", "args", "arg", "arg", "arg", "selector", "selector",
                         "extra", "missing", "none"])
        args = request.get("args")
        if kind == "id":
            if r.random() < 0.3:
                request.pop("id", None)
            else:
                request["id"] = self.value()
        elif kind == "op":
            request["op"] = r.choice([self.value(), "SEND", "send ", "launch", *wire.OPERATIONS])
        elif kind == "args":
            request["args"] = self.value()
        elif kind == "arg" and isinstance(args, dict):
            name = r.choice([*args, "text", "binary", "code", "reason", "mode", "deadline",
                             "dry_run", "limit", "cursor", "stats_interval", "id",
                             self.string(short=True)] if args else ["text"])
            args[name] = self.value()
        elif kind == "selector" and isinstance(args, dict):
            args["selector"] = self.selector()
        elif kind == "extra":
            request[r.choice(["extra", "ID", self.string(short=True)])] = self.value()
        elif kind == "missing" and isinstance(args, dict) and args:
            args.pop(r.choice(list(args)))
        return kind

    def case(self) -> Case:
        r = self.random
        request = self.template()
        kinds = [self.mutate(request) for _ in range(r.choice([1, 1, 1, 2, 3]))]
        text = json.dumps(request, ensure_ascii=r.random() < 0.5)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: JSON spells it \udXXX
            text = json.dumps(request, ensure_ascii=True)
        if "@@" in text:
            for placeholder, raw in _RAW_NUMBERS.items():
                text = text.replace(placeholder, raw)
        roll = r.random()
        if roll < 0.03:
            text = text[: r.randint(0, max(len(text) - 1, 0))]
            kinds.append("truncated")
        elif roll < 0.05:
            text = text.replace("{", '{"id": 1, ', 1)  # a duplicate key, most often
            kinds.append("duplicate-key")
        elif roll < 0.06:
            text = "\ufeff" + text
            kinds.append("bom")
        elif roll < 0.07:
            text = r.choice(["[", "{", '"']) * r.choice([10, 5000, 200_000]) + text
            kinds.append("deep-prefix")
        elif roll < 0.072:
            text = text + " " * (OVERSIZED + 1)
            kinds.append("oversized")
        frame: str | bytes = text
        roll = r.random()
        if roll < 0.05:
            frame = text.encode("utf-8")
            kinds.append("binary")
        elif roll < 0.06:
            frame = bytes(r.randint(0, 255) for _ in range(r.randint(1, 200)))
            kinds.append("binary-garbage")
        return Case(frame, "+".join(sorted(set(kinds))))


def names_mutating_operation(frame: str | bytes) -> tuple[bool, Any]:
    """(does this frame name a mutating operation, the id it carries if readable).

    The fuzzer's own reading, independent of the server's parser: a JSON
    object (Python's json, NaN refused) whose ``op`` is a mutating one.
    """
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            return False, None
    try:
        data = json.loads(frame, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return False, None
    if not isinstance(data, dict):
        return False, None
    request_id = data.get("id")
    readable = (isinstance(request_id, int) and not isinstance(request_id, bool)) or (
        isinstance(request_id, str) and _is_text(request_id))
    op = data.get("op")
    return isinstance(op, str) and op in MUTATING, request_id if readable else None


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _defuse(frame: str | bytes, operator: bool) -> str | bytes:
    """The server must survive the run: a valid operator shutdown is made invalid."""
    if not operator or isinstance(frame, bytes):
        return frame
    try:
        request = wire.parse_request(frame)
    except ProtocolViolation:
        return frame
    except Exception:  # the server's parser is under test: it will say so itself
        return frame
    if request.op != "shutdown":
        return frame
    data = json.loads(frame)
    data["args"]["mode"] = "not-a-mode"
    return json.dumps(data, ensure_ascii=True)


# The run


@dataclass
class FuzzFigures:
    """What a run saw; ``failures`` empty means every check passed."""

    cases: int = 0
    seconds: float = 0.0
    replies: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    oversized_closes: int = 0
    events_seen: Counter[str] = field(default_factory=Counter)
    audit_lines: int = 0
    audit_expected: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(message)

    def report(self) -> str:
        lines = [
            f"cases:            {self.cases} in {self.seconds:.1f} s "
            f"({self.cases / max(self.seconds, 1e-9):.0f}/s)",
            "replies:          " + ", ".join(f"{k} {v}" for k, v in self.replies.most_common()),
            f"closed with 1009: {self.oversized_closes} (oversized frames; reconnected)",
            "watcher events:   " + ", ".join(f"{k} {v}" for k, v in
                                            sorted(self.events_seen.items())),
            f"audit lines:      {self.audit_lines} (expected {self.audit_expected}; "
            "every line strict JSON)",
            f"checks:           {'all passed' if not self.failures else 'FAILED'}",
        ]
        lines += [f"  - {failure}" for failure in self.failures]
        return "\n".join(lines)


class _Watcher:
    """An operator who only watches: its stream must survive the whole run."""

    def __init__(self, ws: ClientConnection, name: str, figures: FuzzFigures) -> None:
        self.ws = ws
        self.name = name
        self.figures = figures
        self.markers: set[str] = set()
        self.closed: str | None = None
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                try:
                    message = strict_loads(frame)
                except StrictJSONError as exc:
                    self.figures.fail(f"{self.name}: an event is not strict JSON: {exc}")
                    continue
                kind = message.get("event")
                if kind is None:
                    continue  # the reply to subscribe
                self.figures.events_seen[kind] += 1
                if kind == "operator_action":
                    selector = (message["data"].get("args") or {}).get("selector")
                    if isinstance(selector, dict) and isinstance(selector.get("user"), str):
                        self.markers.add(selector["user"])
        except ConnectionClosed as exc:
            self.closed = f"code {exc.rcvd.code if exc.rcvd else 1006}"
        self.closed = self.closed or "ended"


async def _open(url: str, token: str) -> ClientConnection:
    return await connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                         max_size=None, open_timeout=REPLY_TIMEOUT)


async def _reply(ws: ClientConnection) -> Any:
    """The next reply (events met on the way are skipped), strictly parsed."""
    async with asyncio.timeout(REPLY_TIMEOUT):
        while True:
            frame = await ws.recv()
            message = strict_loads(frame)
            if not (isinstance(message, dict) and "event" in message):
                return message


def _check_reply(reply: Any, expected_id: Any, figures: FuzzFigures, case: Case) -> str:
    if not isinstance(reply, dict) or set(reply) not in ({"id", "ok", "result"},
                                                         {"id", "ok", "error"}):
        figures.fail(f"[{case.kind}] reply has the wrong shape: {str(reply)[:200]}")
        return "bad-shape"
    if reply["id"] != expected_id:
        figures.fail(f"[{case.kind}] reply id {str(reply['id'])[:40]} for request id "
                     f"{str(expected_id)[:40]}")
    if reply["ok"] is True:
        return "ok"
    error = reply["error"]
    if not (isinstance(error, dict) and error.get("code") in ERROR_CLASSES
            and isinstance(error.get("message"), str)):
        figures.fail(f"[{case.kind}] error reply is malformed: {str(error)[:200]}")
        return "bad-error"
    if error["code"] == "internal_error":
        figures.fail(f"[{case.kind}] internal_error: {error['message']}: {str(case.frame)[:200]}")
    return error["code"]


async def _fuzz_connection(url: str, token: str, operator: bool, generator: CaseGenerator,
                           count: int, rate: float, figures: FuzzFigures,
                           expected: Counter[str]) -> None:
    ws = await _open(url, token)
    client = "%s:%s" % ws.local_address[:2]
    interval = 1.0 / rate
    next_at = time.monotonic()
    try:
        for _ in range(count):
            case = generator.case()  # one at a time: a run never holds its cases
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            frame = _defuse(case.frame, operator)
            mutating, request_id = names_mutating_operation(frame)
            figures.kinds[case.kind] += 1
            size = len(frame.encode("utf-8")) if isinstance(frame, str) else len(frame)
            oversized = size > OVERSIZED
            try:
                await ws.send(frame)
                reply = await _reply(ws)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                if oversized and code == 1009:
                    figures.oversized_closes += 1
                else:
                    figures.fail(f"[{case.kind}] the server closed the connection ({code}) "
                                 f"after {str(frame)[:200]}")
                ws = await _open(url, token)
                client = "%s:%s" % ws.local_address[:2]
                continue
            except StrictJSONError as exc:
                figures.fail(f"[{case.kind}] reply is not strict JSON: {exc}")
                continue
            except TimeoutError:
                figures.fail(f"[{case.kind}] no reply within {REPLY_TIMEOUT:g} s")
                continue
            if oversized:
                figures.fail(f"[{case.kind}] an oversized frame was answered")
            outcome = _check_reply(reply, request_id, figures, case)
            figures.replies[outcome] += 1
            if mutating and outcome != "rate_limited":
                expected[client] += 1
    finally:
        await ws.close()


async def run_fuzz(url: str, operator_token: str, read_only_token: str, *, cases: int,
                   seed: int, audit_path: str | None, connections: int = 8,
                   rate: float = 400.0) -> FuzzFigures:
    """Fuzz the control plane at ``url``; the figures say what failed, if anything.

    ``rate`` is per connection (requests per second): the server allows 500
    sustained, so the cases reach its parser rather than its rate limiter.
    """
    figures = FuzzFigures(cases=cases)
    watchers = []
    for name, token in (("operator watcher", operator_token),
                        ("read-only watcher", read_only_token)):
        ws = await _open(url, token)
        await ws.send(wire.encode_request(1, "subscribe", {"stats_interval": 1}))
        watchers.append(_Watcher(ws, name, figures))
    expected: Counter[str] = Counter()
    started = time.monotonic()
    # Connection i sends the cases of seed "SEED-i", so that a run is the
    # same run again whatever the timing; even ones are the operator's.
    await asyncio.gather(*(
        _fuzz_connection(url, operator_token if i % 2 == 0 else read_only_token, i % 2 == 0,
                         CaseGenerator(f"{seed}-{i}"), len(range(i, cases, connections)),
                         rate, figures, expected)
        for i in range(connections)))
    figures.seconds = time.monotonic() - started

    # The server is alive, and the watchers still hear everything.
    marker = f"fuzz-marker-{seed}-{os.getpid()}"
    try:
        ws = await _open(url, operator_token)
        async with ws:
            await ws.send(wire.encode_request(1, "hello"))
            if (await _reply(ws)).get("ok") is not True:
                figures.fail("hello after the run failed")
            await ws.send(wire.encode_request(2, "send", {"selector": {"user": marker},
                                                         "text": "marker"}))
            await _reply(ws)
            expected["%s:%s" % ws.local_address[:2]] += 1
    except (OSError, ConnectionClosed, TimeoutError) as exc:
        figures.fail(f"the server does not answer after the run: {exc!r}")
    for watcher in watchers:
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                while marker not in watcher.markers and watcher.closed is None:
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pass
        if watcher.closed is not None:
            figures.fail(f"the {watcher.name}'s stream ended during the run ({watcher.closed})")
        elif marker not in watcher.markers:
            figures.fail(f"the {watcher.name} never saw the final operator_action")
        await watcher.ws.close()
        await watcher.task

    if audit_path is not None:
        figures.audit_expected = sum(expected.values())
        try:
            entries = read_audit_file(audit_path)
        except StrictJSONError as exc:
            figures.fail(f"the audit file does not parse strictly: {exc}")
        else:
            figures.audit_lines = len(entries)
            found = Counter(entry.get("client") for entry in entries)
            for client, count in expected.items():
                if found[client] != count:
                    figures.fail(f"audit lines of {client}: {found[client]}, expected {count}")
    return figures


# As a script: a real `wsconsole serve` process


async def _serve_and_fuzz(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="wsconsole-fuzz-") as tmp:
        audit = Path(tmp, "audit.log")
        async with ServeProcess(Path(tmp), audit_log=str(audit)) as server:
            print(f"fuzzing {server.control_url} with {args.cases} cases, seed {args.seed}, "
                  f"{args.connections} connections")
            figures = await run_fuzz(server.control_url, OPERATOR_TOKEN, READ_ONLY_TOKEN,
                                     cases=args.cases, seed=args.seed, audit_path=str(audit),
                                     connections=args.connections, rate=args.rate)
            if not server.alive:
                figures.fail(f"the server exited with {server.process.returncode}")
        tracebacks = server.tracebacks()
        if tracebacks:
            first = next(i for i, line in enumerate(server.log) if "Traceback" in line)
            figures.fail(f"{tracebacks} tracebacks in the server's log, the first: "
                         + "".join(server.log[first:first + 30]))
        print(figures.report())
        print(f"server log:       {len(server.log)} lines, {tracebacks} tracebacks; "
              f"audit file {audit.stat().st_size if audit.exists() else 0} bytes")
        return 0 if not figures.failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=40_000, help="requests to send")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mutations")
    parser.add_argument("--connections", type=int, default=8,
                        help="fuzzing connections (alternating operator and read-only)")
    parser.add_argument("--rate", type=float, default=400.0,
                        help="requests per second per connection (the server allows 500)")
    args = parser.parse_args(argv)
    return asyncio.run(_serve_and_fuzz(args))


if __name__ == "__main__":
    sys.exit(main())
