"""Broken WebSocket frames against a real server, each kind on its own
connection, with a canary that must keep being served.

Run it from the repository root (a server in this process on loopback, port 0)::

    .venv/bin/python tests/stress/broken_frames.py
    .venv/bin/python tests/stress/broken_frames.py --kind unmasked --kind truncated-frame

Each kind opens a raw TCP connection, completes the opening handshake by
hand, writes the broken bytes and reads until the server closes. It prints the
close code in the server's close frame ("none" when the TCP connection ended
without one), the code the hub recorded, the code expected by RFC 6455, and
the echo round trip of a websockets client that stays connected throughout
(the canary). Exits 1 if a code differs from the expected one, the hub kept a
record, or the canary stopped answering.

Must never reach beyond loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import struct
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wsconsole.server import serve

__all__ = ["KINDS", "main"]


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
          masked: bool = True, length: int | None = None) -> bytes:
    """One client frame, any field as broken as asked."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if n < 126:
        header = struct.pack("!BB", first, mask_bit | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


TEXT, BINARY, CONTINUATION, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9

# kind: (bytes written after the handshake, close code expected in the server's frame)
KINDS: dict[str, tuple[bytes, int | None]] = {
    "bad-opcode": (frame(0x3, b"x"), 1002),
    "reserved-control-opcode": (frame(0xB, b"x"), 1002),
    "reserved-bits": (frame(TEXT, b"x", rsv=0b011), 1002),
    "rsv1-without-extension": (frame(TEXT, b"x", rsv=0b100), 1002),
    "unmasked": (frame(TEXT, b"hello", masked=False), 1002),
    "oversized-length": (frame(BINARY, b"", length=1 << 62), 1009),
    "control-too-long": (frame(PING, b"p" * 126), 1002),
    "fragmented-control": (frame(PING, b"p", fin=False), 1002),
    "invalid-utf8-text": (frame(TEXT, b"\xff\xfe"), 1007),
    "invalid-utf8-across-fragments": (frame(TEXT, b"ok \xe2", fin=False)
                                      + frame(CONTINUATION, b"\x28\xa1"), 1007),
    "orphan-continuation": (frame(CONTINUATION, b"x"), 1002),
    "data-frame-inside-fragmented-message": (frame(TEXT, b"a", fin=False)
                                             + frame(BINARY, b"b"), 1002),
    "truncated-frame": (frame(BINARY, b"x" * 100)[:20], None),  # then EOF
    "bad-close-code": (frame(CLOSE, struct.pack("!H", 1005)), 1002),
}


async def echo(connection: ServerConnection) -> None:
    try:
        async for message in connection:
            await connection.send(message)
    except ConnectionClosed:  # what each broken frame ends in; not news
        pass


async def handshake(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /broken HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer


def close_code_in(data: bytes) -> int | None:
    """The code of the first close frame in what the server sent, if any."""
    while len(data) >= 2:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if n == 126:
            n, offset = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, offset = struct.unpack("!Q", data[2:10])[0], 10
        payload = data[offset:offset + n]
        if opcode == CLOSE:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        data = data[offset + n:]
    return None


async def attack(port: int, payload: bytes) -> int | None:
    reader, writer = await handshake(port)
    writer.write(payload)
    if payload is KINDS["truncated-frame"][0]:
        writer.write_eof()
    async with asyncio.timeout(15):
        received = await reader.read()  # until the server closes
    writer.close()
    return close_code_in(received)


async def run(kinds: list[str]) -> int:
    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        hub = server.hub
        port = server.sockets[0].getsockname()[1]
        canary = await connect(f"ws://127.0.0.1:{port}/canary?user=canary")
        failed = 0
        print(f"{'kind':40} {'frame':>6} {'hub':>5} {'want':>5} {'canary':>9}")
        for kind in kinds:
            payload, expected = KINDS[kind]
            before = dict(hub.closed_by_code)
            seen = await attack(port, payload)
            async with asyncio.timeout(15):
                while len(hub.registry) != 1:  # the canary only
                    await asyncio.sleep(0.005)
            recorded = [code for code, n in hub.closed_by_code.items() if n != before.get(code, 0)]
            started = time.perf_counter()
            await canary.send(kind)
            async with asyncio.timeout(5):
                answer = await canary.recv()
            round_trip = (time.perf_counter() - started) * 1000
            ok = seen == expected and answer == kind and recorded == [expected or 1006]
            failed += not ok
            print(f"{kind:40} {seen or 'none':>6} {','.join(map(str, recorded)):>5} "
                  f"{expected or 'none':>5} {round_trip:7.1f}ms {'' if ok else 'UNEXPECTED'}")
        await canary.close()
        print(f"{len(kinds)} kinds, {failed} unexpected; the canary was answered after each")
        return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", action="append", choices=sorted(KINDS),
                        help="run only this kind (repeatable; default: all 14)")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.kind or list(KINDS))))


if __name__ == "__main__":
    main()
