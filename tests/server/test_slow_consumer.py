"""A client that stops reading is found by what the server holds for it: the
userspace write buffer plus the kernel's send queue (README, "What the
slow-consumer limit counts")."""

from __future__ import annotations

import asyncio
import fcntl
import sys
import termios
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import wsconsole.server.hub as hub_module
from wsconsole.server import SLOW_CONSUMER_CODE, serve
from wsconsole.server.protocol import EventKind
from wsconsole.server.registry import Selector
from wsconsole.server.sampler import KERNEL_QUEUE_MEASURED

from tests.helpers import TIMEOUT, wait_for

pytestmark = pytest.mark.skipif(not KERNEL_QUEUE_MEASURED,
                                reason="the kernel send queue is measured on Linux only")

LIMIT = 512 * 1024
CHUNK = b"s" * 16 * 1024
CLOSE_TIMEOUT = 0.2
"""Seconds a stalled reader gets to read up to its close frame here (2 s in
production): it never does, so the tests wait for the abort, not for time."""


@pytest.fixture(autouse=True)
def _short_close_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "SLOW_CONSUMER_CLOSE_TIMEOUT", CLOSE_TIMEOUT)


def url(server: Any) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    return f"ws://{host}:{port}/feed?user=stalled"


def unread(client: Any) -> int:
    """Bytes the client's kernel received and acknowledged but nobody read
    (FIONREAD): what the server cannot see."""
    sock = client.transport.get_extra_info("socket")
    return int.from_bytes(fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4)), sys.byteorder)


class SlowConsumerEvents:
    """The slow_consumer events, with the record's bytes out when each came."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.seen: list[tuple[dict[str, Any], int, int]] = []

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == EventKind.SLOW_CONSUMER:
            (record,) = self.hub.registry  # each test has one connection
            self.seen.append((data, record.bytes_out, record.kernel_queued))


async def test_broadcast_to_a_stalled_reader_stops_at_the_limit_not_megabytes_later():
    """A client that stops reading is closed as a slow consumer once what the
    server holds for it (write buffer plus kernel send queue) passes the limit:
    what was sent to it is the limit, an eighth of it, one message and what its
    own kernel took, not the megabytes of kernel buffers on top."""
    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, slow_consumer_limit=LIMIT,
                     sample_interval=0, compression=None) as server:
        hub = server.hub
        events = SlowConsumerEvents(hub)
        hub.add_listener(events)
        client = await connect(url(server), compression=None, max_size=None)
        try:
            await wait_for(lambda: len(hub.registry) == 1)
            client.transport.pause_reading()
            (record,) = hub.registry
            # Far more than the kernel's buffers (about 4 MB each way) and the limit.
            for _ in range(1000):
                if hub.send(Selector(everyone=True), CHUNK).delivered == 0 or events.seen:
                    break
                await asyncio.sleep(0)  # let the kernel move bytes to the client
            assert len(events.seen) == 1
            data, bytes_out, queued = events.seen[0]
            assert data["buffered"] + data["kernel_queued"] > LIMIT
            assert data["kernel_queued"] == queued > 0
            assert bytes_out <= LIMIT + LIMIT // 8 + 2 * len(CHUNK) + unread(client)
            await wait_for(lambda: record.handle.protocol.close_sent is not None)
            assert record.handle.protocol.close_sent.code == SLOW_CONSUMER_CODE
            # It cannot read the close frame behind its backlog: aborted after
            # SLOW_CONSUMER_CLOSE_TIMEOUT.
            await wait_for(lambda: len(hub.registry) == 0, TIMEOUT + CLOSE_TIMEOUT)
            assert hub.closed_by_code[SLOW_CONSUMER_CODE] == 1
            assert hub.slow_consumer_disconnects == 1
        finally:
            client.transport.abort()


async def test_a_handler_feeding_a_stalled_reader_is_closed_by_the_sampler():
    """A handler that awaits its own sends never fills the write buffer past
    websockets' write_limit, so only the kernel's queue shows the stall: the
    sampler closes the client within a tick or two, with 1008 in the record,
    not after the 40 s of keepalive timeouts (1011) it took before."""
    feeding = asyncio.Event()

    async def feed(ws: Any) -> None:
        feeding.set()
        try:
            while True:
                await ws.send(CHUNK)
        except ConnectionClosed:
            pass

    async with serve(feed, "127.0.0.1", 0, slow_consumer_limit=LIMIT, sample_interval=0.1,
                     compression=None) as server:
        hub = server.hub
        events = SlowConsumerEvents(hub)
        hub.add_listener(events)
        client = await connect(url(server), compression=None, max_size=None)
        try:
            client.transport.pause_reading()
            await wait_for(feeding.is_set)
            (record,) = hub.registry
            await wait_for(lambda: events.seen, TIMEOUT)
            data, _, _ = events.seen[0]
            assert data["buffered"] <= 64 * 1024  # websockets' write_limit holds it there
            assert data["kernel_queued"] > LIMIT - data["buffered"]
            await wait_for(lambda: record.handle.protocol.close_sent is not None)
            assert record.handle.protocol.close_sent.code == SLOW_CONSUMER_CODE
            await wait_for(lambda: len(hub.registry) == 0, TIMEOUT + CLOSE_TIMEOUT)
            assert hub.closed_by_code[SLOW_CONSUMER_CODE] == 1
        finally:
            client.transport.abort()


async def test_the_record_shows_the_write_buffer_and_the_kernel_queue_apart():
    """ls and show carry both figures: ``buffered`` (asyncio's write buffer)
    and ``kernel_queued`` (the socket's unacknowledged send queue)."""
    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, slow_consumer_limit=None,
                     sample_interval=0, compression=None) as server:
        hub = server.hub
        client = await connect(url(server), compression=None, max_size=None)
        try:
            await wait_for(lambda: len(hub.registry) == 1)
            client.transport.pause_reading()
            (record,) = hub.registry
            transport = record.handle.transport
            for _ in range(1000):  # until the kernel refuses and asyncio buffers
                if transport.get_write_buffer_size():
                    break
                hub.send(Selector(everyone=True), CHUNK)
                await asyncio.sleep(0)
            hub.refresh(record)
            summary = record.summary()
            assert summary["buffered"] > 0
            assert summary["kernel_queued"] > 0
            assert record.detail()["kernel_queued"] == summary["kernel_queued"]
        finally:
            client.transport.abort()
