"""The ``wsconsole`` command: ``serve``, ``demo``, ``console`` and the operator commands.

Every failure the project raises on purpose (``WsconsoleError``) becomes one
line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Sequence

from wsconsole.server.errors import WsconsoleError

__all__ = ["main", "build_parser", "installed_version", "EXIT_FAILURE", "EXIT_USAGE",
           "EXIT_PARTIAL"]

EXIT_FAILURE = 1
"""A command failed (unreachable, refused, unknown id, ...)."""
EXIT_USAGE = 2
"""Bad command-line usage (argparse's own status)."""
EXIT_PARTIAL = 3
"""A partial answer: what the nodes that answered said was printed; the others
are named on stderr (``wsconsole.console.commands`` returns it)."""


def installed_version() -> str:
    """The installed distribution's version (what ``nodes`` reports too)."""
    try:
        return version("wsconsole")
    except PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="wsconsole",
        description="A live WebSocket server with a control plane and a terminal console.",
        # The maintainers' commands have no help line, so that the operator's
        # listing stays the operator's; this names them.
        epilog="For maintainers: `wsconsole screenshots` regenerates the console's "
        "pictures (see its --help).",
    )
    parser.add_argument("--version", action="version",
                        version=f"wsconsole {installed_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from . import serve_command

    serve_command.register(subparsers)
    _register_dashboard(subparsers)
    # Commands written in their own modules register themselves when present.
    for name in ("commands", "tui_command", "web.command"):
        try:
            module = __import__(f"wsconsole.console.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"wsconsole.console.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def _register_dashboard(subparsers: argparse._SubParsersAction) -> None:
    dashboard = subparsers.add_parser(
        "dashboard",
        help="print the Grafana dashboard of the metrics (JSON, for import or provisioning)",
        description="Print the Grafana dashboard of wsconsole's metrics, generated from "
        "their definitions (the repository's dashboards/wsconsole.json is this output).",
    )
    dashboard.add_argument("-o", "--output", metavar="FILE",
                           help="write it to FILE instead of standard output")
    dashboard.set_defaults(func=_run_dashboard)


def _run_dashboard(args: argparse.Namespace) -> int:
    from wsconsole.server.dashboard import dashboard_json

    text = dashboard_json()
    if args.output is None:
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wsconsole`` script."""
    from .commands import joined_sort_values

    parser = build_parser()
    args = parser.parse_args(joined_sort_values(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args) or 0)
    except WsconsoleError as exc:
        print(f"wsconsole: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"wsconsole: error: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
