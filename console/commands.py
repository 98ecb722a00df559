"""The operator's commands: ``ls``, ``show``, ``send``, ``kick``, ``shutdown``,
``stats``, ``nodes``, ``events`` and ``tap``, each one request (or a stream) over
the control plane.

``register(subparsers)`` adds them to the ``wsconsole`` parser
(``wsconsole.console.cli``). Every command prints a readable table by default
and JSON with ``--json``; a failure raises a ``WsconsoleError`` that the
entry point turns into one line on stderr and exit status 1. A command that
needs a selector and has none is a usage error (exit status 2), so that a
forgotten flag never broadcasts. A partial answer of a cluster (some nodes did
not answer before the deadline) is printed as it came, the missing nodes are
named in one line on stderr, and the exit status is 3 (``EXIT_PARTIAL``), so
that a script can tell it from a full answer.

Imports nothing of the server but its shared protocol (``wire``, ``errors``,
``protocol``); never textual.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any, Awaitable, Callable, Sequence

from wsconsole.server.errors import ControlUnavailable
from wsconsole.server.wire import MAX_BACKLOG
from wsconsole.server.tap import (
    DEFAULT_BYTE_RATE,
    DEFAULT_DURATION,
    DEFAULT_MAX_BYTES,
    DEFAULT_RATE,
    TapDirection,
    limits_problem,
)
from wsconsole.server.protocol import (
    MAX_CLOSE_REASON_BYTES,
    SENDABLE_CLOSE_CODES_TEXT,
    EventKind,
    ShutdownMode,
    check_close_code,
    check_close_reason,
)

from . import output
from .client import MAX_TIMEOUT, ControlClient, find_token, resolve_url
from .tap_output import describe_limits, describe_selector, parse_tap_selector, tap_line, tap_summary

__all__ = [
    "add_url_and_token_arguments", "register", "selector_from_args", "read_message",
    "joined_sort_values", "SORT_KEY_OPTIONS", "EXIT_USAGE", "EXIT_PARTIAL"]

EXIT_USAGE = 2
"""Exit status of a usage error (as argparse uses)."""
EXIT_PARTIAL = 3
"""Exit status of a partial answer: printed what was gathered; some nodes did not answer."""

Action = Callable[[ControlClient, argparse.Namespace], Awaitable[int | None]]

SORT_KEY_OPTIONS = frozenset({"--sort"})
"""Options whose value is a sort key, which may start with ``-`` (descending)."""


def joined_sort_values(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--sort -KEY`` written ``--sort=-KEY``.

    argparse takes a value that starts with ``-`` for an option and refuses
    ``--sort -msgs_in`` ("expected one argument"); joined, both spellings mean
    the same. A value that starts with ``--`` stays an option, so that
    ``--sort --json`` still says the key is missing; an unknown ``-KEY`` is
    the server's to refuse, with the list of keys.
    """
    joined: list[str] = []
    words = iter(argv)
    for word in words:
        if word in SORT_KEY_OPTIONS:
            value = next(words, None)
            if value is not None and value.startswith("-") and value[1:2] not in ("", "-"):
                joined.append(f"{word}={value}")
                continue
            joined.append(word)
            if value is not None:
                joined.append(value)
            continue
        if word == "--":
            joined.append(word)
            joined.extend(words)
            break
        joined.append(word)
    return joined


# Arguments shared by every command


def add_url_and_token_arguments(parser: argparse.ArgumentParser) -> Any:
    """``--url``, ``--token`` and ``--token-file``, as every client of the
    control plane takes them (the operator commands and the console)."""
    group = parser.add_argument_group("control plane")
    group.add_argument("--url", metavar="URL",
                       help="control listener (default: $WSCONSOLE_URL or ws://127.0.0.1:8766)")
    group.add_argument("--token", metavar="TOKEN",
                       help="bearer token (default: --token-file, $WSCONSOLE_TOKEN, "
                       "or the token file `wsconsole serve` writes); prefer a file or the "
                       "environment: arguments are visible to other local users")
    group.add_argument("--token-file", metavar="FILE", help="read the bearer token from FILE")
    return group


