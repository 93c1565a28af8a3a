"""The Grafana dashboards in manifests/monitoring/dashboards, read the way Grafana reads them.

Shared by the static checks (tests/monitoring) and the proof of every panel's query against
the local stack's real Prometheus (tests/integration/test_dashboards.py).

Grafana expands variables before it sends a query; Prometheus cannot. The tests expand them
to the values Grafana would use for the cluster (``GRAFANA_VARIABLES``) and refuse any other
``$variable``, so a new one must be given a value here before its panels count as proven.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"
DASHBOARD_DIR = MONITORING / "dashboards"
DATASOURCES_FILE = MONITORING / "grafana" / "provisioning" / "datasources" / "ca4.yaml"

# What Grafana puts in place of its variables, for the cluster:
# - $__rate_interval: max(4 x the datasource's timeInterval (15 s, the scrape interval), step +
#   scrape interval) = 1m at the default zoom. The local stack scrapes every second, so a 1m
#   window holds about 60 samples: the same query shape, more than enough data.
# - $__interval: the step Grafana picks for a 1 h range on a typical panel width.
# - $__range: the dashboards' default time range is 1 h; 5m keeps the local proof about what
#   just happened (no panel uses it today; here so a new one does not go unproven).
# - $host: the fleet dashboard's host variable at its default, All, whose allValue is ".*".
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "host": ".*",
}
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")

# Metrics only a cluster produces: kafka-exporter's (kafka_*) and cAdvisor's through the API
# server (container_*, machine_*). The local stack runs neither (its Kafka is a local broker
# without the exporter, and there are no containers).
CLUSTER_ONLY_METRIC = re.compile(r"\b(kafka_[a-z_]+|container_[a-z_]+|machine_[a-z_]+)\b")

# Panels the local stack cannot feed, by dashboard uid and title, with the reason. The
# integration test skips exactly these (checking first that each is what its reason says)
# and proves every other panel.
CLUSTER_ONLY: dict[tuple[str, str], str] = {
    ("ca4-pipeline", "Consumer lag by partition (Kafka's view, kafka-exporter)"): (
        "kafka-exporter runs only in the cluster (namespace monitoring)"
    ),
    ("ca4-pipeline", "Records written/s per topic (kafka-exporter)"): (
        "kafka-exporter runs only in the cluster (namespace monitoring)"
    ),
    ("ca4-pipeline", "Brokers, under-replicated partitions (kafka-exporter)"): (
        "kafka-exporter runs only in the cluster (namespace monitoring)"
    ),
    ("ca4-pipeline", "Container CPU by pod (cores)"): "cAdvisor metrics exist only on K3s nodes",
    ("ca4-pipeline", "Container memory working set by pod"): "cAdvisor metrics exist only on K3s nodes",
    ("ca4-pipeline", "Node CPU and memory used"): "cAdvisor metrics exist only on K3s nodes",
    ("ca4-pipeline", "Pipeline logs, filtered by event id"): "a Loki panel: Loki runs only in the cluster",
    ("ca4-pipeline", "Warnings and errors, namespace app"): "a Loki panel: Loki runs only in the cluster",
}


@dataclass(frozen=True)
class Panel:
    """One panel with queries, and where it is."""

    dashboard_uid: str
    dashboard_file: str
    raw: dict[str, Any]

    @property
    def title(self) -> str:
        """The panel's title."""
        return str(self.raw.get("title", ""))

    @property
    def id(self) -> int:
        """The panel's id (unique within its dashboard)."""
        return int(self.raw["id"])

    @property
    def key(self) -> tuple[str, str]:
        """(dashboard uid, panel title): how CLUSTER_ONLY names a panel."""
        return (self.dashboard_uid, self.title)

    @property
    def targets(self) -> list[dict[str, Any]]:
        """The panel's queries."""
        return list(self.raw.get("targets", []))

    def datasource_uid(self, target: dict[str, Any]) -> str:
        """The uid a target queries (its own datasource, else the panel's)."""
        ds = target.get("datasource") or self.raw.get("datasource") or {}
        return str(ds.get("uid", "")) if isinstance(ds, dict) else str(ds)

    def __str__(self) -> str:
        return f"{self.dashboard_uid}: {self.title}"


def datasource_uids() -> dict[str, str]:
    """``{type: uid}`` of the datasources Grafana provisions (the single source of the uids)."""
    doc = yaml.safe_load(DATASOURCES_FILE.read_text())
    return {ds["type"]: ds["uid"] for ds in doc["datasources"]}


def dashboards() -> dict[str, dict[str, Any]]:
    """``{file name: dashboard JSON}`` for every dashboard in the repo."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, with the panels a collapsed row holds."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def query_panels() -> list[Panel]:
    """Every panel that runs queries, across the dashboards."""
    found = []
    for name, board in dashboards().items():
        for raw in all_panels(board["panels"]):
            if raw.get("type") not in ("row", "text") and raw.get("targets"):
                found.append(Panel(board["uid"], name, raw))
    return found


def expand(expr: str) -> str:
    """``expr`` with Grafana's variables replaced as GRAFANA_VARIABLES says; unknown ones fail."""

    def sub(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in GRAFANA_VARIABLES:
            raise KeyError(
                f"Grafana variable ${name} has no test value: add it to GRAFANA_VARIABLES in {__name__}"
            )
        return GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(sub, expr)


def variables_used(text: str) -> set[str]:
    """Names of the ``$var``, ``${var}`` and ``[[var]]`` a string uses (what ``expand`` replaces)."""
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(text)}


def metric_names(expr: str) -> set[str]:
    """Metric and recording-rule names a PromQL expression reads (the ca4 ones and the cluster's)."""
    names = set(re.findall(r"\b(ca4:[a-z0-9_:]+|ca4_[a-z0-9_]+)\b", expr))
    names |= set(CLUSTER_ONLY_METRIC.findall(expr))
    names |= set(re.findall(r"\b(up)\{", expr))
    return names
