"""Metrics and health: a real server on port 0, real websockets clients, and the
exposition parsed with prometheus_client's own parsers (and promtool if present)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import TIMEOUT, wait_for
from wsconsole.server import Selector, serve
from wsconsole.server.metrics import (
    CLOSE_CODE_LABELS,
    CLUSTER_METRICS,
    METRICS,
    OPERATION_LABELS,
    STATE_LABELS,
    STATUS_LABELS,
    Metrics,
    PathLabels,
    health,
    markdown_table,
)
from wsconsole.server.wire import OPERATIONS

REPO = Path(__file__).resolve().parents[2]


async def echo(connection):
    async for message in connection:
        await connection.send(message)


def url(server, path="/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def recv(client):
    async with asyncio.timeout(TIMEOUT):
        return await client.recv()


def samples(metrics: Metrics, accept: str | None = None) -> list:
    """Every sample of one scrape, parsed by prometheus_client's parser."""
    body, content_type = metrics.render(accept)
    assert content_type.startswith("text/plain; version=0.0.4")
    return [s for family in parse_prometheus(body.decode()) for s in family.samples]


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """The value of the one sample called ``name`` whose labels include ``labels``."""
    found = [s.value for s in samples(metrics)
             if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, f"{len(found)} samples {name}{labels}"
    return found[0]


def label_values(metrics: Metrics, name: str, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in samples(metrics) if s.name == name}


async def eventually(metrics: Metrics, name: str, expected: float, **labels: str) -> None:
    """Wait until a sample reaches a value (closes are counted in connection_lost)."""
    try:
        await wait_for(lambda: value(metrics, name, **labels) == expected)
    except TimeoutError:
        raise AssertionError(
            f"{name}{labels} is {value(metrics, name, **labels)}, expected {expected}"
        ) from None


async def test_every_metric_follows_the_naming_rule():
    """Each metric is exposed once, prefixed wsconsole_, with help, _total on counters
    and its unit as the name's suffix."""
    async with serve(echo, "127.0.0.1", 0) as server:
        body, _ = Metrics(server.hub).render(None)
    families = {f.name: f for f in parse_prometheus(body.decode())}
    for spec in METRICS:
        assert spec.name.startswith("wsconsole_")
        assert spec.help.strip()
        assert (spec.type == "counter") == spec.name.endswith("_total"), spec.name
        if spec.unit:
            assert spec.name.removesuffix("_total").endswith("_" + spec.unit), spec.name
        if spec in CLUSTER_METRICS:
            continue  # cluster mode only: tests/cluster/test_workers.py reads them
        # The text parser names a counter's family without _total.
        family = families[spec.name.removesuffix("_total")]
        assert family.type == spec.type
        assert family.documentation == spec.help
    assert len({spec.name for spec in METRICS}) == len(METRICS)
    # Process and platform collectors are on our registry too.
    assert "python_info" in families
    if Path("/proc/self/stat").exists():  # the process collector reads /proc
        assert "process_resident_memory_bytes" in families


async def test_known_label_values_exist_from_the_start_at_zero():
    """Before any traffic, every close code, status, operation and state label exists,
    the counters are zero and the state says serving."""
    async with serve(echo, "127.0.0.1", 0) as server:
        metrics = Metrics(server.hub, route_templates=["/rooms/{name}"])
        closed = label_values(metrics, "wsconsole_connections_closed_total", "code")
        assert closed == dict.fromkeys(CLOSE_CODE_LABELS, 0)
        assert {"1000", "1001", "1006", "1008", "1011", "1012", "4xxx"} <= closed.keys()
        rejected = label_values(metrics, "wsconsole_handshakes_rejected_total", "status")
        assert rejected == dict.fromkeys(STATUS_LABELS, 0)
        assert label_values(metrics, "wsconsole_connections_open", "path") == {
            "/rooms/{name}": 0, "other": 0,
        }
        ok_requests = {s.labels["operation"]: s.value for s in samples(metrics)
                       if s.name == "wsconsole_control_requests_total"
                       and s.labels["outcome"] == "ok"}
        assert ok_requests == dict.fromkeys(OPERATIONS, 0)
        assert label_values(metrics, "wsconsole_server_state", "state") == {
            "serving": 1, "draining": 0, "stopped": 0,
        }
        for name in ("wsconsole_connections_opened_total", "wsconsole_messages_received_total",
                     "wsconsole_sent_bytes_total", "wsconsole_slow_consumer_disconnects_total",
                     "wsconsole_operator_send_recipients_count",
                     "wsconsole_keepalive_latency_seconds_count"):
            assert value(metrics, name) == 0, name


async def test_values_follow_connect_send_and_close():
    """Connections, messages and bytes in both directions, and closes by code
    follow what real clients do."""
    # A sample every 50 ms (1 s by default): the test waits for one below.
    async with serve(echo, "127.0.0.1", 0, compression=None, sample_interval=0.05) as server:
        metrics = Metrics(server.hub)
        a1 = await connect(url(server, "/a"), compression=None)
        a2 = await connect(url(server, "/a"), compression=None)
        b = await connect(url(server, "/b"), compression=None)
        await wait_for(lambda: len(server.hub.registry) == 3)
        assert value(metrics, "wsconsole_connections_open", path="/a") == 2
        assert value(metrics, "wsconsole_connections_open", path="/b") == 1
        assert value(metrics, "wsconsole_connections_opened_total") == 3

        for client, message in ((a1, "hello"), (a2, "hi"), (b, b"\x00" * 1000)):
            await client.send(message)
            assert await recv(client) == message
        # Traffic totals are sampled by the hub once per sample_interval (so
        # that a scrape never walks the connections): they show up within one.
        await eventually(metrics, "wsconsole_messages_received_total", 3)
        assert value(metrics, "wsconsole_messages_sent_total") == 3
        # Bytes on the wire: 2-byte headers (4 for 1000 bytes), clients mask (+4).
        assert value(metrics, "wsconsole_received_bytes_total") == (2 + 4 + 5) + (
            2 + 4 + 2) + (4 + 4 + 1000)
        assert value(metrics, "wsconsole_sent_bytes_total") == (2 + 5) + (2 + 2) + (4 + 1000)

        await a1.close()  # 1000
        await a2.close(4001, "app-specific")
        await eventually(metrics, "wsconsole_connections_closed_total", 1, code="1000")
        await eventually(metrics, "wsconsole_connections_closed_total", 1, code="4xxx")
        assert value(metrics, "wsconsole_connections_open", path="/a") == 0
        assert value(metrics, "wsconsole_connections_open", path="/b") == 1

        b.transport.abort()  # no close frame at all
        await eventually(metrics, "wsconsole_connections_closed_total", 1, code="1006")
        assert value(metrics, "wsconsole_connections_open", path="/b") == 0
        assert value(metrics, "wsconsole_connections_opened_total") == 3


async def test_operator_sends_fill_the_recipients_histogram_and_count_skips():
    """Each operator send observes its recipients; a recipient busy with a fragmented
    message is skipped and counted."""
    release = asyncio.Event()

    async def handler(connection):
        if connection.request.path == "/busy":
            async def fragments():
                yield "first"
                await release.wait()
                yield "last"

            await connection.send(fragments())
        await echo(connection)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        hub = server.hub
        metrics = Metrics(hub)
        clients = [await connect(url(server, "/idle")) for _ in range(3)]
        busy = await connect(url(server, "/busy"))
        try:
            await wait_for(lambda: len(hub.registry) == 4 and hub.totals.bytes_out >= 5)
            hub.send(Selector(path="/idle"), "to three")
            hub.send(Selector(everyone=True), "to four", dry_run=True)  # not a send
            result = hub.send(Selector(everyone=True), "to four")
            assert result.skipped == 1

            assert value(metrics, "wsconsole_operator_sends_total") == 2
            assert value(metrics, "wsconsole_operator_send_recipients_count") == 2
            assert value(metrics, "wsconsole_operator_send_recipients_sum") == 3 + 4
            buckets = {s.labels["le"]: s.value for s in samples(metrics)
                       if s.name == "wsconsole_operator_send_recipients_bucket"}
            assert (buckets["2.0"], buckets["5.0"], buckets["+Inf"]) == (0, 2, 2)
            assert value(metrics, "wsconsole_sends_skipped_total") == 1
            for client in clients:
                assert await recv(client) == "to three"
                assert await recv(client) == "to four"
        finally:
            release.set()
            for client in (*clients, busy):
                await client.close()


async def test_slow_consumer_disconnect_is_counted():
    """A client that stops reading is closed as a slow consumer, and both the
    disconnect and its 1008 close show up."""
    limit = 256 * 1024
    async with serve(echo, "127.0.0.1", 0, slow_consumer_limit=limit,
                     compression=None) as server:
        hub = server.hub
        metrics = Metrics(hub)
        slow = await connect(url(server, "/slow"), compression=None, max_size=None,
                             max_queue=1)
        try:
            await wait_for(lambda: len(hub.registry) == 1)
            slow.transport.pause_reading()  # stop reading from the socket at all
            chunk = b"x" * 64 * 1024
            # Kernel buffers absorb a few MB first; then the write buffer grows.
            for _ in range(1000):
                hub.send(Selector(everyone=True), chunk)
                if hub.slow_consumer_disconnects:
                    break
                await asyncio.sleep(0)
            assert value(metrics, "wsconsole_slow_consumer_disconnects_total") == 1
            slow.transport.abort()  # do not wait for the server's abort timeout
            await eventually(metrics, "wsconsole_connections_closed_total", 1, code="1008")
            assert value(metrics, "wsconsole_connections_open", path="/slow") == 0
        finally:
            slow.transport.abort()


async def test_rejected_handshakes_are_counted_by_bounded_status():
    """Refused handshakes count by status: the app's 403, 405 for a POST, 426 for
    plain HTTP, and an unusual 418 in its class; the health check's 200 is not
    a refusal."""

    def process_request(connection, request):
        if request.path == "/forbidden":
            return connection.respond(403, "Forbidden\n")
        if request.path == "/teapot":
            return connection.respond(418, "I'm a teapot\n")
        return None

    async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
        metrics = Metrics(server.hub)
        for path, status in (("/forbidden", 403), ("/teapot", 418)):
            with pytest.raises(InvalidStatus) as caught:
                await connect(url(server, path))
            assert caught.value.response.status_code == status
        for request in (b"POST /x HTTP/1.1\r\nHost: h\r\n\r\n",
                        b"GET /plain HTTP/1.1\r\nHost: h\r\n\r\n",
                        b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request)
            async with asyncio.timeout(TIMEOUT):
                assert (await reader.read()).startswith(b"HTTP/1.1 ")
            writer.close()
        for status in ("403", "4xx", "405", "426"):
            await eventually(metrics, "wsconsole_handshakes_rejected_total", 1, status=status)
        rejected = label_values(metrics, "wsconsole_handshakes_rejected_total", "status")
        assert set(rejected) == set(STATUS_LABELS)
        assert sum(rejected.values()) == 4 and rejected["200"] == 0
        assert value(metrics, "wsconsole_connections_opened_total") == 0


async def test_many_distinct_paths_stay_within_max_paths_plus_other():
    """200 distinct paths give the first max_paths their own label and put the rest
    in other, so the path label has at most max_paths + 1 values."""
    async with serve(echo, "127.0.0.1", 0) as server:
        metrics = Metrics(server.hub)  # default max_paths=50
        clients = []
        try:
            for i in range(200):
                clients.append(await connect(url(server, f"/p{i}")))
            await wait_for(lambda: len(server.hub.registry) == 200)
            open_by_path = label_values(metrics, "wsconsole_connections_open", "path")
            assert len(open_by_path) == 50 + 1
            assert open_by_path == {**{f"/p{i}": 1 for i in range(50)}, "other": 150}
        finally:
            for client in clients:
                await client.close()
        await wait_for(lambda: len(server.hub.registry) == 0)
        open_by_path = label_values(metrics, "wsconsole_connections_open", "path")
        assert len(open_by_path) == 51 and sum(open_by_path.values()) == 0


async def test_route_templates_label_paths_by_template():
    """With route templates a path is labelled by the template it matches, and
    anything else is other, however many paths clients invent."""
    async with serve(echo, "127.0.0.1", 0) as server:
        metrics = Metrics(server.hub, route_templates=["/rooms/{name}", "/lobby"])
        paths = ["/rooms/a", "/rooms/b", "/rooms/c?user=x", "/lobby", "/rooms/a/b", "/zzz"]
        clients = [await connect(url(server, path)) for path in paths]
        try:
            await wait_for(lambda: len(server.hub.registry) == len(paths))
            assert label_values(metrics, "wsconsole_connections_open", "path") == {
                "/rooms/{name}": 3, "/lobby": 1, "other": 2,
            }
        finally:
            for client in clients:
                await client.close()


def test_path_labels_reject_bad_templates_and_long_paths():
    """A malformed template is refused up front, and an overlong path is never a label."""
    with pytest.raises(ValueError):
        PathLabels(["/rooms/{bad-name}"])
    with pytest.raises(ValueError):
        PathLabels(["rooms/{name}"])
    with pytest.raises(TypeError):
        PathLabels("/rooms/{name}")
    labels = PathLabels(max_paths=5)
    assert labels.label("/" + "x" * 1000) == "other"
    assert labels.label("/short") == "/short"


async def test_labels_never_carry_user_ids_query_strings_or_headers():
    """A client's user id, query string and headers appear nowhere in a scrape."""
    async with serve(echo, "127.0.0.1", 0) as server:
        metrics = Metrics(server.hub)
        client = await connect(url(server, "/chat?user=secret-user&token=hunter2"),
                               additional_headers={"X-Secret": "header-value"})
        try:
            await wait_for(lambda: len(server.hub.registry) == 1)
            record = next(iter(server.hub.registry))
            body, _ = metrics.render(None)
            for secret in (b"secret-user", b"hunter2", b"header-value", b"X-Secret",
                           record.id.encode(), b"?"):
                assert secret not in body
            assert value(metrics, "wsconsole_connections_open", path="/chat") == 1
        finally:
            await client.close()


async def test_control_requests_are_bounded_by_operation_and_outcome():
    """Requests counted by the control listener show by operation and outcome;
    unknown operations and outcomes fold into other."""
    async with serve(echo, "127.0.0.1", 0) as server:
        hub = server.hub
        metrics = Metrics(hub)
        # What the control listener does for each request it answers.
        hub.control_requests[("stats", "ok")] += 2
        hub.control_requests[("send", "forbidden")] += 1
        hub.control_requests[("x" * 500, "unknown_op")] += 1
        hub.control_requests[("shutdown", "a message with spaces")] += 1
        assert value(metrics, "wsconsole_control_requests_total",
                     operation="stats", outcome="ok") == 2
        assert value(metrics, "wsconsole_control_requests_total",
                     operation="send", outcome="forbidden") == 1
        assert value(metrics, "wsconsole_control_requests_total",
                     operation="other", outcome="unknown_op") == 1
        assert value(metrics, "wsconsole_control_requests_total",
                     operation="shutdown", outcome="other") == 1
        operations = {s.labels["operation"] for s in samples(metrics)
                      if s.name == "wsconsole_control_requests_total"}
        assert operations <= set(OPERATION_LABELS)


async def test_keepalive_latency_is_observed():
    """Keepalive pongs fill the latency histogram."""
    async with serve(echo, "127.0.0.1", 0, ping_interval=0.02) as server:
        metrics = Metrics(server.hub)
        async with connect(url(server)):
            await wait_for(
                lambda: value(metrics, "wsconsole_keepalive_latency_seconds_count") >= 2
            )
        latency_sum = value(metrics, "wsconsole_keepalive_latency_seconds_sum")
        assert 0 < latency_sum < TIMEOUT
        assert value(metrics, "wsconsole_keepalive_latency_seconds_bucket", le="+Inf") >= 2


async def test_openmetrics_is_negotiated_by_accept():
    """A scraper that asks for OpenMetrics gets it (with # EOF); anyone else gets
    Prometheus text 0.0.4; both parse to the same wsconsole metrics."""
    # What Prometheus itself sends.
    prometheus_accept = (
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
        "application/openmetrics-text;version=0.0.1;q=0.5,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    )
    async with serve(echo, "127.0.0.1", 0) as server:
        metrics = Metrics(server.hub)
        async with connect(url(server, "/om")) as client:
            await client.send("x")
            await recv(client)
            body, content_type = metrics.render(prometheus_accept)
            assert content_type.startswith("application/openmetrics-text; version=1.0.0")
            text = body.decode()
            assert text.endswith("# EOF\n")
            openmetrics = {f.name: f for f in parse_openmetrics(text)}
            assert openmetrics["wsconsole_connections_open"].samples[-1].labels == {"path": "/om"}
            assert openmetrics["wsconsole_keepalive_latency_seconds"].unit == "seconds"

            for accept in (None, "", "text/plain", "*/*", "application/json"):
                body, content_type = metrics.render(accept)
                assert content_type == "text/plain; version=0.0.4; charset=utf-8"
                assert b"# EOF" not in body
            plain = {f.name for f in parse_prometheus(body.decode())}
            assert {f for f in openmetrics if f.startswith("wsconsole_")} == {
                f for f in plain if f.startswith("wsconsole_")
            }


async def test_health_follows_server_state():
    """Health answers 200 while serving, 503 while draining (keep-alive) and once
    stopped; the state gauge moves with it."""
    async with serve(echo, "127.0.0.1", 0) as server:
        metrics = Metrics(server.hub)
        client = await connect(url(server))
        await wait_for(lambda: len(server.hub.registry) == 1)
        assert health(server.hub) == (
            200, {"state": "serving", "connections": 1, "node": server.hub.node},
        )
        server.close(close_connections=False)  # keep-alive: stop accepting, keep client
        status, body = health(server.hub)
        assert (status, body["state"], body["connections"]) == (503, "draining", 1)
        assert label_values(metrics, "wsconsole_server_state", "state") == {
            "serving": 0, "draining": 1, "stopped": 0,
        }
        await client.close()
        async with asyncio.timeout(TIMEOUT):
            await server.wait_closed()
        assert health(server.hub) == (
            503, {"state": "stopped", "connections": 0, "node": server.hub.node},
        )
        assert value(metrics, "wsconsole_server_state", state="stopped") == 1
        assert set(label_values(metrics, "wsconsole_server_state", "state")) == set(STATE_LABELS)


async def test_metrics_created_late_count_connections_already_open():
    """Metrics created after clients connected still count them, and their closes
    bring the gauge to zero, not below."""
    async with serve(echo, "127.0.0.1", 0) as server:
        clients = [await connect(url(server, "/early")) for _ in range(3)]
        await wait_for(lambda: len(server.hub.registry) == 3)
        metrics = Metrics(server.hub)
        assert value(metrics, "wsconsole_connections_open", path="/early") == 3
        for client in clients:
            await client.close()
        await wait_for(lambda: len(server.hub.registry) == 0)
        assert value(metrics, "wsconsole_connections_open", path="/early") == 0


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not on PATH (Debian package 'prometheus')")
async def test_promtool_accepts_the_exposition():
    """`promtool check metrics` finds no problem in a scrape taken after real traffic."""
    async with serve(echo, "127.0.0.1", 0, ping_interval=0.02) as server:
        metrics = Metrics(server.hub)
        async with connect(url(server, "/t")) as client:
            await client.send("x")
            await recv(client)
            server.hub.send(Selector(everyone=True), "y")
            await recv(client)
            await wait_for(
                lambda: value(metrics, "wsconsole_keepalive_latency_seconds_count") >= 1
            )
        body, _ = metrics.render(None)
    result = await asyncio.to_thread(
        subprocess.run, ["promtool", "check", "metrics"], input=body,
        capture_output=True, timeout=TIMEOUT * 6,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert not (result.stdout + result.stderr).strip(), (result.stdout + result.stderr).decode()


def test_docs_table_matches_the_metric_definitions():
    """The README carries the table generated from METRICS, so they never drift."""
    docs = (REPO / "README.md").read_text()
    assert markdown_table() in docs, "regenerate with: python -c " \
        "'from wsconsole.server.metrics import markdown_table; print(markdown_table())'"


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not on PATH (Debian package 'prometheus')")
def test_docs_scrape_configurations_pass_promtool(tmp_path):
    """Each Prometheus configuration in the README passes `promtool check config`."""
    docs = (REPO / "README.md").read_text()
    # Its section only: the Grafana section's YAML is Grafana's.
    section = docs.split("### Prometheus scrape configuration", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 3  # loopback, TLS and token, a fleet
    for i, block in enumerate(blocks):
        # promtool checks that referenced files exist: point them into tmp_path.
        for name in re.findall(r"/etc/prometheus/([\w.-]+)", block):
            (tmp_path / name).write_text("secret\n")
        config = tmp_path / f"prometheus-{i}.yml"
        config.write_text(block.replace("/etc/prometheus/", f"{tmp_path}/"))
        result = subprocess.run(["promtool", "check", "config", str(config)],
                                capture_output=True, text=True, timeout=TIMEOUT * 6)
        assert result.returncode == 0, result.stdout + result.stderr


# Through the real control listener, over HTTP, as Prometheus scrapes it.

TOKEN = "metrics-test-token"


async def http_request(port: int, method: str, path: str,
                       **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on loopback: (status, headers in lower case, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        async with asyncio.timeout(TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            fields = dict(line.split(": ", 1) for line in header_lines if line)
            fields = {name.lower(): value for name, value in fields.items()}
            length = int(fields.get("content-length", "0"))
            body = await reader.readexactly(length) if method != "HEAD" else b""
        return int(status_line.split()[1]), fields, body
    finally:
        writer.close()


async def scrape(port: int, name: str, **labels: str) -> float:
    """One sample's value from GET /metrics on the control listener."""
    status, _, body = await http_request(port, "GET", "/metrics")
    assert status == 200
    found = [s.value for family in parse_prometheus(body.decode()) for s in family.samples
             if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, f"{len(found)} samples {name}{labels}"
    return found[0]


async def test_metrics_and_health_over_the_control_listener():
    """Prometheus and a load balancer reach /metrics and /healthz on the control
    port; values follow client traffic and control requests; HEAD works, POST is 405."""
    from wsconsole.server.config import ControlConfig
    from wsconsole.server.wire import encode_request, parse_message

    async with serve(echo, "127.0.0.1", 0, sample_interval=0.05,
                     control=ControlConfig(port=0, token=TOKEN)) as server:
        port = server.control.port
        client = await connect(url(server, "/room"))
        await client.send("hello")
        assert await recv(client) == "hello"
        await wait_for(lambda: len(server.hub.registry) == 1)

        # Loopback: no token needed for /metrics.
        status, headers, body = await http_request(port, "GET", "/metrics")
        assert status == 200
        assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert await scrape(port, "wsconsole_connections_open", path="/room") == 1
        # Sampled by the hub (every 50 ms here): wait for the sample that has it.
        async def sampled() -> bool:
            return await scrape(port, "wsconsole_messages_received_total") == 1

        await wait_for(sampled, interval=0.05)

        status, headers, body = await http_request(
            port, "GET", "/metrics", Accept="application/openmetrics-text; version=1.0.0")
        assert status == 200
        assert headers["content-type"].startswith("application/openmetrics-text")
        assert body.endswith(b"# EOF\n")
        assert any(f.name == "wsconsole_connections_opened"
                   for f in parse_openmetrics(body.decode()))

        status, headers, body = await http_request(port, "HEAD", "/metrics")
        assert (status, body) == (200, b"")
        status, headers, _ = await http_request(port, "POST", "/metrics")
        assert status == 405 and "GET" in headers["allow"]

        # A real control request is counted by operation and outcome.
        async with connect(f"ws://127.0.0.1:{port}",
                           additional_headers={"Authorization": f"Bearer {TOKEN}"}) as operator:
            await operator.send(encode_request(1, "stats"))
            reply = parse_message(await recv(operator))
            assert reply.ok
        assert await scrape(port, "wsconsole_control_requests_total",
                            operation="stats", outcome="ok") == 1

        status, headers, body = await http_request(port, "GET", "/healthz")
        assert status == 200 and headers["content-type"].startswith("application/json")
        assert json.loads(body) == {"state": "serving", "connections": 1,
                                    "node": server.hub.node}

        server.close(close_connections=False)  # keep-alive drain: the client stays
        status, _, body = await http_request(port, "GET", "/healthz")
        assert (status, json.loads(body)["state"]) == (503, "draining")
        assert await scrape(port, "wsconsole_server_state", state="draining") == 1
        await client.close()
        async with asyncio.timeout(TIMEOUT):
            await server.wait_closed()


async def test_metrics_need_the_token_off_loopback():
    """On a non-loopback address /metrics answers 401 without the bearer token and
    200 with it, while /healthz stays open to load balancers."""
    from wsconsole.server.config import ControlConfig

    config = ControlConfig(host="0.0.0.0", port=0, token=TOKEN, allow_insecure=True)
    async with serve(echo, "127.0.0.1", 0, control=config) as server:
        port = server.control.port
        status, headers, _ = await http_request(port, "GET", "/metrics")
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        status, _, _ = await http_request(port, "GET", "/metrics",
                                          Authorization="Bearer wrong-token")
        assert status == 401
        status, _, body = await http_request(port, "GET", "/metrics",
                                             Authorization=f"Bearer {TOKEN}")
        assert status == 200 and b"wsconsole_server_state" in body
        status, _, _ = await http_request(port, "GET", "/healthz")
        assert status == 200


async def test_route_templates_from_the_control_config_label_scraped_paths():
    """`wsconsole serve --route /rooms/{name}` (ControlConfig.metrics_route_templates)
    labels open connections by template on the control listener's /metrics."""
    from wsconsole.server.config import ControlConfig

    config = ControlConfig(port=0, token=TOKEN, metrics_route_templates=("/rooms/{name}",))
    async with serve(echo, "127.0.0.1", 0, control=config) as server:
        clients = [await connect(url(server, f"/rooms/r{i}")) for i in range(3)]
        clients.append(await connect(url(server, "/elsewhere")))
        await wait_for(lambda: len(server.hub.registry) == 4)
        port = server.control.port
        assert await scrape(port, "wsconsole_connections_open", path="/rooms/{name}") == 3
        assert await scrape(port, "wsconsole_connections_open", path="other") == 1
        for client in clients:
            await client.close()


async def test_a_scrape_reads_samples_not_connections():
    """Traffic totals and process metrics come from the hub's periodic sample, so
    a scrape costs the same however many connections are open: between two
    samples, a scrape shows the last sample, and the next sample catches up."""
    # No background sampling: this test takes the samples itself.
    async with serve(echo, "127.0.0.1", 0, compression=None, sample_interval=0) as server:
        metrics = Metrics(server.hub)
        client = await connect(url(server, "/a"), compression=None)
        await client.send("x")
        assert await recv(client) == "x"
        server.hub.sampler.sample()
        assert value(metrics, "wsconsole_messages_received_total") == 1
        fds = value(metrics, "process_open_fds")
        await client.send("y")
        assert await recv(client) == "y"
        extra = [await connect(url(server, "/a")) for _ in range(3)]
        # Not sampled yet: the scrape shows the previous sample.
        assert value(metrics, "wsconsole_messages_received_total") == 1
        assert value(metrics, "process_open_fds") == fds
        server.hub.sampler.sample()
        assert value(metrics, "wsconsole_messages_received_total") == 2
        metrics.process.refresh_if_due()  # not due for PROCESS_SAMPLE_SECONDS
        assert value(metrics, "process_open_fds") == fds
        for other in extra + [client]:
            await other.close()
