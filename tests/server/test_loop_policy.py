"""The event loop `wsconsole serve` runs on (--loop) and the collector policy (--gc-freeze)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import subprocess
import sys
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.helpers import TIMEOUT, wait_for
from tests.server.test_serve_command import WSCONSOLE, start, stop
from wsconsole.server.cycles import release_closed_connection
from wsconsole.server.errors import ConfigError
from wsconsole.server.loop_policy import (
    THAW_FOUND_NOTHING,
    GcFreezer,
    GcPolicy,
    LoopChoice,
    apply_gc_policy,
    loop_name,
    resolve_loop,
    restore_gc_defaults,
)

try:
    import uvloop
except ImportError:
    uvloop = None

needs_uvloop = pytest.mark.skipif(uvloop is None, reason="uvloop is not installed")


async def test_the_tests_run_on_the_loop_wsconsole_test_loop_names():
    """WSCONSOLE_TEST_LOOP=uvloop runs the suite on uvloop; asyncio's own loop otherwise."""
    # tests/conftest.py passes the choice on to `serve` processes in WSCONSOLE_LOOP.
    assert loop_name() == os.environ["WSCONSOLE_LOOP"]


async def serve_and_echo(*options: str) -> str:
    """Start `wsconsole serve OPTIONS`, echo one message, stop it; return its output."""
    process, url = await start(["--no-control", *options])
    try:
        async with connect(url + "/chat") as client:
            await client.send("on which loop?")
            assert await client.recv() == "on which loop?"
        code, out = await stop(process, 15)  # SIGTERM
    finally:
        if process.returncode is None:
            process.kill()
    assert code == 0, out
    return out


async def test_serve_loop_asyncio_runs_on_asyncio_and_freezes_the_collector_by_default():
    """`serve --loop asyncio` serves on asyncio's loop even when uvloop is there, and, as
    by default, prints that the collector froze the start's objects (and how many)."""
    out = await serve_and_echo("--loop", "asyncio")
    line = next(line for line in out.splitlines() if "event loop:" in line)
    assert line.startswith("wsconsole: event loop: asyncio (Python")
    assert "garbage collector: frozen after start and after each full collection (" in line
    frozen = int(line.rsplit("(", 1)[1].split()[0].replace(",", ""))
    assert frozen > 10_000  # the imports and the listeners at least


def test_no_gc_freeze_leaves_pythons_collector_and_gc_freeze_is_the_default():
    """`serve` freezes the collector unless told `--no-gc-freeze` (demo likewise);
    the thaw's count and the young threshold keep their options."""
    from wsconsole.console.cli import build_parser
    from wsconsole.console.serve_command import gc_policy_from_args

    parser = build_parser()
    assert gc_policy_from_args(parser.parse_args(["serve"])).freeze
    assert gc_policy_from_args(parser.parse_args(["demo"])).freeze
    policy = gc_policy_from_args(parser.parse_args(["serve", "--no-gc-freeze"]))
    assert policy.is_default
    policy = gc_policy_from_args(parser.parse_args(["serve", "--gc-thaw-after", "0"]))
    assert policy.freeze and policy.thaw_after_closes is None


@needs_uvloop
async def test_serve_loop_uvloop_runs_on_uvloop_and_says_so():
    """`serve --loop uvloop` serves on uvloop and prints its version."""
    out = await serve_and_echo("--loop", "uvloop", "--no-gc-freeze")
    assert (f"wsconsole: event loop: uvloop {uvloop.__version__}; garbage collector: "
            "Python's defaults") in out


def test_loop_uvloop_without_uvloop_fails_in_one_line():
    """`serve --loop uvloop` where uvloop is not installed exits 1 with one line naming the extra."""
    # A real process in which `import uvloop` fails, as where it is not installed.
    code = ("import sys; sys.modules['uvloop'] = None; from wsconsole.console.cli import main; "
            "sys.exit(main(['serve', '--loop', 'uvloop', '--port', '0', '--no-control']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT * 2)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "wsconsole: error: --loop uvloop: uvloop is not installed (pip install 'wsconsole[fast]')"
    ]
    assert "serving" not in done.stdout


