"""The Grafana dashboard of wsconsole, generated from the metric definitions.

``wsconsole dashboard > dashboards/wsconsole.json`` (or ``python -m
wsconsole.server.dashboard``) writes it; a test keeps the committed file equal
to what :func:`dashboard_json` produces, parses every query, and evaluates
them all in a real Prometheus scraping real servers.

Every query is built from a :class:`~wsconsole.server.metrics.MetricSpec` by
a builder that knows what the metric's type allows: :func:`rate` takes a
counter, :func:`gauge` a gauge, :func:`quantile` and :func:`mean` a
histogram, and every label a query groups or filters by must be one of the
metric's own (or ``instance``, ``job``). So a metric renamed, retyped or
relabelled in ``metrics.py`` changes the dashboard or stops its generation;
each panel's description is the help text of the metrics it shows.

A node of the fleet is a Prometheus target (``instance``): one per control
listener. The dashboard has three variables: the Prometheus data source,
the ``job`` and the nodes (``instance``, several or all).

Pure: definitions in, JSON out; no asyncio, no sockets. Must never import
textual or ``wsconsole.console``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from .metrics import (
    ACCEPT_ERRORS,
    AUDIT_ENTRIES,
    AUDIT_LOG_STATE,
    CLUSTER_BROKER_UP,
    CLUSTER_CROSS_NODE_SENDS,
    CLUSTER_MESSAGES_DROPPED,
    CLUSTER_NODES,
    CLUSTER_REQUEST_DURATION,
    CLUSTER_REQUESTS,
    CONNECTIONS_CLOSED,
    CONNECTIONS_OPEN,
    CONNECTIONS_OPENED,
    CONTROL_CONNECTIONS_REFUSED,
    CONTROL_REQUESTS,
    HANDSHAKES_IN_PROGRESS,
    HANDSHAKES_REJECTED,
    HANDSHAKES_SHED,
    KEEPALIVE_LATENCY,
    MESSAGES_RECEIVED,
    MESSAGES_SENT,
    OPERATOR_SEND_RECIPIENTS,
    OPERATOR_SENDS,
    RECEIVED_BYTES,
    SENDS_SKIPPED,
    SENT_BYTES,
    SERVER_STATE,
    SLOW_CONSUMER_DISCONNECTS,
    MetricSpec,
)

__all__ = [
    "Query",
    "Target",
    "Panel",
    "Row",
    "ROWS",
    "UID",
    "TITLE",
    "RATE_INTERVAL",
    "TARGET_LABELS",
    "VARIABLES",
    "rate",
    "gauge",
    "quantile",
    "mean",
    "dashboard",
    "dashboard_json",
    "panels",
    "main",
]

UID = "wsconsole"
"""The dashboard's uid: importing it again replaces it instead of adding a copy."""
TITLE = "wsconsole"

RATE_INTERVAL = "$__rate_interval"
"""Grafana's range for rate(): at least four scrape intervals."""

TARGET_LABELS: tuple[str, ...] = ("job", "instance")
"""Labels Prometheus adds to every scraped series; a node is an ``instance``."""

_SCOPE = 'job=~"$job", instance=~"$node"'
"""Every selector's matchers: the dashboard's job and node variables."""

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Query:
    """One PromQL expression and the metrics it reads."""

    expr: str
    metrics: tuple[MetricSpec, ...]

    def nonzero(self) -> Query:
        """Only the series above zero: a breakdown by a label with many values
        (close codes, statuses) shows the ones that happened, not a line per value."""
        return Query(f"{self.expr} > 0", self.metrics)


def _check_type(spec: MetricSpec, *types: str) -> None:
    if spec.type not in types:
        raise ValueError(f"{spec.name} is a {spec.type}; this query needs a {' or '.join(types)}")


def _check_labels(spec: MetricSpec, labels: Sequence[str]) -> None:
    unknown = [label for label in labels
               if label not in spec.labels and label not in TARGET_LABELS]
    if unknown:
        raise ValueError(f"{spec.name} has no label {', '.join(unknown)} "
                         f"(its labels: {', '.join(spec.labels) or 'none'})")


def _selector(spec: MetricSpec, suffix: str = "",
              where: Sequence[tuple[str, str, str]] = ()) -> str:
    _check_labels(spec, [label for label, _, _ in where])
    matchers = "".join(f', {label}{op}"{value}"' for label, op, value in where)
    return f"{spec.name}{suffix}{{{_SCOPE}{matchers}}}"


def _aggregate(operator: str, by: Sequence[str]) -> str:
    """``sum`` or ``sum by (a, b) ``: what goes before the aggregated expression's parenthesis."""
    return f"{operator} by ({', '.join(by)}) " if by else operator


