"""What a node needs to join a cluster: the broker, the name, the secret, the
intervals. Pure values and checks, read before anything starts, so that a
bad URL or a missing secret is one line at start, never a failure later.

Must never import asyncio, websockets, redis or textual.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import ConfigError

__all__ = [
    "ClusterSettings",
    "check_redis_url",
    "check_cluster_name",
    "read_secret",
    "redacted_url",
    "DEFAULT_CLUSTER",
    "MIN_SECRET_BYTES",
    "REDIS_URL_ENV",
]

DEFAULT_CLUSTER = "wsconsole"
"""The cluster's name unless ``--cluster`` says otherwise."""
MIN_SECRET_BYTES = 16
"""A shorter cluster secret is refused: it would be guessable."""
REDIS_URL_ENV = "WSCONSOLE_REDIS_URL"
"""The environment variable that ``--redis`` defaults to."""

_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def check_redis_url(url: str) -> str:
    """``url`` if redis-py can connect with it; ConfigError in one line otherwise.

    ``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS) the
    same, ``unix:///path/to/socket[?db=N]``.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {redacted_url(url)!r}: {exc}") from None
    if parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ConfigError(f"bad Redis URL {redacted_url(url)!r}: no host "
                              "(redis://HOST[:PORT][/DB])")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ConfigError(f"bad Redis URL {redacted_url(url)!r}: the path must be a "
                              "database number")
        del port
    elif parts.scheme == "unix":
        if not parts.path:
            raise ConfigError(f"bad Redis URL {redacted_url(url)!r}: no socket path "
                              "(unix:///PATH)")
    else:
        raise ConfigError(f"bad Redis URL {redacted_url(url)!r}: the scheme must be "
                          "redis://, rediss:// or unix://")
    return url


def redacted_url(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def check_cluster_name(name: str) -> str:
    """A cluster or node name: 1-64 letters, digits and ``_ . : -``."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"bad cluster name {name!r}: 1 to 64 letters, digits, '_', '.', "
                          "':' or '-'")
    return name


def read_secret(path: str) -> bytes:
    """The cluster secret in a file (surrounding whitespace ignored)."""
    try:
        with open(path, "rb") as file:
            secret = file.read().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the cluster secret file {path}: "
                          f"{exc.strerror or exc}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"the cluster secret in {path} is shorter than "
                          f"{MIN_SECRET_BYTES} bytes; make one with: "
                          f"python -c 'import secrets; print(secrets.token_hex(32))' > {path}")
    return secret


@dataclass(frozen=True)
class ClusterSettings:
    """``serve(cluster=ClusterSettings(...))``: the same settings as ``wsconsole serve
    --redis URL --cluster NAME --cluster-secret-file F``.

    Give ``secret`` (bytes) or ``secret_file``; a node refuses to start in
    cluster mode without one.
    """

    redis_url: str
    """``redis://``, ``rediss://`` or ``unix://``."""
    name: str = DEFAULT_CLUSTER
    """Namespaces every channel and key, so that two fleets can share one Redis."""
    secret: bytes | None = field(default=None, repr=False)
    """The cluster secret that signs every message between nodes."""
    secret_file: str | None = None
    """Where to read the secret, if ``secret`` is not given."""
    heartbeat_interval: float = 2.0
    """Seconds between two heartbeats of a node."""
    suspect_after: float | None = None
    """Seconds without a heartbeat before a node is suspect (default 2.5 heartbeats)."""
    gone_after: float | None = None
    """Seconds without a heartbeat before a node is gone (default 5 heartbeats)."""
    forget_after: float = 30.0
    """Seconds a gone node stays listed."""
    max_skew: float = 30.0
    """Seconds a message's timestamp may differ from this host's clock (clock
    skew between hosts, plus delivery); older or newer messages are dropped."""
    max_message_bytes: int = 8 << 20
    """Larger messages between nodes are dropped unread."""
    reconnect_max: float = 5.0
    """Longest wait between two attempts to reach Redis."""

    def __post_init__(self) -> None:
        check_redis_url(self.redis_url)
        check_cluster_name(self.name)
        if self.heartbeat_interval <= 0:
            raise ConfigError("the heartbeat interval must be more than 0 seconds")
        if not (self.suspect < self.gone):
            raise ConfigError("a node must turn suspect before it is gone "
                              "(suspect_after < gone_after)")

    @property
    def suspect(self) -> float:
        """Seconds without a heartbeat before a node is suspect."""
        return self.suspect_after if self.suspect_after is not None else (
            2.5 * self.heartbeat_interval)

    @property
    def gone(self) -> float:
        """Seconds without a heartbeat before a node is gone."""
        return self.gone_after if self.gone_after is not None else 5 * self.heartbeat_interval

    def load_secret(self) -> bytes:
        """The secret, read from ``secret_file`` if need be; ConfigError without one."""
        if self.secret is not None:
            if len(self.secret) < MIN_SECRET_BYTES:
                raise ConfigError(f"the cluster secret is shorter than {MIN_SECRET_BYTES} bytes")
            return self.secret
        if self.secret_file is not None:
            return read_secret(os.fspath(self.secret_file))
        raise ConfigError("cluster mode needs a cluster secret (--cluster-secret-file): "
                          "without one, whoever can publish to Redis could drive the fleet")