def _add_connection_arguments(parser: argparse.ArgumentParser, *, node_help: str =
                              "only this node of the cluster (see `wsconsole nodes`)") -> None:
    group = add_url_and_token_arguments(parser)
    group.add_argument("--node", metavar="NAME", help=node_help)
    group.add_argument("--timeout", type=float, metavar="SECONDS",
                       help=f"how long the nodes of a cluster may take to answer, at most "
                       f"{MAX_TIMEOUT:g} (default: the server's, 2 for reads, 5 for actions); "
                       "the nodes that did not answer by then are named on stderr and the "
                       "exit status is 3")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _timeout_problem(args: argparse.Namespace) -> str | None:
    """What the server would refuse in ``--timeout``, said before connecting."""
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        return f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds"
    return None


def _routing(args: argparse.Namespace) -> dict[str, Any]:
    """The ``node`` and ``timeout`` of every request of a command."""
    return {"node": args.node, "timeout": args.timeout}


def _partial(*results: Any) -> int:
    """Name on stderr, in one line, the nodes that did not answer; the exit status.

    Each result may carry ``missing`` (``{node: reason}``); several results
    (the pages of ``ls --all-pages``) are one answer.
    """
    missing: dict[str, str] = {}
    for result in results:
        if isinstance(result, dict) and isinstance(result.get("missing"), dict):
            missing.update(result["missing"])
    line = output.missing_line(missing)
    if not line:
        return 0
    print(f"wsconsole: {line}", file=sys.stderr, flush=True)
    return EXIT_PARTIAL


_PATTERNS = "('guest*': * any characters, ? one; \\* \\? \\\\ are literal)"


def _add_selector_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "selector", "which connections (kinds combine with AND; at least one is required)"
    )
    group.add_argument("--all", action="store_true", dest="everyone", help="every connection")
    group.add_argument("--user", metavar="USER",
                       help=f"connections of this user, or of users matching a pattern {_PATTERNS}")
    group.add_argument("--path", metavar="PATH",
                       help="connections on this request path, or a pattern ('/api/*')")
    group.add_argument("--topic", metavar="TOPIC",
                       help="connections subscribed to this topic, or a pattern")
    group.add_argument("--id", metavar="ID", action="append", dest="ids",
                       help="this connection, or a unique prefix of its id (repeat for several)")


