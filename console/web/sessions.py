"""The web console's logins and the rate of login attempts, as plain values.

- :class:`SessionStore`: one :class:`WebSession` per successful login, found by
  its cookie. The cookie is 256 random bits; the store keeps only its SHA-256,
  so that neither a memory dump nor a log line holds a usable cookie. A session
  ends when it expires, when the operator logs out, or when the store is full
  and it is the oldest.
- :class:`LoginLimiter`: login attempts per client address (an IPv6 /64) and in
  total, token buckets refilled per minute; a refused attempt takes nothing.

Pure: must never import asyncio, aiohttp, websockets or textual. Clocks are
passed in (monotonic seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Callable

from wsconsole.server.limits import TokenBucket, address_key
from wsconsole.server.protocol import Role

__all__ = ["WebSession", "SessionStore", "LoginLimiter", "cookie_key"]

_MAX_COOKIE_LENGTH = 128
"""A cookie value longer than any we hand out is not looked up."""


def cookie_key(cookie: str) -> str:
    """What the store keeps of a cookie: its SHA-256, hex."""
    return hashlib.sha256(cookie.encode("ascii", "replace")).hexdigest()


@dataclass(eq=False)
class WebSession:
    """One operator's login: the role and token the consoles of this browser use."""

    key: str
    """The SHA-256 of the cookie (see :func:`cookie_key`)."""
    role: Role
    """What the control plane said the token may do."""
    token: str = field(repr=False)
    """The token this operator logged in with: each console of the session uses
    it, so that its role holds in the browser too. Never logged, never in a URL."""
    client: str
    """The address the login came from, as the audit names it."""
    expires: float
    """Monotonic time when it ends."""
    consoles: int = 0
    """Consoles of this session running now."""

    @property
    def label(self) -> str:
        """A short name for the audit and the logs that is not the cookie."""
        return self.key[:12]


class SessionStore:
    """The logins, found by cookie, each ending ``ttl`` seconds after it began."""

    def __init__(self, ttl: float, max_logins: int,
                 clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.max_logins = max_logins
        self._clock = clock
        self._sessions: dict[str, WebSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, role: Role, token: str, client: str) -> tuple[str, WebSession,
                                                                   list[WebSession]]:
        """A new login: its cookie, its session, and the sessions it pushed out
        (the oldest, when ``max_logins`` are kept already)."""
        evicted = []
        while len(self._sessions) >= self.max_logins:
            evicted.append(self._sessions.pop(next(iter(self._sessions))))
        cookie = secrets.token_urlsafe(32)
        session = WebSession(key=cookie_key(cookie), role=role, token=token,
                             client=client, expires=self._clock() + self.ttl)
        self._sessions[session.key] = session
        return cookie, session, evicted

    def find(self, cookie: str | None) -> WebSession | None:
        """The live session of ``cookie``, or None (unknown, expired, malformed).
        An expired session stays until :meth:`expire` removes it (and its
        consoles are ended, and it is audited)."""
        if not cookie or len(cookie) > _MAX_COOKIE_LENGTH:
            return None
        key = cookie_key(cookie)
        session = self._sessions.get(key)
        if session is None or not hmac.compare_digest(session.key, key):
            return None
        if session.expires <= self._clock():
            return None
        return session

    def drop(self, session: WebSession) -> None:
        """End a session (logout); its consoles are the caller's to end."""
        self._sessions.pop(session.key, None)

    def alive(self, session: WebSession) -> bool:
        """True while ``session`` is in the store and not expired."""
        return (self._sessions.get(session.key) is session
                and session.expires > self._clock())

    def expire(self) -> list[WebSession]:
        """Remove and return the sessions whose time is up."""
        now = self._clock()
        gone = [s for s in self._sessions.values() if s.expires <= now]
        for session in gone:
            del self._sessions[session.key]
        return gone

    def remaining(self, session: WebSession) -> float:
        """Seconds left of ``session`` (the cookie's Max-Age)."""
        return max(0.0, session.expires - self._clock())


class LoginLimiter:
    """``per_minute`` login attempts from one address, bursts of as many; and
    ``total_per_minute`` from everyone. A rate of 0 is no limit."""

    _MAX_ADDRESSES = 4096

    def __init__(self, per_minute: float, total_per_minute: float,
                 clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._total = TokenBucket(total_per_minute / 60 or None, total_per_minute or None,
                                  clock())
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, host: str) -> float | None:
        """None if an attempt from ``host`` may go ahead now (and it is counted),
        else the seconds until one may."""
        now = self._clock()
        if not self._total.available(now):
            return self._wait(self._total)
        key = address_key(host)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._MAX_ADDRESSES:
                self._forget_rested(now)
            bucket = self._buckets[key] = TokenBucket(
                self.per_minute / 60 or None, self.per_minute or None, now)
        if not bucket.available(now):
            return self._wait(bucket)
        bucket.take(now)
        self._total.take(now)
        return None

    @staticmethod
    def _wait(bucket: TokenBucket) -> float:
        assert bucket.rate is not None
        return max(1.0, (1.0 - bucket.tokens) / bucket.rate)

    def _forget_rested(self, now: float) -> None:
        # An address whose bucket has refilled is as good as new: forget it.
        for key, bucket in list(self._buckets.items()):
            bucket.available(now)
            if bucket.tokens >= bucket.burst:
                del self._buckets[key]
        while len(self._buckets) >= self._MAX_ADDRESSES:
            del self._buckets[next(iter(self._buckets))]
