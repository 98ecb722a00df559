"""The Grafana dashboard: generated from the metric definitions, every query parsed
by a PromQL parser and checked against the metrics' types and labels, and, when
Prometheus is installed, every query evaluated by a real Prometheus that scrapes
two real cluster nodes (behind a real redis-server) after real traffic."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from tests.helpers import TIMEOUT, wait_for
from tests.server.test_boundary import loaded_modules
from wsconsole.console.cli import main as cli_main
from wsconsole.server.dashboard import (
    RATE_INTERVAL,
    TARGET_LABELS,
    VARIABLES,
    dashboard,
    dashboard_json,
    gauge,
    panels,
    quantile,
    rate,
)
from wsconsole.server.metrics import (
    CONNECTIONS_OPEN,
    CONNECTIONS_OPENED,
    KEEPALIVE_LATENCY,
    METRICS,
    MetricSpec,
)

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "dashboards" / "wsconsole.json"

HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")
SERIES: dict[str, tuple[MetricSpec, str]] = {}
"""Every series name a query may read: a metric, or a histogram's part."""
for _spec in METRICS:
    for _part in (HISTOGRAM_PARTS if _spec.type == "histogram" else ("",)):
        SERIES[_spec.name + _part] = (_spec, _part)

RANGE_FUNCTIONS = {"rate", "irate", "increase"}
"""Functions of a counter's range: never of a gauge."""


