"""Limits on what one client or one operator can pin: the rules, as plain values.

- :class:`TokenBucket`: a rate with bursts (the control plane's request budgets);
- :class:`ControlBudgets`: the control plane's three budgets, per connection,
  per token and in total, checked together so that a refusal costs nothing;
- :class:`HandshakeLimiter`: opening handshakes in progress, in total and
  per client address, and the ones shed past either cap;
- :class:`IntervalLog`: "log this once per interval, with the count of what
  was not logged" (resource exhaustion on accept);
- :func:`descriptor_shortfall`: whether an open-file limit is far below
  what the server is configured for.

The defaults, and why, are in the README's Security section. The asyncio
edges that apply these live in :mod:`wsconsole.server.serving`,
:mod:`wsconsole.server.exhaustion` and :mod:`wsconsole.server.control.listener`.

Pure: must never import asyncio, websockets or textual. Clocks are passed in.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from enum import StrEnum
from typing import Callable

from .protocol import Role

__all__ = [
    "DEFAULT_MAX_HANDSHAKES",
    "DEFAULT_MAX_HANDSHAKES_PER_ADDRESS",
    "DEFAULT_CONTROL_MAX_CONNECTIONS",
    "DEFAULT_CONTROL_CONNECTION_RATE",
    "DEFAULT_CONTROL_TOKEN_RATE",
    "DEFAULT_CONTROL_TOTAL_RATE",
    "DEFAULT_CONTROL_LOOP_SHARE",
    "DEFAULT_CONTROL_LOOP_BURST",
    "DESCRIPTOR_RESERVE",
    "ShedLimit",
    "BudgetScope",
    "TokenBucket",
    "ControlBudgets",
    "HandshakeLimiter",
    "address_key",
    "is_loopback_host",
    "IntervalLog",
    "descriptor_shortfall",
]

DEFAULT_MAX_HANDSHAKES = 500
"""Opening handshakes in progress at once on the public port; more are shed."""
DEFAULT_MAX_HANDSHAKES_PER_ADDRESS = 50
"""Opening handshakes in progress at once from one client address (an IPv6
/64); more from it are shed. Trusted proxies and, unless asked, loopback
clients count in the total only."""
DEFAULT_CONTROL_MAX_CONNECTIONS = 32
"""Open control connections at once; more are refused with HTTP 503."""
DEFAULT_CONTROL_CONNECTION_RATE = 500.0
"""Requests per second on one control connection, sustained (bursts: twice as many)."""
DEFAULT_CONTROL_TOKEN_RATE = 500.0
"""Requests per second with one token, over all its connections (bursts: twice)."""
DEFAULT_CONTROL_TOTAL_RATE = 1000.0
"""Requests per second on the whole control plane (bursts: twice)."""
DEFAULT_CONTROL_LOOP_SHARE = 0.2
"""Fraction of the event loop's time that control requests may take together."""
DEFAULT_CONTROL_LOOP_BURST = 0.05
"""Seconds of control work that may run back to back before the share applies."""
DESCRIPTOR_RESERVE = 64
"""Descriptors a server needs besides its handshakes: listeners, the control
plane, logs, the audit file, an application's own files."""


class ShedLimit(StrEnum):
    """Which cap shed a handshake: the ``limit`` label of the shed metric."""

    TOTAL = "total"
    """Handshakes in progress on the whole server."""
    PER_ADDRESS = "per_address"
    """Handshakes in progress from one client address."""


class BudgetScope(StrEnum):
    """Which of the control plane's request budgets refused a request."""

    CONNECTION = "connection"
    TOKEN = "token"
    TOTAL = "total"


class TokenBucket:
    """``rate`` requests per second sustained, bursts of up to ``burst``.

    A ``rate`` of None (or 0) is no limit. ``now`` is a monotonic clock reading
    in seconds, passed in by the caller.
    """

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float | None, burst: float | None, now: float) -> None:
        self.rate = rate or None
        self.burst = (burst if burst else 2 * rate) if rate else 0.0
        self.tokens = self.burst
        self.last = now

    def _refill(self, now: float) -> None:
        assert self.rate is not None
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def available(self, now: float) -> bool:
        """True if one request may run now (nothing is taken)."""
        if self.rate is None:
            return True
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        """Take one request's token if there is one."""
        if not self.available(now):
            return False
        if self.rate is not None:
            self.tokens -= 1.0
        return True

    def describe(self) -> str:
        return "no limit" if self.rate is None else (
            f"{self.rate:g} requests per second, bursts of {self.burst:g}")


