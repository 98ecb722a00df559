"""The audit log's fault cases against a real ``wsconsole serve``: full disk, rotation.

Run it::

    .venv/bin/python tests/stress/audit_faults.py            # every case
    .venv/bin/python tests/stress/audit_faults.py --case full-disk --sends 2000

Cases, each printing its figures:

- ``full-disk``: the audit log on a 256 KiB tmpfs (mounted for the run, which
  needs root; otherwise the case says so and runs ``dev-full`` instead). Sends
  go to a canary client until the disk is full, then past it; then the file
  is archived and emptied (space comes back) and a few more are sent.
- ``dev-full``: the audit log is ``/dev/full``: every write fails.
- ``rotate-rename``: the file is renamed every few sends while sends keep
  coming (logrotate's default: rename, then the server creates the file again),
  and once more followed by SIGHUP.
- ``rotate-copytruncate``: copied then truncated in place every few sends.

The figures: requests attempted; carried out (ok replies, and the messages
the canary received); refused with ``audit_failed``; lines written (every
file, strictly parsed); and lost, the operations carried out without a line,
which must be 0. A case fails (exit 1) when a line is lost, a line does not
parse, a refused send still reached the canary, or the server died.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from websockets.asyncio.client import ClientConnection, connect

from tests.stress.serve_process import OPERATOR_TOKEN, ServeProcess
from tests.stress.strict import StrictJSONError, read_audit_file, strict_loads
from wsconsole.server import wire

__all__ = ["CaseFigures", "main"]

TMPFS_SIZE = "256k"


@dataclass
class CaseFigures:
    """What one case did; ``failures`` empty means it held."""

    name: str
    attempted: int = 0
    carried_out: int = 0
    received: int = 0
    refused: int = 0
    other_errors: int = 0
    written: int = 0
    files: int = 0
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.carried_out - self.written

    def report(self) -> str:
        lines = [
            f"== {self.name}",
            f"attempted:   {self.attempted}",
            f"carried out: {self.carried_out} (ok replies; the canary received "
            f"{self.received})",
            f"refused:     {self.refused} (audit_failed)"
            + (f", {self.other_errors} other errors" if self.other_errors else ""),
            f"written:     {self.written} lines in {self.files} file(s), all strict JSON",
            f"lost:        {self.lost}",
        ]
        lines += [f"note:        {note}" for note in self.notes]
        lines.append("result:      " + ("held" if not self.failures else "FAILED"))
        lines += [f"  - {failure}" for failure in self.failures]
        return "\n".join(lines)


class _Operator:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send(wire.encode_request(self.next_id, op, args))
        async with asyncio.timeout(30):
            while True:
                message = strict_loads(await self.ws.recv())
                if "event" not in message and message.get("id") == self.next_id:
                    return message


class _Canary:
    """A public client that counts what operators sent it.

    :meth:`settle` is a round trip through the demo application's echo: a send
    that reached the canary's connection before it arrives before its echo, so
    the count is then final, with no waiting for what should not come.
    """

    def __init__(self, client: ClientConnection) -> None:
        self.client = client
        self.received: list[str] = []
        self._pings = 0
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, server: ServeProcess) -> _Canary:
        return cls(await connect(server.url + "/?user=canary"))

    async def _read(self) -> None:
        async for message in self.client:
            self.received.append(message)

    async def settle(self) -> int:
        self._pings += 1
        ping = f"ping {self._pings}"
        await self.client.send(ping)
        async with asyncio.timeout(30):
            while ping not in self.received:
                await asyncio.sleep(0.01)
        return sum(not message.startswith("ping ") for message in self.received)

    async def close(self) -> None:
        await self.client.close()
        await self._reader


async def _send_many(operator: _Operator, figures: CaseFigures, count: int,
                     tag: str) -> None:
    for i in range(count):
        reply = await operator.request("send", selector={"user": "canary"},
                                       text=f"{tag} {i:05} " + "x" * 100)
        figures.attempted += 1
        if reply["ok"]:
            figures.carried_out += 1
        elif reply["error"]["code"] == "audit_failed":
            figures.refused += 1
        else:
            figures.other_errors += 1
            figures.failures.append(f"unexpected error: {reply['error']}")


def _count_lines(figures: CaseFigures, *paths: Path) -> None:
    for path in paths:
        if not path.exists():
            continue
        figures.files += 1
        try:
            figures.written += sum(entry.get("op") == "send" for entry in read_audit_file(path))
        except StrictJSONError as exc:
            figures.failures.append(f"{path.name}: {exc}")


async def _finish(figures: CaseFigures, server: ServeProcess, canary: _Canary) -> None:
    figures.received = await canary.settle()
    await canary.close()
    if figures.received != figures.carried_out:
        figures.failures.append(f"the canary received {figures.received} messages for "
                                f"{figures.carried_out} sends carried out")
    if figures.lost != 0:
        figures.failures.append(f"{figures.lost} operations carried out without a line")
    if not server.alive:
        figures.failures.append("the server died")
    if server.tracebacks():
        figures.failures.append(f"{server.tracebacks()} tracebacks in the server's log")


async def _audit_status(operator: _Operator) -> dict[str, Any]:
    """The ``audit`` part of ``stats`` (empty from a server too old to have one)."""
    return (await operator.request("stats"))["result"].get("audit") or {}


async def _session(server: ServeProcess) -> _Operator:
    ws = await connect(server.control_url,
                       additional_headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    return _Operator(ws)


# The cases


def _mount_tmpfs(folder: Path) -> str | None:
    """Mount a small tmpfs on ``folder``; None if that worked, else why not."""
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700",
                             "tmpfs", str(folder)], capture_output=True, text=True)
    if result.returncode != 0:
        return (result.stderr or result.stdout).strip() or f"mount exited {result.returncode}"
    return None


async def case_full_disk(tmp: Path, sends: int) -> CaseFigures:
    disk = tmp / "disk"
    why_not = _mount_tmpfs(disk)
    if why_not is not None:
        figures = await case_dev_full(tmp, sends)
        figures.notes.append(f"no tmpfs ({why_not}): ran against /dev/full instead")
        return figures
    figures = CaseFigures(f"full-disk: a {TMPFS_SIZE} tmpfs")
    audit = disk / "audit.log"
    try:
        async with ServeProcess(tmp, audit_log=str(audit)) as server:
            canary = await _Canary.connect(server)
            operator = await _session(server)
            await _send_many(operator, figures, sends, "fill")
            status = await _audit_status(operator)
            figures.notes.append(f"when full: state {status.get('state')}, "
                                 f"last error {status.get('last_error')!r}")
            if figures.refused == 0:
                figures.failures.append(f"{sends} sends did not fill {TMPFS_SIZE}")
            # An operator archives the log and empties it: space comes back.
            shutil.copyfile(audit, tmp / "audit.log.1")
            audit.write_bytes(b"")
            before = figures.carried_out
            await _send_many(operator, figures, 20, "after")
            status = await _audit_status(operator)
            figures.notes.append(f"after freeing space: {figures.carried_out - before} of 20 "
                                 f"carried out, state {status.get('state')}")
            if status.get("state") != "ok":
                figures.failures.append("the audit log did not recover")
            await operator.ws.close()
            _count_lines(figures, tmp / "audit.log.1", audit)
            await _finish(figures, server, canary)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    return figures


async def case_dev_full(tmp: Path, sends: int) -> CaseFigures:
    figures = CaseFigures("dev-full: the audit log is /dev/full")
    async with ServeProcess(tmp, audit_log="/dev/full") as server:
        canary = await _Canary.connect(server)
        operator = await _session(server)
        await _send_many(operator, figures, min(sends, 200), "full")
        status = await _audit_status(operator)
        figures.notes.append(f"state {status.get('state')}, {status.get('entries_failed')} failed, "
                             f"last error {status.get('last_error')!r}")
        await operator.ws.close()
        await _finish(figures, server, canary)
    return figures


async def case_rotate_rename(tmp: Path, sends: int) -> CaseFigures:
    figures = CaseFigures("rotate-rename: renamed under a stream of sends, then SIGHUP")
    audit = tmp / "audit.log"
    rotated: list[Path] = []
    async with ServeProcess(tmp, audit_log=str(audit)) as server:
        canary = await _Canary.connect(server)
        operator = await _session(server)
        done = asyncio.Event()

        async def rotate() -> None:
            while not done.is_set():
                await asyncio.sleep(0.05)
                if audit.exists():
                    target = tmp / f"audit.log.{len(rotated) + 1}"
                    audit.rename(target)
                    rotated.append(target)

        rotator = asyncio.create_task(rotate())
        await _send_many(operator, figures, sends, "rename")
        done.set()
        await rotator
        # Once more, the way logrotate's postrotate does it: rename, SIGHUP;
        # the server creates the file at once, before its next line.
        await _send_many(operator, figures, 1, "before-hup")
        if audit.exists():
            target = tmp / f"audit.log.{len(rotated) + 1}"
            audit.rename(target)
            rotated.append(target)
            server.signal(signal.SIGHUP)
            try:
                async with asyncio.timeout(10):
                    while not audit.exists():
                        await asyncio.sleep(0.01)
            except TimeoutError:
                figures.failures.append("SIGHUP did not create the file again")
        else:
            figures.failures.append("after a rename, the next line did not create the file")
        await _send_many(operator, figures, 10, "after-hup")
        status = await _audit_status(operator)
        figures.notes.append(f"{len(rotated)} rotations, the server reopened "
                             f"{status.get('reopened')} times")
        await operator.ws.close()
        _count_lines(figures, *rotated, audit)
        await _finish(figures, server, canary)
    return figures


async def case_rotate_copytruncate(tmp: Path, sends: int) -> CaseFigures:
    figures = CaseFigures("rotate-copytruncate: copied and truncated every 50 sends")
    audit = tmp / "audit.log"
    copies: list[Path] = []
    async with ServeProcess(tmp, audit_log=str(audit)) as server:
        canary = await _Canary.connect(server)
        operator = await _session(server)
        for start in range(0, sends, 50):
            await _send_many(operator, figures, min(50, sends - start), "copytruncate")
            # Between two requests: logrotate's own window (lines written
            # between its copy and its truncate) is not the server's to close.
            copy = tmp / f"audit.log.{len(copies) + 1}"
            shutil.copyfile(audit, copy)
            with open(audit, "r+b") as file:
                file.truncate(0)
            copies.append(copy)
        await _send_many(operator, figures, 10, "after")
        await operator.ws.close()
        for path in (*copies, audit):
            if b"\0" in path.read_bytes():
                figures.failures.append(f"{path.name} has NUL bytes (a hole before a line)")
        _count_lines(figures, *copies, audit)
        figures.notes.append(f"{len(copies)} copies")
        await _finish(figures, server, canary)
    return figures


CASES = {
    "full-disk": case_full_disk,
    "dev-full": case_dev_full,
    "rotate-rename": case_rotate_rename,
    "rotate-copytruncate": case_rotate_copytruncate,
}


async def _run(args: argparse.Namespace) -> int:
    names = [args.case] if args.case else list(CASES)
    failed = False
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"wsconsole-{name}-") as tmp:
            figures = await CASES[name](Path(tmp), args.sends)
        print(figures.report(), flush=True)
        failed = failed or bool(figures.failures)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=list(CASES), help="one case (default: all)")
    parser.add_argument("--sends", type=int, default=1000,
                        help="sends per case (full-disk needs about 700 to fill 256 KiB)")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