def rate(spec: MetricSpec, by: Sequence[str] = (),
         where: Sequence[tuple[str, str, str]] = ()) -> Query:
    """Per second, summed by ``by``: ``sum by (...) (rate(counter{...}[...]))``."""
    _check_type(spec, "counter")
    _check_labels(spec, by)
    return Query(f"{_aggregate('sum', by)}(rate({_selector(spec, where=where)}[{RATE_INTERVAL}]))",
                 (spec,))


def gauge(spec: MetricSpec, aggregate: str = "sum", by: Sequence[str] = (),
          where: Sequence[tuple[str, str, str]] = ()) -> Query:
    """A gauge aggregated over nodes: ``sum``, or ``min``/``max`` for each node's
    own view of the same thing (cluster mode)."""
    _check_type(spec, "gauge")
    _check_labels(spec, by)
    if aggregate not in ("sum", "min", "max"):
        raise ValueError(f"unknown aggregation {aggregate!r}")
    return Query(f"{_aggregate(aggregate, by)}({_selector(spec, where=where)})", (spec,))


def quantile(spec: MetricSpec, q: float, by: Sequence[str] = ()) -> Query:
    """The ``q`` quantile of a histogram over the nodes selected, per ``by``."""
    _check_type(spec, "histogram")
    _check_labels(spec, by)
    if not 0 < q < 1:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    return Query(f"histogram_quantile({q:g}, sum by ({', '.join(('le', *by))}) "
                 f"(rate({_selector(spec, '_bucket')}[{RATE_INTERVAL}])))", (spec,))


def mean(spec: MetricSpec, by: Sequence[str] = ()) -> Query:
    """A histogram's mean observation: rate of its sum over rate of its count."""
    _check_type(spec, "histogram")
    _check_labels(spec, by)
    return Query(f"{_aggregate('sum', by)}(rate({_selector(spec, '_sum')}[{RATE_INTERVAL}])) / "
                 f"{_aggregate('sum', by)}(rate({_selector(spec, '_count')}[{RATE_INTERVAL}]))",
                 (spec,))


@dataclass(frozen=True)
class Target:
    """One query of a panel and its legend (``{{label}}`` is a label's value)."""

    query: Query
    legend: str


@dataclass(frozen=True)
class Panel:
    """A time series (or a stat) panel."""

    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    """A Grafana unit id: ``short``, ``cps`` (per second), ``Bps``, ``s``."""
    kind: str = "timeseries"
    """``timeseries`` or ``stat``."""
    width: int = 8
    """Of the dashboard's 24 columns."""
    note: str = ""
    """A sentence of the description before the metrics' help."""

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        """The metrics it reads, each once, in order."""
        return tuple(dict.fromkeys(spec for t in self.targets for spec in t.query.metrics))

    def description(self) -> str:
        lines = [self.note] if self.note else []
        lines += [f"{spec.name} ({spec.type}): {spec.help}" for spec in self.metrics]
        return "\n\n".join(lines)


@dataclass(frozen=True)
class Row:
    """A titled row of panels; ``collapsed`` rows open on a click."""

    title: str
    panels: tuple[Panel, ...]
    collapsed: bool = False


