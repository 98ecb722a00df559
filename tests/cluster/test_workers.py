"""`wsconsole serve --workers N`: N real node processes behind one public port,
one cluster through a real redis-server, stopped together by one signal."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import redis.asyncio
from prometheus_client.parser import text_string_to_metric_families

from websockets.asyncio.client import connect

from wsconsole.server.cluster.envelope import PREFIX, DropReason, Message, MessageKind, seal
from wsconsole.server.cluster.redis_server import PrivateRedis
from wsconsole.server.metrics import CLUSTER_METRICS

from tests.helpers import TIMEOUT, wait_for
from tests.cluster.cluster_helpers import (
    GONE, HEARTBEAT, REPO, SECRET, SUSPECT, TOKEN, WSCONSOLE, APP)
from tests.server.control_helpers import Control, http_request


class Supervisor:
    """The `wsconsole serve --workers 2` process, its lines read as they come."""

    def __init__(self, redis_url: str, folder) -> None:
        self.redis_url = redis_url
        (folder / "secret").write_text(SECRET + "\n")
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [*WSCONSOLE, "serve", APP, "--workers", "2", "--node", "w", "--port", "0",
             "--control-port", "0", "--token", TOKEN, "--redis", redis_url,
             "--cluster-secret-file", str(folder / "secret"),
             "--heartbeat-interval", str(HEARTBEAT), "--suspect-after", str(SUSPECT),
             "--gone-after", str(GONE)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=REPO, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def find(self, pattern: str) -> list[re.Match]:
        with self._changed:
            return [m for line in self.lines if (m := re.search(pattern, line))]

    def wait(self, pattern: str, count: int = 1) -> list[re.Match]:
        deadline = time.monotonic() + TIMEOUT * 3
        with self._changed:
            while len(found := self.find(pattern)) < count:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(f"no {pattern!r} x{count}: {''.join(self.lines)}")
                self._changed.wait(0.1)
            return found


def _controls(workers: Supervisor) -> dict[str, str]:
    """Each worker's control URL, from its `control plane on` line."""
    return {m.group(1): m.group(2) for m in workers.find(
        r"^\[(w-\d)\] wsconsole: control plane on (ws://\S+)")}


@contextlib.contextmanager
def running_workers(folder) -> Iterator[Supervisor]:
    with PrivateRedis(folder / "redis") as redis:
        supervisor = Supervisor(redis.url, folder)
        try:
            supervisor.wait(r"^\[w-\d\] wsconsole: node w-\d joined cluster", 2)
            yield supervisor
        finally:
            if supervisor.process.poll() is None:
                supervisor.process.kill()  # the workers follow (PR_SET_PDEATHSIG)
                supervisor.process.wait()


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    with running_workers(tmp_path_factory.mktemp("workers")) as supervisor:
        yield supervisor


@pytest.fixture
def own_workers(tmp_path):
    """Workers of one test's own, for a test that ends them: the module's are
    shared by tests that pytest-xdist may run in any order on one worker."""
    with running_workers(tmp_path) as supervisor:
        yield supervisor


