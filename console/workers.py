"""``wsconsole serve --workers N``: N node processes of one cluster on one public port.

The supervisor (the process the operator started) reserves the public port
with ``SO_REUSEPORT`` (so that ``--port 0`` means one free port for all) and
starts N workers, each an ordinary ``wsconsole serve`` node with
``reuse_port``: the kernel spreads new connections over them. Each worker:

* is named ``BASE-1`` .. ``BASE-N`` (BASE: ``--node``, default ``hostname:pid``
  of the supervisor);
* has its own control listener: ``--control-port C`` gives C, C+1, .. C+N-1;
  ``0`` lets each pick a free port (printed on its ``control plane on`` line);
  ``--control-unix PATH`` gives ``PATH-1`` .. ``PATH-N``;
* prints its lines prefixed with ``[NAME]``.

SIGTERM or SIGINT to the supervisor is passed on to every worker (a second one
too: "stop waiting for the drain"); the supervisor exits when they all have.
A worker that exits on its own is reported on stderr and NOT restarted: a
worker that crashes again at once would be restarted in a loop, hiding the
fault, and the cluster already shows it gone; the others keep serving. The
supervisor's status is 0 when every worker exited with 0, else the highest.

The worker receives its parsed arguments as one JSON line on stdin, rather
than a rebuilt command line: nothing of the operator's options is lost or
re-quoted on the way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any, TextIO

__all__ = ["run_workers", "worker_main", "worker_names", "worker_control_port"]

WORKER_FLAG = "--wsconsole-worker"
"""Hidden argument of ``python -m wsconsole.console.workers``: read the arguments on stdin."""


async def spawn_in_own_group(*command: str, **kwargs: Any) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec`` of a child in a process group of its
    own, so that a ctrl+c in the terminal reaches only its parent.

    asyncio's loop takes ``process_group=0`` (setpgid). uvloop refuses that
    argument (``ValueError: unexpected kwargs``, before anything is started):
    there the child gets ``start_new_session=True`` (setsid), its own process
    group too, and no controlling terminal, which a child that reads none does
    not need.
    """
    try:
        return await asyncio.create_subprocess_exec(*command, process_group=0, **kwargs)
    except ValueError as exc:
        if "process_group" not in str(exc):
            raise
    return await asyncio.create_subprocess_exec(*command, start_new_session=True, **kwargs)

def worker_names(base: str, count: int) -> list[str]:
    """``BASE-1`` .. ``BASE-N``."""
    return [f"{base}-{index}" for index in range(1, count + 1)]


def worker_control_port(port: int, index: int) -> int:
    """The control port of worker ``index`` (0-based): C + index, or 0 (each picks one)."""
    return port + index if port else 0


def _reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Bind (not listen) with SO_REUSEPORT: holds the port the workers will share.

    A bound socket that does not listen receives no connection: the workers'
    listening sockets get them all, and ``--port 0`` resolves to one port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock, sock.getsockname()[1]


def _worker_args(args: argparse.Namespace, index: int, name: str, port: int) -> dict[str, Any]:
    values = {key: value for key, value in vars(args).items() if key != "func"}
    values.update(workers=None, node=name, port=port, reuse_port=True)
    values["control_port"] = worker_control_port(args.control_port, index)
    if args.control_unix:
        values["control_unix"] = f"{args.control_unix}-{index + 1}"
    return values


def run_workers(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Start ``args.workers`` nodes on one port and supervise them (see the module)."""
    from wsconsole.server.control.auth import load_token
    from wsconsole.server.serving import default_node

    from .serve_command import control_config_from_args

    control = control_config_from_args(args)
    if control is not None:
        # Created here, once: N workers creating it at once would race.
        load_token(control.token, control.token_file, "operator")
        load_token(None, control.read_only_token_file, "read-only")
    reserved, port = _reserve_port(args.host, args.port)
    base = args.node or default_node()
    try:
        return asyncio.run(_supervise(args, base, port, out))
    finally:
        reserved.close()


async def _supervise(args: argparse.Namespace, base: str, port: int, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    names = worker_names(base, args.workers)
    workers: dict[str, asyncio.subprocess.Process] = {}
    stopping = False

    def forward(signum: int) -> None:
        nonlocal stopping
        stopping = True
        for process in workers.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, forward, signum)
    print(f"wsconsole: starting {args.workers} workers ({', '.join(names)}) on port {port}",
          file=out, flush=True)
    pumps = []
    try:
        for index, name in enumerate(names):
            # Its own process group: a ctrl+c in the terminal reaches the
            # supervisor only, which passes one SIGTERM on (two would cut the
            # graceful drain short).
            process = await spawn_in_own_group(
                sys.executable, "-m", "wsconsole.console.workers", WORKER_FLAG,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert process.stdin is not None
            process.stdin.write(json.dumps(_worker_args(args, index, name, port)).encode() + b"\n")
            await process.stdin.drain()
            process.stdin.close()
            workers[name] = process
            pumps.append(asyncio.create_task(_pump(process.stdout, name, out)))
            pumps.append(asyncio.create_task(_pump(process.stderr, name, sys.stderr)))
        statuses = await asyncio.gather(
            *(_watch(name, process, lambda: stopping) for name, process in workers.items()))
        await asyncio.gather(*pumps)
    finally:
        for process in workers.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    print("wsconsole: all workers stopped", file=out, flush=True)
    return max(statuses, default=0)


async def _watch(name: str, process: asyncio.subprocess.Process, stopping: Any) -> int:
    status = await process.wait()
    if not stopping() or status != 0:
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        print(f"wsconsole: worker {name} {how}; not restarted, the other workers keep serving",
              file=sys.stderr, flush=True)
    return status if status >= 0 else 128 - status


async def _pump(stream: asyncio.StreamReader | None, name: str, out: TextIO) -> None:
    assert stream is not None
    while line := await stream.readline():
        text = line.decode(errors="replace")
        out.write(f"[{name}] {text}" if text.endswith("\n") else f"[{name}] {text}\n")
        out.flush()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the supervisor dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def worker_main() -> int:
    """One worker: the arguments from stdin, then ``wsconsole serve``'s run."""
    _die_with_parent()
    if os.getppid() == 1:  # pragma: no cover - the supervisor died before prctl
        return 1
    values = json.loads(sys.stdin.readline())
    from .serve_command import run

    return run(argparse.Namespace(**values))


if __name__ == "__main__":  # pragma: no cover - started by run_workers
    if sys.argv[1:] != [WORKER_FLAG]:
        sys.exit("wsconsole.console.workers is started by wsconsole serve --workers")
    sys.exit(worker_main())
