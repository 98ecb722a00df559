"""The broker: one node's connection to Redis, kept up for as long as it runs.

:class:`Broker` subscribes to the node's channels and hands every payload to
a callback; it publishes, and keeps the node's membership key. When Redis goes
away it says so (``on_down``), retries with capped exponential backoff and
jitter, and once it is back it subscribes again and says so (``on_up``),
where the fleet announces itself again. The reconnection is ours, not
redis-py's: its PubSub does not always reconnect by itself after the server
restarted (redis-py issues 2089 and 1572), so the whole client is rebuilt.

Nothing is queued while Redis is down: :meth:`publish` returns False at once,
so a destructive command can never be replayed later.

Messages go out on a connection of their own (:class:`_Publisher`), written
without waiting for Redis's answer to each PUBLISH: the answers are read
behind them, in order, by a task of their own. A request between nodes is
written and its node goes on at once (to its own page of a ``list``, say)
rather than waiting a round trip to Redis; a PUBLISH through redis-py's
client (a connection out of the pool and back, its answer awaited) cost
60-90 us of CPU a message where the write alone costs under 30 (figures in
docs/benchmarks.md).

The only module of wsconsole that imports ``redis``, and it is imported only
when a cluster starts.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from .settings import redacted_url

__all__ = ["Broker"]

logger = logging.getLogger("wsconsole.cluster")

_OPERATION_TIMEOUT = 2.0
"""Seconds one Redis command may take before the broker is taken for down."""
_FIRST_RETRY = 0.1
_FLUSH_TIMEOUT = 1.0
"""Seconds :meth:`Broker.stop` waits for Redis to answer what was published
(a goodbye among them) before it closes the connection."""
_ERROR_LOG_INTERVAL = 10.0


class _Publisher:
    """PUBLISH on one connection of its own: each message written at once, in
    order, and Redis's answers read behind them by :meth:`_answers`.

    ``unanswered`` counts the messages written whose answer has not come: a
    connection lost with some unanswered may have lost them, which is said
    (logged); nothing is written again.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.unanswered = 0
        self.broken = False
        self._answered = asyncio.Event()
        self._answered.set()
        self._last_error_log = -_ERROR_LOG_INTERVAL
        self._reader = asyncio.get_running_loop().create_task(self._answers())

    async def publish(self, channel: str, payload: bytes) -> None:
        """Write one PUBLISH (RedisError or OSError if the connection cannot)."""
        connection = self.connection
        # Counted before the write: its answer may be read while the write
        # waits for the buffer to drain.
        self.unanswered += 1
        self._answered.clear()
        try:
            command = connection.pack_command("PUBLISH", channel, payload)
            await connection.send_packed_command(command, check_health=False)
        except BaseException:
            # redis-py closed it (and would connect again unasked, behind the
            # reader's back): a connection that failed once is not written to again.
            self.broken = True
            self.unanswered -= 1
            if not self.unanswered:
                self._answered.set()
            raise

    async def _answers(self) -> None:
        connection = self.connection
        try:
            while True:
                try:
                    await connection.read_response(disconnect_on_error=False)
                except ResponseError as exc:  # Redis refused one: said, not fatal
                    now = time.monotonic()
                    if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
                        self._last_error_log = now
                        logger.warning("Redis refused a PUBLISH: %s", exc)
                self.unanswered = max(0, self.unanswered - 1)
                if not self.unanswered:
                    self._answered.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the connection is gone: the next publish makes another
            self.broken = True
            if self.unanswered:
                logger.warning("the connection to Redis was lost with %d messages "
                               "unanswered; they may not have reached the other nodes (%s)",
                               self.unanswered, exc)
            self._answered.set()

    async def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until Redis answered every message written."""
        try:
            async with asyncio.timeout(timeout):
                await self._answered.wait()
        except TimeoutError:
            pass

    async def close(self) -> None:
        self._answered.set()  # whoever waits for the answers waits no more
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):
            pass
        try:
            await self.connection.disconnect(nowait=True)
        except Exception:  # pragma: no cover - closing a broken connection
            pass


class Broker:
    """Pub/sub on one Redis, reconnected with backoff."""

    def __init__(
        self,
        url: str,
        channels: list[str],
        on_message: Callable[[str, bytes], None],
        *,
        on_up: Callable[[], Awaitable[None]] | None = None,
        on_down: Callable[[str], None] | None = None,
        reconnect_max: float = 5.0,
    ) -> None:
        self.url = url
        self.channels = list(channels)
        self.on_message = on_message
        self.on_up = on_up
        self.on_down = on_down
        self.reconnect_max = reconnect_max
        self.up = False
        """True while subscribed: requests to other nodes can go out."""
        self.reconnects = 0
        """Times the connection came back after it was lost."""
        self._client: aioredis.Redis | None = None
        self._publisher: _Publisher | None = None
        self._publisher_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False

    async def start(self, wait: float) -> bool:
        """Start connecting; wait up to ``wait`` seconds for the first success."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            async with asyncio.timeout(wait):
                await self._ready.wait()
        except TimeoutError:
            pass
        return self.up

    async def stop(self) -> None:
        self._stopping = True
        publisher = self._publisher
        if publisher is not None and not publisher.broken:
            await publisher.flush(_FLUSH_TIMEOUT)  # a goodbye is answered before we go
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self._close()

    def _client_for(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=_OPERATION_TIMEOUT,
            socket_timeout=None,
            health_check_interval=0,
            retry_on_timeout=False,
        )

    async def _close(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.close()
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # pragma: no cover - closing a broken connection
                pass

    async def _run(self) -> None:
        delay = _FIRST_RETRY
        failed_before = False
        while not self._stopping:
            client = self._client = self._client_for()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(_OPERATION_TIMEOUT):
                    await pubsub.subscribe(*self.channels)
                    await client.ping()
                    await self._new_publisher()
                self.up = True
                if failed_before:
                    self.reconnects += 1
                    logger.warning("Redis at %s is back; rejoining the cluster",
                                   redacted_url(self.url))
                delay = _FIRST_RETRY
                failed_before = False
                if self.on_up is not None:
                    try:
                        await self.on_up()
                    except (RedisError, OSError, TimeoutError):
                        raise
                    except Exception:  # a bug there must not end the node's feed
                        logger.exception("joining the cluster failed")
                self._ready.set()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "message":
                        try:
                            self.on_message(_text(message["channel"]), message["data"])
                        except Exception:  # never let one message stop the node's feed
                            logger.exception("a cluster message could not be handled")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                was_up, self.up = self.up, False
                reason = f"{type(exc).__name__}: {exc}"
                if was_up or not failed_before:
                    logger.warning("Redis at %s unavailable (%s); serving locally, "
                                   "retrying", redacted_url(self.url), reason)
                if self.on_down is not None:
                    self.on_down(reason)
                failed_before = True
            finally:
                self.up = False
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
                await self._close()
            # Jitter, so that a fleet whose Redis came back does not reconnect in step.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.reconnect_max)

    async def publish(self, channel: str, payload: bytes, timeout: float = _OPERATION_TIMEOUT
                      ) -> bool:
        """Publish at most once, now; False if Redis is not reachable (nothing is queued)."""
        if not self.up or self._client is None:
            return False
        try:
            async with asyncio.timeout(min(timeout, _OPERATION_TIMEOUT)):
                publisher = self._publisher
                if publisher is None or publisher.broken:
                    publisher = await self._new_publisher()
                # Written, not answered: Redis's answers are read behind (_Publisher).
                await publisher.publish(channel, payload)
        except (RedisError, OSError, TimeoutError):
            return False
        return True

    async def _new_publisher(self) -> _Publisher:
        """The connection messages go out on, made anew if there is none or it broke."""
        async with self._publisher_lock:
            publisher, client = self._publisher, self._client
            if publisher is not None and not publisher.broken:
                return publisher
            if client is None:
                raise OSError("no connection to Redis")
            if publisher is not None:
                await publisher.close()
            connection = client.connection_pool.make_connection()
            await connection.connect()
            if self._client is not client or self._stopping:
                # Closed (or stopping) meanwhile: this connection must not outlive it.
                await connection.disconnect(nowait=True)
                raise OSError("the connection to Redis was closed")
            self._publisher = publisher = _Publisher(connection)
            return publisher

    async def set_key(self, key: str, value: bytes, ttl: float, *, only_new: bool = False
                      ) -> bool | None:
        """SET with an expiry; None if Redis is not reachable, False if ``only_new``
        and the key exists."""
        client = self._client
        if client is None:
            return None
        try:
            async with asyncio.timeout(_OPERATION_TIMEOUT):
                done = await client.set(key, value, px=max(1, int(ttl * 1000)), nx=only_new)
        except (RedisError, OSError, TimeoutError):
            return None
        return bool(done)

    async def get_key(self, key: str) -> tuple[bytes | None, float] | None:
        """(value, seconds left to live) of a key; None if Redis is not reachable."""
        client = self._client
        if client is None:
            return None
        try:
            async with asyncio.timeout(_OPERATION_TIMEOUT):
                async with client.pipeline(transaction=False) as pipe:
                    value, pttl = await pipe.get(key).pttl(key).execute()
        except (RedisError, OSError, TimeoutError):
            return None
        return value, max(0, pttl or 0) / 1000

    async def delete_key(self, key: str) -> None:
        client = self._client
        if client is None:
            return
        try:
            async with asyncio.timeout(_OPERATION_TIMEOUT):
                await client.delete(key)
        except (RedisError, OSError, TimeoutError):
            pass

    async def values(self, pattern: str) -> list[bytes] | None:
        """The values of the keys matching ``pattern``; None if Redis is not reachable."""
        client = self._client
        if client is None:
            return None
        try:
            async with asyncio.timeout(_OPERATION_TIMEOUT):
                keys = [key async for key in client.scan_iter(match=pattern, count=500)]
                if not keys:
                    return []
                values = await client.mget(keys)
        except (RedisError, OSError, TimeoutError):
            return None
        return [value for value in values if value is not None]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