def selector_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The wire form of the selector flags, or None when none was given."""
    selector: dict[str, Any] = {}
    if args.everyone:
        selector["everyone"] = True
    for name in ("user", "path", "topic"):
        value = getattr(args, name)
        if value is not None:
            selector[name] = value
    if args.ids:
        selector["ids"] = list(args.ids)
    return selector or None


def _usage_error(args: argparse.Namespace, message: str) -> int:
    parser: argparse.ArgumentParser = args.parser
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _run(args: argparse.Namespace, action: Action) -> int:
    """Connect, run ``action``, close; the exit status is what ``action`` returns."""
    problem = _timeout_problem(args)
    if problem is not None:
        return _usage_error(args, problem)

    async def main() -> int:
        url = resolve_url(args.url)
        token, source = find_token(args.token, args.token_file)
        client = ControlClient(url, token, token_source=source)
        async with client:
            return int(await action(client, args) or 0)

    try:
        return asyncio.run(main())
    except BrokenPipeError:
        # The reader went away (`wsconsole events | head -1`): that is how a
        # pipeline ends, not a failure. Point stdout at devnull so that the
        # interpreter's final flush does not complain about the pipe either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _emit(text: str) -> None:
    if text:
        print(text, flush=True)


# ls


def _cmd_ls(args: argparse.Namespace) -> int:
    return _run(args, _ls)


async def _ls(client: ControlClient, args: argparse.Namespace) -> int:
    filters = dict(user=args.user, path=args.path, topic=args.topic,
                   id_prefix=args.id_prefix, sort=args.sort, **_routing(args))
    if args.groups:
        page = await client.list_connections(**filters, limit=1, groups=True)
        groups = page.get("groups") or {}
        _emit(output.to_json(groups) if args.json else output.groups_table(groups))
        return _partial(page)
    connections: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await client.list_connections(**filters, limit=args.limit,
                                             cursor=cursor, groups=False)
        pages.append(page)
        connections.extend(page.get("connections") or [])
        cursor = page.get("next_cursor")
        if not (args.all_pages and cursor):
            break
    total = page.get("total", len(connections))
    if args.json:
        # Still a list: the missing nodes are said on stderr and by the exit status.
        _emit(output.to_json(connections))
        if not total:
            _say_none(filters)
        return _partial(*pages)
    if connections:
        _emit(output.connections_table(connections, time.time(), wide=args.wide))
    if cursor:
        _emit(f"{len(connections)} of {output.counted(total, 'connection')} "
              "(--all-pages for the rest)")
    elif connections:
        _emit(output.counted(len(connections), "connection"))
    if not total:
        _say_none(filters)
    return _partial(*pages)


def _say_none(filters: dict[str, Any]) -> None:
    """An empty answer, said in words on stderr (stdout stays the answer: no
    rows, or ``[]`` for --json); the exit status stays 0."""
    described = output.describe_filters(filters)
    text = "no connections are open" if described == "everyone" else output.no_match(described)
    print(f"wsconsole: {text}", file=sys.stderr, flush=True)


# show


def _cmd_show(args: argparse.Namespace) -> int:
    return _run(args, _show)


async def _show(client: ControlClient, args: argparse.Namespace) -> int:
    connection = await client.get(args.connection_id, **_routing(args))
    _emit(output.to_json(connection) if args.json
          else output.connection_detail(connection, time.time()))
    return _partial(connection)


# send


def read_message(argument: str | None, binary: bool, stdin: Any = None) -> str | bytes:
    """The message to send: the argument, or stdin when it is missing or ``-``.

    Text read from stdin loses one trailing newline (``echo hi | wsconsole
    send`` sends ``hi``); binary is sent byte for byte.
    """
    stdin = stdin if stdin is not None else sys.stdin
    if argument is not None and argument != "-":
        return argument.encode() if binary else argument
    if binary:
        return stdin.buffer.read()
    text = stdin.read()
    return text[:-1] if text.endswith("\n") else text


def _cmd_send(args: argparse.Namespace) -> int:
    selector = selector_from_args(args)
    if selector is None:
        return _usage_error(args, "send needs a selector: --all, --user, --path, --topic or --id")
    if args.message is None and (sys.stdin is None or sys.stdin.isatty()):
        return _usage_error(args, "give MESSAGE, or pipe it on stdin")
    args.selector = selector
    # Read stdin before connecting, so a slow producer never holds a control connection.
    args.payload = read_message(args.message, args.binary)
    if args.check_json:
        problem = json_problem(args.payload)
        if problem is not None:
            return _usage_error(args, f"--check-json: the message is not JSON: {problem}")
    return _run(args, _send)


def json_problem(payload: str | bytes) -> str | None:
    """Why ``payload`` does not parse as JSON (where, as ``json`` says), or None."""
    try:
        json.loads(payload)
    except UnicodeDecodeError as exc:
        return f"not UTF-8 ({exc.reason} at byte {exc.start})"
    except ValueError as exc:
        return str(exc)
    return None


async def _send(client: ControlClient, args: argparse.Namespace) -> int:
    payload = args.payload
    if isinstance(payload, bytes):
        result = await client.send(args.selector, binary=payload, dry_run=args.dry_run,
                                   **_routing(args))
    else:
        result = await client.send(args.selector, text=payload, dry_run=args.dry_run,
                                   **_routing(args))
    if args.json:
        _emit(output.to_json(_with_missing(result)))
    elif args.dry_run:
        sample = " ".join(result.get("sample") or [])
        recipients = result.get("recipients", 0)
        _emit(f"would send to {output.counted(recipients, 'connection')}"
              f" (dry run; nothing sent){': ' + sample if sample else ''}")
        _emit(output.per_node_table("send", result.get("per_node")))
    else:
        _emit(f"sent to {result.get('delivered', 0)} of {result.get('recipients', 0)}"
              f" (skipped {result.get('skipped', 0)})")
        _emit(output.per_node_table("send", result.get("per_node")))
    if not result.get("recipients"):
        _say_none({**args.selector, "node": args.node})
    return _partial(result)


def _with_missing(result: Any) -> Any:
    """An action's JSON: ``missing`` always there (``{}`` for a full answer),
    so that a script reads it without a test."""
    if isinstance(result, dict):
        return {**result, "missing": result.get("missing") or {}}
    return result


# kick


def _cmd_kick(args: argparse.Namespace) -> int:
    selector = selector_from_args(args)
    if selector is None:
        return _usage_error(args, "kick needs a selector: --all, --user, --path, --topic or --id")
    problem = _close_problem(args)
    if problem is not None:
        return _usage_error(args, problem)
    args.selector = selector
    return _run(args, _kick)


def _close_problem(args: argparse.Namespace) -> str | None:
    """What the server would refuse in ``--code`` / ``--reason``, said before connecting."""
    try:
        check_close_code(args.code)
        check_close_reason(args.reason)
    except ValueError as exc:
        return str(exc)
    return None


async def _kick(client: ControlClient, args: argparse.Namespace) -> int:
    if args.dry_run:
        return await _kick_dry_run(client, args)
    result = await client.disconnect(args.selector, code=args.code, reason=args.reason,
                                     **_routing(args))
    if args.json:
        _emit(output.to_json(_with_missing(result)))
    else:
        count = result.get("count", 0)
        _emit(f"disconnecting {output.counted(count, 'connection')} (code {args.code})")
        _emit(output.per_node_table("disconnect", result.get("per_node")))
    if not result.get("count"):
        _say_none({**args.selector, "node": args.node})
    return _partial(result)


async def _kick_dry_run(client: ControlClient, args: argparse.Namespace) -> int:
    # The server's own count of the selector, as the console's dialogs take it:
    # a send's dry run resolves the same selector and sends nothing.
    result = await client.send(args.selector, text="", dry_run=True, **_routing(args))
    count = result.get("recipients", 0)
    # In kick's own terms (its JSON has count and per_node {NODE: {count}}).
    per_node = {node: {"count": (counts or {}).get("recipients", 0)}
                for node, counts in (result.get("per_node") or {}).items()}
    if args.json:
        _emit(output.to_json(_with_missing({
            "count": count, "sample": result.get("sample") or [], "dry_run": True,
            "per_node": per_node, "missing": result.get("missing")})))
    else:
        sample = " ".join(result.get("sample") or [])
        _emit(f"would disconnect {output.counted(count, 'connection')}"
              f" (code {args.code}; dry run; nothing closed){': ' + sample if sample else ''}")
        _emit(output.per_node_table("disconnect", per_node))
    if not count:
        _say_none({**args.selector, "node": args.node})
    return _partial(result)


# shutdown


def _cmd_shutdown(args: argparse.Namespace) -> int:
    problem = _close_problem(args)
    if problem is not None:
        return _usage_error(args, problem)
    return _run(args, _shutdown)


async def _shutdown(client: ControlClient, args: argparse.Namespace) -> int:
    result = await client.shutdown(args.mode, code=args.code, reason=args.reason,
                                   deadline=args.deadline, **_routing(args))
    if args.json:
        _emit(output.to_json(_with_missing(result)))
        return _partial(result)
    connections = result.get("connections", 0) if isinstance(result, dict) else 0
    open_ones = output.counted(connections, "open connection")
    if args.mode == ShutdownMode.KEEP_ALIVE:
        verb = "keeps" if connections == 1 else "keep"
        text = f"stopped accepting; {open_ones} {verb} being served"
        if args.deadline is not None:
            text += f" for at most {args.deadline:g} s"
    elif isinstance(result, dict) and result.get("escalation"):
        text = (f"the keep-alive drain is cut short: closing the "
                f"{output.counted(connections, 'connection')} still open (code {args.code})")
    else:
        text = f"stopped accepting; closing {open_ones} (code {args.code})"
    _emit(text)
    if isinstance(result, dict):
        _emit(output.per_node_table("shutdown", result.get("per_node")))
    return _partial(result)


# stats


def _cmd_stats(args: argparse.Namespace) -> int:
    return _run(args, _stats)


async def _stats(client: ControlClient, args: argparse.Namespace) -> int:
    stats = await client.stats(**_routing(args))
    _emit(output.to_json(stats) if args.json else output.stats_lines(stats))
    return _partial(stats)


# nodes


def _cmd_nodes(args: argparse.Namespace) -> int:
    return _run(args, _nodes)


async def _nodes(client: ControlClient, args: argparse.Namespace) -> int:
    result = await client.nodes(**_routing(args))
    nodes = result.get("nodes") or []
    # A list, as ls --json: `wsconsole nodes --json | jq -r '.[].node'`.
    _emit(output.to_json(nodes) if args.json else output.nodes_table(nodes, time.time()))
    return _partial(result)


# events


def _cmd_events(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        return _usage_error(args, "--count must be at least 1")
    if not 0 <= args.backlog <= MAX_BACKLOG:
        return _usage_error(args, f"--backlog must be 0..{MAX_BACKLOG}")
    return _run(args, _events)


async def _events(client: ControlClient, args: argparse.Namespace) -> int:
    kinds = set(args.kinds or ())
    await client.subscribe(stats_interval=args.stats_interval, backlog=args.backlog)
    printed = 0
    async for event in client.events():
        if kinds and event.kind not in kinds:
            continue
        if args.node is not None and (event.data or {}).get("node") != args.node:
            continue
        if args.json:
            frame: dict[str, Any] = {"event": event.kind, "time": event.time,
                                     "data": event.data}
            if event.backlog:
                frame["backlog"] = True
            line = output.to_json(frame, compact=True)
        else:
            line = output.event_line(event.kind, event.time, event.data)
            if event.backlog:
                line += "  (backlog)"
        # Flushed per line: the consumer is often a pipe (jq, grep, a test).
        print(line, flush=True)
        printed += 1
        if args.count is not None and printed >= args.count:
            return 0
    # The stream ends only when the link does: the server stopped, was killed
    # or went away. Whoever reads the events must know that they stopped.
    counted = f" after {printed} of {args.count} events" if args.count is not None else ""
    raise ControlUnavailable(
        f"the event stream ended{counted}: the control connection to {client.url} "
        f"{client.closed_reason}"
    )


# tap


def _cmd_tap(args: argparse.Namespace) -> int:
    try:
        args.selector = parse_tap_selector(args.selector_words)
    except ValueError as exc:
        return _usage_error(args, str(exc))
    # The server's own rule, before connecting.
    problem = limits_problem(args.direction, args.max_bytes, args.rate, args.byte_rate,
                             args.duration)
    if problem is not None:
        name, _, rest = problem.partition(" ")
        flag = {"max_bytes": "--max-bytes", "rate": "--rate", "byte_rate": "--byte-rate",
                "duration": "--duration"}.get(name, name)
        return _usage_error(args, f"{flag} {rest}")
    return _run(args, _tap)


async def _tap(client: ControlClient, args: argparse.Namespace) -> int:
    """Print a tap's records until Ctrl+C, its duration, or the server ends it."""
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        started = await client.tap_start(args.selector, direction=args.direction,
                                         max_bytes=args.max_bytes, rate=args.rate,
                                         byte_rate=args.byte_rate, duration=args.duration,
                                         **_routing(args))
        tap_id = started["tap"]
        # On stderr: stdout carries only the records (a pipe, jq).
        print(f"wsconsole: tapping {describe_selector(args.selector)} "
              f"({describe_limits(started)}); Ctrl+C stops", file=sys.stderr, flush=True)
        if line := output.missing_line(started.get("missing")):
            # Cluster mode: the nodes that do not tap (tap_disabled...), by name.
            print(f"wsconsole: {line}", file=sys.stderr, flush=True)
        reader = asyncio.ensure_future(_print_tap(client, tap_id, args.json))
        stop = asyncio.ensure_future(interrupted.wait())
        await asyncio.wait({reader, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if reader.done():
            ended = reader.result()
        else:
            reader.cancel()
            ended = await client.tap_stop(tap_id)
            ended.setdefault("reason", "stopped")
        print(f"wsconsole: {tap_summary(ended)}", file=sys.stderr, flush=True)
        return 0
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


async def _print_tap(client: ControlClient, tap_id: str, as_json: bool) -> dict[str, Any]:
    async for event in client.events():
        data = event.data if isinstance(event.data, dict) else {}
        if data.get("tap") != tap_id:
            continue
        if event.kind == EventKind.TAP:
            for record in data.get("records") or ():
                # Flushed per line: the consumer is often a pipe (jq, grep, a test).
                print(output.to_json(record, compact=True) if as_json else tap_line(record),
                      flush=True)
        elif event.kind == EventKind.TAP_ENDED:
            return data
    raise ControlUnavailable(
        f"the tap ended with the link: the control connection to {client.url} "
        f"{client.closed_reason}")


# Registration


def _add(subparsers: Any, name: str, func: Callable[[argparse.Namespace], int],
         help: str, description: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=func, parser=parser)
    return parser


def register(subparsers: Any) -> None:
    """Add the operator commands to the ``wsconsole`` parser."""
    ls = _add(subparsers, "ls", _cmd_ls, "list connections",
              "List open connections, filtered and sorted, a page at a time.")
    ls.add_argument("--user", metavar="USER",
                    help=f"only this user's connections, or users matching a pattern {_PATTERNS}")
    ls.add_argument("--path", metavar="PATH",
                    help="only connections on this path, or a pattern ('/api/*')")
    ls.add_argument("--topic", metavar="TOPIC",
                    help="only connections in this topic, or a pattern")
    ls.add_argument("--id-prefix", metavar="PREFIX", help="only ids starting with PREFIX")
    ls.add_argument("--sort", default="connected_at", metavar="KEY",
                    help="id, user, path, remote, connected_at, last_activity, msgs_in, "
                    "bytes_in, msgs_out, bytes_out, buffered or latency; -KEY for "
                    "descending (--sort -msgs_in or --sort=-msgs_in; default: connected_at)")
    ls.add_argument("--wide", action="store_true",
                    help="more columns: idle time, bytes in and out, buffered bytes, latency")
    ls.add_argument("--limit", type=int, default=100, metavar="N",
                    help="page size, 1 to 1000 (default: 100)")
    ls.add_argument("--all-pages", action="store_true",
                    help="follow next_cursor until every match is listed")
    ls.add_argument("--groups", action="store_true",
                    help="print connection counts by user, path and topic instead")
    _add_connection_arguments(ls)

    show = _add(subparsers, "show", _cmd_show, "show one connection in full",
                "Show one connection: identity, counters, topics and handshake headers "
                "(Authorization, Cookie and similar values are redacted by the server).")
    show.add_argument("connection_id", metavar="ID",
                      help="connection id (from ls), or a unique prefix of it")
    _add_connection_arguments(show)

    send = _add(subparsers, "send", _cmd_send, "send a message to selected connections",
                "Send one message to the selected connections. MESSAGE is read from "
                "stdin when missing or '-' (one trailing newline dropped for text).")
    send.add_argument("message", nargs="?", metavar="MESSAGE", help="the message (default: stdin)")
    send.add_argument("--binary", action="store_true",
                      help="send a binary message (MESSAGE as UTF-8, or stdin's bytes)")
    send.add_argument("--dry-run", action="store_true",
                      help="count the recipients and show a sample; send nothing")
    send.add_argument("--check-json", action="store_true",
                      help="refuse to send a MESSAGE that does not parse as JSON (the "
                      "message is sent as it is; --json is the output format)")
    _add_selector_arguments(send)
    _add_connection_arguments(send)

    kick = _add(subparsers, "kick", _cmd_kick, "disconnect selected connections",
                "Close the selected connections with a close code and reason.")
    kick.add_argument("--code", type=int, default=1000,
                      help=f"close code: {SENDABLE_CLOSE_CODES_TEXT} (default: 1000)")
    kick.add_argument("--reason", default="",
                      help=f"close reason, at most {MAX_CLOSE_REASON_BYTES} bytes")
    kick.add_argument("--dry-run", action="store_true",
                      help="count the connections and show a sample; close nothing")
    _add_selector_arguments(kick)
    _add_connection_arguments(kick)

    shutdown = _add(subparsers, "shutdown", _cmd_shutdown, "stop the server",
                    "Stop the server. --graceful closes every connection now; "
                    "--keep-alive stops accepting and keeps serving open connections "
                    "until they close (or until --deadline). In a cluster: every node "
                    "(the one attached to stops last), or --node NAME alone.")
    mode = shutdown.add_mutually_exclusive_group()
    mode.add_argument("--graceful", action="store_const", const=ShutdownMode.GRACEFUL,
                      dest="mode", help="close every connection now (default)")
    mode.add_argument("--keep-alive", action="store_const", const=ShutdownMode.KEEP_ALIVE,
                      dest="mode", help="stop accepting; keep serving open connections")
    shutdown.set_defaults(mode=ShutdownMode.GRACEFUL)
    shutdown.add_argument("--deadline", type=float, metavar="SECONDS",
                          help="--keep-alive: close the remaining connections after SECONDS")
    shutdown.add_argument("--code", type=int, default=1001,
                          help="close code (default: 1001, going away)")
    shutdown.add_argument("--reason", default="",
                          help=f"close reason, at most {MAX_CLOSE_REASON_BYTES} bytes")
    _add_connection_arguments(shutdown, node_help="stop only this node of the cluster "
                              "(default: every node)")

    stats = _add(subparsers, "stats", _cmd_stats, "show server statistics",
                 "Node, state, uptime, connections, totals and rates (of a cluster: its "
                 "totals, then each node's).")
    _add_connection_arguments(stats)

    nodes = _add(subparsers, "nodes", _cmd_nodes, "list the nodes of the cluster",
                 "The nodes of the cluster: name, state, health, connections, rates, "
                 "last heartbeat, version and control URL (one node without --redis).")
    _add_connection_arguments(nodes)

    events = _add(subparsers, "events", _cmd_events, "stream live events",
                  "Print events as they happen: connections opened and closed, "
                  "operator actions, state changes and periodic stats.")
    events.add_argument("--count", type=int, metavar="N", help="stop after N events")
    events.add_argument("--kind", action="append", dest="kinds", metavar="KIND",
                        help="only events of this kind (repeatable): "
                        + ", ".join(EventKind))
    events.add_argument("--stats-interval", type=float, default=5.0, metavar="SECONDS",
                        help="seconds between stats events (default: 5)")
    events.add_argument("--backlog", type=int, default=0, metavar="N",
                        help=f"first print up to N recent events of before (0..{MAX_BACKLOG}; "
                             "the server keeps its last 500 notable and 500 routine ones), "
                             "each marked backlog")
    _add_connection_arguments(events, node_help="only events of this node")

    tap = _add(subparsers, "tap", _cmd_tap, "watch the messages of selected connections",
               "Print the data messages the selected connections receive (in) and send "
               "(out) as they happen, one line each: time, id, user, direction, opcode, "
               "size, the first bytes (text escaped, binary as hex). The server must "
               "allow it (wsconsole serve --allow-tap), with the operator token. Ctrl+C "
               "stops and says how many were shown and dropped.")
    tap.add_argument("selector_words", nargs="+", metavar="SELECTOR",
                     help="a connection id, id=ID, user=NAME (@NAME), path=/P (/P), "
                     "topic=T (#T), or all; several combine with AND")
    direction = tap.add_mutually_exclusive_group()
    direction.add_argument("--in", action="store_const", const=TapDirection.IN,
                           dest="direction", help="only what the clients send")
    direction.add_argument("--out", action="store_const", const=TapDirection.OUT,
                           dest="direction", help="only what they receive")
    tap.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, metavar="N",
                     help=f"payload bytes shown per message, 0 for none "
                     f"(default: {DEFAULT_MAX_BYTES})")
    tap.add_argument("--rate", type=int, default=DEFAULT_RATE, metavar="N",
                     help=f"messages shown per second; the rest are dropped and counted "
                     f"(default: {DEFAULT_RATE})")
    tap.add_argument("--byte-rate", type=int, default=DEFAULT_BYTE_RATE, metavar="N",
                     help=f"payload bytes shown per second (default: {DEFAULT_BYTE_RATE})")
    tap.add_argument("--duration", type=float, default=DEFAULT_DURATION, metavar="SECONDS",
                     help=f"end after SECONDS (default: {DEFAULT_DURATION:g})")
    _add_connection_arguments(tap, node_help="only the connections of this node")

