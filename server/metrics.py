"""Prometheus metrics and the health check of the control listener.

Every wsconsole metric is defined in this module, in :data:`METRICS`, and
nowhere else. The naming rule:

* ``wsconsole_<noun>_<unit>``: the ``wsconsole_`` namespace, then what is
  counted, then the unit, always a base unit (``_seconds``, ``_bytes``); a count
  of things has no unit suffix (``wsconsole_connections_open``).
* Counters end in ``_total`` (``wsconsole_received_bytes_total``).
* Every metric has help text.
* Labels are bounded: never a user id, connection id, query string or raw
  header. A path is a label only through a route template or as one of the
  first ``max_paths`` distinct paths, then ``other``; close codes and HTTP
  statuses outside a known set fall into a class bucket (``4xxx``, ``5xx``) or
  ``other``. Label values known in advance exist from the start at zero.

Cost: nothing here runs per message. A scrape reads the hub's per-code
counters and its sampled traffic totals (summed once a second by the hub's
sampler, :attr:`Sampler.totals`) in :class:`HubCollector`. Open
connections per path label and the two histograms are updated by hub
observer callbacks, which run once per connection opened or closed, per
operator send and per keepalive pong. The process collector, whose
``process_open_fds`` lists ``/proc/self/fd`` (~10 ms at 10,000 sockets), is
re-read every PROCESS_SAMPLE_SECONDS from the hub's sampler
(:class:`SampledCollector`). A scrape therefore costs time in proportion to
the number of label values, never to the number of open connections.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from websockets.frames import CloseCode

from .errors import ERROR_CLASSES
from .limits import ShedLimit
from .cluster.envelope import DropReason  # pure: no redis, no asyncio
from .protocol import AuditState, HubState, NodeHealth
from .wire import OPERATIONS

if TYPE_CHECKING:  # pragma: no cover
    from .control.audit import AuditLog
    from .hub import Hub, SendResult
    from .registry import ConnectionRecord

__all__ = [
    "Metrics",
    "HubCollector",
    "PathLabels",
    "MetricSpec",
    "health",
    "markdown_table",
    "METRICS",
    "NAMESPACE",
    "OTHER",
    "DEFAULT_MAX_PATHS",
    "MAX_PATH_LABEL_LENGTH",
    "CLOSE_CODE_LABELS",
    "STATUS_LABELS",
    "OUTCOME_LABELS",
    "OPERATION_LABELS",
    "STATE_LABELS",
    "SHED_LIMIT_LABELS",
    "ACCEPT_ERROR_LABELS",
    "AUDIT_OUTCOME_LABELS",
    "AUDIT_STATE_LABELS",
    "RECIPIENTS_BUCKETS",
    "LATENCY_BUCKETS",
    "close_code_label",
    "status_label",
    "CONNECTIONS_OPEN",
    "CONNECTIONS_OPENED",
    "CONNECTIONS_CLOSED",
    "MESSAGES_RECEIVED",
    "MESSAGES_SENT",
    "RECEIVED_BYTES",
    "SENT_BYTES",
    "OPERATOR_SENDS",
    "OPERATOR_SEND_RECIPIENTS",
    "SENDS_SKIPPED",
    "HANDSHAKES_REJECTED",
    "HANDSHAKES_IN_PROGRESS",
    "HANDSHAKES_SHED",
    "ACCEPT_ERRORS",
    "SLOW_CONSUMER_DISCONNECTS",
    "KEEPALIVE_LATENCY",
    "CONTROL_REQUESTS",
    "CONTROL_CONNECTIONS_REFUSED",
    "SERVER_STATE",
    "AUDIT_ENTRIES",
    "AUDIT_LOG_STATE",
    "CLUSTER_NODES",
    "CLUSTER_BROKER_UP",
    "CLUSTER_REQUESTS",
    "CLUSTER_REQUEST_DURATION",
    "CLUSTER_MESSAGES_DROPPED",
    "CLUSTER_CROSS_NODE_SENDS",
    "CLUSTER_METRICS",
    "CLUSTER_OUTCOME_LABELS",
    "DROP_REASON_LABELS",
    "HEALTH_LABELS",
    "CLUSTER_DURATION_BUCKETS",
    "ClusterCollector",
]

NAMESPACE = "wsconsole"
"""Prefix of every metric name."""

OTHER = "other"
"""Label value for everything outside a label's bounded set."""