def targets(model: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of the dashboard."""
    return [(panel, target) for panel in panels(model) for target in panel["targets"]]


def substitute(expr: str, job: str = ".*", node: str = ".*",
               rate_interval: str = "1m") -> str:
    """A panel's query as Grafana sends it, its variables replaced; no other may remain."""
    text = (expr.replace(RATE_INTERVAL, rate_interval)
            .replace("$job", job).replace("$node", node))
    assert "$" not in text, f"an unknown variable in {expr}"
    return text


class MetricUse:
    """What a query reads, found by walking its parsed tree."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.series: list[str] = []
        self.problems: list[str] = []
        self.walk(promql_parser.parse(substitute(expr)), context=())

    def walk(self, node: Any, context: tuple[str, ...]) -> set[str]:
        """Check ``node`` read inside the functions ``context`` (outermost first);
        return the labels its series may carry."""
        kind = type(node).__name__
        if kind == "VectorSelector":
            return self.selector(node, context)
        if kind == "MatrixSelector":
            if not context or context[-1] not in RANGE_FUNCTIONS:
                self.problems.append(f"a range outside rate(): {node}")
            return self.selector(node.vector_selector, context)
        if kind == "Call":
            name = node.func.name
            labels: set[str] = set()
            for arg in node.args:
                labels |= self.walk(arg, (*context, name))
            if name == "histogram_quantile":
                labels.discard("le")
            return labels
        if kind == "AggregateExpr":
            inner = self.walk(node.expr, context)
            by = set(node.modifier.labels) if node.modifier is not None else set()
            if by - inner:
                self.problems.append(f"{node.op} by {sorted(by - inner)}: not labels of "
                                     f"the series summed (those have {sorted(inner)})")
            if "histogram_quantile" in context and "le" not in by:
                self.problems.append("histogram_quantile over a sum that drops le")
            return by
        if kind == "BinaryExpr":
            return self.walk(node.lhs, context) | self.walk(node.rhs, context)
        if kind in ("ParenExpr", "UnaryExpr"):
            return self.walk(node.expr, context)
        if kind in ("NumberLiteral", "StringLiteral"):
            return set()
        self.problems.append(f"unexpected {kind} in {self.expr}")
        return set()

    def selector(self, node: Any, context: tuple[str, ...]) -> set[str]:
        name = node.name
        self.series.append(name)
        if name not in SERIES:
            self.problems.append(f"{name} is not a wsconsole metric (server/metrics.py)")
            return set()
        spec, part = SERIES[name]
        labels = set(spec.labels) | set(TARGET_LABELS) | ({"le"} if part == "_bucket" else set())
        for matcher in node.matchers.matchers:
            if matcher.name not in labels:
                self.problems.append(f"{name} has no label {matcher.name}")
        ranged = [name for name in context if name in RANGE_FUNCTIONS]
        if "histogram_quantile" in context and part != "_bucket":
            self.problems.append(f"histogram_quantile over {name}, not a histogram's _bucket")
        if ranged:
            if spec.type == "gauge":
                self.problems.append(f"{ranged[-1]}() over {name}, a gauge")
        elif spec.type != "gauge":
            self.problems.append(f"{name}, a {spec.type}, read without rate()")
        return labels


# The generator and the committed file.


def test_the_committed_dashboard_is_what_the_generator_writes():
    """dashboards/wsconsole.json is the generator's output byte for byte: regenerate
    it with `wsconsole dashboard > dashboards/wsconsole.json`."""
    assert COMMITTED.read_text() == dashboard_json(), (
        "dashboards/wsconsole.json is stale: run `wsconsole dashboard > "
        "dashboards/wsconsole.json`")


def test_the_dashboard_command_prints_it_or_writes_a_file(capsys, tmp_path):
    """`wsconsole dashboard` prints the JSON; `--output FILE` writes it there."""
    assert cli_main(["dashboard"]) == 0
    assert capsys.readouterr().out == dashboard_json()
    out = tmp_path / "wsconsole.json"
    assert cli_main(["dashboard", "--output", str(out)]) == 0
    assert out.read_text() == dashboard_json()
    assert json.loads(out.read_text())["uid"] == "wsconsole"


def test_the_generator_is_pure():
    """Generating the dashboard loads no asyncio and no part of the running server."""
    modules = loaded_modules("import wsconsole.server.dashboard")
    assert "wsconsole.server.dashboard" in modules
    assert "asyncio" not in modules
    assert not modules & {"wsconsole.server.hub", "wsconsole.server.serving",
                          "wsconsole.server.control"}


def test_every_query_parses_and_reads_defined_metrics_as_their_type_allows():
    """Each panel's query parses (promql-parser); each series it reads is a metric
    of server/metrics.py or a histogram's part; rate() is only over counters,
    histogram_quantile only over a histogram's _bucket summed by le, a gauge is
    read as is, and every label grouped or matched is one of the metric's."""
    model = dashboard()
    assert targets(model)
    for panel, target in targets(model):
        use = MetricUse(target["expr"])
        assert use.series, target["expr"]
        assert not use.problems, (panel["title"], use.problems)


def test_every_metric_has_a_panel_and_its_help_text():
    """Every metric of the definitions is on the dashboard (a new one without a
    panel fails here), and each panel's description carries its metrics' help."""
    model = dashboard()
    shown: set[str] = set()
    for panel, target in targets(model):
        for name in MetricUse(target["expr"]).series:
            spec = SERIES[name][0]
            shown.add(spec.name)
            assert spec.help in panel["description"], (panel["title"], spec.name)
    assert shown == {spec.name for spec in METRICS}


def test_the_issue_asks_for_these_panels():
    """The panels an operator looks for: connections by node and path, connects and
    closes by code, messages and bytes in and out, operator sends and recipients,
    slow consumers, rejected handshakes, keepalive quantiles, control requests and
    errors; and in cluster mode nodes by state, broker health, partial answers."""
    titles = {panel["title"] for panel in panels(dashboard())}
    assert {
        "Open connections by node and path", "Connects and closes by close code",
        "Messages per second, in and out", "Bytes per second, in and out",
        "Operator sends and skipped recipients", "Recipients per operator send",
        "Slow-consumer closes", "Rejected handshakes by status",
        "Keepalive latency quantiles", "Control-plane requests by operation",
        "Control-plane errors", "Cluster nodes by health and state", "Broker up, by node",
        "Cluster requests: full and partial answers",
    } <= titles


def test_the_dashboard_model_is_importable():
    """A Grafana model: unique panel ids, panels within 24 columns and not
    overlapping, every query on the datasource variable, the datasource, job and
    node variables; no fixed id, so an import creates or replaces by uid."""
    model = dashboard()
    assert model["id"] is None and model["uid"] == "wsconsole"
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["node"]["query"].endswith(", instance)")
    assert variables["node"]["multi"] and variables["node"]["includeAll"]
    rows = [panel for panel in model["panels"] if panel["type"] == "row"]
    ids = [panel["id"] for panel in (*rows, *panels(model))]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels(model):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24
        mine = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & mine, panel["title"]
        cells |= mine


def test_builders_refuse_a_query_the_metric_cannot_answer():
    """rate() of a gauge, a quantile of a counter, or a label the metric does not
    have stops the generation, so a changed definition cannot go unnoticed."""
    with pytest.raises(ValueError, match="is a gauge"):
        rate(CONNECTIONS_OPEN)
    with pytest.raises(ValueError, match="is a counter"):
        quantile(CONNECTIONS_OPENED, 0.99)
    with pytest.raises(ValueError, match="is a histogram"):
        gauge(KEEPALIVE_LATENCY)
    with pytest.raises(ValueError, match="no label code"):
        gauge(CONNECTIONS_OPEN, by=("code",))
    with pytest.raises(ValueError, match="no label path"):
        rate(CONNECTIONS_OPENED, where=(("path", "=", "/"),))


def test_the_checker_catches_what_it_is_for():
    """The test's own PromQL checker (not the generator's builders) refuses a rate
    of a gauge, a quantile of a sum, an unknown metric and a foreign label."""
    def problems(expr: str) -> list[str]:
        return MetricUse(expr).problems

    assert problems("rate(wsconsole_connections_open[5m])")
    assert problems("histogram_quantile(0.9, rate(wsconsole_keepalive_latency_seconds_sum[5m]))")
    assert problems("histogram_quantile(0.9, sum(rate(wsconsole_keepalive_latency_seconds_bucket[5m])))")
    assert problems("sum(wsconsole_no_such_metric)")
    assert problems("sum by (code) (wsconsole_connections_open)")
    assert problems("wsconsole_connections_opened_total")
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(wsconsole_connections_opened_total[5m])")
    assert not problems("sum by (path) (wsconsole_connections_open)")


# A real Prometheus scraping two real cluster nodes.

PROMETHEUS = shutil.which("prometheus") or (
    "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
RUN_PROMETHEUS = os.environ.get("WSCONSOLE_TEST_PROMETHEUS",
                                os.environ.get("CI", "")).lower() not in ("", "0", "false")
"""Prometheus 2.x scrapes a new target 5 s after it starts at the earliest (its
scrape manager applies targets on a 5 s tick): too long for the default suite's
minute, so the test runs in CI (CI=true) or with WSCONSOLE_TEST_PROMETHEUS=1."""
JOB = "wsconsole-dashboard-test"
TOKEN = "dashboard-operator-token-0123456789"
SECRET = b"dashboard-cluster-secret-0123456789abcdef"
CLUSTER = "dash"
SCRAPE_INTERVAL = 1.0
RATE_RANGE = "4s"
"""$__rate_interval as Grafana computes it for a 1 s scrape interval: 4 intervals."""

STEP = 0.25
"""Seconds between the points of a range query: finer than the scrapes, so that
a gauge's value held for one scrape interval is in the answer."""

NOT_DRIVEN = {
    "Handshakes in progress": "no handshake is left half-done when Prometheus scrapes",
    "Handshakes shed and accept errors": "the test neither exhausts file descriptors nor "
                                         "floods the handshake limits",
}
"""Panels whose queries must return data, but may rightly be zero all along."""


def test_ci_runs_the_prometheus_test():
    """.ci/run turns the real-Prometheus test on before the test command, as the
    README says: a CI system that sets no CI=true still runs it."""
    script = (REPO / ".ci" / "run").read_text()
    turned_on = script.find('export WSCONSOLE_TEST_PROMETHEUS="${WSCONSOLE_TEST_PROMETHEUS:-1}"')
    assert 0 <= turned_on < script.find(".venv/bin/pytest")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """A prometheus process with a private configuration and data folder."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        self.folder = folder
        folder.mkdir()
        config = folder / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL:g}s",
                       "scrape_timeout": f"{SCRAPE_INTERVAL:g}s"},
            "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics",
                                "static_configs": [{"targets": targets}]}],
        }))
        self.config = config
        self.log = folder / "prometheus.log"
        self.starts = 0
        self.start()

    def start(self) -> None:
        # Prometheus cannot listen on port 0: a port free now (ready() tries
        # another if someone took it since).
        self.starts += 1
        self.port = free_port()
        with self.log.open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}",
                 f"--storage.tsdb.path={self.folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                cwd=self.folder)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # the API says why in its body
            raise AssertionError(f"{path} {params}: {exc.read().decode()}") from None

    async def get(self, path: str, **params: str) -> Any:
        """One API call's data (in a thread: the servers share this loop)."""
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-1000:]}")
        body = await asyncio.to_thread(self._get, path, **params)
        assert body["status"] == "success", body
        return body["data"]

    async def ready(self) -> bool:
        """True once it answers /-/ready; a new port if it exited (port taken)."""
        if self.process.poll() is not None:
            if self.starts >= 3:
                raise AssertionError(f"prometheus exited: {self.log.read_text()[-1000:]}")
            self.start()
            return False
        try:
            await asyncio.to_thread(self._get_ready)
        except OSError:
            return False
        return True

    def _get_ready(self) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1):
            pass