class ControlBudgets:
    """The control plane's request budgets: per connection, per token (role), in total.

    A request runs only if every budget it falls under has a token, and then
    takes one from each; a refused request takes none, so that a flood on
    one token leaves the total for the others.
    """

    def __init__(self, *, connection: tuple[float | None, float | None],
                 token: tuple[float | None, float | None],
                 total: tuple[float | None, float | None],
                 clock: Callable[[], float]) -> None:
        self.clock = clock
        self.connection_rate, self.connection_burst = connection
        self._token = token
        self._tokens: dict[Role, TokenBucket] = {
            role: TokenBucket(*token, clock()) for role in Role}
        self.total = TokenBucket(*total, clock())
        """The budget of the whole control plane."""

    def connection_bucket(self) -> TokenBucket:
        """A new connection's own budget."""
        return TokenBucket(self.connection_rate, self.connection_burst, self.clock())

    def admit(self, connection: TokenBucket, role: Role) -> str | None:
        """None if the request may run (its tokens are taken), else why not,
        as one sentence for the operator."""
        now = self.clock()
        token = self._tokens[role]
        for scope, bucket in ((BudgetScope.CONNECTION, connection),
                              (BudgetScope.TOKEN, token), (BudgetScope.TOTAL, self.total)):
            if not bucket.available(now):
                return self._refusal(scope, bucket, role)
        connection.take(now)
        token.take(now)
        self.total.take(now)
        return None

    @staticmethod
    def _refusal(scope: BudgetScope, bucket: TokenBucket, role: Role) -> str:
        where = {
            BudgetScope.CONNECTION: "on this connection",
            BudgetScope.TOKEN: f"with the {role} token, over all its connections",
            BudgetScope.TOTAL: "on the whole control plane",
        }[scope]
        return (f"rate limit {where} ({bucket.describe()}) reached; "
                "the request was not run: slow down and retry")


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and their IPv4-mapped form (string tests: this
    runs once per accepted connection)."""
    return host.startswith(("127.", "::ffff:127.")) or host == "::1"


def address_key(host: str) -> str:
    """The address a per-address cap counts a client under: its IPv4 address,
    or its IPv6 /64 (one host is usually given a whole /64)."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.partition("%")[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class HandshakeLimiter:
    """Opening handshakes in progress, in total and per client address.

    ``admit(key)`` when a TCP connection arrives: None if it may go on, else
    the :class:`ShedLimit` it is over (counted in :attr:`shed`); ``release(key)``
    once its handshake has ended, however it ended. A cap of None (or 0) is
    no cap. A key of None skips the per-address cap: trusted proxies (every
    client behind one shares its address) and Unix sockets.
    """

    def __init__(self, max_total: int | None = None,
                 max_per_address: int | None = None) -> None:
        self.max_total = max_total or None
        self.max_per_address = max_per_address or None
        self.in_progress = 0
        """Handshakes admitted and not yet ended."""
        self.shed: Counter[ShedLimit] = Counter({limit: 0 for limit in ShedLimit})
        """Handshakes shed, by the cap they were over."""
        # Only addresses with a handshake in progress: bounded by max_total.
        self._by_address: dict[str, int] = {}

    def admit(self, key: str | None) -> ShedLimit | None:
        if self.max_total is not None and self.in_progress >= self.max_total:
            self.shed[ShedLimit.TOTAL] += 1
            return ShedLimit.TOTAL
        if key is not None:
            count = self._by_address.get(key, 0)
            if self.max_per_address is not None and count >= self.max_per_address:
                self.shed[ShedLimit.PER_ADDRESS] += 1
                return ShedLimit.PER_ADDRESS
            self._by_address[key] = count + 1
        self.in_progress += 1
        return None

    def release(self, key: str | None) -> None:
        """End one admitted handshake (call it once per admitted one)."""
        if key is not None:
            count = self._by_address.get(key, 0)
            if count <= 0:
                return
            if count == 1:
                del self._by_address[key]
            else:
                self._by_address[key] = count - 1
        if self.in_progress > 0:
            self.in_progress -= 1

    def in_progress_from(self, key: str) -> int:
        return self._by_address.get(key, 0)


class IntervalLog:
    """Say something at once, then at most once per ``interval`` seconds, with
    the count of the occurrences not said.

    :meth:`occurred` returns True when this occurrence should be logged now;
    :meth:`window_ended` (called ``interval`` seconds after a logged one)
    returns the count to report for the window, resetting it.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.total = 0
        """Occurrences ever."""
        self.unreported = 0
        """Occurrences since the last line, not yet in any line."""
        self.window_open = False
        """True between a logged occurrence and the end of its interval."""

    def occurred(self) -> bool:
        self.total += 1
        if self.window_open:
            self.unreported += 1
            return False
        self.window_open = True
        return True

    def window_ended(self) -> int:
        """The occurrences of the window just ended; a new window opens only
        if there were some (the caller logs them and waits another interval)."""
        count, self.unreported = self.unreported, 0
        self.window_open = count > 0
        return count


def descriptor_shortfall(soft_limit: int, max_handshakes: int | None,
                         control_connections: int | None = None) -> str | None:
    """A warning if the open-file limit is far below what the server is
    configured for (its handshake cap, its control connections and
    :data:`DESCRIPTOR_RESERVE`), else None. ``soft_limit`` < 0 is unlimited;
    without a handshake cap there is nothing to compare with."""
    if soft_limit < 0 or not max_handshakes:
        return None
    needed = max_handshakes + (control_connections or 0) + DESCRIPTOR_RESERVE
    if soft_limit >= needed:
        return None
    return (f"the open-file limit ({soft_limit}) is below what the server is configured "
            f"for: {max_handshakes} handshakes in progress"
            + (f", {control_connections} control connections" if control_connections else "")
            + f" and {DESCRIPTOR_RESERVE} descriptors of its own ({needed}); idle TCP "
            "connections could take every descriptor before the cap sheds them. Raise it "
            "(ulimit -n, systemd's LimitNOFILE=) or lower --max-handshakes")