ROWS: tuple[Row, ...] = (
    Row("Overview", (
        Panel("Open connections", (Target(gauge(CONNECTIONS_OPEN), "open"),),
              kind="stat", width=4),
        Panel("Connects per second", (Target(rate(CONNECTIONS_OPENED), "connects"),),
              unit="cps", kind="stat", width=4),
        Panel("Messages in per second", (Target(rate(MESSAGES_RECEIVED), "in"),),
              unit="cps", kind="stat", width=4),
        Panel("Messages out per second", (Target(rate(MESSAGES_SENT), "out"),),
              unit="cps", kind="stat", width=4),
        Panel("Nodes by server state",
              (Target(gauge(SERVER_STATE, by=("state",)), "{{state}}"),),
              kind="stat", width=4),
        Panel("Nodes by audit log state",
              (Target(gauge(AUDIT_LOG_STATE, by=("state",)), "{{state}}"),),
              kind="stat", width=4,
              note="failing: the node refuses operators' mutating requests."),
    )),
    Row("Connections", (
        Panel("Open connections by node and path",
              (Target(gauge(CONNECTIONS_OPEN, by=("instance", "path")), "{{instance}} {{path}}"),),
              width=12),
        Panel("Connects and closes by close code", (
            Target(rate(CONNECTIONS_OPENED), "connects"),
            Target(rate(CONNECTIONS_CLOSED, by=("code",)).nonzero(), "close {{code}}"),
        ), unit="cps", width=12,
            note="1006: no close frame (the client vanished); 1008 includes slow consumers."),
    )),
    Row("Traffic", (
        Panel("Messages per second, in and out", (
            Target(rate(MESSAGES_RECEIVED, by=("instance",)), "{{instance}} in"),
            Target(rate(MESSAGES_SENT, by=("instance",)), "{{instance}} out"),
        ), unit="cps", width=12),
        Panel("Bytes per second, in and out", (
            Target(rate(RECEIVED_BYTES, by=("instance",)), "{{instance}} in"),
            Target(rate(SENT_BYTES, by=("instance",)), "{{instance}} out"),
        ), unit="Bps", width=12),
    )),
    Row("Operators and slow consumers", (
        Panel("Operator sends and skipped recipients", (
            Target(rate(OPERATOR_SENDS), "sends"),
            Target(rate(SENDS_SKIPPED), "skipped recipients"),
        ), unit="cps"),
        Panel("Recipients per operator send", (
            Target(quantile(OPERATOR_SEND_RECIPIENTS, 0.5), "p50"),
            Target(quantile(OPERATOR_SEND_RECIPIENTS, 0.99), "p99"),
            Target(mean(OPERATOR_SEND_RECIPIENTS), "mean"),
        ), note="Quantiles are estimated within the histogram's buckets."),
        Panel("Slow-consumer closes",
              (Target(rate(SLOW_CONSUMER_DISCONNECTS, by=("instance",)), "{{instance}}"),),
              unit="cps"),
    )),
    Row("Handshakes and limits", (
        Panel("Rejected handshakes by status",
              (Target(rate(HANDSHAKES_REJECTED, by=("status",)).nonzero(), "{{status}}"),),
              unit="cps"),
        Panel("Handshakes in progress",
              (Target(gauge(HANDSHAKES_IN_PROGRESS, by=("instance",)), "{{instance}}"),)),
        Panel("Handshakes shed and accept errors", (
            Target(rate(HANDSHAKES_SHED, by=("limit",)), "shed: {{limit}}"),
            Target(rate(ACCEPT_ERRORS, by=("error",)), "accept: {{error}}"),
        ), unit="cps", note="Zero while the node has the sockets and handshakes it needs."),
    )),
    Row("Keepalive", (
        Panel("Keepalive latency quantiles", (
            Target(quantile(KEEPALIVE_LATENCY, 0.5), "p50"),
            Target(quantile(KEEPALIVE_LATENCY, 0.9), "p90"),
            Target(quantile(KEEPALIVE_LATENCY, 0.99), "p99"),
        ), unit="s", width=12),
        Panel("Keepalive latency p99 by node",
              (Target(quantile(KEEPALIVE_LATENCY, 0.99, by=("instance",)), "{{instance}}"),),
              unit="s", width=12),
    )),
    Row("Control plane", (
        Panel("Control-plane requests by operation",
              (Target(rate(CONTROL_REQUESTS, by=("operation",)).nonzero(), "{{operation}}"),),
              unit="reqps"),
        Panel("Control-plane errors", (
            Target(rate(CONTROL_REQUESTS, by=("operation", "outcome"),
                    where=(("outcome", "!=", "ok"),)).nonzero(), "{{operation}}: {{outcome}}"),
            Target(rate(CONTROL_CONNECTIONS_REFUSED), "connections refused"),
        ), unit="reqps"),
        Panel("Audit log lines",
              (Target(rate(AUDIT_ENTRIES, by=("outcome",)), "{{outcome}}"),),
              unit="cps"),
    )),
    Row("Cluster", (
        Panel("Cluster nodes by health and state", (
            Target(gauge(CLUSTER_NODES, "max", by=("health", "state")).nonzero(),
               "{{health}} {{state}}"),
        ), note="Each node counts the nodes it knows; this is the most any selected node sees."),
        Panel("Broker up, by node",
              (Target(gauge(CLUSTER_BROKER_UP, "min", by=("instance",)), "{{instance}}"),),
              note="0: the node lost Redis and serves locally while it tries again."),
        Panel("Cluster requests: full and partial answers", (
            Target(rate(CLUSTER_REQUESTS, by=("outcome",)), "{{outcome}}"),
            Target(rate(CLUSTER_REQUESTS, by=("operation",),
                    where=(("outcome", "=", "partial"),)).nonzero(), "partial: {{operation}}"),
        ), unit="reqps", note="Partial: some nodes asked were named missing in the answer."),
        Panel("Cluster request duration p99 by operation",
              (Target(quantile(CLUSTER_REQUEST_DURATION, 0.99, by=("operation",)),
                  "{{operation}}"),), unit="s"),
        Panel("Broker messages dropped by reason",
              (Target(rate(CLUSTER_MESSAGES_DROPPED, by=("reason",)).nonzero(), "{{reason}}"),),
              unit="cps"),
        Panel("Cross-node sends",
              (Target(rate(CLUSTER_CROSS_NODE_SENDS, by=("instance",)), "{{instance}}"),),
              unit="cps"),
    ), collapsed=True),
)
"""The dashboard's rows, top to bottom; the cluster row (cluster mode only) starts collapsed."""

