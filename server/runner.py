"""``wsconsole serve``: run an application (or the demo) inside the embedded server.

Loads APP (``module:attribute``), starts the public server and the control
listener, prints where they listen, reopens the audit log on SIGHUP, and
shuts down gracefully on SIGTERM or SIGINT (exit status 0).

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
from typing import Any, Callable, TextIO

from .config import ControlConfig
from .errors import WsconsoleError
from .loop_policy import GcPolicy, apply_gc_policy, describe_gc, describe_loop
from .protocol import ShutdownMode
from .serving import WsconsoleServer, serve

__all__ = ["load_app", "run_server", "AppLoadError"]


class AppLoadError(WsconsoleError):
    """APP could not be imported or is not a connection handler."""

    code = "bad_app"


def load_app(spec: str | None) -> Callable[..., Any]:
    """Import ``module:attribute``; None gives the built-in demo application."""
    if spec is None:
        from .demo_app import demo_handler

        return demo_handler
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AppLoadError(f"APP must be module:attribute, not {spec!r}")
    if "" not in sys.path and "." not in sys.path:
        # Like `python -m`, let APP live in the current directory.
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppLoadError(f"cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppLoadError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise AppLoadError(f"{spec} is not callable")
    return target


async def run_server(
    app: str | None,
    host: str,
    port: int,
    control: ControlConfig | None,
    *,
    out: TextIO = sys.stdout,
    started: Callable[[WsconsoleServer], Any] | None = None,
    gc_policy: GcPolicy = GcPolicy(),
    **serve_kwargs: Any,
) -> int:
    """Serve until SIGTERM/SIGINT or an operator's shutdown; return the exit status.

    Runs on the running loop (``run_on_loop`` picks it); ``gc_policy`` is
    applied once the listeners are up, so the start's objects are frozen too.
    """
    handler = load_app(app)
    server = await serve(handler, host, port, control=control, **serve_kwargs)
    loop = asyncio.get_running_loop()
    freezer = apply_gc_policy(gc_policy, server.hub)

    def stop() -> None:
        # Also during a keep-alive drain (the hub calls it an escalation): a
        # signal then means "stop waiting". hub.shutdown rather than
        # server.close(), which, like websockets', acts only once.
        if server.hub.may_shutdown(ShutdownMode.GRACEFUL).allowed:
            # First: a line that cannot be written (the reader of a pipe gone)
            # must not keep the server from stopping.
            server.hub.shutdown(ShutdownMode.GRACEFUL)
            _say(out, "wsconsole: shutting down gracefully")

    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not main thread
            pass
    # SIGHUP: "reopen your log files", as logrotate's postrotate sends it.
    reopen_audit_log = getattr(server.control, "reopen_audit_log", None)
    if reopen_audit_log is not None:
        try:
            loop.add_signal_handler(signal.SIGHUP, reopen_audit_log)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not main thread
            pass
    what = app or "the demo application"
    for address in server.hub.listen:
        print(f"wsconsole: serving {what} on ws://{address}", file=out, flush=True)
    if server.control is not None:
        for line in getattr(server.control, "describe", lambda: [])():
            print(f"wsconsole: {line}", file=out, flush=True)
    if server.hub.taps is not None:
        print(f"wsconsole: live message tap allowed (operators may watch payloads; at most "
              f"{server.hub.taps.max_taps} taps at once)", file=out, flush=True)
    if server.cluster is not None:
        for line in server.cluster.describe():
            print(f"wsconsole: {line}", file=out, flush=True)
    print(f"wsconsole: event loop: {describe_loop(loop)}; {describe_gc(gc_policy)}",
          file=out, flush=True)
    if started is not None:
        started(server)
    try:
        await server.wait_closed()
    finally:
        if freezer is not None:
            freezer.stop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                loop.remove_signal_handler(signum)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
    _say(out, "wsconsole: stopped")
    return 0


def _say(out: TextIO, line: str) -> None:
    """A line of the shutdown; if the output is gone (a broken pipe), it goes
    nowhere from now on, and the server stops all the same (exit status 0)."""
    try:
        print(line, file=out, flush=True)
    except OSError:
        # What is buffered would fail again at exit (and Python would exit 120).
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, out.fileno())
            finally:
                os.close(devnull)