DEFAULT_MAX_PATHS = 50
"""Distinct request paths that get a label of their own when no route templates are set."""

MAX_PATH_LABEL_LENGTH = 128
"""Longer paths are ``other``: a label value is not a place for a client's megabyte."""


@dataclass(frozen=True)
class MetricSpec:
    """Name, type, labels and help of one metric."""

    name: str
    """Full name as exposed (counters include ``_total``)."""
    type: str
    """``counter``, ``gauge`` or ``histogram``."""
    help: str
    """One sentence shown by Prometheus."""
    labels: tuple[str, ...] = ()
    """Label names; each has a bounded set of values."""
    unit: str = ""
    """Base unit (``seconds``, ``bytes``) if the name carries one; OpenMetrics shows it."""


# The metrics. Names follow the rule in the module docstring; the test suite
# checks it, and the README's metrics table is this list rendered by markdown_table().

CONNECTIONS_OPEN = MetricSpec(
    "wsconsole_connections_open", "gauge",
    "Open WebSocket connections, by request path (route template, first paths, or other).",
    ("path",),
)
CONNECTIONS_OPENED = MetricSpec(
    "wsconsole_connections_opened_total", "counter",
    "WebSocket connections whose opening handshake succeeded.",
)
CONNECTIONS_CLOSED = MetricSpec(
    "wsconsole_connections_closed_total", "counter",
    "WebSocket connections closed, by close code (3xxx/4xxx for application codes, "
    "1006 when no close frame was exchanged).",
    ("code",),
)
MESSAGES_RECEIVED = MetricSpec(
    "wsconsole_messages_received_total", "counter",
    "Data messages received from clients.",
)
MESSAGES_SENT = MetricSpec(
    "wsconsole_messages_sent_total", "counter",
    "Data messages sent to clients, by handlers and by operators.",
)
RECEIVED_BYTES = MetricSpec(
    "wsconsole_received_bytes_total", "counter",
    "Bytes received from clients on open WebSocket connections (framing included).",
    unit="bytes",
)
SENT_BYTES = MetricSpec(
    "wsconsole_sent_bytes_total", "counter",
    "Bytes sent to clients on open WebSocket connections (framing included).",
    unit="bytes",
)
OPERATOR_SENDS = MetricSpec(
    "wsconsole_operator_sends_total", "counter",
    "Operator sends (control-plane send or Hub.send), dry runs excluded.",
)
OPERATOR_SEND_RECIPIENTS = MetricSpec(
    "wsconsole_operator_send_recipients", "histogram",
    "Connections matched by each operator send.",
)
SENDS_SKIPPED = MetricSpec(
    "wsconsole_sends_skipped_total", "counter",
    "Recipients of operator sends that were skipped: closing, closed, busy "
    "with a fragmented message, or not writable.",
)
HANDSHAKES_REJECTED = MetricSpec(
    "wsconsole_handshakes_rejected_total", "counter",
    "Opening handshakes refused with an HTTP error status (3xx-5xx) on the "
    "WebSocket port, by status; health checks are not counted.",
    ("status",),
)
HANDSHAKES_IN_PROGRESS = MetricSpec(
    "wsconsole_handshakes_in_progress", "gauge",
    "TCP connections accepted on the WebSocket port whose opening handshake has not "
    "ended yet.",
)
HANDSHAKES_SHED = MetricSpec(
    "wsconsole_handshakes_shed_total", "counter",
    "TCP connections closed as soon as accepted (HTTP 503) because max_handshakes "
    "(limit=total) or max_handshakes_per_address from one address (limit=per_address) "
    "were in progress.",
    ("limit",),
)
ACCEPT_ERRORS = MetricSpec(
    "wsconsole_accept_errors_total", "counter",
    "Failures to accept a TCP connection for lack of resources, on either port, by "
    "error: EMFILE (the process's open-file limit), ENFILE (the system's), ENOBUFS, "
    "ENOMEM.",
    ("error",),
)
SLOW_CONSUMER_DISCONNECTS = MetricSpec(
    "wsconsole_slow_consumer_disconnects_total", "counter",
    "Connections closed with 1008 because their write buffer passed the slow-consumer limit.",
)
KEEPALIVE_LATENCY = MetricSpec(
    "wsconsole_keepalive_latency_seconds", "histogram",
    "Round-trip time from a keepalive ping to its pong.",
    unit="seconds",
)
CONTROL_REQUESTS = MetricSpec(
    "wsconsole_control_requests_total", "counter",
    "Control-plane requests, by operation and outcome (ok or an error code).",
    ("operation", "outcome"),
)
CONTROL_CONNECTIONS_REFUSED = MetricSpec(
    "wsconsole_control_connections_refused_total", "counter",
    "Control handshakes refused with HTTP 503 because max_connections control "
    "connections were open.",
)
SERVER_STATE = MetricSpec(
    "wsconsole_server_state", "gauge",
    f"1 for the server's current state ({', '.join(HubState)}), 0 for the others.",
    ("state",),
)
AUDIT_ENTRIES = MetricSpec(
    "wsconsole_audit_entries_total", "counter",
    "Audit log lines, by outcome: written, or failed (not written; an accepted "
    "request whose line failed was refused with audit_failed).",
    ("outcome",),
)
AUDIT_LOG_STATE = MetricSpec(
    "wsconsole_audit_log_state", "gauge",
    f"1 for the audit log's current state ({', '.join(AuditState)}), 0 for the others; "
    "failing means mutating requests are refused.",
    ("state",),
)

