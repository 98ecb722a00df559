"""The ``wsconsole serve`` command line: arguments in, ``run_server`` out.

The server is imported only when the command runs, so the rest of the console
never loads it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = [
    "register",
    "add_control_arguments",
    "control_config_from_args",
    "add_cluster_arguments",
    "cluster_settings_from_args",
    "add_runtime_arguments",
    "loop_kind_from_args",
    "gc_policy_from_args",
]


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of cluster mode (``serve``; later ``demo --nodes`` and ``--workers``)."""
    group = parser.add_argument_group(
        "cluster mode", "join other wsconsole processes through Redis: one control "
        "plane and one console for the whole fleet")
    group.add_argument("--redis", metavar="URL",
                       help="Redis to meet the other nodes on: redis://HOST[:PORT][/DB], "
                       "rediss:// (TLS) or unix:///PATH (default: $WSCONSOLE_REDIS_URL; "
                       "none: no cluster)")
    group.add_argument("--cluster", metavar="NAME", default=None,
                       help="the cluster's name: namespaces every channel and key, so that "
                       "two fleets can share one Redis (default: wsconsole)")
    group.add_argument("--cluster-secret-file", metavar="F",
                       help="the cluster secret (at least 16 bytes) that signs every message "
                       "between nodes; required with --redis")
    group.add_argument("--heartbeat-interval", type=_seconds, metavar="S", default=2.0,
                       help="seconds between two heartbeats of this node (default: 2); a node "
                       "is suspect after 2.5 missed heartbeats' time, gone after 5")
    group.add_argument("--suspect-after", type=_seconds, metavar="S",
                       help=argparse.SUPPRESS)
    group.add_argument("--gone-after", type=_seconds, metavar="S", help=argparse.SUPPRESS)
    group.add_argument("--reconnect-max", type=_seconds, metavar="S", default=5.0,
                       help=argparse.SUPPRESS)


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return number