def test_auto_prefers_uvloop_when_installed(monkeypatch):
    """--loop auto (the default) is uvloop when it is installed, asyncio's loop when not."""
    assert resolve_loop(LoopChoice.AUTO).name == ("asyncio" if uvloop is None else "uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert resolve_loop(LoopChoice.AUTO).name == "asyncio"
    assert resolve_loop(LoopChoice.ASYNCIO).name == "asyncio"
    with pytest.raises(ConfigError):
        resolve_loop(LoopChoice.UVLOOP)


def test_gc_freeze_keeps_what_survived_a_full_collection_out_of_the_next():
    """With freeze, an object alive at a full collection is frozen after it, so the next
    full collection does not walk it; restore_gc_defaults gives Python's collector back."""
    threshold = gc.get_threshold()
    apply_gc_policy(GcPolicy(freeze=True, threshold0=5000))
    try:
        assert gc.get_threshold()[0] == 5000
        survivor = [object()]  # a tracked container made after the freeze
        assert any(o is survivor for o in gc.get_objects(generation=0))
        frozen = gc.get_freeze_count()
        gc.collect()  # a full collection: it walks survivor once, then freezes it
        assert gc.get_freeze_count() > frozen
        assert not any(o is survivor for o in gc.get_objects())
    finally:
        restore_gc_defaults(threshold)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == threshold
    gc.collect()
    assert any(o is survivor for o in gc.get_objects(generation=2))


@needs_uvloop
async def test_on_uvloop_connections_past_the_descriptors_are_dropped_unlogged():
    """On uvloop, with every descriptor in use, libuv accepts the waiting connections and
    closes them at once (asyncio's loop leaves them in the backlog and logs one line): no
    line, no count, and the server serves again once descriptors are free."""
    from tests.server.test_handshake_limits import LOW_LIMIT, _low_open_file_limit

    process = await asyncio.create_subprocess_exec(
        *WSCONSOLE, "serve", "--loop", "uvloop", "--port", "0", "--no-control",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_low_open_file_limit)
    try:
        async with asyncio.timeout(TIMEOUT * 2):
            line = (await process.stdout.readline()).decode()
        url = re.search(r"on (ws://\S+)", line).group(1)
        host, port = url.removeprefix("ws://").rsplit(":", 1)
        streams = [await asyncio.open_connection(host, int(port)) for _ in range(2 * LOW_LIMIT)]

        async def closed_by_the_server(reader: asyncio.StreamReader) -> bool:
            try:
                async with asyncio.timeout(TIMEOUT * 2):
                    return await reader.read(1) == b""
            except (TimeoutError, OSError):
                return False

        # Past the limit, the server closed some at once (the others wait for a handshake
        # that never comes, until the server's open timeout).
        assert any(await asyncio.gather(*(closed_by_the_server(r) for r, _ in streams[-8:])))
        for _, writer in streams:
            writer.close()

        async def serves() -> bool:
            try:
                async with connect(url, open_timeout=1) as client:
                    await client.send("back")
                    return await client.recv() == "back"
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
                # Not every close seen yet: libuv may still drop this one.
                return False

        await wait_for(serves, timeout=TIMEOUT * 2, interval=0.2)
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(TIMEOUT * 2):
            _, err = await process.communicate()
    assert "cannot accept connections" not in err.decode()
    assert "Traceback" not in err.decode()


async def test_frozen_closed_connections_are_freed_at_once_and_cycles_by_the_next_thaw():
    """With --gc-freeze, a connection that closes, cleanly or not, is freed at once (the
    hub breaks the cycle between it and its record: frozen, a cycle is never collected);
    what is left in cycles is freed once thaw_after_closes connections closed; a thaw
    that finds nothing doubles the closes to the next one."""
    from wsconsole.server import serve

    async def echo(connection):
        try:
            async for message in connection:
                await connection.send(message)
        except ConnectionClosed:
            pass  # else its log record (held by pytest) holds the connection

    class Cycle:
        pass

    threshold = gc.get_threshold()
    freezer = None
    async with serve(echo, "127.0.0.1", 0) as server:
        try:
            apply_gc_policy(GcPolicy(freeze=True, thaw_after_closes=None))
            clients = [await connect(f"ws://127.0.0.1:{server.port}") for _ in range(2)]
            await wait_for(lambda: len(server.hub.registry) == 2)
            connections = [weakref.ref(c) for c in server.connections]
            cycle = Cycle()
            cycle.itself = cycle
            garbage = weakref.ref(cycle)
            gc.collect()  # a full collection: all of them are frozen after it
            del cycle
            # It counts the closes from now on; started later, to see the cost first.
            freezer = GcFreezer(server.hub, thaw_after_closes=2, check_interval=0.01)
            await clients[0].close()
            clients[1].transport.abort()  # no close frame
            await wait_for(lambda: not server.connections and not server.hub.registry)
            await wait_for(lambda: all(ref() is None for ref in connections))
            gc.collect()
            assert garbage() is not None  # what freezing costs: a cycle stays
            freezer.start()
            await wait_for(lambda: freezer.thaws == 1)
            assert garbage() is None
            assert gc.get_freeze_count() > 0  # frozen again after the thaw
            assert freezer.next_thaw_after == 2  # it found something: as often as asked

            # Closed connections that leave nothing: the thaws grow rarer.
            freezer.stop()
            for client in clients:
                release_closed_connection(client)  # the client's side is not ours to clean
            clients = [await connect(f"ws://127.0.0.1:{server.port}") for _ in range(10)]
            await wait_for(lambda: len(server.hub.registry) == 10)
            gc.collect()  # frozen, server side and client side
            for client in clients:
                await client.close()
                release_closed_connection(client)
            await wait_for(lambda: not server.connections and not server.hub.registry)
            del clients, client
            gc.collect()  # what was not frozen: the thaw below finds only what was
            freezer.thaw()
            assert freezer.last_thaw_freed < 10 * THAW_FOUND_NOTHING
            assert freezer.next_thaw_after == 4
        finally:
            if freezer is not None:
                freezer.stop()
            restore_gc_defaults(threshold)


@contextlib.asynccontextmanager
async def _frozen_server() -> AsyncIterator[Any]:
    """A real server whose connections wait to be closed, with the collector
    frozen (no thaws of its own) until the block ends."""
    from wsconsole.server import serve

    async def idle(connection):
        await connection.wait_closed()

    threshold = gc.get_threshold()
    async with serve(idle, "127.0.0.1", 0) as server:
        try:
            apply_gc_policy(GcPolicy(freeze=True, thaw_after_closes=None))
            yield server
        finally:
            restore_gc_defaults(threshold)


class _ParkedParser:
    """An owner and a suspended generator whose frame holds it: the cycle
    websockets' protocol and its parser made, which the collector frees by
    closing the generator and which ``gc.collect()`` does not count."""

    def __init__(self) -> None:
        self.parser = self._park()
        next(self.parser)

    def _park(self):
        yield


async def test_a_thaw_counts_cycles_freed_by_a_generators_finalizer_and_does_not_back_off():
    """A thaw that frees cycles through suspended generators counts them (the memory
    given back), so it does not take them for nothing and back off."""
    async with _frozen_server() as server:
        freezer = GcFreezer(server.hub, thaw_after_closes=1000)
        parked = [_ParkedParser() for _ in range(500)]
        alive = weakref.ref(parked[0])
        gc.collect()  # a full collection: frozen after it
        del parked
        gc.collect()
        assert alive() is not None  # frozen: not freed by a full collection
        freezer.thaw()
        assert alive() is None
        # No connection closed (counted as one close): a block for each of
        # 500 owners and their generators at least, where gc.collect() says 0.
        assert freezer.last_thaw_freed >= 1000
        assert freezer.next_thaw_after == 1000  # found something: not backed off


def _fill_free_lists() -> None:
    """Leave in Python's free lists what a busy loop leaves there: tuples of
    each small size, floats, lists and dicts freed since the last full
    collection (kept for reuse; a full collection gives their memory back)."""
    for size in range(1, 21):
        kept = [tuple(range(1000 + size, 1000 + 2 * size)) for _ in range(2000)]
        del kept
    kept = [([i], {"i": i}, i + 0.5) for i in range(100)]
    del kept


async def test_a_thaw_that_finds_nothing_backs_off_whatever_the_free_lists_held():
    """A thaw after closes that left nothing in cycles backs off, though the full
    collection empties Python's free lists (tens of thousands of blocks after a
    busy while): what they gave back is no garbage of a closed connection."""
    async with _frozen_server() as server:
        freezer = GcFreezer(server.hub, thaw_after_closes=40)
        clients = [await connect(f"ws://127.0.0.1:{server.port}") for _ in range(40)]
        await wait_for(lambda: len(server.hub.registry) == 40)
        gc.collect()  # frozen, server side and client side
        for client in clients:
            await client.close()
            release_closed_connection(client)  # the client's side is not ours to clean
        await wait_for(lambda: not server.connections and not server.hub.registry)
        del clients, client
        _fill_free_lists()
        freezer.thaw()
        assert freezer.last_thaw_freed < 40 * THAW_FOUND_NOTHING
        assert freezer.next_thaw_after == 80