def grafana_escape(value: str) -> str:
    """A value in a regex matcher as Grafana writes a multi-value variable there."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def values(result: list[dict[str, Any]]) -> list[float]:
    """Every number of a query_range result (NaN, Grafana's gap, left out)."""
    found = [float(v) for series in result for _, v in series["values"]]
    return [v for v in found if v == v]


@pytest.mark.skipif(PROMETHEUS is None,
                    reason="prometheus is not installed (Debian package 'prometheus'; "
                           ".ci/run installs it)")
@pytest.mark.skipif(not RUN_PROMETHEUS,
                    reason="~8 s, 5 of them Prometheus's own wait before its first scrape: "
                           "run with WSCONSOLE_TEST_PROMETHEUS=1 (CI runs it)")
async def test_every_panel_returns_data_from_a_real_prometheus(tmp_path):
    """Prometheus scrapes two cluster nodes every second; after real clients connect,
    talk, close normally and abnormally, a slow consumer is cut, a handshake is
    refused, operators send, err and ask the fleet, a stray message reaches the
    broker, and Redis goes away (a partial answer), every panel's query returns data
    through the HTTP API, and the panels the traffic drives are not all zero.
    The job and node variables list the job and both nodes."""
    from websockets.asyncio.client import connect

    from tests.server.control_helpers import Control, app, http_request
    from wsconsole.server import Selector, serve
    from wsconsole.server.cluster.redis_server import (
        PrivateRedis,
        RedisServerMissing,
        find_redis_server,
    )
    from wsconsole.server.cluster.settings import ClusterSettings
    from wsconsole.server.config import ControlConfig

    try:
        find_redis_server()
    except RedisServerMissing:
        pytest.skip("redis-server is not installed: the cluster panels need cluster nodes")
    import redis.asyncio

    async with AsyncExitStack() as stack:
        broker = PrivateRedis(tmp_path / "redis").start()
        stack.callback(broker.stop)
        nodes = []
        for name in ("dash-a", "dash-b"):
            server = await serve(
                app, "127.0.0.1", 0, node=name, sample_interval=0.1, ping_interval=0.05,
                slow_consumer_limit=256 * 1024, compression=None,
                control=ControlConfig(port=0, token=TOKEN,
                                      audit_log=str(tmp_path / f"{name}.audit")),
                cluster=ClusterSettings(broker.url, name=CLUSTER, secret=SECRET,
                                        heartbeat_interval=0.2, reconnect_max=0.3))
            stack.push_async_callback(server.wait_closed)
            stack.callback(server.close)
            nodes.append(server)
        a, b = nodes
        await wait_for(lambda: "dash-b" in a.cluster.table and "dash-a" in b.cluster.table)
        instances = [f"127.0.0.1:{node.control.port}" for node in nodes]
        prometheus = Prometheus(tmp_path / "prometheus", instances)
        stack.callback(prometheus.stop)
        start = time.time()

        await wait_for(prometheus.ready, interval=0.05)

        async def scraped_both() -> bool:
            result = await prometheus.get("/api/v1/query", query=f'up{{job="{JOB}"}} == 1')
            return len(result["result"]) == 2

        await wait_for(scraped_both, TIMEOUT * 2, interval=0.05)
        scraped = time.time()

        # Traffic, every kind of it, after the first scrape: rates see it rise.
        room = await connect(f"ws://127.0.0.1:{a.port}/room", compression=None)
        lobby = await connect(f"ws://127.0.0.1:{a.port}/lobby", compression=None)
        far = await connect(f"ws://127.0.0.1:{b.port}/room", compression=None)
        stack.push_async_callback(far.close)
        for client in (room, lobby, far):
            await client.send("hello")
            assert await asyncio.wait_for(client.recv(), TIMEOUT) == "hello"
        status, _, _ = await http_request(a.port, "/")  # plain HTTP: refused with 426
        assert status == 426
        async with connect(a.control.url,
                           additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            operator = Control(ws)
            await operator.ok("send", selector={"everyone": True}, text="to all")  # cross-node
            await operator.ok("stats")
            # An outcome's first error creates its series: rate() sees the next ones.
            assert await operator.error("get", id="dash-a/ffffffffffff") == "unknown_connection"

            slow = await connect(f"ws://127.0.0.1:{b.port}/slow", compression=None,
                                 max_size=None, max_queue=1)
            await wait_for(lambda: len(b.hub.registry) == 2)
            slow.transport.pause_reading()
            for _ in range(1000):
                b.hub.send(Selector(path="/slow"), b"x" * 64 * 1024)
                if b.hub.slow_consumer_disconnects:
                    break
                await asyncio.sleep(0)
            assert b.hub.slow_consumer_disconnects == 1
            slow.transport.abort()

            client = redis.asyncio.from_url(broker.url)
            try:  # not a wsconsole message: both nodes drop it as foreign
                await client.publish(f"wsconsole:{CLUSTER}:all", b"not a cluster message")
            finally:
                await client.aclose()
            await wait_for(lambda: sum(a.cluster.dropped.values()) >= 1)

            async def error_series_scraped() -> bool:
                found = await prometheus.get("/api/v1/query", query=(
                    'wsconsole_control_requests_total{outcome="unknown_connection"}'))
                return bool(found["result"])

            # A scrape since the error: it saw the open connections too.
            await wait_for(error_series_scraped, TIMEOUT * 2, interval=0.05)
            await room.close()  # 1000
            lobby.transport.abort()  # 1006
            await wait_for(lambda: {1000, 1006} <= set(a.hub.closed_by_code))
            assert await operator.error("get", id="dash-a/ffffffffffff") == "unknown_connection"

            broker.stop()  # Redis goes away: the next fleet request is partial
            reply = await operator.reply("stats")
            assert reply.ok
        assert a.control.metrics.cluster_requests[("stats", "partial")] >= 1
        events = time.time()

        async def scraped_since() -> bool:  # the last event, the partial answer
            found = await prometheus.get("/api/v1/query", query=(
                f'wsconsole_cluster_requests_total{{job="{JOB}", outcome="partial"}} > 0'))
            return bool(found["result"])

        await wait_for(scraped_since, TIMEOUT * 2, interval=0.05)

        node_regex = "(" + "|".join(map(grafana_escape, instances)) + ")"

        async def query_range(expr: str) -> list[dict[str, Any]]:
            # The last step is now: the newest scrape is in the answer.
            end = time.time()
            first = end - math.ceil((end - start) / STEP) * STEP
            data = await prometheus.get(
                "/api/v1/query_range", query=substitute(expr, grafana_escape(JOB), node_regex,
                                                       RATE_RANGE),
                start=f"{first:.3f}", end=f"{end:.3f}", step=f"{STEP:g}")
            return data["result"]

        # Every panel, again until a scrape after the last event is in: no sleeps.
        pending = {panel["title"]: panel for panel in panels(dashboard())}
        last: dict[str, dict[str, list[dict[str, Any]]]] = {}

        async def every_panel_answered() -> bool:
            for title, panel in list(pending.items()):
                results = last[title] = {t["expr"]: await query_range(t["expr"])
                                         for t in panel["targets"]}
                found = [values(result) for result in results.values()]
                if all(found) and (title in NOT_DRIVEN or any(v > 0 for f in found for v in f)):
                    del pending[title]
            return not pending

        try:
            await wait_for(every_panel_answered, TIMEOUT * 2, interval=0.2)
        except TimeoutError:
            raise AssertionError("panels without data (or all zero): " + json.dumps(
                {title: last.get(title) for title in pending})[:3000]) from None
        evaluated = time.time()

        def seen(title: str, label: str) -> set[str]:
            """The values of ``label`` in a panel's series that were above zero."""
            return {series["metric"].get(label, "") for results in last[title].values()
                    for series in results if any(v > 0 for v in values([series]))}

        # What happened shows where an operator looks for it.
        assert {"/room", "/lobby"} <= seen("Open connections by node and path", "path")
        assert set(instances) <= seen("Open connections by node and path", "instance")
        assert set(instances) <= seen("Messages per second, in and out", "instance")
        assert {"1000", "1006", "1008"} <= seen("Connects and closes by close code", "code")
        assert seen("Slow-consumer closes", "instance") == {instances[1]}
        assert seen("Rejected handshakes by status", "status") == {"426"}
        assert seen("Control-plane errors", "outcome") == {"unknown_connection"}
        assert ("live", "serving") in {
            (series["metric"]["health"], series["metric"]["state"])
            for series in last["Cluster nodes by health and state"][
                next(iter(last["Cluster nodes by health and state"]))]}
        assert "stats" in seen("Cluster requests: full and partial answers", "operation")
        assert seen("Broker messages dropped by reason", "reason") == {"foreign"}

        for name, query in VARIABLES.items():
            selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", query).groups()
            found = await prometheus.get(f"/api/v1/label/{label}/values",
                                         **{"match[]": substitute(selector, grafana_escape(JOB))})
            assert found == ([JOB] if name == "job" else sorted(instances)), (name, found)
        await far.close()
    print(f"prometheus: first scrape {scraped - start:.2f} s, traffic {events - scraped:.2f} s, "
          f"every panel answered {evaluated - events:.2f} s later")