# Cluster mode only (wsconsole serve --redis): each node exposes its own view.

CLUSTER_NODES = MetricSpec(
    "wsconsole_cluster_nodes", "gauge",
    "Cluster mode: nodes this node knows (itself included), by health (live, suspect, "
    "gone) and state (serving, draining, stopped).",
    ("health", "state"),
)
CLUSTER_BROKER_UP = MetricSpec(
    "wsconsole_cluster_broker_up", "gauge",
    "Cluster mode: 1 while this node is connected to Redis, 0 while it serves "
    "locally and tries again.",
)
CLUSTER_REQUESTS = MetricSpec(
    "wsconsole_cluster_requests_total", "counter",
    "Cluster mode: requests this node sent to other nodes for its operators, by "
    "operation and outcome: full (every node asked answered) or partial (some were "
    "named missing).",
    ("operation", "outcome"),
)
CLUSTER_REQUEST_DURATION = MetricSpec(
    "wsconsole_cluster_request_duration_seconds", "histogram",
    "Cluster mode: time from sending a cluster request to its last answer or its "
    "deadline, by operation.",
    ("operation",),
    unit="seconds",
)
CLUSTER_MESSAGES_DROPPED = MetricSpec(
    "wsconsole_cluster_messages_dropped_total", "counter",
    "Cluster mode: messages from the broker that were not acted on, by reason "
    "(bad_signature and replayed: forged; malformed, oversized, foreign, "
    "other_cluster, stale; overloaded: too many requests at once).",
    ("reason",),
)
CLUSTER_CROSS_NODE_SENDS = MetricSpec(
    "wsconsole_cluster_cross_node_sends_total", "counter",
    "Cluster mode: sends (by the application or operators) that went to other nodes too.",
)

CLUSTER_METRICS: tuple[MetricSpec, ...] = (
    CLUSTER_NODES,
    CLUSTER_BROKER_UP,
    CLUSTER_REQUESTS,
    CLUSTER_REQUEST_DURATION,
    CLUSTER_MESSAGES_DROPPED,
    CLUSTER_CROSS_NODE_SENDS,
)
"""The metrics a node exposes in cluster mode only (also in :data:`METRICS`)."""