_NODES_METRIC = SERVER_STATE
"""Every node exposes it from its first scrape: the variables list its labels."""

VARIABLES: dict[str, str] = {
    "job": f"label_values({_NODES_METRIC.name}, job)",
    "node": f'label_values({_NODES_METRIC.name}{{job=~"$job"}}, instance)',
}
"""The query variables and their Grafana queries (``label_values(selector, label)``)."""


def _variables() -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = [{
        "name": "datasource", "label": "Data source", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0, "options": [], "refresh": 1,
        "regex": "",
    }]
    labels = {"job": "Job", "node": "Node"}
    for name, query in VARIABLES.items():
        variables.append({
            "name": name, "label": labels[name], "type": "query", "datasource": _DATASOURCE,
            "query": query, "definition": query, "current": {}, "hide": 0, "options": [],
            "refresh": 2, "regex": "", "sort": 1, "multi": True, "includeAll": True,
            "allValue": ".*",
        })
    return variables


def _panel_json(panel: Panel, panel_id: int, x: int, y: int, height: int) -> dict[str, Any]:
    targets = [{"datasource": _DATASOURCE, "expr": target.query.expr,
                "legendFormat": target.legend, "range": True, "refId": chr(ord("A") + index)}
               for index, target in enumerate(panel.targets)]
    if panel.kind == "stat":
        options: dict[str, Any] = {
            "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
            "orientation": "auto", "textMode": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        }
        field_defaults: dict[str, Any] = {"unit": panel.unit, "color": {"mode": "thresholds"},
                                          "thresholds": {"mode": "absolute", "steps": [
                                              {"color": "green", "value": None}]}}
    elif panel.kind == "timeseries":
        options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}}
        field_defaults = {"unit": panel.unit, "min": 0, "color": {"mode": "palette-classic"},
                          "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                     "showPoints": "never", "spanNulls": False}}
    else:
        raise ValueError(f"unknown panel kind {panel.kind!r}")
    return {
        "id": panel_id, "type": panel.kind, "title": panel.title,
        "description": panel.description(), "datasource": _DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": field_defaults, "overrides": []},
        "options": options, "targets": targets,
    }


def dashboard(rows: Sequence[Row] = ROWS) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a dict)."""
    top: list[dict[str, Any]] = []
    panel_id, y = 0, 0
    for row in rows:
        panel_id += 1
        row_json: dict[str, Any] = {"id": panel_id, "type": "row", "title": row.title,
                                    "collapsed": row.collapsed, "panels": [],
                                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
        top.append(row_json)
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            height = 4 if panel.kind == "stat" else 8
            if x + panel.width > 24:
                x, y = 0, y + line_height
                line_height = 0
            panel_id += 1
            # A collapsed row keeps its panels inside itself (Grafana's model).
            (row_json["panels"] if row.collapsed else top).append(
                _panel_json(panel, panel_id, x, y, height))
            x += panel.width
            line_height = max(line_height, height)
        y += line_height
    return {
        "id": None, "uid": UID, "title": TITLE,
        "description": "Generated by `wsconsole dashboard` from the metric definitions "
                       "(server/metrics.py): regenerate it, do not edit it.",
        "tags": ["wsconsole", "websockets"],
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "refresh": "30s", "time": {"from": "now-1h", "to": "now"}, "timepicker": {},
        "timezone": "", "links": [], "fiscalYearStartMonth": 0, "liveNow": False,
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "templating": {"list": _variables()},
        "panels": top,
    }


def dashboard_json() -> str:
    """The dashboard's JSON text, exactly as committed in dashboards/wsconsole.json."""
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel of a dashboard model that has queries, collapsed rows' included."""
    found: list[dict[str, Any]] = []
    for panel in model["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def main() -> int:
    """``python -m wsconsole.server.dashboard``: the JSON on stdout."""
    sys.stdout.write(dashboard_json())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
