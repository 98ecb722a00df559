"""``wsconsole console``, ``wsconsole demo`` and ``wsconsole screenshots``.

``console`` attaches the TUI to a running control plane. ``demo`` starts, in
this process, the embedded server with the demo application, simulated
clients and the console attached with a random token that is never printed.
The server is imported only inside ``demo``: the console never loads it. The
``wsconsole`` parser loads this module for every command, so Textual (the app,
the screenshots) is imported only by the commands that draw.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator

from .client import ControlClient, find_token, resolve_url
from .commands import add_url_and_token_arguments
from .serve_command import add_runtime_arguments, gc_policy_from_args, loop_kind_from_args
from .link import ClientFactory
from .simulator import Simulator

if TYPE_CHECKING:  # pragma: no cover - Textual loads only for the commands that draw
    from .app import ConsoleApp

__all__ = ["register", "run_console", "run_demo", "client_factory", "logging_silenced",
           "DEMO_NODE"]

DEMO_NODE = "demo"
"""Node name of the demo server."""
DEMO_SLOW_CONSUMER_LIMIT = 1024 * 1024
"""Where the demo closes slow consumers: the slow reader gets there in about 20 s."""


def register(subparsers: Any) -> None:
    """Add ``console``, ``demo`` and ``screenshots`` to the top-level parser."""
    console = subparsers.add_parser(
        "console",
        help="the terminal console for a running server's control plane",
        description="Watch and operate a live wsconsole server: connections by user, path "
        "and topic, headers, events; send, broadcast, disconnect, shut down.",
    )
    add_url_and_token_arguments(console)
    console.add_argument("--node", metavar="NAME",
                         help="show this node of a cluster only, to begin with (the nodes "
                         "group, or the filter node=NAME, changes it)")
    console.set_defaults(func=run_console)

    demo = subparsers.add_parser(
        "demo",
        help="start a demo server with simulated clients and open the console on it",
        description="Start, in this process, the embedded server with the demo application "
        "(echo; ?room=NAME relays to the room), a dozen simulated clients (one of them a "
        "slow reader), and the console attached to its control plane. Quit with q or "
        "ctrl+c; everything stops.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="public address (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=0,
                      help="public port (default: 0, a free one)")
    demo.add_argument("--control-port", type=int, default=0,
                      help="control listener port on 127.0.0.1 (default: 0, a free one)")
    demo.add_argument("--seed", type=int, default=7, help="simulator seed (default: 7)")
    demo.add_argument("--guests", type=int, default=4,
                      help="simulated guests who come and go (default: 4)")
    demo.add_argument("--no-slow-reader", action="store_true",
                      help="leave out the client that stops reading")
    demo.add_argument("--nodes", type=int, default=1, metavar="N",
                      help="the demo of cluster mode: a private redis-server (Unix socket in "
                      "a temporary folder), N node processes demo-1 .. demo-N, the "
                      "simulated clients spread over them, and the console on demo-1 "
                      "(default: 1, one process, no Redis)")
    add_runtime_arguments(demo)
    demo.set_defaults(func=run_demo)

    # A maintainer's command: no help= keeps it out of the operator's listing
    # (the top-level epilog names it).
    shots = subparsers.add_parser(
        "screenshots",
        description="For maintainers. Write SVGs of the main screen, the detail view, the "
        "compose dialog and the shutdown dialog, from fixed sample data at a fixed "
        "terminal size.",
    )
    shots.add_argument("--out", default="screenshots", metavar="DIR",
                       help="output directory (default: ./screenshots)")
    shots.add_argument("--web", action="store_true",
                       help="instead, web.png: the console in a headless Chromium through "
                       "`wsconsole web`, on the live demo (needs the web and test extras "
                       "and a chromium)")
    shots.set_defaults(func=_run_screenshots)


def client_factory(url: str, token: str | None, token_file: str | None) -> ClientFactory:
    """Makes a control client for each attempt, finding the token again each time.

    So that after a refused token the operator can fix the token file (or a
    restarted ``wsconsole serve`` can write a new one) and press ctrl+r. A
    missing or unreadable token raises Unauthorized, which the console shows.
    """
    def factory() -> ControlClient:
        found, source = find_token(token, token_file)
        return ControlClient(url, found, token_source=source)

    return factory


def run_console(args: argparse.Namespace) -> int:
    """``wsconsole console``: the TUI on the control plane at ``--url``."""
    from .app import ConsoleApp  # Textual: only for the command that draws

    url = resolve_url(args.url)
    # No token anywhere is not fatal: the console starts and says so.
    app = ConsoleApp(client_factory(url, args.token, args.token_file), url=url,
                     node=args.node)
    with logging_silenced():
        app.run()
    return 0


def run_demo(
    args: argparse.Namespace,
    run: Callable[[ConsoleApp], Awaitable[Any]] | None = None,
) -> int:
    """``wsconsole demo``: server, simulator and console in one process.

    ``run`` runs the app: ``App.run_async`` unless a test drives it.
    """
    from wsconsole.server.loop_policy import run_on_loop

    loop_kind = loop_kind_from_args(args)
    nodes = getattr(args, "nodes", 1)
    if nodes < 1:
        print("wsconsole: error: --nodes must be at least 1", file=sys.stderr)
        return 2
    if nodes > 1:
        from wsconsole.server.cluster.redis_server import find_redis_server

        find_redis_server()  # not installed: one line that says how, before the TUI
        from .cluster_demo import run_cluster_demo

        with logging_silenced():
            return run_on_loop(run_cluster_demo(args, run), loop_kind)
    with logging_silenced():
        return run_on_loop(_demo(args, run), loop_kind)


async def _demo(
    args: argparse.Namespace, run: Callable[[ConsoleApp], Awaitable[Any]] | None
) -> int:
    # The server, and Textual, only for the demo: the console never loads the server.
    from wsconsole.server import serve
    from wsconsole.server.config import ControlConfig
    from wsconsole.server.demo_app import demo_handler
    from wsconsole.server.loop_policy import apply_gc_policy
    from wsconsole.server.protocol import HubState

    from .app import ConsoleApp

    # The token lives only in this process: in the server's config and the client.
    token = secrets.token_urlsafe(32)
    server = serve(
        demo_handler, args.host, args.port, node=DEMO_NODE,
        slow_consumer_limit=DEMO_SLOW_CONSUMER_LIMIT,
        # Simulated clients only, and a token nobody else has: try the tap (T).
        allow_tap=True,
        control=ControlConfig(host="127.0.0.1", port=args.control_port, token=token),
    )
    await server
    freezer = apply_gc_policy(gc_policy_from_args(args), server.hub)
    url = server.control.url
    simulator = Simulator(f"ws://{server.hub.listen[0]}", seed=args.seed,
                          guests=args.guests, slow_reader=not args.no_slow_reader)
    simulator.start()
    app = ConsoleApp(lambda: ControlClient(url, token), url=url)

    async def watch_server() -> None:
        # Shut down from the console (or by a signal): nothing to reconnect to.
        await server.wait_closed()
        await simulator.stop()
        if app.is_running:
            # In the app's own context (its message loop), not this task's.
            app.call_later(app.server_stopped,
                           "The demo's server has stopped (it was shut down); the demo "
                           "has nothing left to show. Quit, or stay to read the last data.")

    watcher = asyncio.get_running_loop().create_task(watch_server())
    try:
        await (app.run_async() if run is None else run(app))
    finally:
        watcher.cancel()
        if freezer is not None:
            freezer.stop()
        await simulator.stop()
        if server.hub.state == HubState.SERVING:
            server.close()
        try:
            async with asyncio.timeout(5):
                await server.wait_closed()
        except TimeoutError:  # pragma: no cover - a client that never closes
            pass
    if server.hub.state == HubState.STOPPED and app.link_state.status == "ended":
        print("wsconsole: the demo's server was shut down from its console; the demo quit")
    return 0


def _run_screenshots(args: argparse.Namespace) -> int:
    if getattr(args, "web", False):
        from .web.screenshot import write_web_screenshot

        print(write_web_screenshot(args.out))
        return 0
    from .screenshots import write_screenshots  # Textual: only for the command that draws

    for path in write_screenshots(args.out):
        print(path)
    return 0


@contextlib.contextmanager
def logging_silenced() -> Iterator[None]:
    """Drop every log record while the TUI runs, whatever the loggers' levels.

    A record reaching a handler would be written over the TUI (a handler made
    before Textual redirects stderr keeps the real one); the warnings worth
    seeing (a slow consumer closed, ...) reach the event log through the
    control plane's events instead.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)