METRICS: tuple[MetricSpec, ...] = (
    CONNECTIONS_OPEN,
    CONNECTIONS_OPENED,
    CONNECTIONS_CLOSED,
    MESSAGES_RECEIVED,
    MESSAGES_SENT,
    RECEIVED_BYTES,
    SENT_BYTES,
    OPERATOR_SENDS,
    OPERATOR_SEND_RECIPIENTS,
    SENDS_SKIPPED,
    HANDSHAKES_REJECTED,
    HANDSHAKES_IN_PROGRESS,
    HANDSHAKES_SHED,
    ACCEPT_ERRORS,
    SLOW_CONSUMER_DISCONNECTS,
    KEEPALIVE_LATENCY,
    CONTROL_REQUESTS,
    CONTROL_CONNECTIONS_REFUSED,
    SERVER_STATE,
    AUDIT_ENTRIES,
    AUDIT_LOG_STATE,
    *CLUSTER_METRICS,
)
"""Every wsconsole metric, in exposition order."""


# Bounded label sets.

CLOSE_CODE_LABELS: tuple[str, ...] = (
    *(str(int(code)) for code in sorted(CloseCode)),
    "3xxx",
    "4xxx",
    OTHER,
)
"""Values of the ``code`` label: RFC 6455 codes, application code ranges, other."""

_KNOWN_CLOSE_CODES = frozenset(int(code) for code in CloseCode)


def close_code_label(code: int) -> str:
    """The bounded label value of a close code."""
    if code in _KNOWN_CLOSE_CODES:
        return str(code)
    if 3000 <= code <= 3999:
        return "3xxx"
    if 4000 <= code <= 4999:
        return "4xxx"
    return OTHER


_KNOWN_STATUSES = (200, 400, 401, 403, 404, 405, 426, 429, 500, 503)

STATUS_LABELS: tuple[str, ...] = (
    *(str(status) for status in _KNOWN_STATUSES),
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    OTHER,
)
"""Values of the ``status`` label: common statuses, then status classes, then other."""


def status_label(status: int) -> str:
    """The bounded label value of an HTTP status."""
    if status in _KNOWN_STATUSES:
        return str(status)
    if 200 <= status <= 599:
        return f"{status // 100}xx"
    return OTHER


OPERATION_LABELS: tuple[str, ...] = (*OPERATIONS, OTHER)
"""Values of the ``operation`` label: the wire format's operations, then other."""


OUTCOME_LABELS: tuple[str, ...] = ("ok", *sorted(ERROR_CLASSES), OTHER)
"""Values of the ``outcome`` label: ok, every stable error code, then other."""

STATE_LABELS: tuple[str, ...] = tuple(HubState)
"""Values of the ``state`` label of the server state."""

SHED_LIMIT_LABELS: tuple[str, ...] = tuple(ShedLimit)
"""Values of the ``limit`` label of shed handshakes."""

ACCEPT_ERROR_LABELS: tuple[str, ...] = ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", OTHER)
"""Values of the ``error`` label of accept failures: the errors asyncio's accept
loop treats as exhaustion, then other."""


def _accept_error_label(name: str) -> str:
    return name if name in ACCEPT_ERROR_LABELS else OTHER


AUDIT_OUTCOME_LABELS: tuple[str, ...] = ("written", "failed")
"""Values of the ``outcome`` label of audit lines."""

AUDIT_STATE_LABELS: tuple[str, ...] = tuple(AuditState)
"""Values of the ``state`` label of the audit log's state."""

CLUSTER_OUTCOME_LABELS: tuple[str, ...] = ("full", "partial")
"""Values of ``outcome`` for cluster requests."""
DROP_REASON_LABELS: tuple[str, ...] = tuple(DropReason)
"""Values of ``reason`` for dropped cluster messages."""
HEALTH_LABELS: tuple[str, ...] = tuple(NodeHealth)
"""Values of ``health`` for cluster nodes."""
CLUSTER_DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Cluster request durations, in seconds: a local round trip is about 1 ms; the
deadlines are 2 s (reads) and 5 s (actions), at most 60 s."""

RECIPIENTS_BUCKETS: tuple[float, ...] = (
    0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
)
"""Upper bounds of the recipients histogram (a broadcast can reach everyone)."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
"""Upper bounds of the keepalive latency histogram, in seconds."""


