"""Cluster mode: many wsconsole processes, one control plane, through Redis pub/sub.

- :mod:`.settings` (pure): what ``--redis``, ``--cluster``, ``--cluster-secret-file``
  and the intervals say, checked before anything starts;
- :mod:`.envelope` (pure): the one message format between nodes, versioned
  JSON signed with the cluster secret (never pickle);
- :mod:`.membership` (pure): the node table, live / suspect / gone;
- :mod:`.broker`: the redis.asyncio connection, reconnected with backoff;
- :mod:`.fleet`: :class:`ClusterFleet`, the Fleet that scatter-gathers;
- :mod:`.redis_server`: a private ``redis-server`` on a Unix socket (tests, demos).

Nothing here imports ``redis`` at import time except :mod:`.broker`, which is
imported only when a cluster starts: without ``--redis``, wsconsole never
loads redis (a test checks it).

Must never import textual or ``wsconsole.console``.
"""

from .settings import ClusterSettings

__all__ = ["ClusterSettings"]
