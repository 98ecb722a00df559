"""The cluster tests need the redis client (a dependency of the package since
cluster mode): in an environment installed before it came, they are not
collected, and a line says how to get them back.

``fleet``: one redis-server and nodes a, b and c for the tests that keep their
nodes (test_cluster.py, test_operator_side.py): a start of three nodes costs
a second of an idle machine's two cores, several on a busy one. Each test gets
it without connections (the previous test's closes have all been seen), and
leaves every node running and answering.
"""

import importlib.util
import warnings
from typing import Any, AsyncIterator, Iterator

import pytest

collect_ignore_glob: list[str] = []

if importlib.util.find_spec("redis") is None:  # pragma: no cover
    warnings.warn("tests/cluster not collected: redis is not installed; "
                  "run pip install -e '.[test]'")
    collect_ignore_glob = ["test_*.py"]

FLEET = {"a": ("--allow-tap",), "b": ("--allow-tap",), "c": ()}
"""The shared fleet's nodes: a and b allow the tap, c does not."""
SLOW_TO_GO = ("--suspect-after", "5", "--gone-after", "30")
"""A node under SIGSTOP stays named as missing (not gone, which requests stop
waiting for) for as long as a test looks at it, however busy the machine."""


@pytest.fixture(scope="package")
def shared_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Redis and nodes a, b and c, started at once, for the tests of this folder."""
    from wsconsole.server.cluster.redis_server import PrivateRedis

    from tests.cluster.cluster_helpers import Node

    folder = tmp_path_factory.mktemp("fleet")
    with PrivateRedis(folder / "redis") as redis:
        nodes = [Node(name, redis.url, folder, *extra, *SLOW_TO_GO)
                 for name, extra in FLEET.items()]
        try:
            for node in nodes:
                node.ready()
            yield {node.name: node for node in nodes}
        finally:
            for node in nodes:
                node.stop()


@pytest.fixture
async def fleet(shared_fleet: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The shared fleet, once no node holds a connection of an earlier test."""
    from tests.cluster.cluster_helpers import operator
    from tests.helpers import TIMEOUT, wait_for

    async with operator(shared_fleet["a"]) as ctl:
        async def empty() -> bool:
            page = await ctl.ok("list", groups=False)
            return page["total"] == 0 and not page.get("missing")

        await wait_for(empty, TIMEOUT * 2, interval=0.05)
    yield shared_fleet