class PathLabels:
    """Maps a request path to a bounded ``path`` label value.

    With route templates, a path gets the first template it matches
    (``/rooms/{name}`` matches ``/rooms/x`` but not ``/rooms/x/y``), else
    ``other``. Without, each of the first ``max_paths`` distinct paths seen is
    its own label, and every later one is ``other``. Once given, a path's
    label never changes, so a connection's close is counted where its open was.
    """

    _PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

    def __init__(self, route_templates: Sequence[str] | None = None,
                 max_paths: int = DEFAULT_MAX_PATHS) -> None:
        if isinstance(route_templates, str):
            raise TypeError("route_templates must be a sequence of strings, not a string")
        if not isinstance(max_paths, int) or isinstance(max_paths, bool) or max_paths < 0:
            raise ValueError("max_paths must be a non-negative integer")
        self.templates: tuple[str, ...] = tuple(route_templates or ())
        """The route templates, in matching order."""
        self.max_paths = max_paths
        """Distinct paths labelled individually when there are no templates."""
        self._patterns = [(t, self._compile(t)) for t in self.templates]
        # Only ever holds up to max_paths entries: the memory stays bounded too.
        self._seen: dict[str, str] = {}

    @classmethod
    def _compile(cls, template: str) -> re.Pattern[str]:
        if not isinstance(template, str) or not template.startswith("/"):
            raise ValueError(f"a route template must be a string starting with '/': {template!r}")
        literals = cls._PLACEHOLDER.split(template)[::2]
        if any("{" in literal or "}" in literal for literal in literals):
            raise ValueError(f"bad placeholder in route template {template!r}; use {{name}}")
        # A placeholder is one path segment: /rooms/{name} never matches /rooms/a/b.
        return re.compile("[^/]+".join(re.escape(literal) for literal in literals))

    def initial(self) -> tuple[str, ...]:
        """The label values known before any connection: templates and ``other``."""
        return (*self.templates, OTHER)

    def label(self, path: str) -> str:
        """The label value of a request path (without its query string)."""
        if self._patterns:
            for template, pattern in self._patterns:
                if pattern.fullmatch(path):
                    return template
            return OTHER
        label = self._seen.get(path)
        if label is not None:
            return label
        if (len(self._seen) < self.max_paths and path.startswith("/")
                and len(path) <= MAX_PATH_LABEL_LENGTH):
            self._seen[path] = path
            return path
        return OTHER


class _Histogram:
    """Bucket counts and a sum; observed from the event loop, read by scrapes."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf only
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative buckets (``le`` bound, count), +Inf last, and the sum."""
        counts, total_sum = list(self.counts), self.sum
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, count in zip(self.bounds, counts):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        buckets.append(("+Inf", cumulative + counts[-1]))
        return buckets, total_sum

    def family(self, spec: MetricSpec) -> HistogramMetricFamily:
        buckets, total_sum = self.cumulative()
        return HistogramMetricFamily(spec.name, spec.help, buckets=buckets,
                                     sum_value=total_sum, unit=spec.unit)