def cluster_settings_from_args(args: argparse.Namespace) -> Any:
    """``ClusterSettings`` from parsed arguments, or None without ``--redis``.

    Raises ConfigError (one line) for a bad URL, a bad name or no secret.
    """
    from wsconsole.server.cluster.settings import REDIS_URL_ENV

    url = args.redis or os.environ.get(REDIS_URL_ENV) or None
    if url is None:
        if args.cluster is not None or args.cluster_secret_file is not None:
            from wsconsole.server.errors import ConfigError

            raise ConfigError("--cluster and --cluster-secret-file need --redis URL "
                              f"(or ${REDIS_URL_ENV})")
        return None
    from wsconsole.server.cluster.settings import DEFAULT_CLUSTER, ClusterSettings

    settings = ClusterSettings(
        redis_url=url,
        name=args.cluster or DEFAULT_CLUSTER,
        secret_file=args.cluster_secret_file,
        heartbeat_interval=args.heartbeat_interval,
        suspect_after=args.suspect_after,
        gone_after=args.gone_after,
        reconnect_max=args.reconnect_max,
    )
    settings.load_secret()  # refused now, in one line, rather than once serving
    return settings


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """The event loop and the garbage collector, shared by ``serve`` and ``demo``."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--loop", choices=["auto", "asyncio", "uvloop"],
                       default=os.environ.get("WSCONSOLE_LOOP") or "auto",
                       help="event loop: uvloop (pip install 'wsconsole[fast]'), asyncio's "
                       "own, or auto: uvloop when installed (default: $WSCONSOLE_LOOP, "
                       "then auto)")
    group.add_argument("--gc-freeze", action=argparse.BooleanOptionalAction, default=True,
                       help="freeze the garbage collector's objects once the server is up "
                       "and after each full collection: a third of the pauses at many "
                       "connections, for a little memory (default; --no-gc-freeze: "
                       "Python's collector as it is; see docs/benchmarks.md)")
    from wsconsole.server.loop_policy import DEFAULT_THAW_AFTER_CLOSES

    group.add_argument("--gc-thaw-after", type=_count, metavar="N",
                       default=DEFAULT_THAW_AFTER_CLOSES,
                       help="with --gc-freeze: after N closed connections, thaw and collect "
                       "everything once (one long pause), since what a frozen connection "
                       "leaves in reference cycles when it closes is never freed until then "
                       f"(default: {DEFAULT_THAW_AFTER_CLOSES:,}; 0: never)")
    group.add_argument("--gc-threshold", type=_positive, metavar="N",
                       help="allocations between two young collections (Python: 700)")


def loop_kind_from_args(args: argparse.Namespace) -> Any:
    """The ``EventLoopKind`` for ``--loop``; ConfigError when uvloop is asked for
    and not installed."""
    from wsconsole.server.loop_policy import resolve_loop

    # getattr: a Namespace made by hand (a test's) may leave the runtime out.
    return resolve_loop(getattr(args, "loop", None) or os.environ.get("WSCONSOLE_LOOP") or "auto")


def gc_policy_from_args(args: argparse.Namespace) -> Any:
    """The ``GcPolicy`` for ``--gc-freeze`` (on unless ``--no-gc-freeze``),
    ``--gc-thaw-after`` and ``--gc-threshold``; a Namespace made by hand without
    them (a test's) leaves the collector as Python has it."""
    from wsconsole.server.loop_policy import DEFAULT_THAW_AFTER_CLOSES, GcPolicy

    return GcPolicy(freeze=getattr(args, "gc_freeze", False),
                    threshold0=getattr(args, "gc_threshold", None),
                    thaw_after_closes=getattr(args, "gc_thaw_after",
                                              DEFAULT_THAW_AFTER_CLOSES) or None)


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the control listener, shared by ``serve`` and ``demo``."""
    group = parser.add_argument_group("control plane")
    group.add_argument("--control-host", default="127.0.0.1", metavar="HOST",
                       help="control listener address (default: 127.0.0.1, loopback)")
    group.add_argument("--control-port", type=int, default=8766, metavar="PORT",
                       help="control listener port (default: 8766; 0 picks a free one)")
    group.add_argument("--control-unix", metavar="PATH",
                       help="listen on this Unix socket instead of TCP")
    group.add_argument("--no-control", action="store_true",
                       help="do not start the control listener")
    group.add_argument("--token", metavar="TOKEN",
                       help="operator token (default: $WSCONSOLE_TOKEN or --token-file; "
                       "other local users can see command-line arguments, so prefer those)")
    group.add_argument("--token-file", metavar="F",
                       help="operator token file; created (mode 0600) with a new token if missing")
    group.add_argument("--read-only-token-file", metavar="F",
                       help="read-only token file; created like --token-file if missing")
    group.add_argument("--control-cert", metavar="PEM", help="TLS certificate for the control listener")
    group.add_argument("--control-key", metavar="PEM", help="TLS key for the control listener")
    group.add_argument("--insecure-control", action="store_true",
                       help="allow a non-loopback control listener without TLS (not recommended)")
    group.add_argument("--audit-log", metavar="FILE",
                       help="append one JSON line per operator action to FILE")
    group.add_argument("--route", action="append", default=[], metavar="TEMPLATE",
                       help="route template for the metrics' path label, e.g. /rooms/{name} "
                       "(repeatable; unmatched paths are 'other')")
    group.add_argument("--max-path-labels", type=int, default=50, metavar="N",
                       help="without --route, the first N distinct paths get a label "
                       "(default: 50)")
    from wsconsole.server import limits

    group = parser.add_argument_group(
        "control plane limits",
        "what operators may pin; past a rate, requests are answered rate_limited without "
        "being run (bursts of twice the rate); 0 turns a limit off")
    group.add_argument("--control-max-connections", type=_count, metavar="N",
                       default=limits.DEFAULT_CONTROL_MAX_CONNECTIONS,
                       help="open control connections at once; more are refused with HTTP "
                       f"503 (default: {limits.DEFAULT_CONTROL_MAX_CONNECTIONS})")
    group.add_argument("--control-rate", type=_rate, metavar="N",
                       default=limits.DEFAULT_CONTROL_CONNECTION_RATE,
                       help="requests per second on one control connection "
                       f"(default: {limits.DEFAULT_CONTROL_CONNECTION_RATE:g})")
    group.add_argument("--control-token-rate", type=_rate, metavar="N",
                       default=limits.DEFAULT_CONTROL_TOKEN_RATE,
                       help="requests per second with one token, over all its connections "
                       f"(default: {limits.DEFAULT_CONTROL_TOKEN_RATE:g})")
    group.add_argument("--control-total-rate", type=_rate, metavar="N",
                       default=limits.DEFAULT_CONTROL_TOTAL_RATE,
                       help="requests per second on the whole control plane "
                       f"(default: {limits.DEFAULT_CONTROL_TOTAL_RATE:g})")
    group.add_argument("--control-loop-share", type=_share, metavar="F",
                       default=limits.DEFAULT_CONTROL_LOOP_SHARE,
                       help="fraction of the event loop's time that control requests may "
                       "take together; past it, requests wait instead of slowing the "
                       f"public server (default: {limits.DEFAULT_CONTROL_LOOP_SHARE:g})")


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 (no limit) or more")
    return number


def _share(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError("must be between 0 (no budget) and 1")
    return number


def _rate(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError("must be 0 (no limit) or a positive number")
    return number


def control_config_from_args(args: argparse.Namespace) -> Any:
    """A ``ControlConfig`` from parsed arguments, or None with ``--no-control``."""
    from wsconsole.server.config import ControlConfig

    if args.no_control:
        return None
    token = args.token or os.environ.get("WSCONSOLE_TOKEN") or None
    token_file = args.token_file
    if token is None and token_file is None:
        from .client import default_token_file

        # The file the operator commands and the console look for by default.
        token_file = default_token_file()
    return ControlConfig(
        host=args.control_host,
        port=args.control_port,
        unix_path=args.control_unix,
        token=token,
        token_file=token_file,
        read_only_token_file=args.read_only_token_file,
        cert=args.control_cert,
        key=args.control_key,
        allow_insecure=args.insecure_control,
        audit_log=args.audit_log,
        metrics_route_templates=tuple(args.route),
        metrics_max_paths=args.max_path_labels,
        max_connections=args.control_max_connections or None,
        connection_rate=args.control_rate or None,
        token_rate=args.control_token_rate or None,
        total_rate=args.control_total_rate or None,
        loop_share=args.control_loop_share or None,
    )


def register(subparsers: Any) -> None:
    """Add ``serve`` to the top-level parser."""
    parser = subparsers.add_parser(
        "serve",
        help="run a WebSocket application (or the demo) with the control plane",
        description="Run APP (module:attribute, a websockets connection handler) inside "
        "wsconsole's server; without APP, run the demo application (echo, and "
        "?room=NAME relays to the room).",
    )
    parser.add_argument("app", nargs="?", metavar="APP", help="module:attribute of a handler")
    parser.add_argument("--host", default="127.0.0.1", help="public address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="public port (default: 8765)")
    parser.add_argument("--node", help="this process's name (default: hostname:pid; with "
                        "--workers, the base of the workers' names NODE-1 .. NODE-N)")
    parser.add_argument("--workers", type=_positive, metavar="N",
                        help="start N processes sharing the public port (SO_REUSEPORT), each "
                        "a node of the cluster (needs --redis) with its own control port: "
                        "--control-port C gives C .. C+N-1, 0 lets each pick one")
    parser.add_argument("--slow-consumer-limit", type=int, metavar="BYTES",
                        help="close clients with more than BYTES pending: write buffer plus "
                             "kernel send queue (default: 2 MiB)")
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"],
                        help="log to stderr from this level (default: warning; info adds one "
                        "line per connection; secrets are redacted at every level)")
    from wsconsole.server import limits

    group = parser.add_argument_group(
        "limits", "what clients may pin on the public port; 0 turns a limit off")
    group.add_argument("--max-handshakes", type=_count, metavar="N",
                       default=limits.DEFAULT_MAX_HANDSHAKES,
                       help="opening handshakes in progress at once; a TCP connection past "
                       "it is sent 503 and closed as soon as accepted (default: "
                       f"{limits.DEFAULT_MAX_HANDSHAKES})")
    group.add_argument("--max-handshakes-per-address", type=_count, metavar="N",
                       default=limits.DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
                       help="the same, from one client address (an IPv6 /64; trusted "
                       "proxies and loopback clients count only in the total) (default: "
                       f"{limits.DEFAULT_MAX_HANDSHAKES_PER_ADDRESS})")
    group.add_argument("--cap-loopback-per-address", action="store_true",
                       help="hold loopback clients to --max-handshakes-per-address too "
                       "(by default they are taken for a local proxy's)")
    group = parser.add_argument_group(
        "redaction", "names whose values are never shown, in addition to the built-in "
        "ones (case and the separators - _ . ignored; see the README's Security section)")
    group.add_argument("--redact-header", action="append", default=[], metavar="NAME",
                       type=_redaction_name, help="a header to redact (repeatable)")
    group.add_argument("--redact-query", action="append", default=[], metavar="NAME",
                       type=_redaction_name,
                       help="a query parameter to redact, as the application decodes it "
                       "(repeatable)")
    from wsconsole.server import tap

    group = parser.add_argument_group(
        "live message tap", "let operators watch what selected connections send and "
        "receive (`wsconsole tap`); off unless --allow-tap")
    group.add_argument("--allow-tap", action="store_true",
                       help="allow taps (operator token only; every tap is audited)")
    group.add_argument("--max-taps", type=_positive, metavar="N", default=tap.DEFAULT_MAX_TAPS,
                       help=f"taps running at once (default: {tap.DEFAULT_MAX_TAPS})")
    add_runtime_arguments(parser)
    add_control_arguments(parser)
    add_cluster_arguments(parser)
    # reuse_port: set by --workers for its workers only (console/workers.py).
    parser.set_defaults(func=run, reuse_port=False)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _redaction_name(value: str) -> str:
    from wsconsole.server.redaction import name_words

    if not name_words(value):
        raise argparse.ArgumentTypeError(f"{value!r} has no letter or digit")
    return value


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from wsconsole.server.errors import ConfigError
    from wsconsole.server.loop_policy import run_on_loop
    from wsconsole.server.runner import run_server

    try:
        cluster = cluster_settings_from_args(args)
    except ConfigError as exc:
        # Usage, not a failure of the server: argparse's status.
        print(f"wsconsole: error: {exc.message}", file=sys.stderr)
        return 2
    if args.workers is not None:
        if cluster is None:
            print("wsconsole: error: --workers needs --redis URL: each worker is a node of "
                  "a cluster, and without Redis the operator would see one worker's "
                  "connections only", file=sys.stderr)
            return 2
        from .workers import run_workers

        return run_workers(args)

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    kwargs: dict[str, Any] = {}
    if args.node:
        kwargs["node"] = args.node
    if args.slow_consumer_limit is not None:
        kwargs["slow_consumer_limit"] = args.slow_consumer_limit
    kwargs["max_handshakes"] = args.max_handshakes or None
    kwargs["max_handshakes_per_address"] = args.max_handshakes_per_address or None
    if args.cap_loopback_per_address:
        kwargs["cap_loopback_per_address"] = True
    if args.redact_header:
        kwargs["redact_headers"] = args.redact_header
    if args.redact_query:
        kwargs["redact_query"] = args.redact_query
    if args.allow_tap:
        kwargs["allow_tap"] = True
        kwargs["max_taps"] = args.max_taps
    if cluster is not None:
        kwargs["cluster"] = cluster
    if args.reuse_port:
        kwargs["reuse_port"] = True
    loop_kind = loop_kind_from_args(args)
    return run_on_loop(
        run_server(args.app, args.host, args.port, control_config_from_args(args),
                   gc_policy=gc_policy_from_args(args), **kwargs),
        loop_kind,
    )