def test_workers_without_redis_are_refused(monkeypatch):
    """--workers without --redis: exit 2 and a line that says why, before anything starts."""
    monkeypatch.delenv("WSCONSOLE_REDIS_URL", raising=False)
    done = subprocess.run([*WSCONSOLE, "serve", "--workers", "2", "--port", "0", "--no-control"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=REPO,
                          timeout=TIMEOUT * 3)
    assert done.returncode == 2 and not done.stdout
    assert done.stderr.startswith("wsconsole: error: --workers needs --redis")
    assert "node of a cluster" in done.stderr and len(done.stderr.splitlines()) == 1


async def test_two_workers_share_a_port_and_make_one_cluster(workers):
    """Clients of the one public port land on both workers; from one worker's
    control plane, `nodes` lists w-1 and w-2 and `list` shows connections of both."""
    public = {m.group(1) for m in workers.find(r"^\[w-\d\] wsconsole: serving .* on (ws://\S+)")}
    assert len(public) == 1, public  # one port for both
    controls = _controls(workers)
    assert set(controls) == {"w-1", "w-2"} and len(set(controls.values())) == 2
    url = public.pop()

    async with connect(controls["w-1"],
                       additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        ctl = Control(ws)

        async def both_live() -> bool:
            entries = (await ctl.ok("nodes"))["nodes"]
            return {e["node"] for e in entries if e["health"] == "live"} == {"w-1", "w-2"}

        await wait_for(both_live, TIMEOUT * 2, interval=0.05)
        clients = []
        try:
            # The kernel hashes each connection to a worker: 16 clients all on
            # one of two workers would be a 1 in 32,768 chance.
            for index in range(16):
                clients.append(await connect(f"{url}/?user=u{index}"))

            async def listed_on_both() -> bool:
                page = await ctl.ok("list", limit=100)
                return (len(page["connections"]) == 16
                        and {c["node"] for c in page["connections"]} == {"w-1", "w-2"})

            await wait_for(listed_on_both, TIMEOUT * 2, interval=0.05)
        finally:
            for client in clients:
                await client.close()


async def test_each_worker_exposes_its_cluster_metrics(workers):
    """Each node's own /metrics says: two live serving nodes, the broker up, its
    cluster requests by operation and outcome with their durations, its
    cross-node sends, and forged or malformed messages dropped by reason."""
    controls = _controls(workers)
    async with connect(controls["w-1"],
                       additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        ctl = Control(ws)
        await ctl.ok("stats")
        await ctl.ok("send", selector={"everyone": True}, text="hello")
    client = redis.asyncio.from_url(workers.redis_url)
    try:
        # Whoever can publish to Redis cannot drive the fleet: a message
        # signed with another secret (forged), and one signed with the right
        # one that is not JSON (malformed).
        forged = seal(Message(kind=MessageKind.REQUEST, cluster="wsconsole", src="w-9",
                              op="shutdown", role="operator", ts=time.time()),
                      b"not-the-cluster-secret-0123456789")
        garbage = b"not json"
        malformed = (PREFIX + hmac.new(SECRET.encode(), garbage, hashlib.sha256)
                     .hexdigest().encode() + b"." + garbage)
        for payload in (forged, malformed):
            await client.publish("wsconsole:wsconsole:all", payload)
    finally:
        await client.aclose()

    async def scrape(name: str) -> dict:
        port = int(controls[name].rsplit(":", 1)[1])
        status, _, body = await http_request(port, "/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode())
                for s in family.samples}

    async def dropped_twice(name: str) -> bool:
        samples = await scrape(name)
        return sum(v for (n, _), v in samples.items()
                   if n == "wsconsole_cluster_messages_dropped_total") >= 2

    for name in ("w-1", "w-2"):
        await wait_for(lambda: dropped_twice(name), TIMEOUT * 2, interval=0.05)
        samples = await scrape(name)
        assert samples[("wsconsole_cluster_nodes",
                        (("health", "live"), ("state", "serving")))] == 2
        assert samples[("wsconsole_cluster_nodes",
                        (("health", "gone"), ("state", "serving")))] == 0
        assert samples[("wsconsole_cluster_broker_up", ())] == 1
        dropped = {labels[0][1]: value for (n, labels), value in samples.items()
                   if n == "wsconsole_cluster_messages_dropped_total"}
        assert set(dropped) == set(DropReason)
        assert dropped["bad_signature"] >= 1 and dropped["malformed"] >= 1, dropped
    one, two = await scrape("w-1"), await scrape("w-2")
    full = ("wsconsole_cluster_requests_total", (("operation", "stats"), ("outcome", "full")))
    assert one[full] >= 1 and two[full] == 0  # counted where the operator asked
    assert one[("wsconsole_cluster_request_duration_seconds_count",
                (("operation", "stats"),))] >= 1
    assert one[("wsconsole_cluster_request_duration_seconds_bucket",
                (("le", "+Inf"), ("operation", "stats")))] >= 1
    assert one[("wsconsole_cluster_requests_total",
                (("operation", "stats"), ("outcome", "partial")))] == 0
    assert one[("wsconsole_cluster_cross_node_sends_total", ())] >= 1
    # Every family is as a type and unit say (a parse of the text format).
    port = int(controls["w-1"].rsplit(":", 1)[1])
    _, _, body = await http_request(port, "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for spec in CLUSTER_METRICS:
        family = families[spec.name.removesuffix("_total")]
        assert (family.type, family.documentation) == (spec.type, spec.help)
    if shutil.which("promtool"):
        checked = subprocess.run(["promtool", "check", "metrics"], input=body,
                                 capture_output=True, timeout=TIMEOUT * 6)
        assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


def test_sigterm_stops_every_worker(own_workers):
    """SIGTERM to the supervisor stops both workers gracefully; it exits 0."""
    workers = own_workers
    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(TIMEOUT * 3) == 0
    workers.wait(r"^wsconsole: all workers stopped")
    assert len(workers.find(r"^\[w-\d\] wsconsole: stopped")) == 2
    assert not workers.find(r"not restarted")