def _counter(spec: MetricSpec, value: float | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(spec.name, spec.help, value=value,
                               labels=None if value is not None else spec.labels,
                               unit=spec.unit)


def _gauge(spec: MetricSpec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels, unit=spec.unit)


def _gauge_value(spec: MetricSpec, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, value=value, unit=spec.unit)


def _bucketed(counts: Iterable[tuple[Any, int]], initial: Iterable[str],
              label: Any) -> dict[str, int]:
    totals = dict.fromkeys(initial, 0)
    for key, count in counts:
        name = label(key)
        totals[name] = totals.get(name, 0) + count
    return totals


class HubCollector(Collector):
    """Reads a hub's counters at scrape time and yields the wsconsole metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        hub = metrics.hub
        # Sampled by the hub once a second: a scrape never walks the connections.
        totals = hub.sampler.totals

        open_family = _gauge(CONNECTIONS_OPEN)
        for path, count in list(metrics.open_by_path.items()):
            open_family.add_metric([path], count)
        yield open_family

        yield _counter(CONNECTIONS_OPENED, hub.opened_total)

        closed = _counter(CONNECTIONS_CLOSED)
        # list(): a snapshot, in case a scrape runs in a thread beside the loop.
        by_code = _bucketed(list(hub.closed_by_code.items()), CLOSE_CODE_LABELS,
                            close_code_label)
        for code, count in by_code.items():
            closed.add_metric([code], count)
        yield closed

        yield _counter(MESSAGES_RECEIVED, totals.msgs_in)
        yield _counter(MESSAGES_SENT, totals.msgs_out)
        yield _counter(RECEIVED_BYTES, totals.bytes_in)
        yield _counter(SENT_BYTES, totals.bytes_out)
        yield _counter(OPERATOR_SENDS, hub.operator_sends)
        yield metrics.recipients.family(OPERATOR_SEND_RECIPIENTS)
        yield _counter(SENDS_SKIPPED, metrics.sends_skipped)

        rejected = _counter(HANDSHAKES_REJECTED)
        by_status = _bucketed(list(hub.rejected_by_status.items()), STATUS_LABELS,
                              status_label)
        for status, count in by_status.items():
            rejected.add_metric([status], count)
        yield rejected

        yield _gauge_value(HANDSHAKES_IN_PROGRESS, hub.handshakes.in_progress)
        shed = _counter(HANDSHAKES_SHED)
        for limit in SHED_LIMIT_LABELS:
            shed.add_metric([limit], hub.handshakes.shed[limit])
        yield shed
        accept_errors = _counter(ACCEPT_ERRORS)
        for name, count in _bucketed(list(hub.accept_errors.items()), ACCEPT_ERROR_LABELS,
                                     _accept_error_label).items():
            accept_errors.add_metric([name], count)
        yield accept_errors

        yield _counter(SLOW_CONSUMER_DISCONNECTS, hub.slow_consumer_disconnects)
        yield metrics.latency.family(KEEPALIVE_LATENCY)

        requests = _counter(CONTROL_REQUESTS)
        by_request: Counter[tuple[str, str]] = Counter(
            {(op, "ok"): 0 for op in OPERATIONS}
        )
        for (op, outcome), count in list(hub.control_requests.items()):
            key = (op if op in OPERATIONS else OTHER,
                   outcome if outcome in OUTCOME_LABELS else OTHER)
            by_request[key] += count
        for (op, outcome), count in by_request.items():
            requests.add_metric([op, outcome], count)
        yield requests
        yield _counter(CONTROL_CONNECTIONS_REFUSED, hub.control_connections_refused)

        state = _gauge(SERVER_STATE)
        for name in STATE_LABELS:
            state.add_metric([name], 1 if hub.state == name else 0)
        yield state

        audit = metrics.audit.status() if metrics.audit is not None else None
        entries = _counter(AUDIT_ENTRIES)
        entries.add_metric(["written"], audit.entries_written if audit else 0)
        entries.add_metric(["failed"], audit.entries_failed if audit else 0)
        yield entries
        audit_state = _gauge(AUDIT_LOG_STATE)
        current = audit.state if audit else AuditState.DISABLED
        for name in AUDIT_STATE_LABELS:
            audit_state.add_metric([name], 1 if current == name else 0)
        yield audit_state


class ClusterCollector(Collector):
    """Cluster mode: reads the node's ClusterFleet at scrape time (its node table,
    broker state and counters) and the request counts Metrics kept."""

    def __init__(self, metrics: Metrics, fleet: Any) -> None:
        self._metrics = metrics
        self._fleet = fleet

    def collect(self) -> Iterator[Metric]:
        fleet, metrics = self._fleet, self._metrics
        nodes = _gauge(CLUSTER_NODES)
        counts: Counter[tuple[str, str]] = Counter(
            {(health, state): 0 for health in HEALTH_LABELS for state in STATE_LABELS})
        counts[(NodeHealth.LIVE, str(fleet.state))] += 1  # this node
        for member in list(fleet.table.members()):
            state = member.entry.get("state")
            counts[(str(member.health),
                    state if state in STATE_LABELS else HubState.SERVING)] += 1
        for (health, state), count in counts.items():
            nodes.add_metric([health, state], count)
        yield nodes
        yield _gauge_value(CLUSTER_BROKER_UP, 1 if fleet.broker_up else 0)

        requests = _counter(CLUSTER_REQUESTS)
        for (op, outcome), count in list(metrics.cluster_requests.items()):
            requests.add_metric([op, outcome], count)
        yield requests
        durations = HistogramMetricFamily(
            CLUSTER_REQUEST_DURATION.name, CLUSTER_REQUEST_DURATION.help,
            labels=CLUSTER_REQUEST_DURATION.labels, unit=CLUSTER_REQUEST_DURATION.unit)
        for op, histogram in list(metrics.cluster_durations.items()):
            buckets, total = histogram.cumulative()
            durations.add_metric([op], buckets, total)
        yield durations

        dropped = _counter(CLUSTER_MESSAGES_DROPPED)
        by_reason = dict.fromkeys(DROP_REASON_LABELS, 0)
        for reason, count in list(fleet.dropped.items()):
            key = reason if reason in by_reason else OTHER
            by_reason[key] = by_reason.get(key, 0) + count
        for reason, count in by_reason.items():
            dropped.add_metric([reason], count)
        yield dropped
        yield _counter(CLUSTER_CROSS_NODE_SENDS, fleet.cross_node_sends)


PROCESS_SAMPLE_SECONDS = 5.0
"""How often the process metrics (CPU, memory, open fds) are re-read."""


class SampledCollector(Collector):
    """Another collector's output, re-collected at most every ``interval`` seconds
    (by :meth:`refresh_if_due`, called from the hub's sampler) and served from
    that sample at scrape time."""

    def __init__(self, inner: Collector, interval: float) -> None:
        self._inner = inner
        self._interval = interval
        self._sample: list[Metric] | None = None
        self._taken = 0.0

    def refresh_if_due(self) -> None:
        now = time.monotonic()
        if self._sample is None or now - self._taken >= self._interval:
            self._sample = list(self._inner.collect())
            self._taken = now

    def collect(self) -> Iterator[Metric]:
        if self._sample is None:
            self.refresh_if_due()
        return iter(self._sample or ())


class Metrics:
    """The metrics of one hub: a registry of our own, and its exposition.

    Create it once per hub (it registers itself as a hub observer); the
    control listener calls :meth:`render` for ``GET /metrics``.
    """

    def __init__(self, hub: Hub, *, route_templates: Sequence[str] | None = None,
                 max_paths: int = DEFAULT_MAX_PATHS, audit: AuditLog | None = None,
                 cluster: Any = None) -> None:
        self.hub = hub
        """The hub whose counters are exposed."""
        self.audit = audit
        """The control listener's audit log, whose state and counts are exposed (if any)."""
        self.paths = PathLabels(route_templates, max_paths)
        """How request paths become ``path`` label values."""
        self.open_by_path: dict[str, int] = dict.fromkeys(self.paths.initial(), 0)
        """Open connections per path label, kept by the observer callbacks."""
        self.recipients = _Histogram(RECIPIENTS_BUCKETS)
        """Recipients per operator send."""
        self.latency = _Histogram(LATENCY_BUCKETS)
        """Keepalive round trips, in seconds."""
        self.sends_skipped = 0
        """Recipients skipped by operator sends since this object was created."""
        self.registry = CollectorRegistry()
        """Our own registry: wsconsole, process and platform metrics, nothing global."""
        # process_open_fds lists /proc/self/fd: ~10 ms with 10,000 sockets. It
        # is refreshed beside the hub's sampling instead of inside a scrape.
        self.process = SampledCollector(ProcessCollector(registry=None),
                                        PROCESS_SAMPLE_SECONDS)
        """The process collector's last sample (refreshed every few seconds)."""
        self.registry.register(self.process)
        PlatformCollector(registry=self.registry)
        self.collector = HubCollector(self)
        """The wsconsole metrics alone (without the process and platform ones)."""
        self.registry.register(self.collector)
        self.cluster_requests: Counter[tuple[str, str]] = Counter()
        """Cluster requests by (operation label, outcome), kept by :meth:`on_cluster_request`."""
        self.cluster_durations: dict[str, _Histogram] = {}
        """Cluster request durations by operation label."""
        if cluster is not None:
            # Label values known in advance exist from the start, at zero.
            for op in OPERATIONS:
                self.cluster_durations[op] = _Histogram(CLUSTER_DURATION_BUCKETS)
                for outcome in CLUSTER_OUTCOME_LABELS:
                    self.cluster_requests[(op, outcome)] = 0
            self.registry.register(ClusterCollector(self, cluster))
            cluster.request_observers.append(self.on_cluster_request)
        # Connections opened before we were created: count them once, here, so
        # their closes do not drive a gauge below zero.
        for path, count in hub.registry.path_counts().items():
            self._add_open(path, count)
        hub.add_observer(self)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """Body and Content-Type: OpenMetrics when `accept` asks for
        application/openmetrics-text, else Prometheus text 0.0.4."""
        # prometheus_client's own negotiation, as its HTTP server does it.
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    # Hub observer callbacks: once per connection or operation, never per message.

    def on_sample(self) -> None:
        """The hub sampled its connections: refresh the process metrics if due."""
        self.process.refresh_if_due()

    def on_opened(self, record: ConnectionRecord) -> None:
        """A connection was registered."""
        self._add_open(record.path, 1)

    def on_closed(self, record: ConnectionRecord, code: int) -> None:
        """A connection was forgotten (its close is counted by the hub)."""
        self._add_open(record.path, -1)

    def on_send(self, result: SendResult) -> None:
        """An operator send ran (dry runs are not reported)."""
        self.recipients.observe(result.recipients)
        self.sends_skipped += result.skipped

    def on_latency(self, seconds: float) -> None:
        """A keepalive pong arrived."""
        self.latency.observe(seconds)

    def on_cluster_request(self, op: str, partial: bool, seconds: float) -> None:
        """A cluster request ended (its last answer or its deadline)."""
        label = op if op in OPERATIONS else OTHER
        self.cluster_requests[(label, "partial" if partial else "full")] += 1
        histogram = self.cluster_durations.get(label)
        if histogram is None:
            histogram = self.cluster_durations[label] = _Histogram(CLUSTER_DURATION_BUCKETS)
        histogram.observe(seconds)

    def _add_open(self, path: str, delta: int) -> None:
        label = self.paths.label(path)
        self.open_by_path[label] = self.open_by_path.get(label, 0) + delta


def health(hub: Hub, audit: AuditLog | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body): 200 with {"state": "serving", "connections": N, "node": ...}
    while serving; 503 while draining or stopped, so a load balancer stops sending clients.

    With an audit file, the body has its detail too (state, counts, last error;
    not its path: /healthz needs no token). A failing audit log does not change
    the status: the public server still serves; only operators' actions are refused.
    """
    body: dict[str, Any] = {"state": hub.state, "connections": len(hub.registry),
                            "node": hub.node}
    if audit is not None and audit.path is not None:
        body["audit"] = audit.status().as_dict(with_path=False)
    return (200 if hub.state == HubState.SERVING else 503), body


def markdown_table() -> str:
    """The metrics table of the README (a test keeps the two equal)."""
    lines = ["| Name | Type | Labels | Help |", "| --- | --- | --- | --- |"]
    for spec in METRICS:
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
        lines.append(f"| `{spec.name}` | {spec.type} | {labels} | {spec.help} |")
    return "\n".join(lines) + "\n"
